"""Open files already on the server: folders an admin allows, listed and opened by relative path.

    parse_folders(value) -> list[Path]          SAM2WEB_SERVER_FOLDERS (os.pathsep-separated absolute paths)
    server_folders() -> list[Path]              the folders allowed now (sam2web.config's Settings)
    list_openable(root, limit=2000) -> list[str] relative paths of what sam2web can open inside root
    resolve(root, rel) -> Path                  the file, or a UserError sentence if it would leave root
    dataset_paths(dataset) -> list[Path]        a workspace's {"kind": "server", ...} dataset, checked again

Why: a 20 GB time-lapse on the lab's file server should not be copied through the browser upload
(2 GB limit, a second copy on disk). Only folders named by the admin are readable, and every
path is checked each time it is used (a setting may have changed since a workspace saved it):
no absolute paths, no ``..``, no symlink that resolves outside the folder.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from sam2web.errors import UserError

ENV = "SAM2WEB_SERVER_FOLDERS"
MAX_DEPTH = 4


def parse_folders(value: str | None) -> list[Path]:
    """The allowed folders from the setting's text; a relative or missing folder is an admin's error."""
    folders: list[Path] = []
    for part in (value or "").split(os.pathsep):
        part = part.strip()
        if not part:
            continue
        path = Path(part).expanduser()
        if not path.is_absolute():
            raise UserError(f"{ENV} names {part!r}, which is not an absolute path; give full folder paths.")
        if not path.is_dir():
            raise UserError(f"{ENV} names {part!r}, which is not a folder on the server; fix the setting.")
        resolved = path.resolve()
        if resolved not in folders:
            folders.append(resolved)
    return folders


def server_folders() -> list[Path]:
    """The folders allowed now (``Settings.server_folders``, checked here: a sentence if one is wrong)."""
    from sam2web.config import settings

    return parse_folders(os.pathsep.join(settings().server_folders))


def _inside(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def resolve(root: str | Path, rel: str) -> Path:
    """``root/rel`` as a real path inside ``root``, which must be one of the allowed folders."""
    if "\x00" in str(rel) or "\x00" in str(root):
        raise UserError("The path holds a NUL character, which no file name may have; type the path again.")
    root_path = Path(root).resolve()
    if root_path not in server_folders():
        raise UserError(f"The folder {root} is not one the server allows; choose a folder from the list.")
    text = str(rel).strip().replace("\\", "/")
    if not text:
        raise UserError("Give the path of a file inside the folder.")

    pure = PurePosixPath(text)
    if pure.is_absolute() or Path(text).is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise UserError(f"The path {text!r} is absolute; give a path relative to the chosen folder.")
    if ".." in pure.parts:
        raise UserError(f"The path {text!r} goes up with '..'; give a path inside the chosen folder.")
    target = root_path.joinpath(*pure.parts).resolve()
    if not _inside(root_path, target):
        raise UserError(f"The path {text!r} leads outside the chosen folder (a link); open files inside it only.")
    if not target.exists():
        raise UserError(f"There is no {text!r} in {root_path}; choose a file from the list.")
    return target


def list_openable(root: str | Path, limit: int = 2000) -> list[str]:
    """Relative paths (with '/') of what the reader registry opens inside ``root``.

    Walks at most MAX_DEPTH folders deep and stops at ``limit`` entries (a file server may hold
    millions of files). Links that lead outside the folder are left out; an OME-Zarr folder is
    one entry (its chunks are not listed).
    """
    from sam2web.stack.registry import file_extensions, is_dataset_folder

    openable = set(file_extensions())
    root_path = Path(root).resolve()
    out: list[str] = []
    stack: list[tuple[Path, int]] = [(root_path, 0)]
    while stack and len(out) < limit:
        folder, depth = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name.lower(), reverse=True)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            real = path.resolve()
            if not _inside(root_path, real):
                continue
            rel = path.relative_to(root_path).as_posix()
            if real.is_dir():
                if is_dataset_folder(real):
                    out.append(rel)
                elif depth + 1 < MAX_DEPTH:
                    stack.append((path, depth + 1))
            elif path.suffix.lower() in openable:
                out.append(rel)
    return sorted(out, key=str.lower)[:limit]


def dataset_paths(dataset: dict) -> list[Path]:
    """The file of a {"kind": "server", "root": ..., "path": ...} dataset, checked again now."""
    root, rel = dataset.get("root"), dataset.get("path")
    if not root or not rel:
        raise UserError("This workspace's server file is not recorded; open it again on the Dataset page.")
    return [resolve(root, rel)]
