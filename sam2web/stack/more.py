"""The formats beyond TIFF/PNG/JPEG, recognised by content: CZI, OME-Zarr folders, videos.

OWNER: formats helper. ``sniff_more(path) -> "czi" | "omezarr" | "video" | None`` and
``open_more(kind, path) -> Opened``. sam2web.stack.open_stack asks here first, so TIFF keeps its
own fast, tested path (tifffile) and each other format goes to the field's own reader
(pylibCZIrw, zarr, PyAV), imported only when such a file is opened.

ND2 and LIF are not read: neither has a writer to make test files with, and no registry package
ships a small real sample, so support could not be tested (see docs/using-results.md).
"""

from __future__ import annotations

from pathlib import Path

from sam2web.stack.common import Opened

MORE_EXTENSIONS = {".czi", ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm"}
FORMAT_NAMES = {"czi": "CZI", "omezarr": "OME-Zarr", "video": "video"}


def sniff_more(path: Path) -> str | None:
    from sam2web.stack.czi import is_czi
    from sam2web.stack.omezarr import is_ome_zarr
    from sam2web.stack.video import is_video

    if path.is_dir():
        return "omezarr" if is_ome_zarr(path) else None
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None  # the TIFF path reports unreadable files with its own sentence
    if is_czi(head):
        return "czi"
    if is_video(path, head):
        return "video"
    return None


def open_more(kind: str, path: Path) -> Opened:
    if kind == "czi":
        from sam2web.stack.czi import open_czi

        return open_czi(path)
    if kind == "omezarr":
        from sam2web.stack.omezarr import open_ome_zarr

        return open_ome_zarr(path)
    from sam2web.stack.video import open_video

    return open_video(path)
