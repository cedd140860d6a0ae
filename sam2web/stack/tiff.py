"""TIFF reading for sam2web.stack: ImageJ hyperstacks, OME-TIFF, plain multi-page and 2D TIFFs.

``TiffReader(path, pages_as, axes)`` works out, from the header only, how
pages and samples map to (XY, T, Z, C), refuses broken or absurd files with a sentence, and then
reads single frames: by memory map when the file is uncompressed and contiguous, else one page
at a time (never the whole series).
"""

from __future__ import annotations

import logging
import threading
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam2web.errors import DECODE_ERRORS, UserError
from sam2web.stack.common import (
    _FILE_POSITION,
    Opened,
    _brief,
    _check_frame_size,
    _default_channel_names,
    _map_axes,
    _sniff,
    check_pixel_budget,
    image_kind,
    peek,
)


class _TiffLog:
    """Collect (and hide) tifffile's log warnings raised by this thread.

    tifffile reports a broken IFD chain (a truncated file) only as a log warning and then
    quietly returns fewer pages; we turn that into a sentence instead of losing frames.
    """

    _local = threading.local()
    _installed = False
    _install_lock = threading.Lock()

    @classmethod
    def _filter(cls, record: logging.LogRecord) -> bool:
        bucket = getattr(cls._local, "bucket", None)
        if bucket is None:
            return True
        bucket.append(record.getMessage())
        return False

    def __enter__(self) -> list[str]:
        with self._install_lock:
            if not _TiffLog._installed:
                logging.getLogger("tifffile").addFilter(_TiffLog._filter)
                _TiffLog._installed = True
        self._previous = getattr(self._local, "bucket", None)
        self._local.bucket = []
        return self._local.bucket

    def __exit__(self, *exc) -> None:
        self._local.bucket = self._previous


_TRUNCATION_HINTS = (
    "invalid page offset",
    "corrupted",
    "truncat",
    "incorrect Strip",
    "incorrect Tile",
    "beyond end",
    "invalid tag",
)


@dataclass
class _SeriesLayout:
    """How the pages of one tifffile series map to (t, z, c)."""

    series_index: int
    leading_shape: tuple[int, ...]  # dims that index pages (C order)
    leading_target: list[str]  # per leading dim: "T", "Z", "C" or "" (size 1)
    n_samples: int  # samples per pixel used as channels (alpha dropped)
    planar: bool  # samples stored as separate planes
    n_pages: int


def check_ome_references(path: Path, tif) -> None:
    """Refuse an OME-TIFF whose metadata names files outside its own folder.

    Why: tifffile follows an OME multi-file series (``<TiffData><UUID FileName=…>``, a
    ``BinaryOnly`` ``MetadataFile``) by joining the name to the file's folder, so an absolute name or
    ``../`` would make an uploaded file read any TIFF on the server. A name is allowed only when it
    is a plain file name in the same folder: the files uploaded with it, or its own server folder.
    """
    try:
        xml = tif.pages.first.description if tif.pages else ""
    except Exception:  # noqa: BLE001 - no readable description: nothing to follow either
        return
    if "FileName" not in xml and "MetadataFile" not in xml:
        return
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return  # tifffile does not follow references in XML it cannot parse either
    folder = path.resolve().parent
    for el in root.iter():
        for attr in ("FileName", "MetadataFile"):
            name = el.get(attr)
            if name is None:
                continue
            plain = name == Path(name).name and "\\" not in name and name not in ("", ".", "..")
            if not plain or (folder / name).resolve().parent != folder:
                raise UserError(
                    f"{path.name} refers to the file {name[:80]!r} outside its own folder; sam2web only "
                    "reads OME-TIFF parts uploaded with it (or in its server folder): upload all its files together."
                )


def _open_tifffile(tifffile, path: Path):
    """``tifffile.TiffFile`` that leaves no file open when it refuses the header (tifffile itself
    does not close its handle when its constructor raises), and that never follows OME references
    out of the file's folder (``check_ome_references``)."""
    fh = open(path, "rb")  # noqa: SIM115 - handed to TiffFile, closed with it (see TiffReader.close)
    try:
        tif = tifffile.TiffFile(fh, name=path.name)
    except BaseException:
        fh.close()
        raise
    tif._sam2web_fh = fh
    try:
        check_ome_references(path, tif)
    except BaseException:
        _close_tif(tif)
        raise
    return tif


def read_tiff_image(path: Path, what: str = "") -> np.ndarray:
    """The first image series of a small TIFF (a label image, a CTC mask), checked before decoding.

    Why not ``tifffile.imread``: it follows OME references anywhere and decodes whatever size the
    header declares; here the references are checked and every plane must fit the pixel budget.
    """
    import tifffile

    name = what or path.name
    with _TiffLog(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tif = _open_tifffile(tifffile, Path(path))
        try:
            series = tif.series[0]
            key = series.keyframe
            planes = max(1, int(np.prod(series.shape)) // max(1, int(key.imagelength) * int(key.imagewidth)))
            check_pixel_budget(int(key.imagelength), int(key.imagewidth), max(1, key.dtype.itemsize), name)
            if planes > 4096:
                raise UserError(f"{name} holds {planes} images; give one 2D image per file.")
            return series.asarray()
        finally:
            _close_tif(tif)


def _close_tif(tif) -> None:
    tif.close()
    fh = getattr(tif, "_sam2web_fh", None)
    if fh is not None:
        fh.close()


def _damaged(path: Path, err: Exception | None = None) -> UserError:
    detail = f" ({_brief(err)})" if err and str(err) else ""
    return UserError(
        f"{path.name} could not be read as a TIFF, it may be truncated or damaged"
        f"{detail}: export it again from the original software."
    )


def _pixel_size_tiff(tif, series) -> tuple[float, float, str] | None:
    """Pixel size from OME metadata, ImageJ metadata or the resolution tags, if present."""
    try:
        if tif.is_ome and tif.ome_metadata:
            root = ET.fromstring(tif.ome_metadata)
            for el in root.iter():
                if el.tag.endswith("Pixels") and el.get("PhysicalSizeX"):
                    px = float(el.get("PhysicalSizeX"))
                    py = float(el.get("PhysicalSizeY") or px)
                    unit = el.get("PhysicalSizeXUnit") or "µm"
                    return px, py, _norm_unit(unit)
        page = series.keyframe
        xr = page.tags.get("XResolution")
        yr = page.tags.get("YResolution")
        if xr is None:
            return None
        xres = xr.value[0] / xr.value[1] if xr.value[1] else 0
        yres = (yr.value[0] / yr.value[1] if yr.value[1] else 0) if yr is not None else xres
        if xres <= 0 or yres <= 0:
            return None
        if tif.is_imagej:
            unit = (tif.imagej_metadata or {}).get("unit", "pixel")
            if unit in ("", "pixel", "pixels"):
                return None
            return _round(1.0 / xres), _round(1.0 / yres), _norm_unit(unit)
        runit = int(page.tags["ResolutionUnit"].value) if "ResolutionUnit" in page.tags else 2
        if runit == 2:  # inch
            return _round(25400.0 / xres), _round(25400.0 / yres), "µm"
        if runit == 3:  # centimetre
            return _round(10000.0 / xres), _round(10000.0 / yres), "µm"
        return None
    except Exception:  # metadata is a nicety; a frame must still open without it
        return None


def _steps_tiff(tif) -> tuple[float | None, float | None]:
    """(Z step, seconds per time point) from OME (PhysicalSizeZ, TimeIncrement) or ImageJ
    (spacing, finterval) metadata; None where the file does not say."""
    from sam2web.stack.common import positive, seconds

    try:
        if tif.is_ome and tif.ome_metadata:
            for el in ET.fromstring(tif.ome_metadata).iter():
                if el.tag.endswith("Pixels"):
                    return positive(el.get("PhysicalSizeZ")), seconds(
                        el.get("TimeIncrement"), el.get("TimeIncrementUnit") or "s"
                    )
        if tif.is_imagej:
            meta = tif.imagej_metadata or {}
            return positive(meta.get("spacing")), seconds(meta.get("finterval"), meta.get("tunit") or "s")
    except Exception:  # metadata is a nicety; a frame must still open without it
        pass
    return None, None


def _round(value: float) -> float:
    """Resolution tags are rationals: 1 / (1 / 0.65) should read back as 0.65."""
    return float(f"{value:.6g}")


def _norm_unit(unit: str) -> str:
    u = str(unit).strip()
    if u.lower() in ("um", "micron", "microns", "\\u00b5m", "µm", "μm"):
        return "µm"
    return u


def _channel_names_tiff(tif, n_c: int, rgb: bool) -> list[str]:
    try:
        if tif.is_ome and tif.ome_metadata:
            root = ET.fromstring(tif.ome_metadata)
            names = []
            for pixels in root.iter():
                if pixels.tag.endswith("Pixels"):
                    for ch in pixels:
                        if ch.tag.endswith("Channel"):
                            names.append(ch.get("Name") or "")
                    break
            if names and all(names) and len(names) == n_c:
                return names
        if tif.is_imagej:
            # ImageJ keeps one label per plane; channel names when they repeat every C planes
            labels = (tif.imagej_metadata or {}).get("Labels")
            if (
                isinstance(labels, (list, tuple))
                and n_c > 1
                and len(labels) >= n_c
                and all(str(lab) == str(labels[i % n_c]) for i, lab in enumerate(labels))
            ):
                names = [str(x) for x in labels[:n_c]]
                if all(names) and len(set(names)) == n_c:
                    return names
    except Exception:
        pass
    return _default_channel_names(n_c, rgb)


def _layout(path: Path, tif, series, index: int, pages_as: str, axes: str | None) -> _SeriesLayout:
    """Work out how pages and samples of a series map to T, Z and C, from the header only."""
    key = series.keyframe
    sp, depth, height, width, sc = key.shaped
    if depth > 1:
        raise UserError(
            f"{path.name} stores volumes inside single pages (tiled depth {depth}): save it with one 2D image per page."
        )
    samples = sp * sc
    _check_frame_size(height, width, samples * key.dtype.itemsize if key.dtype else 1, path.name)
    extras = [int(x) for x in (getattr(key, "extrasamples", ()) or ())]
    n_alpha = sum(1 for x in extras if x in (1, 2))
    n_samples = samples - n_alpha if samples - n_alpha >= 1 else samples

    page_dims = [(a, n) for a, n in zip(key.axes, key.shape) if n > 1 or a in "YX"]
    if axes is not None:
        letters = axes.upper()
        if len(letters) != len(series.shape):
            raise UserError(
                f'The axes "{axes}" name {len(letters)} dimensions but '
                f"{path.name} has {len(series.shape)} (shape {tuple(series.shape)}): "
                "give one letter per dimension."
            )
        ser_dims = list(zip(letters, series.shape))
    else:
        ser_dims = list(zip(series.axes, series.shape))
    ser_dims = [(a, n) for a, n in ser_dims if n > 1 or a in "YX"]
    n_page = len(page_dims)
    if [n for _, n in ser_dims[-n_page:]] != [n for _, n in page_dims]:
        raise UserError(
            f"{path.name} has an irregular page layout (axes {series.axes}, shape "
            f"{tuple(series.shape)}): save it as an ImageJ hyperstack or OME-TIFF."
        )
    lead = ser_dims[:-n_page] if n_page else ser_dims
    letters = [a for a, _ in lead]
    shape = [n for _, n in lead]
    mapping = _map_axes(letters, shape, pages_as, what=path.name, positions=_FILE_POSITION)
    target = [""] * len(lead)
    for ax in ("T", "Z", "C", "XY"):
        for d in mapping[ax]:
            target[d] = ax
    return _SeriesLayout(
        series_index=index,
        leading_shape=tuple(shape),
        leading_target=target,
        n_samples=n_samples,
        planar=sp > 1,
        n_pages=int(np.prod(shape or [1])),
    )


class TiffReader:
    """Thread-safe frame reads from one TIFF: memory map when possible, else page by page."""

    def __init__(self, path: Path, pages_as: str, axes: str | None) -> None:
        # tifffile logs (rather than raises) much of what it finds wrong; keep that off stderr
        # and let _open look at it
        with _TiffLog() as log:
            try:
                self._open(path, pages_as, axes, log)
            except BaseException:
                tif = getattr(self, "tif", None)
                if tif is not None:
                    _close_tif(tif)  # a file refused after it was opened must not stay open
                raise

    def _open(self, path: Path, pages_as: str, axes: str | None, log: list[str]) -> None:
        import tifffile

        self.path = path
        self._lock = threading.Lock()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.tif = _open_tifffile(tifffile, path)
                all_series = list(self.tif.series)
                n_pages = len(self.tif.pages)  # walks the whole IFD chain (headers only)
        except UserError:
            raise
        except (*DECODE_ERRORS, TypeError) as err:  # tifffile raises these (TypeError too) for broken headers
            raise _damaged(path, err) from None
        if n_pages:
            first_page = self.tif.pages.first
            try:
                _check_frame_size(
                    int(first_page.imagelength),
                    int(first_page.imagewidth),
                    max(1, int(first_page.samplesperpixel)) * max(1, int(first_page.bitspersample) // 8),
                    path.name,
                )
            except UserError:
                _close_tif(self.tif)
                raise
        problems = [m for m in log if any(h.lower() in m.lower() for h in _TRUNCATION_HINTS)]
        self.tif.filehandle.set_lock(True)
        if problems or not all_series or n_pages == 0:
            _close_tif(self.tif)
            if any("page offset" in m for m in problems):
                raise UserError(
                    f"{path.name} is truncated: its list of images breaks off after "
                    f"{n_pages} page(s); copy or export the file again."
                )
            raise _damaged(path, ValueError(problems[0]) if problems else None)
        first = all_series[0]
        # OME positions (and other multi-series files) are XY when their shape matches the first.
        self.series = [
            s
            for s in all_series
            if tuple(s.shape) == tuple(first.shape) and s.dtype == first.dtype and s.axes == first.axes
        ]
        try:
            self.layouts = [_layout(path, self.tif, s, i, pages_as, axes) for i, s in enumerate(self.series)]
        except UserError:
            _close_tif(self.tif)
            raise
        except DECODE_ERRORS as err:
            _close_tif(self.tif)
            raise _damaged(path, err) from None
        lay = self.layouts[0]
        key = first.keyframe
        self.dtype = np.dtype(key.dtype)
        self.height, self.width = int(key.imagelength), int(key.imagewidth)
        n = {"XY": 1, "T": 1, "Z": 1, "C": 1}
        for size, tgt in zip(lay.leading_shape, lay.leading_target):
            if tgt:
                n[tgt] *= size
        # positions are either separate series (OME) or one axis inside the series (R, M)
        self.xy_inside = "XY" in lay.leading_target
        if self.xy_inside and len(self.series) > 1:
            _close_tif(self.tif)
            raise UserError(
                f"{path.name} has positions both as image series and inside a "
                "series: save each position as its own OME-TIFF series or file."
            )
        self.sizes = {
            "XY": n["XY"] if self.xy_inside else len(self.series),
            "T": n["T"],
            "Z": n["Z"],
            "C": n["C"] * lay.n_samples,
            "Y": self.height,
            "X": self.width,
        }
        self._check_complete()
        self.memmaps = self._try_memmap()
        rgb = lay.n_samples == 3 and n["C"] == 1 and int(key.photometric) == 2
        self.rgb = rgb

    def _check_complete(self) -> None:
        """Refuse truncated files up front: the last page's data must lie inside the file."""
        size = self.path.stat().st_size
        for s, lay in zip(self.series, self.layouts):
            try:
                pages = s.pages
                n_pages = len(pages)
                last = pages[n_pages - 1] if n_pages else None
                if n_pages not in (lay.n_pages, 1) or last is None:
                    raise ValueError(f"{n_pages} pages where {lay.n_pages} were expected")
                if n_pages == 1 and lay.n_pages > 1:
                    # one IFD for many planes (ImageJ > 4 GB): the data must be contiguous
                    if s.dataoffset is None:
                        raise ValueError("pages are missing")
                    end = s.dataoffset + lay.n_pages * s.keyframe.nbytes
                else:
                    end = max(o + c for o, c in zip(last.dataoffsets, last.databytecounts))
            except UserError:
                raise
            except DECODE_ERRORS as err:
                _close_tif(self.tif)
                raise _damaged(self.path, err) from None
            if end > size:
                _close_tif(self.tif)
                raise UserError(
                    f"{self.path.name} is truncated ({size} bytes, but its pages "
                    f"need {end}): copy or export the file again."
                )

    def _try_memmap(self) -> list | None:
        """Memory-map uncompressed contiguous series: a frame read is then a plain slice."""
        import tifffile

        maps = []
        for s, lay in zip(self.series, self.layouts):
            if s.dataoffset is None:
                return None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mm = tifffile.memmap(str(self.path), series=lay.series_index, mode="r")
            except Exception:
                return None
            sp, _, h, w, sc = s.keyframe.shaped
            try:
                maps.append(mm.reshape((lay.n_pages, sp, h, w, sc)))
            except ValueError:
                return None
        return maps

    def _page_index(self, lay: _SeriesLayout, xy: int, t: int, z: int, c: int) -> tuple[int, int]:
        """(page number in the series, sample index within the page) for one frame."""
        c_lead, sample = divmod(c, lay.n_samples)
        value = {"XY": xy, "T": t, "Z": z, "C": c_lead}
        coords = [0] * len(lay.leading_shape)
        for tgt in ("XY", "T", "Z", "C"):
            dims = [d for d, g in enumerate(lay.leading_target) if g == tgt]
            if dims:  # a target may span several dims (e.g. C and S); unravel over them
                sub = np.unravel_index(value[tgt], [lay.leading_shape[d] for d in dims])
                for d, v in zip(dims, sub):
                    coords[d] = int(v)
        idx = int(np.ravel_multi_index(coords, lay.leading_shape)) if coords else 0
        return idx, sample

    def read(self, xy: int, t: int, z: int, c: int) -> np.ndarray:
        if self.xy_inside:
            xy_in, xy = xy, 0
        else:
            xy_in = 0
        lay = self.layouts[xy]
        idx, sample = self._page_index(lay, xy_in, t, z, c)
        if self.memmaps is not None:
            plane = self.memmaps[xy][idx]
            return plane[sample, :, :, 0] if lay.planar else plane[0, :, :, sample]
        s = self.series[xy]
        sp, _, h, w, sc = s.keyframe.shaped
        try:
            with _TiffLog():
                with self._lock:  # page lookup may parse an IFD; one thread at a time
                    page = s.pages[idx]
                # tifffile's file-handle lock guards seek+read; decoding runs unlocked, so the
                # UI thread is not held up while a tracking thread decompresses another frame
                data = page.asarray()
            data = data.reshape(sp, h, w, sc)
        except DECODE_ERRORS as err:
            raise UserError(
                f"Frame {idx + 1} of {self.path.name} could not be decoded "
                f"({_brief(err)}): the file may be damaged; export it "
                "again."
            ) from None
        return data[sample, :, :, 0] if lay.planar else data[0, :, :, sample]

    def channel_names(self) -> list[str]:
        return _channel_names_tiff(self.tif, self.sizes["C"], self.rgb)

    def close(self) -> None:
        self.memmaps = None
        _close_tif(self.tif)

    def opened(self) -> Opened:
        """The reader as sam2web.stack wants it."""
        return Opened(
            sizes=dict(self.sizes),
            dtype=self.dtype,
            reader=self.read,
            channel_names=self.channel_names(),
            pixel_size=_pixel_size_tiff(self.tif, self.series[0]),
            close=self.close,
            z_step=_steps_tiff(self.tif)[0],
            time_interval=_steps_tiff(self.tif)[1],
            extra={"rgb": self.rgb},
        )


def pixel_size_of(path: Path) -> tuple[float, float, str] | None:
    """The pixel size a TIFF file declares, or None (for per-frame folders)."""
    import tifffile

    try:
        with _TiffLog():
            tif = _open_tifffile(tifffile, Path(path))
            try:
                return _pixel_size_tiff(tif, tif.series[0])
            finally:
                _close_tif(tif)
    except Exception:  # metadata is a nicety (a refused file is refused where it is opened)
        return None


def sniff(path: Path) -> bool:
    return image_kind(peek(path)) == "tiff"


def open_path(path: Path, pages_as: str, axes: str | None) -> Opened:
    """The reader registry's entry point; a TIFF named .png is refused with a sentence first."""
    _sniff(path)
    return TiffReader(path, pages_as, axes).opened()
