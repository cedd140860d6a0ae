"""The drawing canvas adapter: streamlit-drawable-canvas 0.13 <-> prompts in image pixels.

Why: the canvas works in screen pixels of a (usually scaled) picture; prompts must be in the
image's full-resolution pixels for any size and shape. The mapping is pure (``fit_canvas``,
``canvas_to_image``, ``image_to_canvas``, ``shapes_from_json``) and unit-tested; the widget call
is in ONE function, ``draw_on_frame``, which tests bypass.

Test injection (documented contract): before a run, set
``st.session_state["canvas_inject"] = [{"kind": "box", "box": [x0, y0, x1, y1]},
{"kind": "point", "x": x, "y": y, "label": 1}, ...]`` (image pixels). ``draw_on_frame`` then
returns those shapes (once; the key is popped) instead of rendering the canvas, so AppTest can
"draw" without a browser.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

INJECT_KEY = "canvas_inject"
POSITIVE_COLOR = "#00ff00"
NEGATIVE_COLOR = "#ff0000"
_ORIGIN = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}


@dataclass(frozen=True)
class CanvasFit:
    """How a region of (image_w, image_h) image pixels is shown on a canvas of (canvas_w, canvas_h).

    The region starts at image pixel (x0, y0): (0, 0) for the whole frame, elsewhere when the user
    zoomed in (``viewport``). Coordinates in and out of the mapping are full-frame image pixels.
    """

    image_w: int
    image_h: int
    canvas_w: int
    canvas_h: int
    x0: int = 0
    y0: int = 0

    @property
    def sx(self) -> float:
        return self.canvas_w / self.image_w

    @property
    def sy(self) -> float:
        return self.canvas_h / self.image_h


def fit_canvas(image_w: int, image_h: int, max_w: int = 760, max_h: int = 600, max_upscale: float = 8.0) -> CanvasFit:
    """Canvas size keeping the aspect ratio: large images shrink, tiny ones grow (up to max_upscale)."""
    if image_w <= 0 or image_h <= 0:
        raise ValueError("image size must be positive")
    scale = min(max_w / image_w, max_h / image_h, max_upscale)
    cw = max(1, int(round(image_w * scale)))
    ch = max(1, int(round(image_h * scale)))
    return CanvasFit(int(image_w), int(image_h), cw, ch)


ZOOMS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


def viewport(
    image_w: int, image_h: int, zoom: float, cx: float, cy: float, max_w: int = 760, max_h: int = 600
) -> CanvasFit:
    """The canvas for a zoomed view: a whole-pixel region of 1/zoom of the frame centred near (cx, cy).

    Why whole pixels: the region's corner and size are integers, so the crop shown is exactly the
    pixels the mapping assumes and a box drawn at 8x comes back to the image pixel under the mouse.
    The region is kept inside the frame (the centre moves, the zoom does not). At 1x it is
    ``fit_canvas`` of the whole frame; the canvas keeps the same screen size at every zoom.
    """
    base = fit_canvas(image_w, image_h, max_w, max_h)
    zoom = min(max(float(zoom), 1.0), 8.0)
    vw = max(1, min(image_w, int(round(image_w / zoom))))
    vh = max(1, min(image_h, int(round(image_h / zoom))))
    x0 = int(round(min(max(cx - vw / 2, 0), image_w - vw)))
    y0 = int(round(min(max(cy - vh / 2, 0), image_h - vh)))
    return CanvasFit(vw, vh, base.canvas_w, base.canvas_h, x0, y0)


def crop_to_fit(rgb: np.ndarray, fit: CanvasFit) -> np.ndarray:
    """The part of a full frame that ``fit`` shows."""
    return rgb[fit.y0 : fit.y0 + fit.image_h, fit.x0 : fit.x0 + fit.image_w]


def canvas_to_image(x: float, y: float, fit: CanvasFit) -> tuple[float, float]:
    """A canvas point to image pixels (the exact inverse of ``image_to_canvas``)."""
    return fit.x0 + x * fit.image_w / fit.canvas_w, fit.y0 + y * fit.image_h / fit.canvas_h


def image_to_canvas(x: float, y: float, fit: CanvasFit) -> tuple[float, float]:
    return (x - fit.x0) * fit.canvas_w / fit.image_w, (y - fit.y0) * fit.canvas_h / fit.image_h


def canvas_box_to_image(
    left: float, top: float, width: float, height: float, fit: CanvasFit
) -> tuple[float, float, float, float]:
    """A canvas rectangle to an (x0, y0, x1, y1) box in image pixels, clipped to the region shown."""
    x0, y0 = canvas_to_image(min(left, left + width), min(top, top + height), fit)
    x1, y1 = canvas_to_image(max(left, left + width), max(top, top + height), fit)
    clip = lambda v, lo, n: float(min(max(v, lo), lo + n))  # noqa: E731
    return (
        clip(x0, fit.x0, fit.image_w),
        clip(y0, fit.y0, fit.image_h),
        clip(x1, fit.x0, fit.image_w),
        clip(y1, fit.y0, fit.image_h),
    )


def _rect_geometry(obj: dict) -> tuple[float, float, float, float]:
    sx, sy = float(obj.get("scaleX", 1) or 1), float(obj.get("scaleY", 1) or 1)
    width = float(obj.get("width", 0)) * sx
    height = float(obj.get("height", 0)) * sy
    left = float(obj.get("left", 0)) - _ORIGIN.get(obj.get("originX", "left"), 0.0) * width
    top = float(obj.get("top", 0)) - _ORIGIN.get(obj.get("originY", "top"), 0.0) * height
    return left, top, width, height


def _circle_centre(obj: dict) -> tuple[float, float]:
    """Centre of a fabric circle: the point tool puts ``left`` at x - (r + stroke/2), originY center."""
    sx, sy = float(obj.get("scaleX", 1) or 1), float(obj.get("scaleY", 1) or 1)
    r = float(obj.get("radius", 0))
    sw = float(obj.get("strokeWidth", 0))
    full_w = 2 * r * sx + sw
    full_h = 2 * r * sy + sw
    cx = float(obj.get("left", 0)) + (0.5 - _ORIGIN.get(obj.get("originX", "left"), 0.0)) * full_w
    cy = float(obj.get("top", 0)) + (0.5 - _ORIGIN.get(obj.get("originY", "top"), 0.0)) * full_h
    return cx, cy


def shapes_from_json(json_data: dict | None, fit: CanvasFit, skip: int = 0, min_size: float = 1.0) -> list[dict]:
    """Drawn fabric objects -> shapes in image pixels.

    ``skip`` ignores the first objects (those we passed in as ``initial_drawing``). Rectangles
    become ``{"kind": "box", "box": (x0, y0, x1, y1)}`` (boxes smaller than ``min_size`` image
    pixels, i.e. stray clicks, are dropped); circles become ``{"kind": "point", "x", "y",
    "label"}`` with label 0 when drawn in the negative colour.
    """
    if not json_data:
        return []
    shapes: list[dict] = []
    for obj in list(json_data.get("objects", []))[skip:]:
        kind = str(obj.get("type", "")).lower()
        if kind in ("rect", "labeledrect"):
            box = canvas_box_to_image(*_rect_geometry(obj), fit)
            if box[2] - box[0] >= min_size and box[3] - box[1] >= min_size:
                shapes.append({"kind": "box", "box": box})
        elif kind == "circle":
            cx, cy = canvas_to_image(*_circle_centre(obj), fit)
            if fit.x0 <= cx <= fit.x0 + fit.image_w and fit.y0 <= cy <= fit.y0 + fit.image_h:
                label = 0 if str(obj.get("stroke", "")).lower() == NEGATIVE_COLOR else 1
                shapes.append({"kind": "point", "x": cx, "y": cy, "label": label})
    return shapes


def initial_drawing(
    boxes: list[tuple[tuple[float, float, float, float], str]],
    points: list[tuple[float, float, int]],
    fit: CanvasFit,
    stroke_width: int = 2,
) -> dict:
    """Existing prompts of this frame as canvas objects (boxes in their object colour, points)."""
    objects: list[dict[str, Any]] = []
    for (x0, y0, x1, y1), color in boxes:
        cx0, cy0 = image_to_canvas(x0, y0, fit)
        cx1, cy1 = image_to_canvas(x1, y1, fit)
        objects.append(
            {
                "type": "rect",
                "left": cx0,
                "top": cy0,
                "width": cx1 - cx0,
                "height": cy1 - cy0,
                "originX": "left",
                "originY": "top",
                "scaleX": 1,
                "scaleY": 1,
                "angle": 0,
                "stroke": color,
                "strokeWidth": stroke_width,
                "fill": "rgba(0,0,0,0)",
                "strokeUniform": True,
                "selectable": False,
                "evented": False,
            }
        )
    radius = 4
    for x, y, label in points:
        cx, cy = image_to_canvas(x, y, fit)
        color = POSITIVE_COLOR if label else NEGATIVE_COLOR
        objects.append(
            {
                "type": "circle",
                "left": cx - radius - 1,
                "top": cy,
                "originX": "left",
                "originY": "center",
                "radius": radius,
                "strokeWidth": 2,
                "stroke": color,
                "fill": color,
                "scaleX": 1,
                "scaleY": 1,
                "selectable": False,
                "evented": False,
            }
        )
    return {"version": "5.3.0", "objects": objects}


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return buf.getvalue()


MINIMAP_INJECT_KEY = "canvas_inject_minimap"

# The canvas component's toolbar (undo / redo / reset / edit) acts on the canvas's own drawing, not
# on the saved prompts (a reset "restored" boxes that were already saved), and the component has
# no switch for it; its shadow root is open, so a small script hides it on every canvas.
_HIDE_TOOLBAR = """
<script>
(() => {
  const css = ".dc-toolbar{display:none !important}";
  const fix = () => document.querySelectorAll("*").forEach((el) => {
    const root = el.shadowRoot;
    if (root && !root.querySelector("style[data-sam2web]")) {
      const style = document.createElement("style");
      style.dataset.sam2web = "1";
      style.textContent = css;
      root.appendChild(style);
    }
  });
  fix();
  if (!window.__sam2webToolbarObserver) {
    // A component attaches its shadow root after its host element appears, and changes inside a
    // shadow root are not seen from the body: so also look again every second.
    window.__sam2webToolbarObserver = new MutationObserver(fix);
    window.__sam2webToolbarObserver.observe(document.body, {childList: true, subtree: true});
    window.setInterval(fix, 1000);
  }
})();
</script>
"""


def hide_toolbars() -> None:
    """Hide the canvas toolbar on this page (see ``_HIDE_TOOLBAR``); prompts are edited in the page."""
    import streamlit as st

    st.html(_HIDE_TOOLBAR, unsafe_allow_javascript=True, width="content")


def draw_on_frame(
    background_rgb: np.ndarray,
    fit: CanvasFit,
    mode: str,
    initial: dict,
    key: str,
    stroke_color: str = "#ffff00",
    inject_key: str = INJECT_KEY,
) -> list[dict]:
    """Show the frame (the region ``fit`` shows) on the canvas and return the NEWLY drawn shapes, in image pixels.

    ``mode`` is "box" or "point". Tests bypass the widget through ``st.session_state[inject_key]``.
    """
    import streamlit as st

    injected = st.session_state.pop(inject_key, None)
    if injected is not None:
        return [dict(s) for s in injected]
    import cv2
    from streamlit_drawable_canvas import st_canvas

    shown = crop_to_fit(background_rgb, fit)
    if (fit.canvas_w, fit.canvas_h) != (fit.image_w, fit.image_h):
        interp = cv2.INTER_AREA if fit.canvas_w < fit.image_w else cv2.INTER_NEAREST
        shown = cv2.resize(shown, (fit.canvas_w, fit.canvas_h), interpolation=interp)
    result = st_canvas(
        fill_color="rgba(255, 255, 0, 0.05)" if mode == "box" else stroke_color,
        stroke_width=2,
        stroke_color=stroke_color,
        background_image=png_bytes(shown),
        background_image_fit="stretch",
        update_streamlit=True,
        height=fit.canvas_h,
        width=fit.canvas_w,
        drawing_mode="rect" if mode == "box" else "point",
        initial_drawing=initial,
        point_display_radius=4,
        key=key,
    )
    return shapes_from_json(result.json_data, fit, skip=len(initial.get("objects", [])))
