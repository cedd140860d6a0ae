"""Label outputs for napari, Fiji and the CTC tools, built in memory as bytes (for downloads).

    label_stack(annotations, shape, across="time", n_frames=None, xy=0) -> np.ndarray (frames, Y, X)
    label_stack_bytes(annotations, shape, across="time", n_frames=None, xy=0, connections=(), names=None,
                      pixel_size=None) -> bytes                      one OME-TIFF, axes TYX (or ZYX)
    ctc_zip_bytes(annotations, shape, across="time", n_frames=None, xys=None) -> bytes
                                                                     the CTC result folder(s) as one zip

Why: napari and Fiji open a label image, not polygons. In the label stack each pixel holds
``object id + 1`` (0 stays background, and sam2web's first object is 0); where objects overlap,
the later object wins, as in the CTC writer. OME-TIFF has no place for tracks, so the object
names and the lineage (mother -> daughter links between different objects, e.g. divisions) go into
the OME Image ``Description`` as JSON, which tifffile, Fiji's Bio-Formats and napari keep and show
as metadata. The CTC zip holds exactly what ``track --ctc`` writes (``ctc.write_ctc_annotations``).
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from sam2web.errors import UserError
from sam2web.types import Annotation, Connection

ACROSS_AXIS = {"time": "T", "z": "Z"}


def _frame_index(a: Annotation, across: str) -> int:
    return a.loc.time if across == "time" else a.loc.z


def _check(annotations: list[Annotation], across: str, xy: int) -> list[Annotation]:
    if across not in ACROSS_AXIS:
        raise UserError(f"Track across must be time or z, not {across!r}.")
    mine = [a for a in annotations if a.loc.xy == xy]
    other = {a.loc.z if across == "time" else a.loc.time for a in mine}
    if len(other) > 1:
        axis = "Z slices" if across == "time" else "time points"
        raise UserError(f"The tracks span several {axis}; a label stack holds one sequence, so export one at a time.")
    return mine


def label_stack(
    annotations: list[Annotation],
    shape: tuple[int, int],
    across: str = "time",
    n_frames: int | None = None,
    xy: int = 0,
) -> np.ndarray:
    """(frames, height, width) labels of one position: pixel = object id + 1, 0 = background.

    uint16 while the ids fit, else uint32. Polygons are rasterised by pixel centres
    (``geometry.rasterize``), so a mask's own outline gives back exactly that mask.
    """
    from sam2web.geometry import rasterize

    mine = _check(annotations, across, xy)
    frames = [_frame_index(a, across) for a in mine]
    if n_frames is None:
        n_frames = max(frames) + 1 if frames else 1
    top = max((a.obj_id for a in mine), default=0) + 1
    dtype = np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32
    out = np.zeros((int(n_frames), int(shape[0]), int(shape[1])), dtype=dtype)
    for a, f in sorted(zip(mine, frames), key=lambda p: p[0].obj_id):
        if not 0 <= f < n_frames:
            continue
        crop, r0, c0 = rasterize(a.geometry, out.shape[1:])
        out[f, r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]][crop] = a.obj_id + 1
    return out


def lineage_pairs(annotations: list[Annotation], connections: Iterable[Connection]) -> list[tuple[int, int]]:
    """(mother label, daughter label) for every link between two different objects (e.g. divisions)."""
    obj_of = {a.id: a.obj_id for a in annotations}
    pairs = set()
    for c in connections:
        p, d = obj_of.get(c.parent_id), obj_of.get(c.child_id)
        if p is not None and d is not None and p != d:
            pairs.add((p + 1, d + 1))
    return sorted(pairs)


def label_stack_bytes(
    annotations: list[Annotation],
    shape: tuple[int, int],
    across: str = "time",
    n_frames: int | None = None,
    xy: int = 0,
    connections: Iterable[Connection] = (),
    names: Mapping[int, str] | None = None,
    pixel_size: tuple[float, float, str] | None = None,
) -> bytes:
    """One OME-TIFF of the position's label stack, axes TYX (tracked across time) or ZYX (across Z)."""
    import tifffile

    data = label_stack(annotations, shape, across, n_frames, xy)
    mine = [a for a in annotations if a.loc.xy == xy]
    objects = sorted({a.obj_id for a in mine})
    description = {
        "sam2web": "label stack: pixel value = object id + 1, 0 = background",
        "labels": {str(o + 1): {"object_id": o, "name": (names or {}).get(o, f"object {o}")} for o in objects},
        "lineage": [{"mother": m, "daughter": d} for m, d in lineage_pairs(mine, connections)],
        "xy": xy,
    }
    axes = ACROSS_AXIS[across] + "YX"
    metadata: dict = {"axes": axes, "Name": f"sam2web labels XY {xy + 1}", "Description": json.dumps(description)}
    if pixel_size:
        px, py, unit = pixel_size
        metadata.update(PhysicalSizeX=float(px), PhysicalSizeY=float(py))
        if unit in ("µm", "um", "nm", "mm"):
            metadata.update(PhysicalSizeXUnit=unit.replace("um", "µm"), PhysicalSizeYUnit=unit.replace("um", "µm"))
    buf = io.BytesIO()
    tifffile.imwrite(buf, data, ome=True, metadata=metadata, compression="zlib", photometric="minisblack")
    return buf.getvalue()


def ctc_zip_bytes(
    annotations: list[Annotation],
    shape: tuple[int, int],
    across: str = "time",
    n_frames: int | None = None,
    xys: Iterable[int] | None = None,
) -> bytes:
    """The CTC result folder as a zip: ``ctc/`` (or ``ctc_xyN/`` per position, like ``track --ctc``)."""
    from sam2web import ctc

    positions = sorted(set(xys) if xys is not None else {a.loc.xy for a in annotations} or {0})
    buf = io.BytesIO()
    with (
        tempfile.TemporaryDirectory(prefix="sam2web_ctc_") as tmp,
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf,
    ):
        for xy in positions:
            name = "ctc" if len(positions) == 1 else f"ctc_xy{xy + 1}"
            folder = Path(tmp) / name
            ctc.write_ctc_annotations(folder, annotations, tuple(shape), across, xy, n_frames)
            for path in sorted(folder.iterdir()):
                zf.write(path, f"{name}/{path.name}")
    return buf.getvalue()


def label_files(
    annotations: list[Annotation],
    connections: Iterable[Connection],
    shape: tuple[int, int],
    across: str,
    n_frames: int | None,
    xy: int,
    names: Mapping[int, str] | None = None,
    pixel_size: tuple[float, float, str] | None = None,
) -> dict[str, bytes]:
    """Both label downloads of one position by file name (what the Results page offers)."""
    suffix = f"_xy{xy + 1}"
    return {
        f"labels{suffix}.ome.tif": label_stack_bytes(
            annotations, shape, across, n_frames, xy, connections, names, pixel_size
        ),
        f"ctc{suffix}.zip": ctc_zip_bytes(annotations, shape, across, n_frames, [xy]),
    }


def _frames_of(ctx) -> tuple[tuple[int, int], list[int]]:
    if ctx.frame_shape is None:
        raise UserError("Label exports need the frame size: open the dataset first.")
    positions = list(ctx.positions) if ctx.positions is not None else sorted({a.loc.xy for a in ctx.annotations} or {0})
    return tuple(ctx.frame_shape), positions


def _pixel_size(ctx) -> tuple[float, float, str] | None:
    size = ctx.units.pixel_size
    return None if size is None else (float(size[0]), float(size[1]), ctx.units.unit)


def context_labels(ctx) -> dict[str, bytes]:
    """One OME-TIFF label stack per position (the registry's "labels" entry)."""
    shape, positions = _frames_of(ctx)
    return {
        f"labels_xy{xy + 1}.ome.tif": label_stack_bytes(
            ctx.annotations, shape, ctx.across, ctx.n_frames, xy, ctx.connections, ctx.names, _pixel_size(ctx)
        )
        for xy in positions
    }


def context_ctc(ctx) -> dict[str, bytes]:
    """The CTC result folder(s) as files: ``ctc/…``, or ``ctc_xyN/…`` per position (the "ctc" entry)."""
    shape, positions = _frames_of(ctx)
    data = ctc_zip_bytes(ctx.annotations, shape, ctx.across, ctx.n_frames, positions)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist() if not name.endswith("/")}
