"""Mask -> polygon, then padding (buffer) and smoothing (simplify), in full-resolution pixels.

The surface other modules use:

    mask_to_geometry(mask: np.ndarray | CompactMask, padding=0.0, smoothing=0.3, keep="largest"|"all")
        -> shapely Polygon | MultiPolygon | None     (x = column, y = row)
    annotations_from_result(result: TrackResult, padding=0.0, smoothing=0.3, keep="largest") -> list[Annotation]
        stable ids: f"{obj_id}-{xy}-{time}-{z}"

Added: ``geometries_for`` (many masks at once), ``raw_geometry`` (the outline after padding, before
smoothing, cached per CompactMask so a smoothing change re-draws thousands of polygons without
tracing a contour again), ``smooth_geometries``, ``annotation_id``.

Why outlines follow pixel *corners*: a polygon through pixel centres (what ``cv2.findContours``
returns) loses half a pixel all round, so a 1-pixel cell would have area 0 and a full-frame mask
would not reach the image border. We trace the mask upscaled 2x and map each traced pixel to the
outer corner of its original pixel, which yields the exact pixel-edge outline (area == pixel count).

Why the *largest* component: the original worker kept the first contour cv2 returned, silently
dropping the real cell whenever a speck came first.

Padding is the worker's ``buffer(padding)`` done on the pixel grid: a pixel joins the mask when
its centre lies within ``padding`` of the mask's outline (shrinking: leaves when within |padding|
of the background), i.e. the buffered polygon rasterised exactly; GEOS's buffer of a staircase
outline was about 25x slower, too slow for interactive re-drawing. Smoothing is ``simplify(smoothing,
preserve_topology=True)`` (skipped below 0.35 px, where it provably changes nothing). Outlines
are cached per CompactMask, so a settings change only redoes what it must. A padding change
re-pads many masks at once on one canvas (``_parts_padded_batch``), with exactly the per-mask
result (tests/test_geometry.py compares the two).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from sam2web.types import Annotation, CompactMask, Location, TrackResult

KEEP_CHOICES = ("largest", "all")
EXACT_SMOOTHING = 0.35  # smoothing below 1/(2*sqrt(2)) px leaves a pixel-edge outline unchanged

# A mask's content (shape, bbox, bits) -> (the mask, {(keep, holes, padding): (geometry or None, pinched)}).
# Keyed by content, not identity: the same mask read again from the store (a reload, another
# session, a copied run) finds its outlines; ``bytes`` caches its hash, so a lookup is cheap. Bounded:
# at most _RAW_CACHE_MAX masks (oldest dropped first) and _SETTINGS_PER_MASK settings each, so a
# server's memory stays bounded (~100 MB at worst) however long users scrub the padding slider.
_RAW_CACHE: OrderedDict[tuple, tuple[CompactMask, dict]] = OrderedDict()
_RAW_CACHE_MAX = 20_000
_SETTINGS_PER_MASK = 4
_CACHE_LOCK = threading.Lock()  # app sessions run in threads and share this module


def annotation_id(obj_id: int, loc: Location) -> str:
    """The stable id of an object's polygon at a frame: same run + same frame -> same id."""
    return f"{obj_id}-{loc.xy}-{loc.time}-{loc.z}"


def _as_crop(mask: np.ndarray | CompactMask) -> tuple[np.ndarray | None, int, int, tuple[int, int]]:
    """(uint8 0/1 crop, row offset, col offset, full shape); crop None when the mask is empty.

    Works on the bbox crop only: tracing a 60-pixel cell must not cost a 1024x1024 pass.
    """
    if isinstance(mask, CompactMask):
        if mask.empty:
            return None, 0, 0, tuple(mask.shape)
        r0, c0, r1, c1 = mask.bbox
        flat = np.unpackbits(np.frombuffer(mask.bits, dtype=np.uint8), count=(r1 - r0) * (c1 - c0))
        return flat.reshape(r1 - r0, c1 - c0), r0, c0, tuple(mask.shape)
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"a mask must be 2D, got shape {arr.shape}")
    binary = arr if arr.dtype == bool else arr > 0  # logits are thresholded at 0.0, as SAM2 does
    rows = np.flatnonzero(binary.any(axis=1))
    if rows.size == 0:
        return None, 0, 0, arr.shape
    cols = np.flatnonzero(binary.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return np.ascontiguousarray(binary[r0:r1, c0:c1]).view(np.uint8), r0, c0, arr.shape


def _ring(contour: np.ndarray, r0: int, c0: int) -> np.ndarray:
    """Map a contour traced on the 2x-upscaled crop to pixel-corner coordinates of the frame.

    A traced pixel at upscaled column X lies in the left half of its original pixel when X is even
    (-> that pixel's left edge, X/2) and in the right half when odd (-> its right edge, (X+1)/2);
    likewise for rows. Consecutive duplicates (from diagonal steps) are dropped.
    """
    pts = contour.reshape(-1, 2)
    xy = (pts + 1) >> 1
    same = (xy[1:] == xy[:-1]).all(axis=1)
    if same.any():
        xy = np.concatenate([xy[:1], xy[1:][~same]])
    return (xy + (c0, r0)).astype(np.float64)


@lru_cache(maxsize=64)
def _kernel(padding: float) -> np.ndarray:
    """Pixels whose centre lies within |padding| of a pixel's square (the rasterised buffer disk).

    Growing: <= padding (the outline moves out by that distance); shrinking: < |padding|.
    """
    d = abs(float(padding))
    k = int(np.ceil(d + 0.5))
    off = np.maximum(np.abs(np.arange(-k, k + 1)) - 0.5, 0.0)
    dist2 = off[:, None] ** 2 + off[None, :] ** 2
    inside = dist2 <= d * d if padding > 0 else dist2 < d * d
    # Trim all-zero outer rows/columns (symmetric, so the centre anchor stays put): same result,
    # and a smaller kernel means a smaller margin, i.e. fewer pixels to dilate, upscale and trace.
    while k > 0 and not inside[0].any():
        inside = inside[1:-1, 1:-1]
        k -= 1
    kernel = np.ascontiguousarray(inside, dtype=np.uint8)
    kernel.setflags(write=False)  # shared by every call through the cache
    return kernel


def _largest_component(crop: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(crop, connectivity=8)
    if n <= 2:
        return crop
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == best).view(np.uint8)


def _pad_raster(crop: np.ndarray, r0: int, c0: int, shape: tuple[int, int], padding: float):
    """Grow/shrink the crop on the pixel grid; returns (crop, r0, c0) clipped to the frame.

    Why raster and not ``Polygon.buffer``: GEOS buffers a 100-vertex pixel outline in ~0.8 ms, far
    too slow to re-pad thousands of polygons interactively; dilating by the disk of pixels whose
    centres lie within ``padding`` gives the buffer rasterised exactly, in microseconds.
    """
    kernel = _kernel(padding)
    m = kernel.shape[0] // 2 + 1
    big = np.zeros((crop.shape[0] + 2 * m, crop.shape[1] + 2 * m), dtype=np.uint8)
    big[m:-m, m:-m] = crop
    op = cv2.dilate if padding > 0 else cv2.erode
    big = op(big, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    top, left = r0 - m, c0 - m
    rs, cs = max(0, -top), max(0, -left)
    re_ = big.shape[0] - max(0, top + big.shape[0] - shape[0])
    ce = big.shape[1] - max(0, left + big.shape[1] - shape[1])
    return big[rs:re_, cs:ce], top + rs, left + cs


def _trace_rings(crop: np.ndarray, r0: int, c0: int, keep: str, holes: bool):
    """Exact pixel-edge rings of a uint8 0/1 crop: one _Simple contour, or a list of (shell, [holes]).

    (cv2.findContours treats outside the image as background, so no border is needed.)
    """
    up = cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    mode = cv2.RETR_CCOMP if holes else cv2.RETR_EXTERNAL
    contours, hierarchy = cv2.findContours(up, mode, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    if len(contours) == 1:
        return _Simple(contours[0], r0, c0)  # mapped later, in one batch with the others
    hier = hierarchy[0]
    outers = [i for i in range(len(contours)) if hier[i][3] < 0]
    if keep == "largest":
        outers = [max(outers, key=lambda i: cv2.contourArea(contours[i]))]
    out = []
    for i in outers:
        inner = []
        if holes:
            child = hier[i][2]
            while child >= 0:
                inner.append(_ring(contours[child], r0, c0))
                child = hier[child][0]
        out.append((_ring(contours[i], r0, c0), inner))
    return out


def _polygonal(geom):
    """Keep only the areal part of a geometry (make_valid may add stray lines or points)."""
    if geom is None or geom.is_empty:
        return None
    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    polys: list[Polygon] = []
    for g in getattr(geom, "geoms", []):
        if isinstance(g, MultiPolygon):
            polys.extend(g.geoms)
        elif isinstance(g, Polygon):
            polys.append(g)
    polys = [p for p in polys if not p.is_empty and p.area > 0]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


class _Simple(NamedTuple):
    """One outer contour, no holes, still in upscaled crop coordinates (the common case)."""

    contour: np.ndarray
    r0: int
    c0: int


def _build(parts_list: list, pinched: list) -> list:
    """Shapely geometries from traced rings.

    The common one-contour case is mapped and built for all masks in a handful of numpy/GEOS
    calls, which is what keeps re-drawing thousands of polygons interactive. Validity is checked
    later, once, after smoothing (``_finish``). ``pinched[i]`` is set for single-ring masks.
    """
    out: list = [None] * len(parts_list)
    simple = [i for i, parts in enumerate(parts_list) if isinstance(parts, _Simple)]
    if simple:
        cnts = [parts_list[i].contour.reshape(-1, 2) for i in simple]
        lens = np.array([len(c) for c in cnts])
        offsets = np.array([(parts_list[i].c0, parts_list[i].r0) for i in simple], dtype=np.int32)
        xy = np.concatenate(cnts).astype(np.int32, copy=False)  # a new array: safe to edit in place
        xy += 1
        xy >>= 1
        xy += np.repeat(offsets, lens, axis=0)
        ring = np.repeat(np.arange(len(simple), dtype=np.int32), lens)
        keep = np.ones(len(xy), dtype=bool)
        flat = xy.view(np.int64).reshape(-1)  # one 64-bit key per (x, y): 1-D compares are faster
        keep[1:] = (flat[1:] != flat[:-1]) | (ring[1:] != ring[:-1])
        xy, ring = flat[keep].view(np.int32).reshape(-1, 2), ring[keep]
        polys = shapely.polygons(shapely.linearrings(xy.astype(np.float64), indices=ring))
        # A ring that passes through one corner twice touches itself (pixels meeting diagonally).
        keys = np.sort((ring.astype(np.int64) << 42) | (xy[:, 1].astype(np.int64) << 21) | xy[:, 0])
        pinched_rings = set((keys[1:][keys[1:] == keys[:-1]] >> 42).tolist())
        for j, (i, p) in enumerate(zip(simple, polys)):
            out[i] = p
            pinched[i] = j in pinched_rings
    for i, parts in enumerate(parts_list):
        if out[i] is not None or not parts:
            continue
        polys = [Polygon(shell, inner) for shell, inner in parts]
        out[i] = polys[0] if len(polys) == 1 else MultiPolygon(polys)
    return out


def _finish(geoms: list) -> list:
    """Valid areal geometries or None: pixels touching only at a corner give a self-touching ring,
    and simplification may cross edges; ``make_valid`` splits such shapes into valid parts."""
    arr = np.array(list(geoms) + [None], dtype=object)[:-1]
    present = np.array([g is not None for g in arr], dtype=bool)
    if present.any():
        work = arr[present]
        bad = ~shapely.is_valid(work) | shapely.is_empty(work)
        for i in np.flatnonzero(bad):
            work[i] = _polygonal(shapely.make_valid(work[i]))
        arr[present] = work
    return list(arr)


def _pinched(crop: np.ndarray) -> bool:
    """True when two pixels touch only at a corner (a 2x2 diagonal pattern).

    That is the one way a pixel-edge outline can be invalid (a self-touching ring), so only such
    masks need GEOS's validity check: skipping it for the rest saves a third of re-drawing time.
    """
    a, b, x, y = crop[:-1, :-1], crop[1:, 1:], crop[:-1, 1:], crop[1:, :-1]
    return bool(((a == b) & (x == y) & (a != x)).any())


def _parts(mask, keep: str, holes: bool, padding: float, one_part: bool = False) -> tuple[list, bool]:
    """Traced rings of one mask and whether it may be pinched (None: decided in _build).

    ``one_part`` says the mask is known (from an earlier trace) to be a single component.
    """
    crop, r0, c0, shape = _as_crop(mask)
    if crop is None:
        return [], False
    if padding and abs(padding) >= 0.5:
        if keep == "largest" and not one_part:
            outer, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            if len(outer) > 1:  # labelling costs 5x a contour pass: only when there are several parts
                crop = _largest_component(crop)
        crop, r0, c0 = _pad_raster(crop, r0, c0, shape, padding)
        if padding < 0 and cv2.countNonZero(crop) == 0:
            return [], False
        keep = "all"  # shrinking may split the kept component; its parts all stay
    parts = _trace_rings(crop, r0, c0, keep, holes)
    # A single ring's pinches are found in _build, all rings at once; others are checked here.
    return parts, (None if isinstance(parts, _Simple) else _pinched(crop))


_BATCH_MIN = 16  # fewer masks than this: the per-mask path is as quick
_CANVAS_WIDTH = 2048


def _pack(sizes: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Shelf-pack (h, w) slots (given tallest first) left to right: ((y, x) origins, height, width).

    Origins come out sorted by (y, x), which ``_slot_of`` relies on.
    """
    width = max(_CANVAS_WIDTH, int(sizes[:, 1].max()))
    origins = np.empty((len(sizes), 2), dtype=np.int64)
    x = y = shelf = 0
    for j, (h, w) in enumerate(sizes.tolist()):
        if x + w > width:
            y, x, shelf = y + shelf, 0, 0
        origins[j] = (y, x)
        x += w
        shelf = max(shelf, h)
    return origins, y + shelf, width


def _slot_of(points: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """Index of the slot holding each (y, x) canvas point, for slots packed by ``_pack``."""
    shelf_rows = np.unique(origins[:, 0])
    shelf_y = shelf_rows[np.searchsorted(shelf_rows, points[:, 0], side="right") - 1]
    key = (origins[:, 0] << 32) + origins[:, 1]
    return np.searchsorted(key, (shelf_y << 32) + points[:, 1], side="right") - 1


def _first_points(contours) -> np.ndarray:
    """(y, x) of each contour's first point."""
    return np.array([c[0, 0] for c in contours], dtype=np.int64)[:, ::-1]


_POOL: ThreadPoolExecutor | None = None


def _find_in_halves(up: np.ndarray, mode: int, slot_rows: np.ndarray) -> tuple[list, np.ndarray]:
    """``cv2.findContours`` of the upscaled canvas, its top and bottom halves traced in parallel.

    Why: tracing the canvas is the largest single cost and OpenCV releases the GIL while it runs.
    The halves are cut between shelves (never through a slot), so every contour is whole. Returns
    the contours and, per contour, how many canvas rows its half starts below the top.
    """
    global _POOL
    shelves = np.unique(slot_rows)
    half = min(int(np.searchsorted(shelves, up.shape[0] // 4)), len(shelves) - 1)
    cut = int(shelves[half])  # the first shelf starting at or below the middle (0: one shelf)
    if cut <= 0 or 2 * cut >= up.shape[0]:
        contours = cv2.findContours(up, mode, cv2.CHAIN_APPROX_SIMPLE)[0]
        return list(contours), np.zeros(len(contours), dtype=np.int64)
    with _CACHE_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="geometry")
    bottom = _POOL.submit(cv2.findContours, up[2 * cut :], mode, cv2.CHAIN_APPROX_SIMPLE)
    top = cv2.findContours(up[: 2 * cut], mode, cv2.CHAIN_APPROX_SIMPLE)[0]
    low = bottom.result()[0]
    shifts = np.zeros(len(top) + len(low), dtype=np.int64)
    shifts[len(top) :] = cut
    return list(top) + list(low), shifts


def _crops(masks: list) -> list[tuple[int, np.ndarray, int, int, tuple[int, int]]]:
    """(index, uint8 crop, r0, c0, shape) of each non-empty mask, as ``_as_crop`` gives them.

    CompactMasks are unpacked in one call (per-mask ``np.unpackbits`` is mostly call overhead).
    """
    items: list = []
    packed = [(i, m) for i, m in enumerate(masks) if isinstance(m, CompactMask) and not m.empty]
    if packed:
        flat = np.unpackbits(np.frombuffer(b"".join(m.bits for _, m in packed), dtype=np.uint8))
        start = 0
        for i, m in packed:
            r0, c0, r1, c1 = m.bbox
            n = (r1 - r0) * (c1 - c0)
            items.append((i, flat[start : start + n].reshape(r1 - r0, c1 - c0), r0, c0, tuple(m.shape)))
            start += 8 * len(m.bits)
    done = {i for i, _ in packed}
    for i, mask in enumerate(masks):
        if i not in done:
            crop, r0, c0, shape = _as_crop(mask)
            if crop is not None:
                items.append((i, crop, r0, c0, shape))
    return items


def _parts_padded_batch(
    masks: list, keep: str, holes: bool, padding: float, hints: list[bool]
) -> list[tuple[list, object]]:
    """``_parts`` for many masks with padding: one dilate, one resize, one findContours for all.

    Why: per mask, the OpenCV calls and numpy glue cost more in overhead than in work (2000 cell
    masks re-padded: ~100 ms one by one, ~45 ms batched, identical rings). Every crop gets a
    slot on one canvas: the crop, ``k`` (the kernel's reach) zeros round it and one more zero
    row and column, so what a dilation adds stays in the crop's own slot and shapes of different
    slots never touch. A contour traced on the canvas is exactly the one traced on the crop alone
    (tracing starts at a component's first pixel in raster order and follows only its border),
    so a mask with one contour takes it from the canvas; masks with several (holes, split parts)
    are re-traced one by one from their padded slot, so their ring order is the per-mask one.
    """
    out: list = [([], False)] * len(masks)
    kernel = _kernel(padding)
    k = kernel.shape[0] // 2
    items = _crops(masks)
    if not items:
        return out
    items.sort(key=lambda it: -it[1].shape[0])  # tallest first: less shelf waste
    sizes = np.array([c.shape for _, c, _, _, _ in items], dtype=np.int64) + (2 * k + 1)
    origins, height, width = _pack(sizes)
    canvas = np.zeros((height, width), dtype=np.uint8)
    org = origins.tolist()
    for (i, crop, _, _, _), (y, x) in zip(items, org):
        canvas[y + k : y + k + crop.shape[0], x + k : x + k + crop.shape[1]] = crop
    if keep == "largest" and not all(hints[it[0]] for it in items):
        outer, _ = cv2.findContours(canvas, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        counts = np.bincount(_slot_of(_first_points(outer), origins), minlength=len(items))
        for j in np.flatnonzero(counts > 1).tolist():
            i, crop, _, _, _ = items[j]
            if not hints[i]:  # labelling costs 5x a contour pass: only when there are several parts
                y, x = org[j]
                canvas[y + k : y + k + crop.shape[0], x + k : x + k + crop.shape[1]] = _largest_component(crop)
    op = cv2.dilate if padding > 0 else cv2.erode
    canvas = op(canvas, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    # What a dilation pushes past the frame's border is dropped, as in _pad_raster.
    for j, (i, crop, r0, c0, shape) in enumerate(items):
        top, left = r0 - k, c0 - k
        if top < 0 or left < 0 or r0 + crop.shape[0] + k > shape[0] or c0 + crop.shape[1] + k > shape[1]:
            y, x = org[j]
            h, w = sizes[j] - 1
            slot = canvas[y : y + h, x : x + w]
            slot[: max(0, -top)] = 0
            slot[:, : max(0, -left)] = 0
            slot[max(0, shape[0] - top) :] = 0
            slot[:, max(0, shape[1] - left) :] = 0
    up = cv2.resize(canvas, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    mode = cv2.RETR_CCOMP if holes else cv2.RETR_EXTERNAL
    contours, shifts = _find_in_halves(up, mode, origins[:, 0])
    if not contours:
        return out
    first = _first_points(contours)
    first[:, 0] += 2 * shifts
    slot_ids = _slot_of(first >> 1, origins)
    counts = np.bincount(slot_ids, minlength=len(items))
    for c, j, shift in zip(contours, slot_ids.tolist(), shifts.tolist()):
        if counts[j] == 1:  # left in (half-)canvas coordinates: (2y + Y + 1) >> 1 == y + (Y + 1) >> 1
            i, _, r0, c0, _ = items[j]
            y, x = org[j]
            out[i] = (_Simple(c, r0 - k - y + shift, c0 - k - x), None)
    for j in np.flatnonzero(counts > 1).tolist():
        i, crop, r0, c0, shape = items[j]
        y, x = org[j]
        top, left = r0 - k, c0 - k
        rs, cs = max(0, -top), max(0, -left)
        re_ = min(int(sizes[j, 0]) - 1, shape[0] - top)
        ce = min(int(sizes[j, 1]) - 1, shape[1] - left)
        sub = np.ascontiguousarray(canvas[y + rs : y + re_, x + cs : x + ce])
        parts = _trace_rings(sub, top + rs, left + cs, "all", holes)
        out[i] = (parts, None if isinstance(parts, _Simple) else _pinched(sub))
    return out


def _cached(mask, key: tuple):
    """The cached (geometry, pinched) of a CompactMask for these settings, or None."""
    if not isinstance(mask, CompactMask):
        return None
    entry = _RAW_CACHE.get(_content_key(mask))
    return None if entry is None else entry[1].get(key)


def _content_key(mask: CompactMask) -> tuple:
    return (tuple(mask.shape), tuple(mask.bbox), mask.bits)


def _cached_geometries(masks: list, keep: str, holes: bool, padding: float) -> list[tuple[object, bool]]:
    """(outline after padding, pinched?) for many masks, traced once per (mask, keep, holes, padding)."""
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {KEEP_CHOICES}, got {keep!r}")
    key = (keep, bool(holes), float(padding) if abs(padding) >= 0.5 else 0.0)
    out: list = [None] * len(masks)
    todo: list[int] = []
    for i, m in enumerate(masks):
        hit = _cached(m, key)
        if hit is not None:
            out[i] = hit
        else:
            todo.append(i)
    if todo:
        plain = (keep, bool(holes), 0.0)
        hints = [False] * len(todo)
        if key[2] and keep == "largest":  # an unpadded trace of one simple ring: a single component
            for j, i in enumerate(todo):
                hit = _cached(masks[i], plain)
                if hit is not None:
                    g, pinched = hit
                    hints[j] = isinstance(g, Polygon) and not g.interiors and pinched is False
        if key[2] and len(todo) >= _BATCH_MIN:
            traced = _parts_padded_batch([masks[i] for i in todo], keep, holes, key[2], hints)
        else:
            traced = [_parts(masks[i], keep, holes, key[2], hint) for i, hint in zip(todo, hints)]
        pinches = [p for _, p in traced]
        built = _build([parts for parts, _ in traced], pinches)
        with _CACHE_LOCK:
            for i, g, pinched in zip(todo, built, pinches):
                out[i] = (g, pinched)
                m = masks[i]
                if isinstance(m, CompactMask):
                    ck = _content_key(m)
                    entry = _RAW_CACHE.get(ck)
                    if entry is None:
                        entry = (m, {})
                        _RAW_CACHE[ck] = entry
                        while len(_RAW_CACHE) > _RAW_CACHE_MAX:
                            _RAW_CACHE.popitem(last=False)
                    settings = entry[1]
                    if len(settings) >= _SETTINGS_PER_MASK:
                        # The unpadded trace stays: it tells later paddings that a mask is one
                        # component, which saves a contour pass per mask.
                        old = next((key_ for key_ in settings if key_[2]), next(iter(settings)))
                        settings.pop(old)
                    settings[key] = (g, pinched)
    return out


def raw_geometry(mask: np.ndarray | CompactMask, keep: str = "largest", holes: bool = True, padding: float = 0.0):
    """The exact pixel-edge outline of a mask after padding, before smoothing; None when empty.

    Results for CompactMasks are cached (keyed by their content), so re-drawing a run's polygons with
    a new smoothing, or a padding seen before, skips contour tracing entirely.
    """
    return _cached_geometries([mask], keep, holes, padding)[0][0]


def smooth_geometries(geoms: list, smoothing: float) -> list:
    """``simplify(smoothing, preserve_topology=True)`` then validity, vectorised and fast.

    Plain Douglas-Peucker is 3-10x faster than GEOS's topology-preserving simplifier and gives the
    same shapes whenever its result is valid; the few it breaks are redone the careful way.
    """
    arr = np.array(list(geoms) + [None], dtype=object)[:-1]
    present = np.array([g is not None for g in arr], dtype=bool)
    if smoothing and present.any():
        work = arr[present]
        fast = shapely.simplify(work, float(smoothing), preserve_topology=False)
        redo = ~shapely.is_valid(fast) | shapely.is_empty(fast)
        if redo.any():
            fast[redo] = shapely.simplify(work[redo], float(smoothing), preserve_topology=True)
            fast[redo] = _finish(list(fast[redo]))
        arr[present] = fast
        return list(arr)
    return _finish(list(arr))


def mask_to_geometry(
    mask: np.ndarray | CompactMask,
    padding: float = 0.0,
    smoothing: float = 0.3,
    keep: str = "largest",
    holes: bool = True,
):
    """One mask -> shapely Polygon (largest component, its holes kept) or MultiPolygon (keep="all").

    Coordinates are full-frame pixel corners: x = column, y = row. A bool mask is used as is; any
    other dtype is thresholded at > 0 (logits at 0.0, as the worker). Padding acts on the pixel
    grid (see ``_pad_raster``), in whole pixels; |padding| < 0.5 changes nothing. Shrinking may split
    the shape, then every part stays. Returns None when nothing is left.
    """
    return geometries_for([mask], padding, smoothing, keep, holes)[0]


def geometries_for(
    masks: list, padding: float = 0.0, smoothing: float = 0.3, keep: str = "largest", holes: bool = True
) -> list:
    """``mask_to_geometry`` over many masks at once (the vectorised path the app and exports use).

    Below ``EXACT_SMOOTHING`` the simplification is skipped: on a pixel-edge outline (axis-aligned
    edges of whole pixels) Douglas-Peucker with a tolerance under 1/(2*sqrt 2) px cannot drop any
    corner, since of any two corners joined by an edge one lies at least that far from a chord
    spanning them; so the result would be the same shape, and the default 0.3 costs nothing.
    """
    traced = _cached_geometries(list(masks), keep, holes, padding)
    geoms = [g for g, _ in traced]
    if smoothing >= EXACT_SMOOTHING:
        geoms = smooth_geometries(geoms, smoothing)
    else:
        suspects = [i for i, (g, pinched) in enumerate(traced) if pinched and g is not None]
        if suspects:
            for i, g in zip(suspects, _finish([geoms[i] for i in suspects])):
                geoms[i] = g
    if keep == "largest":
        # make_valid (pinched pixel outlines) or shrinking can split the one kept component:
        # the default promises a single Polygon, so keep its largest part.
        geoms = [max(g.geoms, key=lambda p: p.area) if isinstance(g, MultiPolygon) else g for g in geoms]
    return geoms


def annotations_from_result(
    result: TrackResult, padding: float = 0.0, smoothing: float = 0.3, keep: str = "largest", holes: bool = True
) -> list[Annotation]:
    """Every (object, frame) mask of a run as an Annotation, ordered by object then (XY, Time, Z).

    Ids are stable (``annotation_id``), so re-exporting with new settings keeps links and
    downstream references valid. Empty results are dropped.
    """
    keys = sorted(result.masks, key=lambda k: (k[0], k[1].xy, k[1].time, k[1].z))
    geoms = geometries_for([result.masks[k] for k in keys], padding, smoothing, keep, holes)
    out: list[Annotation] = []
    for (obj_id, loc), geom in zip(keys, geoms):
        if geom is None:
            continue
        info = result.objects.get(obj_id)
        out.append(
            Annotation(
                id=annotation_id(obj_id, loc),
                obj_id=int(obj_id),
                loc=Location(*loc),
                geometry=geom,
                channel=result.channel,
                tags=list(info.tags) if info else [],
                parent=info.parent if info else None,
            )
        )
    return out


def rasterize(geom, shape: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    """A polygon back to pixels: (bool crop, row0, col0), the crop covering the polygon's bounds.

    A pixel is inside when its centre is (even-odd rule over all rings, so holes and
    MultiPolygons need no special case), so the pixel-corner outline of a mask rasterises back to
    exactly that mask. cv2.fillPoly is not used: it also fills pixels the outline merely touches,
    adding a row and a column to every shape. Work is limited to the polygon's bounds.
    """
    h, w = int(shape[0]), int(shape[1])
    empty = np.zeros((0, 0), dtype=bool), 0, 0
    if geom is None or geom.is_empty:
        return empty
    minx, miny, maxx, maxy = geom.bounds
    c0, r0 = max(0, int(np.floor(minx))), max(0, int(np.floor(miny)))
    c1, r1 = min(w, int(np.ceil(maxx))), min(h, int(np.ceil(maxy)))
    if c1 <= c0 or r1 <= r0:
        return empty
    rings = shapely.get_rings(shapely.get_parts(geom))
    coords, index = shapely.get_coordinates(rings, return_index=True)
    same = index[1:] == index[:-1]  # edges join consecutive vertices of one ring
    x1, y1 = coords[:-1, 0][same], coords[:-1, 1][same]
    x2, y2 = coords[1:, 0][same], coords[1:, 1][same]
    ys = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5  # pixel-centre rows
    crosses = ((y1 <= ys) & (ys < y2)) | ((y2 <= ys) & (ys < y1))  # half-open: vertices count once
    rows, edges = np.nonzero(crosses)
    if rows.size == 0:
        return np.zeros((r1 - r0, c1 - c0), dtype=bool), r0, c0
    yc = ys[rows, 0]
    xs = x1[edges] + (yc - y1[edges]) * (x2[edges] - x1[edges]) / (y2[edges] - y1[edges])
    order = np.lexsort((xs, rows))
    rows, xs = rows[order], xs[order]
    # Crossings pair up per row (even-odd); pixel c is filled when xa <= c + 0.5 < xb.
    start = np.clip(np.ceil(xs[0::2] - 0.5).astype(np.int64) - c0, 0, c1 - c0)
    stop = np.clip(np.ceil(xs[1::2] - 0.5).astype(np.int64) - c0, 0, c1 - c0)
    r = rows[0::2]
    diff = np.zeros((r1 - r0, c1 - c0 + 1), dtype=np.int32)
    np.add.at(diff, (r, start), 1)
    np.add.at(diff, (r, stop), -1)
    return np.cumsum(diff[:, :-1], axis=1) > 0, r0, c0


def rasterize_full(geom, shape: tuple[int, int]) -> np.ndarray:
    """``rasterize`` into a full (height, width) bool frame."""
    full = np.zeros((int(shape[0]), int(shape[1])), dtype=bool)
    crop, r0, c0 = rasterize(geom, shape)
    full[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]] = crop
    return full
