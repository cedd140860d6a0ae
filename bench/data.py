"""Deterministic synthetic inputs for the benchmarks (no model, no network).

Why synthetic: the memory runs need 256 frames of 512 x 512, more than the shared real data has,
and random SAM2 weights make the image content irrelevant to speed. Cells are bright textured
ellipses drifting over a noisy background so that JPEG sizes and masks look like microscopy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FRAME_SIDE = 512


def cell_centres(n_objects: int, t: int, side: int = FRAME_SIDE) -> list[tuple[float, float]]:
    """Centre (x, y) of each synthetic cell at frame t: a slow drift on a fixed grid."""
    out = []
    for k in range(n_objects):
        gx, gy = k % 3, k // 3
        cx = side * (0.2 + 0.3 * gx) + 0.8 * t % (side * 0.1)
        cy = side * (0.2 + 0.3 * (gy % 3)) + 0.5 * t % (side * 0.1)
        out.append((cx, cy))
    return out


def make_frames(n_frames: int, n_objects: int = 5, side: int = FRAME_SIDE, seed: int = 0) -> np.ndarray:
    """(T, side, side) uint8 frames with ``n_objects`` bright cells (at least 5 drawn)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    frames = np.empty((n_frames, side, side), np.uint8)
    base = rng.normal(40, 8, (side, side)).astype(np.float32)
    for t in range(n_frames):
        img = base + rng.normal(0, 4, (side, side)).astype(np.float32)
        for cx, cy in cell_centres(max(5, n_objects), t, side):
            inside = ((xx - cx) / 22.0) ** 2 + ((yy - cy) / 14.0) ** 2 <= 1.0
            img[inside] += 140
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def boxes(n_objects: int, side: int = FRAME_SIDE) -> list[tuple[float, float, float, float]]:
    """The prompt box (x0, y0, x1, y1) of each cell at frame 0."""
    return [(cx - 26, cy - 18, cx + 26, cy + 18) for cx, cy in cell_centres(n_objects, 0, side)]


def write_tiff(path: Path, frames: np.ndarray) -> Path:
    """A plain multi-page TIFF (pages = time points), what a user would open."""
    import tifffile

    tifffile.imwrite(path, frames, photometric="minisblack")
    return path


def cell_mask_crops(
    n_frames: int, n_objects: int, height: int = 1305, width: int = 1009, seed: int = 1, ragged: float = 0.03
):
    """Realistic bacteria-like masks: rotated capsules with wavy edges, drifting and turning.

    Yields ``(t, k, row0, col0, crop)`` with a bool crop placed at (row0, col0) of a
    (height, width) frame (bacteria_ctc frames are 1305 rows x 1009 columns), so 2000 masks
    never need 2000 full frames in memory.
    """
    import cv2

    rng = np.random.default_rng(seed)
    params = [
        (
            rng.uniform(80, width - 80),
            rng.uniform(80, height - 80),
            rng.uniform(0, 180),
            rng.uniform(12, 30),
            rng.uniform(5, 9),
        )
        for _ in range(n_objects)
    ]
    for t in range(n_frames):
        for k, (cx, cy, ang, half_len, rad) in enumerate(params):
            size = 2 * int(half_len + 2 * rad + 12)
            canvas = np.zeros((size, size), np.uint8)
            a = np.deg2rad(ang + 0.7 * t)
            grow = half_len * (1 + 0.003 * t)
            dx, dy = np.cos(a) * grow, np.sin(a) * grow
            c = size / 2
            cv2.line(
                canvas,
                (int(round(c - dx)), int(round(c - dy))),
                (int(round(c + dx)), int(round(c + dy))),
                1,
                thickness=int(2 * rad),
            )
            # wavy, smooth outline (like thresholded, upsampled SAM2 logits): signed distance
            # to the capsule plus a blurred noise field of about ``ragged`` * 50 px amplitude
            d_in = cv2.distanceTransform(canvas, cv2.DIST_L2, 3)
            d_out = cv2.distanceTransform(1 - canvas, cv2.DIST_L2, 3)
            noise = cv2.GaussianBlur(rng.normal(0, 1, canvas.shape).astype(np.float32), (0, 0), 3)
            noise *= ragged * 50 / max(float(noise.std()), 1e-6)
            canvas = ((d_in - d_out + noise) > 0).astype(np.uint8)
            row0 = int(np.clip(cy + 0.4 * t - c, 0, height - size))
            col0 = int(np.clip(cx + 0.6 * t - c, 0, width - size))
            yield t, k, row0, col0, canvas.astype(bool)
