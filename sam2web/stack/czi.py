"""Zeiss CZI through ZEISS's own library, pylibCZIrw: one plane read per frame, never the whole file.

``open_czi(path) -> Opened``. Scenes become XY positions, T/Z/C the
stack's axes; channel names and the pixel size come from the file's metadata (CZI stores the
pixel size in metres; we report µm). A plane is read with ``read(plane=..., scene=...)``, which
decodes only the subblocks of that plane. pylibCZIrw's reader is not documented as thread-safe,
so reads are serialised by a lock.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from sam2web.errors import UserError
from sam2web.stack.common import Opened, _brief, _check_frame_size, _default_channel_names, _fit_names, peek

CZI_MAGIC = b"ZISRAWFILE"
_GRAY = {"Gray8": np.uint8, "Gray16": np.uint16, "Gray32Float": np.float32, "Gray32": np.float32}
_BGR = {"Bgr24": np.uint8, "Bgr48": np.uint16}


def is_czi(head: bytes) -> bool:
    return head.startswith(CZI_MAGIC)


def _channel_names(metadata: dict, n: int) -> list[str]:
    try:
        channels = metadata["ImageDocument"]["Metadata"]["Information"]["Image"]["Dimensions"]["Channels"]["Channel"]
    except (KeyError, TypeError):
        return []
    if isinstance(channels, dict):
        channels = [channels]
    return [str(ch.get("@Name") or ch.get("Name") or f"Channel {i + 1}") for i, ch in enumerate(channels)][:n]


def _distances(metadata: dict) -> dict[str, float]:
    """{axis: metres per step} from the CZI's Scaling/Items/Distance entries."""
    try:
        items = metadata["ImageDocument"]["Metadata"]["Scaling"]["Items"]["Distance"]
    except (KeyError, TypeError):
        return {}
    if isinstance(items, dict):
        items = [items]
    values = {}
    for item in items:
        try:
            values[item.get("@Id")] = float(item.get("Value"))
        except (TypeError, ValueError):
            continue
    return values


def _pixel_size(metadata: dict) -> tuple[float, float, str] | None:
    values = _distances(metadata)
    px, py = values.get("X", 0.0), values.get("Y", 0.0)
    if px > 0 and py > 0:
        return (px * 1e6, py * 1e6, "µm")  # metres in the file
    return None


def open_czi(path: Path) -> Opened:
    from pylibCZIrw import czi as pyczi

    try:
        doc = pyczi.CziReader(str(path))
    except Exception as err:  # the library raises plain RuntimeErrors for broken files
        raise UserError(f"{path.name} is not a readable CZI file ({_brief(err)}): export it again from ZEN.") from None
    try:
        box = doc.total_bounding_box_no_pyramid
        scenes = doc.scenes_bounding_rectangle_no_pyramid or {}
        pixel_types = doc.pixel_types
        metadata = doc.metadata
    except Exception as err:
        doc.close()
        raise UserError(f"{path.name} has damaged CZI metadata ({_brief(err)}): export it again from ZEN.") from None
    n_t = box.get("T", (0, 1))[1] - box.get("T", (0, 1))[0]
    n_z = box.get("Z", (0, 1))[1] - box.get("Z", (0, 1))[0]
    n_c = box.get("C", (0, 1))[1] - box.get("C", (0, 1))[0]
    t0, z0, c0 = box.get("T", (0, 1))[0], box.get("Z", (0, 1))[0], box.get("C", (0, 1))[0]
    scene_ids = sorted(scenes) or [None]
    rects = [scenes[s] if s is not None else doc.total_bounding_rectangle_no_pyramid for s in scene_ids]
    w, h = rects[0].w, rects[0].h
    if any((r.w, r.h) != (w, h) for r in rects):
        doc.close()
        raise UserError(
            f"{path.name} has scenes of different sizes: export each scene as its own file, or crop them alike."
        )
    kinds = {pixel_types.get(c, "Gray16") for c in range(c0, c0 + max(n_c, 1))}
    rgb = bool(kinds & set(_BGR))
    if rgb and n_c > 1:
        doc.close()
        raise UserError(f"{path.name} mixes colour (RGB) and several channels: export it with one of them.")
    (kind,) = kinds if len(kinds) == 1 else (sorted(kinds)[0],)
    if kind not in _GRAY and kind not in _BGR:
        doc.close()
        raise UserError(f"{path.name} has CZI pixels of type {kind}, which sam2web cannot read: export as 8 or 16 bit.")
    dtype = np.dtype(_GRAY.get(kind) or _BGR[kind])
    channels = 3 if rgb else max(n_c, 1)
    _check_frame_size(h, w, dtype.itemsize * (3 if rgb else 1), path.name)
    lock = threading.Lock()

    def read(xy: int, t: int, z: int, c: int) -> np.ndarray:
        plane = {"T": t0 + t, "Z": z0 + z, "C": c0 + (0 if rgb else c)}
        scene = scene_ids[xy]
        with lock:
            arr = doc.read(plane=plane, scene=scene)
        if rgb:
            return arr[..., 2 - c]  # stored as BGR
        return arr[..., 0] if arr.ndim == 3 else arr

    names = _channel_names(metadata, channels) if not rgb else []
    return Opened(
        sizes={"XY": len(scene_ids), "T": max(n_t, 1), "Z": max(n_z, 1), "C": channels, "Y": h, "X": w},
        dtype=dtype,
        reader=read,
        channel_names=_fit_names(names or _default_channel_names(channels, rgb=rgb), channels),
        pixel_size=_pixel_size(metadata),
        z_step=(_distances(metadata).get("Z") or 0) * 1e6 or None,  # µm, like the pixel size
        close=doc.close,
        extra={"format": "CZI"},
    )


def sniff(path: Path) -> bool:
    return is_czi(peek(path))


def open_path(path: Path, pages_as: str, axes: str | None) -> Opened:
    """The reader registry's entry point (scenes, T, Z and C are named by the file itself)."""
    return open_czi(path)
