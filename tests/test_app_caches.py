"""The app's rendered-frame cache holds a byte budget (SAM2WEB_CACHE_MB), not a count of frames."""

from __future__ import annotations

import numpy as np

from sam2web.config import settings
from sam2web.stack.common import FrameCache
from sam2web.ui import state


def test_rendered_frames_stay_within_their_byte_budget(monkeypatch):
    cache = state.render_cache()
    assert cache.max_bytes == settings().render_cache_bytes
    small = FrameCache(3 * 1305 * 1009 * 3)  # room for three bacteria frames
    for t in range(10):
        small.put(("ds", (0, t, 0), "{}"), np.zeros((1305, 1009, 3), np.uint8))
    assert len(small) == 3 and small.get(("ds", (0, 9, 0), "{}")) is not None
    assert small.get(("ds", (0, 0, 0), "{}")) is None  # the oldest went first
