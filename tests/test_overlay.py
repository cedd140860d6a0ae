"""The overlay drawing (sam2web.overlay): per-object colours, outlines where the polygons are."""

from __future__ import annotations

import numpy as np
import pytest

from sam2web.overlay import color_for, draw_boxes, draw_geometries, hex_to_rgb


def test_overlay_draws_in_object_colour_inside_the_polygon():
    from shapely.geometry import box as sbox

    img = np.zeros((40, 60, 3), np.uint8)
    out = draw_geometries(img, [(sbox(10, 5, 30, 25), color_for(1))], fill_alpha=0.5)
    assert out.shape == img.shape and out.dtype == np.uint8
    inside, outside = out[15, 20], out[35, 55]
    r, g, b = hex_to_rgb(color_for(1))
    assert inside[1] == pytest.approx(g * 0.5, abs=2) and outside.sum() == 0
    assert img.sum() == 0  # the input is not modified
    boxed = draw_boxes(img, [((10, 5, 30, 25), "#ff0000")])
    assert tuple(boxed[5, 15]) == (255, 0, 0)


def test_colours_are_stable_and_distinct():
    colours = [color_for(i) for i in range(40)]
    assert colours == [color_for(i) for i in range(40)]
    assert len(set(colours[:16])) == 16


def test_overlay_scaled_keeps_outline_positions():
    from shapely.geometry import box as sbox

    img = np.zeros((40, 60, 3), np.uint8)
    out = draw_geometries(img, [(sbox(10, 5, 30, 25), "#ff0000")], fill_alpha=0.0, thickness=1, scale=2.0)
    assert out.shape == (80, 120, 3)
    assert out[30, 40].sum() == 0  # inside, no fill
    assert out[10:12, 40, 0].max() > 100  # top edge at y = 5 * 2
    assert out[30, 19:22, 0].max() > 100  # left edge at x = 10 * 2
