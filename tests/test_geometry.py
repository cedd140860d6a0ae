"""Mask -> polygon: pixel-exact outlines, largest component, holes, padding, smoothing, round trip."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from shapely.geometry import MultiPolygon, Polygon, box

from geom_synthetic import synthetic_result
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
    m[0:2, 0:2] = True              # a speck at the top-left, found first by a raster scan
    m[10:30, 20:50] = True          # the cell
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
