"""Folders and lists of per-frame 2D images (TIFF, PNG, JPEG) for sam2web.stack.

Every file's header is read up front (sizes, channels and bit depth must
agree, or the odd file is named in a sentence); pixels are decoded only when a frame is asked for.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam2web.errors import DECODE_ERRORS, UserError
from sam2web.stack.common import (
    _TIME,
    _Z,
    SHARED_CACHE,
    FrameCache,
    Opened,
    _brief,
    _check_frame_size,
    _default_channel_names,
    _natural_key,
    _norm_pages_as,
    _sniff,
    image_kind,
    peek,
)
from sam2web.stack.tiff import TiffReader, pixel_size_of


@dataclass
class _ImageHeader:
    path: Path
    kind: str
    height: int
    width: int
    channels: int
    dtype: np.dtype
    rgb: bool


def _pil_dtype(mode: str) -> tuple[np.dtype, int, bool]:
    """(dtype, channels, rgb) that a PIL image mode decodes to (alpha dropped, palette -> RGB)."""
    table = {
        "1": (np.uint8, 1, False),
        "L": (np.uint8, 1, False),
        "LA": (np.uint8, 1, False),
        "P": (np.uint8, 3, True),
        "PA": (np.uint8, 3, True),
        "RGB": (np.uint8, 3, True),
        "RGBA": (np.uint8, 3, True),
        "RGBX": (np.uint8, 3, True),
        "CMYK": (np.uint8, 3, True),
        "YCbCr": (np.uint8, 3, True),
        "I;16": (np.uint16, 1, False),
        "I;16B": (np.uint16, 1, False),
        "I;16L": (np.uint16, 1, False),
        "I": (np.int32, 1, False),
        "F": (np.float32, 1, False),
    }
    if mode not in table:
        raise KeyError(mode)
    d, c, rgb = table[mode]
    return np.dtype(d), c, rgb


def _image_header(path: Path) -> _ImageHeader:
    """Size, channels and type of one 2D image file from its header (nothing decoded)."""
    kind = _sniff(path)
    if kind == "tiff":
        rd = TiffReader(path, "time", None)
        try:
            s = rd.sizes
            if s["XY"] * s["T"] * s["Z"] > 1:
                raise UserError(
                    f"{path.name} holds {s['XY'] * s['T'] * s['Z']} images, but "
                    "files given together must each be one 2D image: open that "
                    "stack on its own."
                )
            return _ImageHeader(path, kind, s["Y"], s["X"], s["C"], rd.dtype, rd.rgb)
        finally:
            rd.close()
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's DecompressionBombWarning
            with Image.open(path) as im:
                width, height = im.size
                mode = im.mode
    except Image.DecompressionBombError as err:
        raise UserError(
            f"{path.name} is too large to decode safely ({_brief(err)}): crop or bin the images first."
        ) from None
    except DECODE_ERRORS as err:
        raise UserError(
            f"{path.name} could not be read as a {kind.upper()} image ({_brief(err)}): export it again."
        ) from None
    try:
        dtype, channels, rgb = _pil_dtype(mode)
    except KeyError:
        raise UserError(
            f"{path.name} uses the image mode {mode}, which sam2web cannot read: "
            "save it as 8- or 16-bit grayscale or RGB."
        ) from None
    _check_frame_size(height, width, channels * dtype.itemsize, path.name)
    return _ImageHeader(path, kind, height, width, channels, dtype, rgb)


def _decode_image(header: _ImageHeader) -> np.ndarray:
    """Decode one file to (Y, X, C)."""
    path = header.path
    try:
        if header.kind == "tiff":
            import tifffile

            from sam2web.stack.tiff import _close_tif, _open_tifffile

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tif = _open_tifffile(tifffile, path)  # OME references checked; size checked in the header step
                try:
                    page = tif.series[0].keyframe
                    sp, _, h, w, sc = page.shaped
                    data = tif.series[0].pages[0].asarray().reshape(sp, h, w, sc)
                finally:
                    _close_tif(tif)
            data = np.moveaxis(data, 0, -1).reshape(h, w, sp * sc)
            return data[..., : header.channels]
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                if im.mode in ("P", "PA", "CMYK", "YCbCr"):
                    im = im.convert("RGB")
                elif im.mode == "1":
                    im = im.convert("L")
                data = np.asarray(im)
    except UserError:
        raise
    except DECODE_ERRORS as err:
        raise UserError(
            f"{path.name} could not be decoded ({_brief(err)}): the file may be damaged; export it again."
        ) from None
    if data.ndim == 2:
        data = data[:, :, None]
    data = data[:, :, : header.channels]
    if data.dtype != header.dtype:
        data = data.astype(header.dtype)
    return data


def open_files(files: list[Path], pages_as: str, decoded_cache_bytes: int | None = None) -> Opened:
    """Per-frame 2D images as one stack along Time or Z; every header checked, nothing decoded."""
    axis = _norm_pages_as(pages_as)
    headers = [_image_header(p) for p in files]
    ref = headers[0]
    for h in headers[1:]:
        if (h.height, h.width) != (ref.height, ref.width):
            raise UserError(
                f"{h.path.name} is {h.width} x {h.height} pixels but "
                f"{ref.path.name} is {ref.width} x {ref.height}: all images of a "
                "stack must have the same size."
            )
        if h.channels != ref.channels:
            raise UserError(
                f"{h.path.name} has {h.channels} channel(s) but {ref.path.name} has "
                f"{ref.channels}: use images of one kind (all gray or all RGB)."
            )
        if h.dtype != ref.dtype:
            raise UserError(
                f"{h.path.name} is {h.dtype} but {ref.path.name} is {ref.dtype}: "
                "save all images with the same bit depth."
            )
    n = len(headers)
    # whole decoded files (Y, X, C), so the channels of one RGB file are decoded once
    # (the process's shared cache unless a private size is asked for; keys are unique to this stack)
    decoded = SHARED_CACHE if decoded_cache_bytes is None else FrameCache(decoded_cache_bytes)
    token = uuid.uuid4().hex

    def read(xy: int, t: int, z: int, c: int) -> np.ndarray:
        i = t if axis == _TIME else z
        key = ("decoded", token, i)
        data = decoded.get(key)
        if data is None:
            data = _decode_image(headers[i])
            if data.shape[:2] != (ref.height, ref.width):
                raise UserError(
                    f"{headers[i].path.name} decoded to a different size than its header says: export it again."
                )
            decoded.put(key, data)
        return data[:, :, c]

    sizes = {
        "XY": 1,
        "T": n if axis == _TIME else 1,
        "Z": n if axis == _Z else 1,
        "C": ref.channels,
        "Y": ref.height,
        "X": ref.width,
    }
    pixel_size = pixel_size_of(ref.path) if ref.kind == "tiff" else None
    return Opened(
        sizes=sizes,
        dtype=ref.dtype,
        reader=read,
        channel_names=_default_channel_names(ref.channels, ref.rgb),
        pixel_size=pixel_size,
    )


def list_images(folder: Path) -> list[Path]:
    """The frame files of a folder (the reader registry's ``frames`` readers' extensions)."""
    from sam2web.stack.registry import frame_extensions

    kinds = frame_extensions()
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in kinds]
    return sorted(files, key=_natural_key)


def sniff_image(path: Path) -> bool:
    return image_kind(peek(path)) in ("png", "jpeg")


def open_path(path: Path, pages_as: str, axes: str | None) -> Opened:
    """One PNG or JPEG image (the reader registry's entry point)."""
    return open_files([path], pages_as)


def open_folder(path: Path, pages_as: str, axes: str | None) -> Opened:
    """A folder of per-frame images in natural order; a folder of one file opens that file."""
    from sam2web.stack.registry import no_frames
    from sam2web.stack.registry import open_path as open_any

    files = list_images(path)
    if not files:
        raise no_frames(path)
    if len(files) == 1:
        return open_any(files[0], pages_as, axes)[1]
    return open_files(files, pages_as)
