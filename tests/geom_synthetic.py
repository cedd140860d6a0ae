"""Synthetic tracking results for geometry/export tests and timing (no model, no files).

``synthetic_result(n_frames, n_objects)`` gives elliptical cells 30-60 px across drifting through
a 1024x1024 time-lapse, as CompactMasks: the size the re-polygonise goal is stated for.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sam2web.types import CompactMask, Location, ObjectInfo, TrackResult


def ellipse_mask(shape: tuple[int, int], cx: float, cy: float, ax: float, ay: float, angle: float = 0.0) -> np.ndarray:
    m = np.zeros(shape, dtype=np.uint8)
    cv2.ellipse(m, (int(cx), int(cy)), (int(ax), int(ay)), angle, 0, 360, 1, -1)
    return m.astype(bool)


def synthetic_result(
    n_frames: int = 100, n_objects: int = 20, shape: tuple[int, int] = (1024, 1024), seed: int = 0
) -> TrackResult:
    rng = np.random.default_rng(seed)
    h, w = shape
    result = TrackResult(objects={i: ObjectInfo(i, f"cell {i}", ["cell"]) for i in range(n_objects)})
    starts = rng.uniform(80, min(h, w) - 80, size=(n_objects, 2))
    for obj in range(n_objects):
        ax, ay = rng.uniform(15, 30, size=2)
        angle = rng.uniform(0, 180)
        for t in range(n_frames):
            cx = starts[obj, 0] + 0.4 * t * np.cos(obj)
            cy = starts[obj, 1] + 0.4 * t * np.sin(obj)
            cx, cy = np.clip(cx, 40, w - 40), np.clip(cy, 40, h - 40)
            mask = ellipse_mask(shape, cx, cy, ax, ay, angle + t)
            result.masks[(obj, Location(0, t, 0))] = CompactMask.from_mask(mask)
    return result


# Real data with ground truth (see ../shared/data/README.md); tests skip with a reason without it.

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRA = SHARED_DATA / "bacteria_ctc" / "TRA"
NUCLEI_LABELS = SHARED_DATA / "nuclei3d" / "nuclei_label.tif"
needs_tra = pytest.mark.skipif(not TRA.is_dir(), reason=f"shared real data not found at {TRA}")
needs_nuclei_labels = pytest.mark.skipif(
    not NUCLEI_LABELS.is_file(), reason=f"shared real data not found at {NUCLEI_LABELS}"
)
