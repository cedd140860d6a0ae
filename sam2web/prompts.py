"""Prompt sources: drawn boxes/points (the app), GeoJSON, the platform's annotation JSON, label images.

The surface other modules use:

    make_box(x0, y0, x1, y1, width, height) -> tuple   clip to image; UserError if empty/inverted
    from_geojson(data: bytes | str | dict, width, height, tags=None, default_loc=None) -> list[Prompt]
    from_platform_json(data, width, height, tags=None) -> list[Prompt]      polygons -> bounds
    from_label_image(labels: np.ndarray, loc: Location, tags=None) -> list[Prompt]   each label -> mask prompt
    load_prompts(path, width, height, tags=None, loc=None) -> list[Prompt]    dispatch by content
    renumber(prompts) -> list[Prompt]   stable sequential obj ids 0,1,2,... (same source id -> same obj id)
    Prompt.to_dict()/from_dict helpers: prompt_to_dict(p) / prompt_from_dict(d) (JSON-safe, masks as CompactMask-ish)

Added: ``from_geojson(..., first_only=False)`` (re-seeding a run from our own annotations.geojson:
one prompt per object at its first frame), ``from_label_image(..., shape=None)`` (the frame size it
must match), ``available_tags(prompts)``, ``mask_to_dict`` / ``mask_from_dict``.

Divisions: a GeoJSON feature with ``parent_object_id`` (as our exports write it) starts a daughter of
that object at its frame (``Prompt.parent``, renumbered with the ids); see sam2web/lineage.py.

Every importer returns prompts already renumbered 0, 1, 2, ... in order of first appearance, and
raises nothing but UserError on bad input: users feed these functions whatever file they have, and
each problem must come back as one sentence naming the bad part and what to do.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sam2web.errors import DECODE_ERRORS, UserError
from sam2web.types import CompactMask, Location, Prompt

_MAX_JSON_BYTES = 16 * 1024 * 1024  # parsed JSON takes ~10x its size in memory (a 35 MB file: 350 MB)
# Limits on one import: a crafted file may not take the server's memory or make every Annotate rerun
# slow (200,000 features were 566 MB; 65,535 labels 4.5 GB of masks; 2,000 objects a 2-minute rerun).
MAX_IMPORT_FEATURES = 20_000  # GeoJSON features / platform records read from one file
MAX_OBJECTS = 1_000  # objects one import (or a workspace) may hold
MAX_LABEL_MASK_BYTES = 512 << 20  # one mask per label, each a whole frame of booleans
_BOX_TYPES = ("box", "bbox", "rectangle")


# ----------------------------------------------------------------------------------------- boxes
def make_box(
    x0: float, y0: float, x1: float, y1: float, width: int, height: int, what: str = "The box"
) -> tuple[float, float, float, float]:
    """A box (x0, y0, x1, y1) in full-resolution pixels, clipped to the image.

    Refused: non-numbers, zero size, inverted corners (x1 <= x0 or y1 <= y0) and boxes wholly
    outside the image, because SAM2 would silently track nothing from them.
    """
    vals = []
    for v in (x0, y0, x1, y1):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not _finite(v):
            raise UserError(
                f"{what} has a corner that is not a finite number ({x0}, {y0}, {x1}, {y1}); "
                "give four numbers x0, y0, x1, y1 in pixels."
            )
        vals.append(float(v))
    x0, y0, x1, y1 = vals
    if x1 <= x0 or y1 <= y0:
        raise UserError(
            f"{what} ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty or inverted; draw it from its "
            "top-left to its bottom-right corner with a non-zero width and height."
        )
    cx0, cy0 = min(max(x0, 0.0), float(width)), min(max(y0, 0.0), float(height))
    cx1, cy1 = min(max(x1, 0.0), float(width)), min(max(y1, 0.0), float(height))
    if cx1 <= cx0 or cy1 <= cy0:
        raise UserError(
            f"{what} ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies outside the {width}x{height} image; draw it over the image."
        )
    return (cx0, cy0, cx1, cy1)


# -------------------------------------------------------------------------------------- helpers
def _check_count(n: int, what: str) -> None:
    if n > MAX_IMPORT_FEATURES:
        raise UserError(
            f"The file holds {n} {what}, more than one import takes ({MAX_IMPORT_FEATURES}); "
            "split it, or keep only the tags you need."
        )


def check_objects(n: int, what: str) -> None:
    """At most ``MAX_OBJECTS`` objects (an import, or a workspace after it): more is a sentence."""
    if n > MAX_OBJECTS:
        raise UserError(
            f"{what[:1].upper()}{what[1:]} would hold {n} objects, more than sam2web tracks in one "
            f"workspace ({MAX_OBJECTS}); import a part of them, e.g. by tag."
        )


def _parse_json(data: bytes | str | dict | list, what: str) -> Any:
    if isinstance(data, (dict, list)):
        return data
    if isinstance(data, (bytes, bytearray)):
        if len(data) > _MAX_JSON_BYTES:
            raise UserError(f"The {what} file is larger than {_MAX_JSON_BYTES >> 20} MB; split it into smaller files.")
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UserError(f"The {what} file is not UTF-8 text; save it as UTF-8 JSON.") from None
    if not isinstance(data, str):
        raise UserError(f"The {what} must be JSON text; got {type(data).__name__}.")
    if not data.strip():
        raise UserError(f"The {what} file is empty; choose a file with annotations in it.")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as err:
        raise UserError(f"The {what} file is not valid JSON ({str(err)[:80]}); fix it or export it again.") from None


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (OverflowError, ValueError, TypeError):  # e.g. a 400-digit integer from JSON
        return False


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not _finite(v):
        raise UserError(f"{what} is not a finite number ({str(v)[:40]}); fix the file.")
    return float(v)


def _index(v: Any, what: str) -> int:
    if isinstance(v, str) and v.strip().lstrip("-").isdigit() and len(v.strip()) < 12:
        v = int(v.strip())
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not _finite(v) or float(v) != int(v) or int(v) < 0:
        raise UserError(f"{what} must be a whole number 0 or more (0-based); got {str(v)[:40]}.")
    return int(v)


def _tags(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, (list, tuple)):
        return [str(t) for t in v if isinstance(t, (str, int, float)) and not isinstance(t, bool)]
    return []


def _location(src: Any, default_loc: Location | None, what: str) -> Location:
    """XY/Time/Z (0-based, like our exports) from a dict; missing axes default to 0 when at least
    one is given, and to ``default_loc`` when none is."""
    keys = {"XY": None, "Time": None, "Z": None}
    if isinstance(src, dict):
        lowered = {str(k).lower(): v for k, v in src.items()}
        for k in keys:
            if k.lower() in lowered:
                keys[k] = lowered[k.lower()]
        if keys["Time"] is None and "t" in lowered:
            keys["Time"] = lowered["t"]
    if all(v is None for v in keys.values()):
        if default_loc is None:
            raise UserError(
                f"{what} has no location (XY, Time, Z); add them to its properties "
                "or choose the frame the prompts belong to."
            )
        return Location(*default_loc)
    return Location(*(0 if keys[k] is None else _index(keys[k], f"{what}'s {k}") for k in ("XY", "Time", "Z")))


def _filter_tags(items: list[tuple[list[str], Any]], tags, what: str) -> list[Any]:
    """Keep items with any chosen tag (none chosen = all); a filter matching nothing is an error."""
    chosen = [t for t in (tags or []) if str(t).strip()]
    if not chosen:
        return [it for _, it in items]
    kept = [it for t, it in items if set(t) & set(chosen)]
    if not kept:
        found = sorted({t for ts, _ in items for t in ts})
        listing = ", ".join(found) if found else "none"
        raise UserError(f"No {what} has the tag(s) {', '.join(chosen)}; tags in the file: {listing}.")
    return kept


def _bounds(coords: Any, what: str) -> tuple[float, float, float, float]:
    """Bounds of any nesting of [x, y] pairs (GeoJSON rings) or {"x":, "y":} dicts (platform)."""
    xs: list[float] = []
    ys: list[float] = []
    stack = [(coords, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > 6:
            raise UserError(f"{what} has coordinates nested too deeply; fix the file.")
        if isinstance(node, dict):
            xs.append(_number(node.get("x"), f"{what}'s x"))
            ys.append(_number(node.get("y"), f"{what}'s y"))
        elif (
            isinstance(node, (list, tuple))
            and len(node) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in node[:2])
        ):
            xs.append(_number(node[0], f"{what}'s x"))
            ys.append(_number(node[1], f"{what}'s y"))
        elif isinstance(node, (list, tuple)):
            stack.extend((n, depth + 1) for n in node)
        else:
            raise UserError(f"{what} has a coordinate that is not an [x, y] pair; fix the file.")
    if not xs:
        raise UserError(f"{what} has no coordinates; give it at least one point.")
    return min(xs), min(ys), max(xs), max(ys)


class _Collector:
    """Merges boxes and points of one (object, frame) into a single Prompt, in input order."""

    def __init__(self) -> None:
        self.prompts: dict[tuple[Any, Location], Prompt] = {}
        self.order: dict[Any, int] = {}

    def get(self, key: Any, loc: Location, tags: list[str], name: str) -> Prompt:
        obj_id = self.order.setdefault(key, len(self.order))
        p = self.prompts.get((key, loc))
        if p is None:
            p = Prompt(obj_id=obj_id, loc=loc, tags=list(tags), name=name)
            self.prompts[(key, loc)] = p
        else:
            p.tags = sorted(set(p.tags) | set(tags))
            p.name = p.name or name
        return p

    def add_box(self, key, loc, box, tags, name) -> None:
        p = self.get(key, loc, tags, name)
        if p.box is None:
            p.box = box
        else:  # two boxes for one object at one frame: their union
            p.box = (min(p.box[0], box[0]), min(p.box[1], box[1]), max(p.box[2], box[2]), max(p.box[3], box[3]))

    def result(self, what: str) -> list[Prompt]:
        out = list(self.prompts.values())
        check_objects(len({p.obj_id for p in out}), f"the {what}")
        for p in out:
            if p.box is None and p.mask is None and not any(lab == 1 for *_, lab in p.points):
                raise UserError(
                    f"Object {p.name or p.obj_id} in the {what} has only negative points at "
                    f"XY {p.loc.xy}, Time {p.loc.time}, Z {p.loc.z}; add a box or a positive point."
                )
        return renumber(out)


# -------------------------------------------------------------------------------------- GeoJSON
def from_geojson(
    data: bytes | str | dict,
    width: int,
    height: int,
    tags=None,
    default_loc: Location | None = None,
    first_only: bool = False,
) -> list[Prompt]:
    """Prompts from a GeoJSON FeatureCollection (or one Feature), in pixel coordinates.

    Polygon/MultiPolygon/LineString features -> their bounds as a box; a feature whose properties
    say ``"type": "box"`` (or that carries a ``bbox`` member and no geometry) -> that box; Point
    features -> points with ``properties.label`` 1 (positive, the default) or 0 (negative).
    Location: properties XY/Time/Z, 0-based like our exports, else ``default_loc``. Features
    sharing ``properties.object_id`` are one object; every other feature is an object of its own.
    ``first_only`` keeps each object's earliest frame only (re-seeding from an export).
    """
    doc = _parse_json(data, "GeoJSON")
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        features = [doc]
    elif isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise UserError('The GeoJSON FeatureCollection has no "features" list; export it again.')
    else:
        raise UserError(
            "The file is not a GeoJSON FeatureCollection; choose a .geojson file of polygons, boxes or points."
        )
    _check_count(len(features), "GeoJSON features")
    items = []
    for i, feat in enumerate(features):
        if not isinstance(feat, dict):
            raise UserError(f"GeoJSON feature {i + 1} is not an object; fix the file.")
        props = feat.get("properties") if isinstance(feat.get("properties"), dict) else {}
        items.append((_tags(props.get("tags")), (i, feat, props)))
    if not items:
        raise UserError("The GeoJSON file has no features; draw or export some annotations first.")
    col = _Collector()
    mothers: dict[Any, tuple[Any, str]] = {}  # object key -> (mother's object_id, feature) for divisions
    for i, feat, props in _filter_tags(items, tags, "GeoJSON feature"):
        what = f"GeoJSON feature {i + 1}"
        loc = _location(props.get("location") if isinstance(props.get("location"), dict) else props, default_loc, what)
        key = ("object_id", _hashable(props["object_id"])) if props.get("object_id") is not None else ("feature", i)
        if props.get("parent_object_id") is not None:
            mothers[key] = (_hashable(props["parent_object_id"]), what)
        name = str(
            props.get("name")
            or (f"object {props['object_id']}" if props.get("object_id") is not None else f"feature {i + 1}")
        )
        ftags = _tags(props.get("tags"))
        geom = feat.get("geometry")
        gtype = geom.get("type") if isinstance(geom, dict) else None
        is_box = str(props.get("type", "")).lower() in _BOX_TYPES or str(props.get("shape", "")).lower() in _BOX_TYPES
        if gtype == "Point" and not is_box:
            coords = geom.get("coordinates")
            if not isinstance(coords, (list, tuple)) or len(coords) < 2:
                raise UserError(f"{what} is a Point without [x, y] coordinates; fix the file.")
            x, y = _number(coords[0], f"{what}'s x"), _number(coords[1], f"{what}'s y")
            if not (0 <= x <= width and 0 <= y <= height):
                raise UserError(
                    f"{what} is a point ({x:g}, {y:g}) outside the {width}x{height} image; move it onto the image."
                )
            label = props.get("label", 1)
            if isinstance(label, str) and label.strip() in ("0", "1"):
                label = int(label)
            if not isinstance(label, (int, float)) or label not in (0, 1):
                raise UserError(
                    f"{what} has label {str(label)[:20]}; use 1 for a positive point or 0 for a negative one."
                )
            col.get(key, loc, ftags, name).points.append((x, y, int(label)))
        elif gtype in ("Polygon", "MultiPolygon", "LineString", "MultiLineString", "MultiPoint") or (
            is_box and gtype is not None
        ):
            b = _bounds(geom.get("coordinates"), what)
            col.add_box(key, loc, make_box(*b, width, height, what=what), ftags, name)
        elif geom is None and isinstance(feat.get("bbox"), list) and len(feat["bbox"]) == 4:
            b = [_number(v, f"{what}'s bbox") for v in feat["bbox"]]
            col.add_box(key, loc, make_box(*b, width, height, what=what), ftags, name)
        else:
            raise UserError(f"{what} has geometry type {str(gtype)[:30]}; use Polygon, box or Point features.")
    _set_parents(col, mothers)
    prompts = col.result("GeoJSON file")
    if first_only:
        first: dict[int, Prompt] = {}
        for p in sorted(prompts, key=lambda p: (p.obj_id, p.loc.xy, p.loc.time, p.loc.z)):
            first.setdefault(p.obj_id, p)
        prompts = list(first.values())
    return prompts


def _set_parents(col: _Collector, mothers: dict[Any, tuple[Any, str]]) -> None:
    """A feature's ``parent_object_id`` (a division, as our exports write it) -> Prompt.parent."""
    for (key, _loc), p in col.prompts.items():
        if key not in mothers:
            continue
        mother, what = mothers[key]
        if ("object_id", mother) not in col.order:
            raise UserError(
                f"{what} names parent_object_id {str(mother)[:20]}, which no feature has; "
                "add the mother's prompt or remove parent_object_id."
            )
        p.parent = col.order[("object_id", mother)]


def _hashable(v: Any) -> Any:
    return repr(v) if isinstance(v, (dict, list)) else v


# --------------------------------------------------------------------------------- platform JSON
def from_platform_json(data: bytes | str | dict | list, width: int, height: int, tags=None) -> list[Prompt]:
    """Prompts from the platform's annotation records, as the worker made them.

    Accepts a list of records or ``{"annotations": [...]}``: the platform's own JSON export and
    today's nimbus.json (records keyed by ``_id``, with ``annotationConnections`` beside them) as
    well as older sam2web files (``id`` and ``connections``); connections are not prompts and are
    ignored. Each record with a
    chosen tag (none chosen = all) becomes one object: a polygon/rectangle/line -> the bounds of its
    coordinates as a box; a point -> a positive point. Locations are 0-based.
    """
    doc = _parse_json(data, "annotation JSON")
    records = doc.get("annotations") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise UserError(
            'The annotation JSON is neither a list of annotations nor has an "annotations" '
            "list; export the annotations from the platform again."
        )
    _check_count(len(records), "annotations")
    items = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise UserError(f"Annotation {i + 1} is not an object; fix the file.")
        items.append((_tags(rec.get("tags")), (i, rec)))
    if not items:
        raise UserError("The annotation JSON has no annotations; export some from the platform first.")
    col = _Collector()
    for i, rec in _filter_tags(items, tags, "annotation"):
        what = f"Annotation {i + 1}"
        if "location" not in rec:
            raise UserError(
                f'{what} has no location; each platform annotation needs "location": {{"XY": .., "Z": .., "Time": ..}}.'
            )
        loc = _location(rec.get("location"), None, what)
        shape = str(rec.get("shape", "polygon")).lower()
        name = str(rec.get("name") or rec.get("id") or rec.get("_id") or f"annotation {i + 1}")[:80]
        key = ("annotation", i)
        coords = rec.get("coordinates")
        if shape == "point":
            x0, y0, _, _ = _bounds(coords, what)
            if not (0 <= x0 <= width and 0 <= y0 <= height):
                raise UserError(
                    f"{what} is a point ({x0:g}, {y0:g}) outside the {width}x{height} image; move it onto the image."
                )
            col.get(key, loc, _tags(rec.get("tags")), name).points.append((x0, y0, 1))
        elif shape in ("polygon", "rectangle", "line", "polyline", "box"):
            col.add_box(
                key, loc, make_box(*_bounds(coords, what), width, height, what=what), _tags(rec.get("tags")), name
            )
        else:
            raise UserError(f"{what} has shape {shape[:30]!r}; use polygon, rectangle or point annotations.")
    return col.result("annotation JSON")


# ---------------------------------------------------------------------------------- label images
def from_label_image(
    labels: np.ndarray, loc: Location, tags=None, shape: tuple[int, int] | None = None
) -> list[Prompt]:
    """Each non-zero label of a 2D label image -> one mask prompt at ``loc`` (ids in label order).

    ``shape`` is the (height, width) of the stack's frames; a label image of another shape would
    put every mask in the wrong place, so it is refused.
    """
    arr = np.asarray(labels)
    if arr.ndim > 2:
        arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise UserError(
            f"The label image has shape {tuple(np.asarray(labels).shape)}; give one 2D image "
            "(height x width) of integer labels."
        )
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise UserError(
            f"The label image is {arr.shape[1]}x{arr.shape[0]} (width x height) but the stack's "
            f"frames are {shape[1]}x{shape[0]}; use a label image made for this stack."
        )
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer)):
        if (
            not np.issubdtype(arr.dtype, np.floating)
            or not np.all(np.isfinite(arr))
            or not np.all(arr == np.round(arr))
        ):
            raise UserError(
                "The label image must hold whole-number labels (0 = background); use an integer label image."
            )
        arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise UserError("The label image has negative labels; use 0 for background and 1, 2, ... for objects.")
    from scipy import ndimage  # local: only label imports need it

    values, inverse = np.unique(arr, return_inverse=True)
    compact = inverse.reshape(arr.shape) + (0 if values[0] == 0 else 1)  # 0 stays background
    nonzero = [int(v) for v in values if v != 0]
    if not nonzero:
        raise UserError("The label image has no labels (it is all 0); choose one with labelled objects.")
    check_objects(len(nonzero), "the label image")
    if len(nonzero) * arr.size > MAX_LABEL_MASK_BYTES:
        raise UserError(
            f"The label image has {len(nonzero)} labels on {arr.shape[1]}x{arr.shape[0]} pixels, more masks than "
            f"one import holds ({MAX_LABEL_MASK_BYTES >> 20} MB); import fewer labels at a time."
        )
    slices = ndimage.find_objects(compact)
    tag_list = [str(t) for t in (tags or [])]
    out: list[Prompt] = []
    for i, value in enumerate(nonzero):
        sl = slices[i]
        mask = np.zeros(arr.shape, dtype=bool)
        if sl is not None:
            mask[sl] = compact[sl] == i + 1
        out.append(Prompt(obj_id=i, loc=Location(*loc), mask=mask, tags=list(tag_list), name=f"label {value}"))
    return out


# ------------------------------------------------------------------------------------- dispatch
def load_prompts(path: str | Path, width: int, height: int, tags=None, loc: Location | None = None) -> list[Prompt]:
    """Prompts from a file, whatever it holds: GeoJSON, platform JSON, or a label image.

    The kind is decided by content, not name. ``loc`` is the frame of a label image (default the
    first frame) and the default location of GeoJSON features that carry none.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"The prompt file {p} does not exist; check the path.")
    try:
        with p.open("rb") as fh:
            head = fh.read(16)
    except OSError as err:
        raise UserError(f"The prompt file {p} cannot be read ({err.strerror}); check its permissions.") from None
    if not head.strip():
        raise UserError(f"The prompt file {p.name} is empty; choose a file with annotations in it.")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+") or head[:8] == b"\x89PNG\r\n\x1a\n":
        labels = _read_label_file(p)
        prompts = from_label_image(labels, loc or Location(0, 0, 0), tags=tags, shape=(height, width))
        return prompts
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        if p.stat().st_size > _MAX_JSON_BYTES:  # refused before it is read, let alone parsed
            raise UserError(f"The prompt file is larger than {_MAX_JSON_BYTES >> 20} MB; split it into smaller files.")
        doc = _parse_json(p.read_bytes(), "prompt")
        if isinstance(doc, dict) and doc.get("type") in ("FeatureCollection", "Feature"):
            return from_geojson(doc, width, height, tags=tags, default_loc=loc)
        return from_platform_json(doc, width, height, tags=tags)
    raise UserError(
        f"The prompt file {p.name} is neither JSON (GeoJSON or platform annotations) nor a "
        "TIFF/PNG label image; choose one of those."
    )


def _read_label_file(p: Path) -> np.ndarray:
    arr = _decode_label_file(p)
    if arr.size == 0:
        raise UserError(f"The label image {p.name} holds no image; save it again as a TIFF or PNG of integer labels.")
    return arr


def _decode_label_file(p: Path) -> np.ndarray:
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
        if magic == b"\x89PNG":
            import cv2
            from PIL import Image

            from sam2web.stack.common import check_pixel_budget

            with Image.open(p) as im:  # the header only: the pixel budget before decoding
                width, height = im.size
            check_pixel_budget(height, width, 2, f"The label image {p.name}")
            arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if arr is None:
                raise ValueError("unreadable PNG")
            return arr
        from sam2web.stack.tiff import read_tiff_image

        return read_tiff_image(p, f"The label image {p.name}")
    except DECODE_ERRORS as err:  # any decoder failure is a bad file, which the user can replace
        raise UserError(
            f"The label image {p.name} cannot be read ({str(err)[:80]}); save it again as a "
            "TIFF or PNG of integer labels."
        ) from None


# ------------------------------------------------------------------------------------ ids, dicts
def renumber(prompts: list[Prompt]) -> list[Prompt]:
    """Object ids 0, 1, 2, ... in order of first appearance; prompts sharing an id keep sharing one."""
    mapping: dict[int, int] = {}
    for p in prompts:
        mapping.setdefault(p.obj_id, len(mapping))
    return [
        Prompt(
            obj_id=mapping[p.obj_id],
            loc=p.loc,
            box=p.box,
            points=list(p.points),
            mask=p.mask,
            tags=list(p.tags),
            name=p.name,
            parent=mapping.get(p.parent) if p.parent is not None else None,  # lineage follows the new ids
        )
        for p in prompts
    ]


def available_tags(prompts: list[Prompt]) -> list[str]:
    """Every tag used by the prompts, sorted (the Track page's tag choices)."""
    return sorted({t for p in prompts for t in p.tags})


def mask_to_dict(mask: np.ndarray | CompactMask) -> dict:
    cm = mask if isinstance(mask, CompactMask) else CompactMask.from_mask(mask)
    return {"shape": list(cm.shape), "bbox": list(cm.bbox), "bits": base64.b64encode(cm.bits).decode("ascii")}


def mask_from_dict(d: dict) -> CompactMask:
    try:
        shape = tuple(int(v) for v in d["shape"])
        bbox = tuple(int(v) for v in d["bbox"])
        bits = base64.b64decode(d["bits"], validate=True)
        if len(shape) != 2 or len(bbox) != 4:
            raise ValueError("bad shape or bbox")
        cm = CompactMask(shape, bbox, bits)  # type: ignore[arg-type]
        if not cm.empty:
            r0, c0, r1, c1 = bbox
            if not (0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]) or len(bits) != -(
                -(r1 - r0) * (c1 - c0) // 8
            ):
                raise ValueError("bbox and bits disagree")
        return cm
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"A saved mask is damaged ({str(err)[:60]}); draw or import that prompt again.") from None


def prompt_to_dict(p: Prompt) -> dict:
    """A JSON-safe dict of a prompt (mask as bbox + base64 bits, a few % of the frame's size)."""
    return {
        "obj_id": int(p.obj_id),
        "loc": {"XY": int(p.loc.xy), "Time": int(p.loc.time), "Z": int(p.loc.z)},
        "box": None if p.box is None else [float(v) for v in p.box],
        "points": [[float(x), float(y), int(lab)] for x, y, lab in p.points],
        "mask": None if p.mask is None else mask_to_dict(p.mask),
        "tags": list(p.tags),
        "name": p.name,
        **({"parent": int(p.parent)} if p.parent is not None else {}),
    }


def prompt_from_dict(d: dict) -> Prompt:
    """Inverse of ``prompt_to_dict``; a damaged record is a UserError, not a crash."""
    if not isinstance(d, dict):
        raise UserError("A saved prompt is damaged (not an object); draw that prompt again.")
    try:
        loc = _location(d.get("loc"), None, "A saved prompt")
        box = d.get("box")
        if box is not None:
            box = tuple(_number(v, "A saved prompt's box") for v in box)
            if len(box) != 4:
                raise ValueError("box needs 4 numbers")
        points = [
            (_number(x, "A saved point"), _number(y, "A saved point"), int(lab)) for x, y, lab in d.get("points") or []
        ]
        mask = None if d.get("mask") is None else mask_from_dict(d["mask"]).to_mask()
        return Prompt(
            obj_id=_index(d.get("obj_id"), "A saved prompt's obj_id"),
            loc=loc,
            box=box,
            points=points,
            mask=mask,
            tags=_tags(d.get("tags")),
            name=str(d.get("name") or ""),
            parent=None if d.get("parent") is None else _index(d.get("parent"), "A saved prompt's parent"),
        )
    except (TypeError, ValueError) as err:
        raise UserError(f"A saved prompt is damaged ({str(err)[:60]}); draw that prompt again.") from None
