"""Microscope formats read through bioio's reader plugins (Nikon ND2, Leica LIF).

    open_nd2(path, pages_as, axes) -> Opened      bioio-nd2 (the ``nd2`` package)
    open_lif(path, pages_as, axes) -> Opened      bioio-lif (``liffile``)
    open_plugin(path, plugin, label) -> Opened    any bioio reader plugin, by module name
    sniff_nd2(path) / sniff_lif(path) -> bool     by the files' magic bytes

Why bioio: it is the maintained successor of AICSImageIO, and its plugins know the vendors'
formats; sam2web only maps bioio's dimensions (scenes, T, C, Z, Y, X, RGB samples) onto its own
(XY, T, Z, C, Y, X) and reads one 2D plane per request. bioio gives each scene a lazy dask array,
so a frame read decodes that plane only, never the whole file; the frame-size budget is checked
from the dimensions before anything is decoded. A reader object switches scenes statefully, so
reads are serialised by a lock (sam2web's frame cache sits in front of it).

Calibration: bioio reports pixel sizes in micrometres; the time interval is taken where the
plugin gives it as a duration (ND2's time loop).
"""

from __future__ import annotations

import importlib
import threading
from datetime import timedelta
from pathlib import Path

import numpy as np

from sam2web.errors import UserError
from sam2web.stack.common import Opened, _brief, _check_frame_size, _default_channel_names, _fit_names, positive

ND2_MAGIC = (b"\xda\xce\xbe\x0a", b"\x00\x00\x00\x0cjP  ")  # ND2 (v2+), legacy JPEG 2000 ND2
LIF_MAGIC = b"\x70\x00\x00\x00"


def _head(path: Path, n: int = 8) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def sniff_nd2(path: Path) -> bool:
    return path.suffix.lower() == ".nd2" and _head(path).startswith(ND2_MAGIC)


def sniff_lif(path: Path) -> bool:
    return path.suffix.lower() == ".lif" and _head(path).startswith(LIF_MAGIC)


def _damaged(path: Path, label: str, err: Exception | None = None) -> UserError:
    detail = f" ({_brief(err)})" if err is not None and str(err) else ""
    return UserError(
        f"{path.name} could not be read as {label}{detail}: export it again, or convert it to OME-TIFF with Fiji."
    )


def _seconds(interval) -> float | None:
    if isinstance(interval, timedelta):
        return positive(interval.total_seconds())
    return None


def open_plugin(path: Path, plugin: str, label: str) -> Opened:
    """Open ``path`` with bioio's ``plugin`` (e.g. ``"bioio_nd2"``); scenes become XY positions."""
    try:
        from bioio import BioImage

        reader_cls = importlib.import_module(plugin).Reader
    except ImportError:
        raise UserError(
            f"Reading {label} files needs the {plugin.replace('_', '-')} package, which is not installed here; "
            "install sam2web's requirements, or convert the file to OME-TIFF with Fiji."
        ) from None
    try:
        image = BioImage(path, reader=reader_cls)
        scenes = list(image.scenes)
        shapes = []
        for i in range(len(scenes)):  # positions share one shape: a LIF's series may not
            image.set_scene(i)
            shapes.append(dict(zip(image.dims.order, image.dims.shape)))
        image.set_scene(0)
        shape = shapes[0]
        dtype = np.dtype(image.dtype)
        names = list(image.channel_names or [])
        sizes_um = image.physical_pixel_sizes
        interval = _seconds(getattr(image, "time_interval", None))
    except (UserError, MemoryError):
        raise
    except Exception as err:  # the vendors' parsers raise anything on a damaged file
        raise _damaged(path, label, err) from None
    odd = [scenes[i] for i, other in enumerate(shapes) if other != shape]
    if odd:
        raise UserError(
            f"{path.name} holds series of different sizes ({scenes[0]!s} and {odd[0]!s}), which cannot be "
            "positions of one stack; export the series you want as OME-TIFF with Fiji and open that."
        )
    samples = shape.get("S", 1)
    channels = shape.get("C", 1)
    rgb = samples > 1 and channels == 1
    height, width = shape.get("Y", 1), shape.get("X", 1)
    _check_frame_size(height, width, dtype.itemsize * max(samples, 1), path.name)
    sizes = {
        "XY": len(scenes),
        "T": shape.get("T", 1),
        "Z": shape.get("Z", 1),
        "C": samples if rgb else channels,
        "Y": height,
        "X": width,
    }
    lock = threading.Lock()
    current = {"scene": 0}

    def read(xy: int, t: int, z: int, c: int) -> np.ndarray:
        with lock:
            try:
                if current["scene"] != xy:
                    image.set_scene(xy)
                    current["scene"] = xy
                if rgb:
                    plane = image.get_image_dask_data("YXS", T=t, Z=z, C=0)[..., c]
                else:
                    plane = image.get_image_dask_data("YX", T=t, Z=z, C=c)
                return np.asarray(plane.compute())
            except Exception as err:  # a truncated file shows itself at the first read of its data
                raise _damaged(path, label, err) from None

    px = positive(getattr(sizes_um, "X", None))
    py = positive(getattr(sizes_um, "Y", None))
    channel_names = names if not rgb else ["Red", "Green", "Blue"][: sizes["C"]]
    return Opened(
        sizes=sizes,
        dtype=dtype,
        reader=read,
        channel_names=_fit_names(channel_names or _default_channel_names(sizes["C"], rgb=rgb), sizes["C"]),
        pixel_size=(px, py or px, "µm") if px else None,
        z_step=positive(getattr(sizes_um, "Z", None)),
        time_interval=interval,
        extra={"format": label, "reader": plugin},
    )


def open_nd2(path: Path, pages_as: str = "time", axes: str | None = None) -> Opened:
    return open_plugin(path, "bioio_nd2", "ND2")


def open_lif(path: Path, pages_as: str = "time", axes: str | None = None) -> Opened:
    return open_plugin(path, "bioio_lif", "LIF")
