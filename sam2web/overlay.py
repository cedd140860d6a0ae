"""Draw polygons and prompt boxes over a frame, in per-object colours (pure numpy + OpenCV).

Why a module of its own: the Results page, the Annotate page and the screenshots of tests all
draw the same way, and drawing must stay out of pages (they only lay out widgets). Geometry is in
full-resolution pixels (x = column, y = row); the output is the same size as the input frame,
so scaling for the screen happens once, in the browser.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

# A qualitative palette that stays readable over grey microscopy images.
PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
    "#008080",
    "#e6beff",
    "#9a6324",
    "#fffac8",
    "#800000",
    "#aaffc3",
)


def color_for(obj_id: int) -> str:
    """A stable colour per object id: the palette first, then golden-ratio hues."""
    if 0 <= obj_id < len(PALETTE):
        return PALETTE[obj_id]
    hue = (obj_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _rings(geometry: object) -> list[np.ndarray]:
    """Exterior and interior rings of a shapely Polygon/MultiPolygon as (N, 2) float arrays."""
    if geometry is None or getattr(geometry, "is_empty", True):
        return []
    polys = list(getattr(geometry, "geoms", [geometry]))
    rings: list[np.ndarray] = []
    for poly in polys:
        if not hasattr(poly, "exterior"):
            continue
        rings.append(np.asarray(poly.exterior.coords, dtype=np.float64))
        rings.extend(np.asarray(r.coords, dtype=np.float64) for r in poly.interiors)
    return rings


def _as_rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img).copy()


def _thickness(shape: Sequence[int]) -> int:
    return max(1, int(round(max(shape[0], shape[1]) / 400)))


def draw_geometries(
    image: np.ndarray,
    items: Iterable[tuple[object, str]],
    fill_alpha: float = 0.25,
    thickness: int | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """Draw each (geometry, colour) as a filled translucent shape with a solid outline.

    Coordinates are pixel corners (a mask pixel (r, c) spans x in [c, c+1]); OpenCV draws at
    pixel centres, so we shift by -0.5 and use sub-pixel precision for an exact outline.
    ``scale`` resizes the frame first (nearest pixel when enlarging) and draws the outlines at
    that size, so small frames shown large keep crisp outlines.
    """
    out = _as_rgb(image)
    if scale != 1.0:
        h, w = out.shape[:2]
        size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
        out = cv2.resize(out, size, interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)
    items = list(items)
    if not items:
        return out
    thick = thickness or _thickness(out.shape)
    shift = 4
    fixed = 1 << shift
    fill = out.copy()
    outlines = []
    for geometry, color in items:
        rgb = hex_to_rgb(color)
        pts = [np.round((ring * scale - 0.5) * fixed).astype(np.int32).reshape(-1, 1, 2) for ring in _rings(geometry)]
        if not pts:
            continue
        cv2.fillPoly(fill, pts, rgb, lineType=cv2.LINE_AA, shift=shift)
        outlines.append((pts, rgb))
    if fill_alpha > 0:
        out = cv2.addWeighted(fill, fill_alpha, out, 1 - fill_alpha, 0)
    for pts, rgb in outlines:
        cv2.polylines(out, pts, True, rgb, thick, lineType=cv2.LINE_AA, shift=shift)
    return out


def draw_boxes(
    image: np.ndarray, boxes: Iterable[tuple[Sequence[float], str]], thickness: int | None = None
) -> np.ndarray:
    """Draw (x0, y0, x1, y1) boxes in full-resolution pixels, each in its colour."""
    out = _as_rgb(image)
    thick = thickness or _thickness(out.shape)
    for box, color in boxes:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), hex_to_rgb(color), thick)
    return out
