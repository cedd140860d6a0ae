"""The reader registry: every input format sam2web opens, in one place.

``open_stack`` tries ``READERS`` in order and opens a path with the first reader that claims it;
the Dataset page's upload types, the server-folder listing and the "cannot read this" sentence
are all built from the same entries, so a new format is one module with an ``open`` function
and one entry below (or ``READERS.register(...)`` from a plug-in), never a list to update
elsewhere.

How a reader claims a path:
- ``folder`` says whether it opens a folder (OME-Zarr, a folder of frames) or a file.
- ``sniff(path) -> bool`` recognises the path by content (magic bytes, a folder's metadata); it
  never raises. A reader without one claims files by extension only, and a folder reader
  without one is the fallback for any folder (a folder of per-frame images).
- ``frames``: its files may also be the frames of a folder or a file list (TIFF, PNG, JPEG).

``open(path, pages_as, axes) -> Opened`` is a ``"module:function"`` string, imported only when
such a file is opened, so listing the formats never imports pylibCZIrw, zarr or PyAV.
``tested`` names the test that opens a real file of that kind (for docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sam2web.errors import UserError
from sam2web.registry import Registry, lazy
from sam2web.stack.common import Opened, read_head


@dataclass(frozen=True)
class Reader:
    name: str
    label: str  # what the user is told the app reads, e.g. "CZI"
    extensions: tuple[str, ...]  # lower-case, with the dot; uploads and server listings use them
    open: str | Callable[[Path, str, str | None], Opened]
    sniff: str | Callable[[Path], bool] | None = None
    folder: bool = False
    tested: str = ""
    frames: bool = False

    def claims(self, path: Path, is_dir: bool) -> bool:
        if self.folder != is_dir:
            return False
        if self.sniff is not None:
            return bool(lazy(self.sniff)(path))
        return is_dir or path.suffix.lower() in self.extensions


READERS: Registry[Reader] = Registry(
    "reader",
    [
        Reader(
            "tiff",
            "TIFF, OME-TIFF",
            (".tif", ".tiff"),
            "sam2web.stack.tiff:open_path",
            "sam2web.stack.tiff:sniff",
            frames=True,
            tested="tests/test_stack.py",
        ),
        Reader(
            "image",
            "PNG, JPEG",
            (".png", ".jpg", ".jpeg"),
            "sam2web.stack.files:open_path",
            "sam2web.stack.files:sniff_image",
            frames=True,
            tested="tests/test_stack.py",
        ),
        Reader(
            "czi",
            "CZI",
            (".czi",),
            "sam2web.stack.czi:open_path",
            "sam2web.stack.czi:sniff",
            tested="tests/test_stack_formats.py::test_czi_scenes_channels_and_pixel_size",
        ),
        Reader(
            "omezarr",
            "OME-Zarr",
            (".zarr",),
            "sam2web.stack.omezarr:open_path",
            "sam2web.stack.omezarr:is_ome_zarr",
            folder=True,
            tested="tests/test_stack_formats.py::test_ome_zarr_v04_axes_channels_and_scale",
        ),
        Reader(
            "video",
            "MP4/AVI video",
            (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm"),
            "sam2web.stack.video:open_path",
            "sam2web.stack.video:sniff",
            tested="tests/test_stack_formats.py::test_video_frames_are_time",
        ),
        Reader(
            "nd2",
            "Nikon ND2",
            (".nd2",),
            "sam2web.stack.bioio_reader:open_nd2",
            "sam2web.stack.bioio_reader:sniff_nd2",
            tested="untested here (no sample file can be made or found in a registry package); read by bioio-nd2",
        ),
        Reader(
            "lif",
            "Leica LIF",
            (".lif",),
            "sam2web.stack.bioio_reader:open_lif",
            "sam2web.stack.bioio_reader:sniff_lif",
            tested="untested here (no sample file can be made or found in a registry package); read by bioio-lif",
        ),
        Reader(
            "frames",
            "a folder of per-frame images",
            (),
            "sam2web.stack.files:open_folder",
            None,
            folder=True,
            tested="tests/test_stack.py",
        ),
    ],
)


def file_extensions() -> tuple[str, ...]:
    """Suffixes (with the dot) of every file reader, in registry order: what an upload may be."""
    return tuple(dict.fromkeys(e for r in READERS if not r.folder for e in r.extensions))


def upload_types() -> list[str]:
    """``st.file_uploader``'s ``type`` list (no dots)."""
    return [e.lstrip(".") for e in file_extensions()]


def frame_extensions() -> frozenset[str]:
    """Suffixes of files that may be the frames of a folder or a file list."""
    return frozenset(e for r in READERS if r.frames for e in r.extensions)


def formats_sentence() -> str:
    """ "TIFF, OME-TIFF, CZI, …": the formats named in sentences that refuse a file."""
    return ", ".join(r.label for r in READERS if not r.folder or r.sniff is not None)


def is_dataset_folder(path: Path) -> bool:
    """A folder that is one dataset by its content (OME-Zarr), listed as one entry, never walked."""
    return path.is_dir() and any(r.folder and r.sniff is not None and r.claims(path, True) for r in READERS)


def reader_for(path: Path) -> Reader:
    """The first reader that claims ``path`` (UserError with one sentence when none does)."""
    is_dir = path.is_dir()
    for reader in READERS:
        if reader.claims(path, is_dir):
            return reader
    if is_dir:
        raise no_frames(path)
    raise UserError(f"{path.name} is {_what(read_head(path))}: open a {formats_sentence()} file.")


def no_frames(folder: Path) -> UserError:
    kinds = ", ".join(sorted(frame_extensions()))
    return UserError(f"The folder {folder} has no images ({kinds}): choose a folder that contains the frames.")


def _what(head: bytes) -> str:
    textlike = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return "a text file" if textlike else "not an image sam2web can read"


def open_path(path: Path, pages_as: str, axes: str | None) -> tuple[Reader, Opened]:
    """Open one file or folder with the reader that claims it."""
    reader = reader_for(path)
    return reader, lazy(reader.open)(path, pages_as, axes)
