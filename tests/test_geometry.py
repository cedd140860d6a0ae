"""Mask -> polygon: pixel-exact outlines, largest component, holes, padding, smoothing, round trip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import shapely
from geom_synthetic import synthetic_result
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from shapely.geometry import MultiPolygon, Polygon, box

from sam2web import geometry
from sam2web.geometry import annotations_from_result, mask_to_geometry, rasterize_full
from sam2web.types import CompactMask, Location, ObjectInfo, TrackResult


def test_one_pixel_has_area_one_at_its_column_and_row():
    m = np.zeros((5, 9), dtype=bool)  # non-square: 5 rows, 9 columns
    m[2, 7] = True
    g = mask_to_geometry(m, smoothing=0)
    assert g.area == 1.0
    assert g.bounds == (7.0, 2.0, 8.0, 3.0)  # x = column, y = row


def test_full_frame_reaches_the_image_corners_on_a_non_square_image():
    g = mask_to_geometry(np.ones((30, 50), dtype=bool))
    assert g.bounds == (0.0, 0.0, 50.0, 30.0)
    assert g.area == 1500.0


def test_largest_component_not_the_first_contour():
    m = np.zeros((40, 60), dtype=bool)
    m[0:2, 0:2] = True  # a speck at the top-left, found first by a raster scan
    m[10:30, 20:50] = True  # the cell
    g = mask_to_geometry(m, smoothing=0)
    assert isinstance(g, Polygon)
    assert g.area == 600.0 and g.bounds == (20.0, 10.0, 50.0, 30.0)
    every = mask_to_geometry(m, smoothing=0, keep="all")
    assert isinstance(every, MultiPolygon) and every.area == 604.0


def test_holes_are_kept_and_can_be_filled():
    m = np.zeros((20, 20), dtype=bool)
    m[2:18, 2:18] = True
    m[6:10, 6:12] = False
    g = mask_to_geometry(m, smoothing=0)
    assert len(g.interiors) == 1 and g.area == m.sum()
    filled = mask_to_geometry(m, smoothing=0, holes=False)
    assert len(filled.interiors) == 0 and filled.area == 256.0


def test_logits_are_thresholded_at_zero():
    logits = np.full((10, 10), -3.0, dtype=np.float32)
    logits[2:5, 3:7] = 2.5
    logits[8, 8] = 0.0  # exactly 0 is background
    g = mask_to_geometry(logits, smoothing=0)
    assert g.area == 12.0 and g.bounds == (3.0, 2.0, 7.0, 5.0)
    assert mask_to_geometry(np.zeros((4, 4), np.float32)) is None


def test_compact_mask_and_array_agree():
    m = np.zeros((64, 48), dtype=bool)
    cv2.circle(m.view(np.uint8), (20, 30), 9, 1, -1)
    a = mask_to_geometry(m, smoothing=0.5)
    b = mask_to_geometry(CompactMask.from_mask(m), smoothing=0.5)
    assert a.equals(b)


def test_corner_touching_pixels_give_a_valid_shape_of_exact_area():
    m = np.zeros((4, 4), dtype=bool)
    m[0, 0] = m[1, 1] = True
    g = mask_to_geometry(m, smoothing=0, keep="all")
    assert g.is_valid and g.area == 2.0
    # The default promises one Polygon (GeoJSON Polygon, the platform's "polygon"): its largest part.
    g = mask_to_geometry(m, smoothing=0)
    assert g.geom_type == "Polygon" and g.is_valid and g.area == 1.0


def test_default_is_one_polygon_even_when_the_outline_is_pinched():
    m = np.ones((12, 12), bool)
    m[3:9, 3:9] = False
    m[4:6, 4:6] = True  # an island in the hole, touching the body at one corner
    m[3, 3] = True
    g = mask_to_geometry(m, padding=0, smoothing=0.0)
    assert g.geom_type == "Polygon" and g.is_valid
    assert mask_to_geometry(m, padding=0, smoothing=0.0, keep="all").area > g.area


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_outline_is_pixel_exact_and_rasterises_back(m):
    g = mask_to_geometry(m, smoothing=0, keep="all")
    if not m.any():
        assert g is None
        return
    assert g.is_valid
    assert g.area == pytest.approx(m.sum())
    assert np.array_equal(rasterize_full(g, m.shape), m)
    # smoothing under EXACT_SMOOTHING is skipped: it must equal what simplify would have given
    light = mask_to_geometry(m, smoothing=0.34, keep="all")
    assert light.is_valid and light.equals(shapely.simplify(g, 0.34, preserve_topology=True))


def test_padding_matches_the_buffer_rasterised():
    m = np.zeros((40, 40), dtype=bool)
    m[15:25, 15:25] = True
    grown = mask_to_geometry(m, padding=2, smoothing=0)
    # pixel centres within 2 px of the square: 10x10 + 4 sides of 10x2 + 3 per rounded corner
    assert grown.area == 192.0
    assert grown.area == pytest.approx(box(15, 15, 25, 25).buffer(2).area, rel=0.01)
    shrunk = mask_to_geometry(m, padding=-2, smoothing=0)
    assert shrunk.bounds == (17.0, 17.0, 23.0, 23.0)
    assert mask_to_geometry(m, padding=-6, smoothing=0) is None  # nothing left: dropped
    assert mask_to_geometry(m, padding=0.3, smoothing=0).area == 100.0  # under half a pixel: no change


def test_padding_stays_inside_the_frame():
    m = np.zeros((20, 30), dtype=bool)
    m[0:5, 25:30] = True  # touches the top and right borders
    g = mask_to_geometry(m, padding=4, smoothing=0)
    minx, miny, maxx, maxy = g.bounds
    assert minx >= 0 and miny >= 0 and maxx <= 30 and maxy <= 20
    assert maxx == 30 and miny == 0


def test_padding_keeps_only_the_largest_component_unless_all():
    m = np.zeros((40, 40), dtype=bool)
    m[2:4, 2:4] = True
    m[20:30, 20:30] = True
    assert isinstance(mask_to_geometry(m, padding=1, smoothing=0), Polygon)
    assert isinstance(mask_to_geometry(m, padding=1, smoothing=0, keep="all"), MultiPolygon)


def test_smoothing_is_topology_preserving_simplify_of_the_outline():
    m = np.zeros((80, 80), dtype=bool)
    cv2.ellipse(m.view(np.uint8), (40, 40), (25, 14), 30, 0, 360, 1, -1)
    raw = mask_to_geometry(m, smoothing=0)
    for tol in (0.3, 1.0, 3.0):
        smooth = mask_to_geometry(m, smoothing=tol)
        assert smooth.is_valid
        assert smooth.equals(raw.simplify(tol, preserve_topology=True))
    assert len(mask_to_geometry(m, smoothing=1.0).exterior.coords) < len(raw.exterior.coords) / 3


def test_bad_keep_is_refused():
    with pytest.raises(ValueError):
        mask_to_geometry(np.ones((3, 3), bool), keep="first")


def test_annotations_from_result_ids_tags_order_and_drops():
    shape = (30, 50)
    a = np.zeros(shape, bool)
    a[5:10, 5:20] = True
    res = TrackResult(objects={3: ObjectInfo(3, "cell", ["cell", "x"]), 1: ObjectInfo(1)}, channel=2)
    res.masks[(3, Location(0, 4, 0))] = CompactMask.from_mask(a)
    res.masks[(3, Location(0, 2, 0))] = CompactMask.from_mask(a)
    res.masks[(1, Location(1, 0, 5))] = CompactMask.from_mask(a)
    res.masks[(1, Location(1, 1, 5))] = CompactMask.from_mask(np.zeros(shape, bool))  # lost: dropped
    anns = annotations_from_result(res, smoothing=0)
    assert [x.id for x in anns] == ["1-1-0-5", "3-0-2-0", "3-0-4-0"]
    assert anns[1].tags == ["cell", "x"] and anns[0].tags == []
    assert all(x.channel == 2 for x in anns)
    assert anns[1].area == 75.0


def test_repolygonising_reuses_traces_and_changes_with_settings():
    res = synthetic_result(n_frames=3, n_objects=4, shape=(300, 200))
    first = annotations_from_result(res, padding=0, smoothing=0)
    again = annotations_from_result(res, padding=0, smoothing=0)
    assert all(x.geometry is y.geometry for x, y in zip(first, again))  # served from the cache
    grown = annotations_from_result(res, padding=3, smoothing=0)
    assert all(g.area > f.area for f, g in zip(first, grown))
    for ann in grown:
        minx, miny, maxx, maxy = ann.geometry.bounds
        assert maxx <= 200 and maxy <= 300


def test_cache_never_confuses_a_new_mask_with_an_old_one():
    m1 = np.zeros((10, 10), bool)
    m1[1:3, 1:3] = True
    g1 = mask_to_geometry(CompactMask.from_mask(m1), smoothing=0)
    m2 = np.zeros((10, 10), bool)
    m2[4:9, 4:9] = True
    g2 = mask_to_geometry(CompactMask.from_mask(m2), smoothing=0)
    assert g1.area == 4 and g2.area == 25
    assert len(geometry._RAW_CACHE) <= geometry._RAW_CACHE_MAX


def test_rasterize_cuts_holes_and_handles_fractional_outlines():
    poly = box(2, 2, 12, 9).difference(box(4, 4, 6, 6))
    r = rasterize_full(poly, (12, 15))
    assert r.sum() == 70 - 4 and not r[4:6, 4:6].any()
    tri = Polygon([(0, 0), (10.2, 0), (0, 10.2)])
    r = rasterize_full(tri, (12, 12))
    yy, xx = np.mgrid[0:12, 0:12] + 0.5
    expected = shapely.contains_xy(tri, xx, yy)
    assert np.array_equal(r, expected)


# ---------------------------------------------------------------- batched padding == per-mask padding
# Re-padding thousands of masks traces them all on one canvas (``_parts_padded_batch``);
# it must give exactly what tracing each mask alone (``_parts``) gives, ring order included.

PADDINGS = (1.0, 2.0, 3.0, 5.0, 0.7, 1.5, -0.6, -1.0, -2.0, -3.5)


def _varied_masks(seed: int = 0) -> list:
    """Random shapes with holes, specks, diagonal pinches, frame-border contact and empties."""
    rng = np.random.default_rng(seed)
    shape = (70, 90)  # non-square, small: many masks touch the frame's border
    out: list = [CompactMask.from_mask(np.zeros(shape, dtype=bool))]
    for n in range(60):
        m = np.zeros(shape, dtype=bool)
        kind = n % 5
        if kind == 0:  # noise blob: several components, holes, pinches
            r, c = rng.integers(0, shape[0] - 8), rng.integers(0, shape[1] - 8)
            h, w = rng.integers(3, 25, size=2)
            m[r : r + h, c : c + w] = rng.random((min(h, shape[0] - r), min(w, shape[1] - c))) < 0.6
        elif kind == 1:  # ring (a hole) possibly cut by the frame
            cy, cx = rng.integers(-5, shape[0] + 5), rng.integers(-5, shape[1] + 5)
            yy, xx = np.ogrid[: shape[0], : shape[1]]
            d2 = (yy - cy) ** 2 + (xx - cx) ** 2
            m = (d2 < rng.integers(40, 300)) & (d2 > rng.integers(4, 30))
        elif kind == 2:  # two cells and a speck
            m[5:20, 5:30] = True
            m[rng.integers(25, 60), rng.integers(0, 89)] = True
            m[30:50, 40:80] = True
        elif kind == 3:  # a checkerboard patch: every pixel pinched
            h = rng.integers(2, 9)
            m[10 : 10 + h, 20:30] = np.indices((h, 10)).sum(0) % 2 == 0
        else:  # thin lines and a single pixel at a corner of the frame
            m[rng.integers(0, 70), :] = True
            m[:, rng.integers(0, 90)] = True
            m[0, 0] = m[69, 89] = True
        out.append(CompactMask.from_mask(m))
    return out


def _cell_masks() -> list:
    """Real-looking cells: ground-truth labels of the shared real data, else synthetic ellipses."""
    from geom_synthetic import TRA

    masks = list(synthetic_result(n_frames=3, n_objects=20).masks.values())
    if TRA.is_dir():
        import tifffile

        for f in sorted(TRA.glob("man_track*.tif"))[:40]:
            labels = tifffile.imread(f)
            masks += [CompactMask.from_mask(labels == v) for v in np.unique(labels)[1:]]
    return masks


def _one_component(mask: CompactMask) -> bool:
    return not mask.empty and cv2.connectedComponents(mask.crop().view(np.uint8), connectivity=8)[0] == 2


def _per_mask(masks, keep, holes, padding, hints):
    traced = [geometry._parts(m, keep, holes, padding, h) for m, h in zip(masks, hints)]
    pinched = [p for _, p in traced]
    return geometry._build([t for t, _ in traced], pinched), pinched


def _batched(masks, keep, holes, padding, hints):
    traced = geometry._parts_padded_batch(masks, keep, holes, padding, hints)
    pinched = [p for _, p in traced]
    return geometry._build([t for t, _ in traced], pinched), pinched


def _same(a: list, b: list) -> bool:
    """Identical geometries: same types, parts, rings, vertices and vertex order."""
    return all(
        (x is None and y is None) or (x is not None and y is not None and x.wkb == y.wkb) for x, y in zip(a, b)
    ) and len(a) == len(b)


@pytest.mark.parametrize("source", ["varied", "cells"])
@pytest.mark.parametrize("padding", PADDINGS)
def test_batched_padding_equals_per_mask_padding(source, padding):
    masks = _varied_masks() if source == "varied" else _cell_masks()
    checked = 0
    for keep in ("largest", "all"):
        for holes in (True, False):
            for hint in (False, True) if keep == "largest" else (False,):
                # A hint ("one component", from an earlier trace) only ever comes for such masks.
                hints = [hint and _one_component(m) for m in masks]
                want, want_pinched = _per_mask(masks, keep, holes, padding, hints)
                got, got_pinched = _batched(masks, keep, holes, padding, hints)
                assert _same(want, got), (source, padding, keep, holes, hint)
                assert want_pinched == got_pinched, (source, padding, keep, holes, hint)
                checked += sum(g is not None for g in want)
    assert checked > 0


def test_public_padding_path_uses_the_batch_and_matches_the_per_mask_path(monkeypatch):
    masks = _varied_masks(seed=1) + _cell_masks()[:40]
    calls = []
    real = geometry._parts_padded_batch
    monkeypatch.setattr(geometry, "_parts_padded_batch", lambda *a: calls.append(1) or real(*a))
    for padding in (2.0, -1.0):
        for keep in ("largest", "all"):
            fresh = [CompactMask(m.shape, m.bbox, bytes(m.bits)) for m in masks]  # no cache hits
            batched = geometry.geometries_for(fresh, padding=padding, smoothing=0, keep=keep)
            monkeypatch.setattr(geometry, "_BATCH_MIN", 10**9)
            fresh = [CompactMask(m.shape, m.bbox, bytes(m.bits)) for m in masks]
            single = geometry.geometries_for(fresh, padding=padding, smoothing=0, keep=keep)
            monkeypatch.setattr(geometry, "_BATCH_MIN", 16)
            assert _same(batched, single)
    assert len(calls) == 4
