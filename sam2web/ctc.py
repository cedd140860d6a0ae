"""Label images in, Cell Tracking Challenge (CTC) results out, and back.

Public functions:

    open_labels(paths, across="time") -> (Stack, list[Location])    label images via stack.open_stack
    label_frame(stack, loc) -> np.ndarray                           one frame, checked to be labels
    labels_to_result(paths, across="time") -> TrackResult           obj_id = label, one mask per frame;
                                                                    parents from man_track.txt beside them
    masks_from_labels(labels, loc) -> dict[(label, loc), CompactMask]
    read_lineage(folder) -> dict[int, int]                          label -> parent from man_track.txt
    write_ctc(out_dir, result, across="time", xy=0, n_frames=None) -> list[Path]   parents from ObjectInfo
    write_ctc_annotations(out_dir, annotations, shape, across="time", xy=0, n_frames=None) -> list[Path]
    write_ctc_objects(out_dir, {obj: {frame: item}}, shape, n_frames, paint_mask|paint_geometry, parents)
    read_ctc(folder) -> (frames: dict[int, np.ndarray], tracks: list[(label, begin, end, parent)])

Why the CTC format: official CTC measures and tools such as traccuracy read it, so sam2web's
tracks can be scored by anyone's tools, not just ours. The format wants gap-free tracks: an object
missing for some frames continues under a new label whose parent is its previous segment.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from sam2web.errors import DECODE_ERRORS, UserError
from sam2web.types import Annotation, CompactMask, Location, ObjectInfo, TrackResult

ACROSS = ("time", "z")


def _axis_index(loc: Location, across: str) -> int:
    return loc.time if across == "time" else loc.z


def _check_across(across: str) -> str:
    a = str(across).lower()
    if a not in ACROSS:
        raise UserError(f"Track across must be time or z, not {across!r}.")
    return a


# ------------------------------------------------------------------------------------- reading
def open_labels(paths, across: str = "time"):
    """Open per-frame label images (a CTC folder, a list of files) or one label stack.

    Non-image files in a folder (man_track.txt, res_track.txt) are skipped by the stack reader.
    Returns the Stack and its locations in order.
    """
    from sam2web.stack import open_stack  # the stack helper's reader: one place for every format

    across = _check_across(across)
    if isinstance(paths, (list, tuple)) and len(paths) == 1:
        paths = paths[0]
    stack = open_stack(paths, pages_as=across)
    if stack.sizes.get("C", 1) != 1:
        stack.close()
        raise UserError(
            f"{stack.name} has {stack.sizes['C']} channels; label images have one. "
            "Give the label images, not the microscopy images."
        )
    return stack, stack.locations()


def label_frame(stack, loc: Location) -> np.ndarray:
    """One frame of labels as an integer array; anything else is refused with a sentence."""
    arr = np.asarray(stack.frame(loc, 0))
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)) or (arr.size and arr.min() < 0):
            raise UserError(
                f"{stack.name} holds fractional or negative values, so it is not a label "
                "image; give images of whole-number labels (0 = background)."
            )
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{stack.name} has pixel type {arr.dtype}; give integer label images.")
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.size and arr.min() < 0:
        raise UserError(f"{stack.name} has negative labels; use 0 for background and 1, 2, ... for objects.")
    return arr


def masks_from_labels(labels: np.ndarray, loc: Location) -> dict[tuple[int, Location], CompactMask]:
    """Every label of one frame as a CompactMask, without building full-frame masks."""
    from scipy import ndimage

    out: dict[tuple[int, Location], CompactMask] = {}
    if not labels.any():
        return out
    values = np.unique(labels)
    values = values[values != 0]
    if int(values[-1]) <= 4 * len(values) + 1024:
        small = labels if labels.dtype.itemsize <= 4 else labels.astype(np.int64)
        slices = ndimage.find_objects(small)
        lookup = {int(v): slices[int(v) - 1] for v in values}
    else:  # sparse huge label values: compact them first
        compact = np.searchsorted(values, labels) + 1
        compact[labels == 0] = 0
        slices = ndimage.find_objects(compact)
        lookup = {int(v): slices[i] for i, v in enumerate(values)}
    h, w = labels.shape
    for value, sl in lookup.items():
        if sl is None:
            continue
        crop = labels[sl] == value
        r0, c0 = sl[0].start, sl[1].start
        cm = CompactMask.from_mask(crop)  # crop-sized; shift its bbox into the frame
        cr0, cc0, cr1, cc1 = cm.bbox
        out[(value, loc)] = CompactMask((h, w), (r0 + cr0, c0 + cc0, r0 + cr1, c0 + cc1), cm.bits)
    return out


def labels_to_result(paths, across: str = "time") -> TrackResult:
    """Label images -> a TrackResult whose objects are the labels (identity kept across frames)."""
    stack, locs = open_labels(paths, across)
    result = TrackResult(settings={"source": "labels", "across": across})
    with stack:  # a label stack's file handle is closed, whatever happens
        for loc in locs:
            result.masks.update(masks_from_labels(label_frame(stack, loc), loc))
    if not result.masks:
        raise UserError(f"{stack.name} has no labels (every pixel is 0); give label images with objects in them.")
    first = paths[0] if isinstance(paths, (list, tuple)) else paths
    lineage = read_lineage(first) if Path(first).exists() else {}
    labels = {k[0] for k in result.masks}
    for obj_id in sorted(labels):
        mother = lineage.get(obj_id, 0)
        result.objects[obj_id] = ObjectInfo(obj_id, name=f"label {obj_id}", parent=mother if mother in labels else None)
    return result


def read_lineage(folder: str | Path) -> dict[int, int]:
    """label -> parent label (0 = none) from a CTC man_track.txt / res_track.txt, if the folder has one."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    for name in ("man_track.txt", "res_track.txt"):
        path = folder / name
        if path.is_file():
            return _parse_tracks(path.read_text(errors="replace"), path.name)
    return {}


def _parse_tracks(text: str, name: str) -> dict[int, int]:
    parents: dict[int, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4 or not all(re.fullmatch(r"-?\d+", p) for p in parts):
            raise UserError(f"Line {n} of {name} is not 'label begin end parent'; fix or remove the file.")
        parents[int(parts[0])] = int(parts[3])
    return parents


# ------------------------------------------------------------------------------------- writing
def _segments(frames: list[int]) -> list[tuple[int, int]]:
    """Runs of consecutive frame indices: [0,1,2,5,6] -> [(0,2), (5,6)]."""
    runs: list[tuple[int, int]] = []
    for f in sorted(set(frames)):
        if runs and f == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], f)
        else:
            runs.append((f, f))
    return runs


def _tif_bytes(img: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, img, compression="zlib")
    return buf.getvalue()


def _topological(objects: list[int], parents: dict[int, int]) -> list[int]:
    """Objects with every mother before her daughters (a cycle in bad lineage is cut, not followed)."""
    order: list[int] = []
    seen: set[int] = set()
    present = set(objects)
    for obj in objects:
        chain = []
        cur: int | None = obj
        while cur is not None and cur in present and cur not in seen and cur not in chain:
            chain.append(cur)
            cur = parents.get(cur)
        for o in reversed(chain):
            seen.add(o)
            order.append(o)
    return order


def paint_mask(img: np.ndarray, cm: CompactMask, label: int) -> None:
    """Draw a CompactMask into a label image (for ``write_ctc_objects``)."""
    r0, c0, r1, c1 = cm.bbox
    if not cm.empty:
        img[r0:r1, c0:c1][cm.crop()] = label


def paint_geometry(img: np.ndarray, geom, label: int) -> None:
    """Draw a polygon (pixel centres inside) into a label image (for ``write_ctc_objects``)."""
    from sam2web.geometry import rasterize

    crop, r0, c0 = rasterize(geom, img.shape)
    img[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]][crop] = label


def write_ctc_objects(
    out_dir: str | Path,
    per_object: dict[int, dict[int, object]],
    shape: tuple[int, int],
    n_frames: int | None,
    paint,
    parents: dict[int, int] | None = None,
) -> list[Path]:
    """Shared writer: ``per_object[obj][frame]`` is anything ``paint(img, item, label)`` can draw.

    Valid whatever the masks: objects are painted first (the later one wins where two overlap)
    and the track file is built from the pixels that are actually left, so a label listed for a
    frame always has pixels there (an object covered by another, or empty, simply pauses). Each
    gap-free run of frames is one label; a later run is the previous run's child, and a
    daughter's first run is the child of her mother's last run before it (CTC: parent ends
    before the child starts).
    """
    from sam2web.export import write_files

    parents = parents or {}
    all_frames = [f for frames in per_object.values() for f in frames]
    if n_frames is None:
        n_frames = (max(all_frames) + 1) if all_frames else 0
    digits = max(3, len(str(max(n_frames - 1, 0))))
    objects = sorted(per_object)
    index = {obj: i + 1 for i, obj in enumerate(objects)}
    painted: list[np.ndarray] = []
    present: dict[int, list[int]] = {obj: [] for obj in objects}
    for f in range(n_frames):
        img = np.zeros(shape, dtype=np.uint32)
        for obj in objects:
            item = per_object[obj].get(f)
            if item is not None:
                paint(img, item, index[obj])
        for i in np.unique(img):
            if i:
                present[objects[int(i) - 1]].append(f)
        painted.append(img)
    tracks: list[tuple[int, int, int, int]] = []
    runs: dict[int, list[tuple[int, int, int]]] = {}  # obj -> [(label, begin, end)]
    luts = [np.zeros(len(objects) + 1, dtype=np.uint16) for _ in range(n_frames)]
    next_label = 1
    for obj in _topological(objects, parents):
        mother_runs = runs.get(parents.get(obj, -1), [])
        for begin, end in _segments(present[obj]):
            label = next_label
            next_label += 1
            if label > 65535:
                raise UserError(
                    "More than 65535 track segments do not fit CTC's 16-bit masks; export fewer objects or frames."
                )
            if runs.get(obj):
                parent = runs[obj][-1][0]  # a gap continues the object under a new label, as CTC requires
            else:
                before = [r for r in mother_runs if r[2] < begin]
                parent = before[-1][0] if before else 0
            runs.setdefault(obj, []).append((label, begin, end))
            tracks.append((label, begin, end, parent))
            for f in range(begin, end + 1):
                luts[f][index[obj]] = label
    files: dict[str, bytes] = {}
    for f in range(n_frames):
        files[f"mask{f:0{digits}d}.tif"] = _tif_bytes(luts[f][painted[f]])
    tracks.sort()
    files["res_track.txt"] = "".join(f"{l} {b} {e} {p}\n" for l, b, e, p in tracks).encode()
    return write_files(out_dir, files)


def _check_plane(locs, across: str, xy: int) -> None:
    other = {loc.z if across == "time" else loc.time for loc in locs if loc.xy == xy}
    if len(other) > 1:
        axis = "Z slices" if across == "time" else "time points"
        raise UserError(f"The tracks span several {axis}; a CTC result holds one sequence, so export one at a time.")


def write_ctc(
    out_dir: str | Path, result: TrackResult, across: str = "time", xy: int = 0, n_frames: int | None = None
) -> list[Path]:
    """A run's masks as CTC results: mask000.tif ... (uint16 labels) + res_track.txt.

    One file per frame index along ``across`` (0 .. n_frames-1); labels are 1.. per gap-free track
    segment, in object order; where two objects overlap the later one wins.
    """
    across = _check_across(across)
    keys = [k for k in result.masks if k[1].xy == xy]
    if not keys:
        raise UserError(f"The run has no masks at XY {xy + 1}; choose a position that was tracked.")
    _check_plane([k[1] for k in keys], across, xy)
    shape = tuple(result.masks[keys[0]].shape)
    per_object: dict[int, dict[int, CompactMask]] = {}
    for obj, loc in keys:
        if not result.masks[(obj, loc)].empty:
            per_object.setdefault(obj, {})[_axis_index(loc, across)] = result.masks[(obj, loc)]

    parents = {o: info.parent for o, info in result.objects.items() if info.parent is not None}
    return write_ctc_objects(out_dir, per_object, shape, n_frames, paint_mask, parents)


def write_ctc_annotations(
    out_dir: str | Path,
    annotations: list[Annotation],
    shape: tuple[int, int],
    across: str = "time",
    xy: int = 0,
    n_frames: int | None = None,
) -> list[Path]:
    """Exported polygons (e.g. after padding/smoothing) as CTC results, rasterised by pixel centres."""
    from sam2web.links import parents_of

    across = _check_across(across)
    anns = [a for a in annotations if a.loc.xy == xy]
    _check_plane([a.loc for a in anns], across, xy)
    per_object: dict[int, dict[int, object]] = {}
    for a in anns:
        per_object.setdefault(a.obj_id, {})[_axis_index(a.loc, across)] = a.geometry

    return write_ctc_objects(out_dir, per_object, tuple(shape), n_frames, paint_geometry, parents_of(anns))


def read_ctc(folder: str | Path) -> tuple[dict[int, np.ndarray], list[tuple[int, int, int, int]]]:
    """CTC results back: {frame: uint16 labels} from mask*.tif, and the res_track.txt rows."""
    from sam2web.stack.tiff import read_tiff_image

    folder = Path(folder)
    files = sorted(folder.glob("mask*.tif"))
    if not files:
        raise UserError(f"{folder} has no mask*.tif files; give a folder of CTC results.")
    frames: dict[int, np.ndarray] = {}
    for p in files:
        m = re.fullmatch(r"mask(\d+)\.tif", p.name)
        if m:
            try:
                frames[int(m.group(1))] = read_tiff_image(p)
            except DECODE_ERRORS as err:  # a damaged file is the user's to replace
                raise UserError(f"{p.name} cannot be read ({str(err)[:60]}); export the results again.") from None
    track_file = folder / "res_track.txt"
    tracks: list[tuple[int, int, int, int]] = []
    if track_file.is_file():
        for n, line in enumerate(track_file.read_text().splitlines(), 1):
            parts = line.split()
            if parts:
                if len(parts) != 4 or not all(p.lstrip("-").isdigit() for p in parts):
                    raise UserError(f"Line {n} of res_track.txt is not 'label begin end parent'; export again.")
                tracks.append(tuple(int(p) for p in parts))  # type: ignore[arg-type]
    return frames, tracks
