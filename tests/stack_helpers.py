"""Shared bits for the stack/display/selection tests: where the real data lives, and small writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BACTERIA_IMG = SHARED_DATA / "bacteria_ctc" / "img"
NUCLEI = SHARED_DATA / "nuclei3d" / "nuclei.tif"

needs_bacteria = pytest.mark.skipif(not BACTERIA_IMG.is_dir(), reason=f"shared real data not found at {BACTERIA_IMG}")
needs_nuclei = pytest.mark.skipif(not NUCLEI.is_file(), reason=f"shared real data not found at {NUCLEI}")


def ramp(shape: tuple[int, ...], dtype=np.uint16) -> np.ndarray:
    """Distinct values everywhere, so any mix-up of frames, channels or axes shows."""
    return (np.arange(int(np.prod(shape)), dtype=np.int64) % np.iinfo(np.uint16).max).astype(dtype).reshape(shape)
