"""Pieces every stack reader shares: limits, the frame cache, axis letters, sniffing, sentences.

Private to sam2web.stack and its readers (stack_tiff, stack_files); other
modules use sam2web.stack's public surface.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cachetools import LRUCache

from sam2web.config import settings
from sam2web.errors import UserError

AXES = ("XY", "T", "Z", "C", "Y", "X")
MIN_SIDE = 8  # smaller frames cannot be tracked meaningfully
MAX_FRAME_PIXELS = 2**31 - 1  # per frame; refused from the header, before allocating
MAX_FRAME_BYTES = 1 << 30  # one decoded page (all its samples) may not exceed 1 GiB
# One frame cache for the whole process, so memory stays bounded however many stacks are open
# (the app caches several). SAM2WEB_FRAME_CACHE_MB sets its size.
DEFAULT_CACHE_BYTES = settings().frame_cache_bytes

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"

# Axis letters of tifffile / from_array and where they go. Generic ("unnamed") axes follow pages_as.
_TIME, _Z, _C = "T", "Z", "C"
_GENERIC = set("IQ")
_POSITION = set("PRM")  # from_array: P(osition), R, M; S before Y/X is handled apart
_FILE_POSITION = set("RM")  # in files: tifffile's tile/position (R) and mosaic (M) axes
_AXIS_NAMES = {
    "A": "angle",
    "P": "phase",
    "R": "tile",
    "H": "lifetime",
    "E": "lambda",
    "L": "exposure",
    "V": "event",
    "M": "mosaic",
    "J": "column",
    "K": "row",
}


# --------------------------------------------------------------------------------------------
# Frame cache
# --------------------------------------------------------------------------------------------
class FrameCache:
    """A byte-bounded LRU of decoded frames (cachetools' LRUCache sized by ``nbytes``), thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: LRUCache = LRUCache(maxsize=max(int(max_bytes), 1), getsizeof=lambda a: max(int(a.nbytes), 1))
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple, arr: np.ndarray) -> None:
        if arr.nbytes > self.max_bytes:
            return
        with self._lock:
            self._items[key] = arr

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


# The one decoded-frame cache of the process (SAM2WEB_FRAME_CACHE_MB, part of SAM2WEB_CACHE_MB): every
# stack and every folder stack's decoded files share it, so N open stacks never hold N budgets.
SHARED_CACHE = FrameCache(DEFAULT_CACHE_BYTES)

# A reader turns (xy, t, z, c) into a 2D array; it must be thread-safe.
Reader = Callable[[int, int, int, int], np.ndarray]


@dataclass
class Opened:
    """What a format reader found: enough for sam2web.stack to build a Stack."""

    sizes: dict[str, int]
    dtype: np.dtype
    reader: Reader
    channel_names: list[str]
    pixel_size: tuple[float, float, str] | None = None
    close: Callable[[], None] | None = None
    z_step: float | None = None  # Z spacing, in the pixel size's unit
    time_interval: float | None = None  # seconds between time points
    extra: dict = field(default_factory=dict)


def _brief(err: Exception | str) -> str:
    """A library's error text squeezed into a short clause for our one-sentence messages."""
    text = " ".join(str(err).split()).rstrip(".")
    return text if len(text) <= 120 else text[:117] + "..."


# --------------------------------------------------------------------------------------------
# Axis mapping helpers
# --------------------------------------------------------------------------------------------
def _norm_pages_as(pages_as: str) -> str:
    key = str(pages_as).strip().lower()
    if key in ("time", "t"):
        return _TIME
    if key in ("z", "depth"):
        return _Z
    raise UserError(f'Pages must be read as "time" or "z", not "{pages_as}".')


def _map_axes(
    letters: Seq[str], shape: Seq[int], pages_as: str, what: str, positions: set[str] = _POSITION
) -> dict[str, list[int]]:
    """Map named axes to our six; return {our axis: [source dims]} (several dims only for C).

    Refuses, with a sentence, unknown extra dimensions that are not of size 1, because guessing
    what an "angle" or "phase" axis means would silently track the wrong frames.
    """
    first = _norm_pages_as(pages_as)
    other = _Z if first == _TIME else _TIME
    out: dict[str, list[int]] = {a: [] for a in AXES}
    generic: list[int] = []
    for dim, (a, n) in enumerate(zip(letters, shape)):
        if a in ("Y", "X"):
            if out[a]:
                raise UserError(f"{what} has two {a} axes: name each dimension once.")
            out[a].append(dim)
        elif n == 1:
            continue
        elif a in (_TIME, _Z):
            if out[a]:
                raise UserError(f"{what} has two {'Time' if a == _TIME else 'Z'} axes: name each dimension once.")
            out[a].append(dim)
        elif a in ("C", "S"):
            out["C"].append(dim)
        elif a in positions:
            if out["XY"]:
                raise UserError(f"{what} has two position axes: name each dimension once.")
            out["XY"].append(dim)
        elif a in _GENERIC:
            generic.append(dim)
        else:
            name = _AXIS_NAMES.get(a, "unknown")
            raise UserError(
                f"{what} has a dimension {a} ({name}) of size {n} that cannot be "
                "mapped to position, time, Z or channel: keep one value of it and "
                "save the rest as TZCYX."
            )
    if generic:
        if len(generic) > 1 or out[first] and out[other]:
            sizes = " and ".join(str(shape[d]) for d in generic)
            raise UserError(
                f"{what} has {len(generic)} unnamed dimensions (sizes {sizes}): "
                "save it as an ImageJ hyperstack with named axes, or name them "
                '(e.g. axes "TCYX").'
            )
        target = first if not out[first] else other
        out[target].append(generic[0])
    return out


def _to_canonical(array: np.ndarray, mapping: dict[str, list[int]]) -> np.ndarray:
    """A view of ``array`` with axes (XY, T, Z, C, Y, X); size-1 and merged dims handled."""
    used = [d for dims in mapping.values() for d in dims]
    rest = [d for d in range(array.ndim) if d not in used]  # all size 1
    order = mapping["XY"] + mapping["T"] + mapping["Z"] + mapping["C"] + mapping["Y"] + mapping["X"] + rest
    view = np.transpose(array, order)
    shape = []
    for key in AXES:
        n = 1
        for d in mapping[key]:
            n *= array.shape[d]
        shape.append(n)
    return view.reshape(shape)


def _check_frame_size(height: int, width: int, bytes_per_pixel: int, name: str) -> None:
    """The pixel budget, from a header before anything is decoded: every reader calls it.

    Why: a 1 MB zlib-compressed TIFF can declare a 32000 x 32000 frame, a GiB once decoded; the
    budget (``SAM2WEB_MAX_FRAME_MPIX``) is what keeps one crafted file from taking the server's memory.
    """
    if height < MIN_SIDE or width < MIN_SIDE:
        raise UserError(
            f"{name} has frames of {width} x {height} pixels, too small to track: "
            f"use images of at least {MIN_SIDE} x {MIN_SIDE} pixels."
        )
    check_pixel_budget(height, width, bytes_per_pixel, name)


def check_pixel_budget(height: int, width: int, bytes_per_pixel: int, name: str) -> None:
    """The budget alone (label images, masks: any size up to it)."""
    from sam2web.config import settings

    budget = settings().max_frame_pixels
    if height * width > min(budget, MAX_FRAME_PIXELS) or height * width * bytes_per_pixel > MAX_FRAME_BYTES:
        raise UserError(
            f"{name} declares frames of {width} x {height} pixels, more than this server reads "
            f"(at most {budget / 1e6:g} megapixels and 1 GiB per frame, SAM2WEB_MAX_FRAME_MPIX): "
            "crop or bin the images first."
        )


def _default_channel_names(n: int, rgb: bool) -> list[str]:
    if rgb and n == 3:
        return ["Red", "Green", "Blue"]
    return [f"Channel {i + 1}" for i in range(n)]


def _fit_names(names: list[str], n: int) -> list[str]:
    names = [str(x) for x in names][:n]
    return names + [f"Channel {i + 1}" for i in range(len(names), n)]


# --------------------------------------------------------------------------------------------
# Sniffing and natural sort
# --------------------------------------------------------------------------------------------
TIME_UNITS_S = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "millisecond": 1e-3,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "µs": 1e-6,
    "us": 1e-6,
    "microsecond": 1e-6,
}


def seconds(value, unit: str | None = "s") -> float | None:
    """A time step in seconds, or None for a missing, unknown-unit or non-positive value."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    factor = TIME_UNITS_S.get(str(unit or "s").strip().lower())
    return v * factor if factor is not None and v > 0 else None


def positive(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None


def _natural_key(path: Path) -> list:
    """t2.tif before t10.tif: digits compare as numbers."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", path.name)]


def read_head(path: Path, n: int = 16) -> bytes:
    """The first bytes of a file, or a UserError sentence for a missing, empty or unreadable one."""
    if not path.exists():
        raise UserError(f"{path} does not exist: check the path.")
    if path.is_dir():
        raise UserError(f"{path} is a folder where a file was expected: give the image file.")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path.name} is empty (0 bytes): upload the file again.")
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as err:
        raise UserError(f"{path.name} cannot be read ({err.strerror}): check its permissions.") from None


def peek(path: Path, n: int = 16) -> bytes:
    """The first bytes of a regular file, b"" when there are none to read (sniffers never raise)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def image_kind(head: bytes) -> str | None:
    """ "tiff", "png" or "jpeg" from a file's first bytes, else None."""
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    return None


def _sniff(path: Path) -> str:
    """The file's real format from its first bytes: "tiff", "png", "jpeg"; UserError otherwise."""
    head = read_head(path)
    kind = image_kind(head)
    if kind is None:
        from sam2web.stack.registry import reader_for

        reader_for(path)  # another format, or the sentence that names every format
        raise UserError(f"{path.name} is not a TIFF, PNG or JPEG image: open it on its own.")
    suffix = path.suffix.lower()
    expected = {".tif": "tiff", ".tiff": "tiff", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
    if suffix in expected and expected[suffix] != kind:
        raise UserError(
            f"{path.name} is named {suffix} but holds a {kind.upper()} image: rename "
            f"it to .{'tif' if kind == 'tiff' else kind} or re-save it as {suffix}."
        )
    return kind
