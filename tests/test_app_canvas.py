"""The canvas <-> image pixel mapping (pure functions) and the overlay drawing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sam2web.overlay import color_for, draw_boxes, draw_geometries, hex_to_rgb
from sam2web.ui.canvas import (
    CanvasFit,
    canvas_box_to_image,
    canvas_to_image,
    fit_canvas,
    image_to_canvas,
    initial_drawing,
    shapes_from_json,
)


@pytest.mark.parametrize("w, h", [(1305, 1009), (256, 256), (320, 240), (64, 2000), (5000, 30)])
def test_fit_keeps_aspect_and_bounds(w, h):
    fit = fit_canvas(w, h, max_w=760, max_h=640)
    assert fit.canvas_w <= 760 and fit.canvas_h <= 640
    assert abs(fit.canvas_w / fit.canvas_h - w / h) <= max(1 / fit.canvas_h, 1 / fit.canvas_w) * (w / h) + 1e-9


def test_large_image_box_maps_back_exactly():
    # The bacteria frames: 1305 x 1009, shown scaled down.
    fit = fit_canvas(1305, 1009)
    assert fit.canvas_w < 1305 and fit.canvas_h <= 600
    x0, y0, x1, y1 = canvas_box_to_image(76.0, 50.0, 152.0, 100.0, fit)
    assert x0 == pytest.approx(76 * 1305 / fit.canvas_w) and y0 == pytest.approx(50 * 1009 / fit.canvas_h)
    assert x1 == pytest.approx(228 * 1305 / fit.canvas_w) and y1 == pytest.approx(150 * 1009 / fit.canvas_h)


def test_negative_width_boxes_and_clipping():
    fit = CanvasFit(100, 50, 200, 100)
    assert canvas_box_to_image(60, 40, -40, -20, fit) == (10.0, 10.0, 30.0, 20.0)
    assert canvas_box_to_image(-10, -10, 300, 300, fit) == (0.0, 0.0, 100.0, 50.0)


@settings(max_examples=200, deadline=None)
@given(st.integers(8, 6000), st.integers(8, 6000), st.floats(0, 1), st.floats(0, 1))
def test_round_trip_is_exact(w, h, fx, fy):
    fit = fit_canvas(w, h)
    x, y = fx * w, fy * h
    cx, cy = image_to_canvas(x, y, fit)
    bx, by = canvas_to_image(cx, cy, fit)
    assert bx == pytest.approx(x, abs=1e-6) and by == pytest.approx(y, abs=1e-6)


def test_shapes_from_fabric_json_rect_scaled_and_points():
    fit = CanvasFit(400, 200, 200, 100)  # shown at half size
    data = {
        "objects": [
            {"type": "rect", "left": 0, "top": 0, "width": 10, "height": 10},  # the initial one, skipped
            {
                "type": "rect",
                "left": 10,
                "top": 20,
                "width": 30,
                "height": 10,
                "scaleX": 2,
                "scaleY": 1.5,
                "originX": "left",
                "originY": "top",
            },
            {
                "type": "circle",
                "left": 50 - 4 - 1,
                "top": 30,
                "radius": 4,
                "strokeWidth": 2,
                "originX": "left",
                "originY": "center",
                "stroke": "#ff0000",
            },
            {
                "type": "circle",
                "left": 20 - 4 - 1,
                "top": 10,
                "radius": 4,
                "strokeWidth": 2,
                "originX": "left",
                "originY": "center",
                "stroke": "#00ff00",
            },
            {"type": "rect", "left": 5, "top": 5, "width": 0.2, "height": 0.2},  # a stray click: dropped
        ]
    }
    shapes = shapes_from_json(data, fit, skip=1)
    assert shapes[0] == {"kind": "box", "box": (20.0, 40.0, 140.0, 70.0)}
    assert shapes[1]["kind"] == "point" and shapes[1]["label"] == 0
    assert (shapes[1]["x"], shapes[1]["y"]) == pytest.approx((100.0, 60.0))
    assert shapes[2]["label"] == 1 and (shapes[2]["x"], shapes[2]["y"]) == pytest.approx((40.0, 20.0))
    assert len(shapes) == 3


def test_initial_drawing_round_trips_through_shapes():
    fit = fit_canvas(1305, 1009)
    box = (100.0, 200.0, 300.0, 260.0)
    drawing = initial_drawing([(box, "#e6194b")], [(50.0, 60.0, 1)], fit)
    shapes = shapes_from_json(drawing, fit)
    assert shapes[0]["box"] == pytest.approx(box)
    assert (shapes[1]["x"], shapes[1]["y"]) == pytest.approx((50.0, 60.0))


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


def test_zoomed_view_is_a_whole_pixel_region_inside_the_frame():
    from sam2web.ui.canvas import crop_to_fit, viewport

    w, h = 1009, 1305  # a bacteria frame: 1009 wide, 1305 tall
    whole = viewport(w, h, 1, 0, 0)
    assert (whole.x0, whole.y0, whole.image_w, whole.image_h) == (0, 0, w, h)
    v = viewport(w, h, 8, 500, 700)
    assert (v.image_w, v.image_h) == (126, 163) and (v.canvas_w, v.canvas_h) == (whole.canvas_w, whole.canvas_h)
    assert v.x0 == 437 and v.y0 == 618  # centred on (500, 700)
    edge = viewport(w, h, 4, 5, 5000)  # a centre past the corner: the view stays inside the frame
    assert edge.x0 == 0 and edge.y0 + edge.image_h == h
    rgb = np.arange(h * w * 3, dtype=np.uint32).reshape(h, w, 3)
    assert crop_to_fit(rgb, v).shape == (163, 126, 3) and crop_to_fit(rgb, v)[0, 0, 0] == rgb[618, 437, 0]


def test_box_drawn_at_8x_maps_to_the_image_pixels_under_it():
    from sam2web.ui.canvas import viewport

    v = viewport(1009, 1305, 8, 500, 700)
    per_px = v.canvas_w / v.image_w  # screen pixels per image pixel (about 3.5 at 8x; 0.44 at 1x)
    assert per_px > 3
    # The user drags from the top-left corner of image pixel (450, 640) to the bottom-right of (461, 651).
    left, top = (450 - v.x0) * per_px, (640 - v.y0) * v.canvas_h / v.image_h
    width, height = 12 * per_px, 12 * v.canvas_h / v.image_h
    box = canvas_box_to_image(left, top, width, height, v)
    assert box == pytest.approx((450, 640, 462, 652), abs=1e-6)
    # A stray pixel of mouse error on screen is a fraction of an image pixel at this zoom.
    off = canvas_box_to_image(left + 1, top + 1, width, height, v)
    assert max(abs(a - b) for a, b in zip(off, box)) < 0.5
    # Other objects' boxes outside the view still map through the same offset (they are drawn clipped).
    shapes = shapes_from_json(initial_drawing([((440.0, 630.0, 470.0, 660.0), "#e6194b")], [], v), v)
    assert shapes[0]["box"] == pytest.approx((440.0, 630.0, 470.0, 660.0))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0]), st.floats(0, 1), st.floats(0, 1))
def test_round_trip_is_exact_at_every_zoom(zoom, fx, fy):
    from sam2web.ui.canvas import viewport

    v = viewport(1009, 1305, zoom, 1009 * fx, 1305 * fy)
    x, y = v.x0 + 0.37 * v.image_w, v.y0 + 0.61 * v.image_h
    bx, by = canvas_to_image(*image_to_canvas(x, y, v), v)
    assert bx == pytest.approx(x, abs=1e-6) and by == pytest.approx(y, abs=1e-6)
