"""Open microscopy files as a lazy Stack (axes XY, Time, Z, C, Y, X) and read single frames.

The surface other modules use:

    open_stack(paths: str | Path | list, pages_as: str = "time", axes: str | None = None,
               cache_bytes: int | None = None) -> Stack
    Stack.from_array(array, axes="TYX", name="array", pixel_size=None, channel_names=None,
                     pages_as="time") -> Stack
    Stack.sizes -> dict with keys "XY","T","Z","C","Y","X"; Stack.dtype; Stack.pixel_size (x, y, unit) | None
    Stack.channel_names -> list[str]; Stack.name -> str (for display)
    Stack.frame(loc: Location, channel: int) -> 2D np.ndarray (Y, X) raw data, decoded lazily.
        READ-ONLY (it may be shared through the cache): copy it before changing it in place.
    Stack.height / .width / .shape / .locations() / .describe() / .check_location(loc, c) / .close()
    Stack.source -> dict (JSON-safe) that ``reopen(source)`` turns back into the same Stack

Formats come from the reader registry (``sam2web.stack.registry.READERS``): ImageJ hyperstacks
(any of TZCYX), OME-TIFF (series/positions -> XY, channel names, physical pixel size), plain
multi-page TIFF (pages are Time or Z as ``pages_as`` says), CZI, OME-Zarr, videos, a folder or
list of per-frame 2D TIFF/PNG/JPEG files (natural sort: t2 before t10), a single 2D image.
RGB(A) becomes three channels (alpha dropped). Anything wrong raises UserError with one sentence.

Why lazy: microscopy stacks are often larger than memory, and the app shows one frame at a time. A
frame is read from its own TIFF page (or a memory map of an uncompressed file, or its own file in a
folder) and kept in a process-wide LRU cache (``SHARED_CACHE``, SAM2WEB_FRAME_CACHE_MB, default
512) so that browsing back and forth feels instant. Reads are thread-safe.

Frames are always (height, width) = (rows, columns) exactly as stored: the original worker swapped
width and height, which would distort every non-square image.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sam2web.errors import UserError
from sam2web.stack.common import (
    AXES,
    DEFAULT_CACHE_BYTES,
    MIN_SIDE,
    SHARED_CACHE,
    FrameCache,
    Opened,
    Reader,
    _check_frame_size,
    _default_channel_names,
    _fit_names,
    _map_axes,
    _natural_key,
    _norm_pages_as,
    _to_canonical,
)
from sam2web.stack.registry import open_path
from sam2web.types import Location

__all__ = ["AXES", "DEFAULT_CACHE_BYTES", "MIN_SIDE", "SHARED_CACHE", "FrameCache", "Stack", "open_stack", "reopen"]

_UID_LOCK = threading.Lock()
_NEXT_UID = 0


@dataclass(eq=False)
class Stack:
    """A 6D image (XY, T, Z, C, Y, X) whose 2D frames are read on demand.

    Build one with :func:`open_stack` or :meth:`Stack.from_array`; other code only reads
    ``sizes``, ``dtype``, ``pixel_size``, ``channel_names``, ``name`` and calls ``frame``.
    """

    sizes: dict[str, int]
    dtype: np.dtype
    name: str
    reader: Reader
    channel_names: list[str] = field(default_factory=list)
    pixel_size: tuple[float, float, str] | None = None
    source: dict = field(default_factory=dict)
    z_step: float | None = None  # Z spacing in the pixel size's unit, where the file says it
    time_interval: float | None = None  # seconds between time points, where the file says it
    cache: FrameCache | None = None
    _closers: list = field(default_factory=list, repr=False)
    _uid: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        global _NEXT_UID
        with _UID_LOCK:
            _NEXT_UID += 1
            self._uid = _NEXT_UID
        if self.cache is None:
            self.cache = SHARED_CACHE

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_array(
        cls,
        array: np.ndarray,
        axes: str = "TYX",
        name: str = "array",
        pixel_size: tuple[float, float, str] | None = None,
        channel_names: list[str] | None = None,
        pages_as: str = "time",
    ) -> Stack:
        """Wrap an in-memory array (a view, not a copy) whose axes are named by letters.

        Letters: T time, Z depth, C channel, P (or R/M) position -> XY, Y, X; S is RGB samples
        (-> channels) when it comes after Y and X, and series/positions (-> XY) before them;
        I/Q are unnamed and follow ``pages_as``. Size-1 axes of any letter are ignored.
        """
        array = np.asarray(array)
        axes = axes.upper()
        if len(axes) != array.ndim:
            raise UserError(
                f'The axes "{axes}" name {len(axes)} dimensions but the array has '
                f"{array.ndim} (shape {array.shape}): give one letter per dimension."
            )
        if "Y" not in axes or "X" not in axes:
            raise UserError(f'The axes "{axes}" must include both Y and X.')
        ypos, xpos = axes.index("Y"), axes.index("X")
        letters = []
        for i, a in enumerate(axes):
            if a == "S":
                letters.append("C" if i > max(ypos, xpos) else "P")
            else:
                letters.append(a)
        mapping = _map_axes(letters, array.shape, pages_as, what=f"The array ({name})")
        array = _to_canonical(array, mapping)
        _check_frame_size(array.shape[4], array.shape[5], array.dtype.itemsize, name)
        if array.dtype == bool:
            array = array.view(np.uint8)

        def read(xy: int, t: int, z: int, c: int) -> np.ndarray:
            return array[xy, t, z, c]

        n_c = array.shape[3]
        rgb = n_c == 3 and any(a == "S" and i > max(ypos, xpos) for i, a in enumerate(axes))
        names = list(channel_names) if channel_names else _default_channel_names(n_c, rgb=rgb)
        return cls(
            sizes=dict(zip(AXES, (int(s) for s in array.shape))),
            dtype=array.dtype,
            name=name,
            reader=read,
            channel_names=_fit_names(names, n_c),
            pixel_size=pixel_size,
            source={"kind": "array"},
        )

    # -- access ---------------------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.sizes["Y"]

    @property
    def width(self) -> int:
        return self.sizes["X"]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.sizes[a] for a in AXES)

    def check_location(self, loc: Location, channel: int = 0) -> None:
        """Raise UserError (with 1-based numbers, as the user sees them) for a place outside."""
        for value, key, label in (
            (loc.xy, "XY", "XY"),
            (loc.time, "T", "Time"),
            (loc.z, "Z", "Z"),
            (channel, "C", "channel"),
        ):
            if not 0 <= int(value) < self.sizes[key]:
                raise UserError(
                    f"{label} {int(value) + 1} is outside the stack {self.name}: "
                    f"choose {label} from 1 to {self.sizes[key]}."
                )

    def frame(self, loc: Location, channel: int = 0) -> np.ndarray:
        """One 2D frame (Y, X) of raw data; read-only because it may be shared through the cache."""
        loc = Location(int(loc[0]), int(loc[1]), int(loc[2]))
        self.check_location(loc, channel)
        key = (loc.xy, loc.time, loc.z, int(channel))
        cache_key = (self._uid,) + key
        hit = self.cache.get(cache_key)
        if hit is not None:
            return hit
        arr = np.array(self.reader(*key), copy=True)
        if arr.shape != (self.height, self.width):
            raise UserError(
                f"A frame of {self.name} has size {arr.shape[1]} x {arr.shape[0]} "
                f"instead of {self.width} x {self.height}: re-save the file."
            )
        arr.setflags(write=False)
        self.cache.put(cache_key, arr)
        return arr

    def locations(self) -> list[Location]:
        """Every (XY, Time, Z) place of the stack, in file order."""
        return [
            Location(p, t, z)
            for p in range(self.sizes["XY"])
            for t in range(self.sizes["T"])
            for z in range(self.sizes["Z"])
        ]

    def describe(self) -> str:
        """One line for the UI: dimensions, type and pixel size."""
        s = self.sizes
        parts = [f"{s['X']} x {s['Y']} px"]
        for key, label in (("XY", "positions"), ("T", "time points"), ("Z", "Z slices"), ("C", "channels")):
            parts.append(f"{s[key]} {label}")
        parts.append(str(self.dtype))
        if self.pixel_size:
            px, py, unit = self.pixel_size
            parts.append(f"pixel {px:g} x {py:g} {unit}")
        if self.time_interval:
            parts.append(f"{self.time_interval:g} s per time point")
        return ", ".join(parts)

    def close(self) -> None:
        """Release file handles; frames already cached stay readable."""
        for closer in self._closers:
            try:
                closer()
            except Exception:  # closing must never hide the real outcome
                pass
        self._closers.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _private_cache(cache_bytes: int | None) -> FrameCache | None:
    return None if cache_bytes is None else FrameCache(cache_bytes)


def _build(opened: Opened, name: str, source: dict, cache_bytes: int | None) -> Stack:
    stack = Stack(
        sizes=opened.sizes,
        dtype=opened.dtype,
        name=name,
        reader=opened.reader,
        channel_names=opened.channel_names,
        pixel_size=opened.pixel_size,
        z_step=opened.z_step,
        time_interval=opened.time_interval,
        source=source,
        cache=_private_cache(cache_bytes),
    )
    if opened.close is not None:
        stack._closers.append(opened.close)
    return stack


def _open_files(files: list[Path], pages_as: str, name: str, cache_bytes: int | None, source: dict) -> Stack:
    from sam2web.stack.files import open_files

    decoded = None if cache_bytes is None else max(cache_bytes // 4, 1 << 20)
    return _build(open_files(files, pages_as, decoded), name, source, cache_bytes)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def open_stack(
    paths: str | os.PathLike | Seq[str | os.PathLike],
    pages_as: str = "time",
    axes: str | None = None,
    cache_bytes: int | None = None,
) -> Stack:
    """Open one file or folder with the reader that claims it (``sam2web.stack.registry``), or a list of frames.

    ``pages_as`` says whether the pages of a plain multi-page TIFF (or the files of a folder or
    list) are time points ("time") or Z slices ("z"); named axes in the file always win.
    ``axes`` overrides the axis letters of a single TIFF file (e.g. "TCYX" for a file saved from
    numpy without metadata). Frames are cached in the process-wide ``SHARED_CACHE`` unless
    ``cache_bytes`` asks for a private cache of that size (0 = no caching).
    Everything wrong with the input raises UserError with one sentence.
    """
    _norm_pages_as(pages_as)
    if isinstance(paths, (str, os.PathLike)):
        items = [Path(paths)]
    else:
        items = [Path(p) for p in paths]
    if not items:
        raise UserError("No file was given: choose an image file or a folder of images.")
    if len(items) == 1:
        path = items[0]
        if not path.exists():
            raise UserError(f"{path} does not exist: check the path.")
        reader, opened = open_path(path, pages_as, axes)
        source = {
            "kind": "folder" if path.is_dir() else "file",
            "paths": [str(path)],
            "pages_as": pages_as,
            "axes": axes,
            "format": reader.name,
        }
        return _build(opened, path.name, source, cache_bytes)
    for p in items:
        if p.is_dir():
            raise UserError(f"{p} is a folder: give either one folder or a list of image files.")
    files = sorted(items, key=_natural_key)
    source = {"kind": "files", "paths": [str(p) for p in files], "pages_as": pages_as}
    name = f"{files[0].name} … {files[-1].name} ({len(files)} files)"
    return _open_files(files, pages_as, name, cache_bytes, source)


def reopen(source: dict, cache_bytes: int | None = None) -> Stack:
    """Open again the stack a ``Stack.source`` describes (the workspace stores only this)."""
    if not source or source.get("kind") == "array" or not source.get("paths"):
        raise UserError("This dataset was not opened from files and cannot be reopened: open the file again.")
    paths = source["paths"]
    return open_stack(
        paths[0] if len(paths) == 1 else paths,
        pages_as=source.get("pages_as", "time"),
        axes=source.get("axes"),
        cache_bytes=cache_bytes,
    )
