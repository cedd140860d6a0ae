"""StandInTracker: a deterministic tracker with the SAM2VideoPredictor surface, for tests.

OWNER: engine helper. Re-exported as ``sam2web.tracking.track.StandInTracker`` (same class).
``SAM2WEB_STANDIN=1`` makes the app and the CLI use it instead of SAM2. No torch needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sam2web.types import Location


class StandInTracker:
    """A deterministic tracker with the SAM2VideoPredictor surface, for tests and the app's tests.

    Each object's mask at frame t is its prompt region (box, mask, or the box around its
    positive points) at the nearest prompt frame p behind t in the propagation direction,
    shifted by ``drift * (t - p)`` pixels (x, y) and clipped to the image. ``masks`` may instead
    be a callable ``(obj_id, loc) -> bool array | None`` giving the output directly (e.g. ground
    truth). ``calls`` records every propagation (start, reverse) for assertions.
    """

    accepts_frame_source = True

    def __init__(
        self,
        drift: tuple[int, int] = (2, 1),
        masks: Callable[[int, Location], np.ndarray | None] | None = None,
        image_size: int = 1024,
    ):
        self.drift = drift
        self.masks_fn = masks
        self.image_size = image_size
        self.random_weights = False
        self.calls: list[tuple[int, bool]] = []

    def init_state(self, video_path, **_: Any) -> dict:
        frames = video_path
        return {
            "frames": frames,
            "num_frames": len(frames),
            "video_height": frames.height,
            "video_width": frames.width,
            "prompts": {},
            "obj_ids": [],
        }

    def reset_state(self, state: dict) -> None:
        state["prompts"].clear()
        state["obj_ids"].clear()

    def _register(self, state, obj_id, frame_idx, region) -> tuple:
        if obj_id not in state["obj_ids"]:
            state["obj_ids"].append(obj_id)
        state["prompts"].setdefault(obj_id, {})[frame_idx] = region
        return frame_idx, list(state["obj_ids"]), self._logits(state, frame_idx, False)

    def add_new_points_or_box(
        self, state, frame_idx, obj_id, points=None, labels=None, clear_old_points=True, normalize_coords=True, box=None
    ):
        h, w = state["video_height"], state["video_width"]
        region = np.zeros((h, w), dtype=bool)
        if box is not None:
            x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=float).ravel())
            region[max(0, int(np.floor(y0))) : int(np.ceil(y1)), max(0, int(np.floor(x0))) : int(np.ceil(x1))] = True
        elif points is not None:
            pts = np.asarray(points, dtype=float).reshape(-1, 2)
            labs = np.asarray(labels).ravel()
            pos = pts[labs == 1] if labs.size else pts
            if len(pos):
                x0, y0 = pos.min(axis=0) - 3
                x1, y1 = pos.max(axis=0) + 4
                region[max(0, int(y0)) : int(y1), max(0, int(x0)) : int(x1)] = True
        return self._register(state, obj_id, frame_idx, region)

    def add_new_mask(self, state, frame_idx, obj_id, mask):
        return self._register(state, obj_id, frame_idx, np.asarray(mask, dtype=bool))

    def _region_at(self, state, obj_id, frame_idx, reverse) -> np.ndarray:
        h, w = state["video_height"], state["video_width"]
        if self.masks_fn is not None:
            mask = self.masks_fn(obj_id, state["frames"].locs[frame_idx])
            return np.zeros((h, w), bool) if mask is None else np.asarray(mask, dtype=bool)
        prompts = state["prompts"][obj_id]
        behind = [p for p in prompts if (p >= frame_idx if reverse else p <= frame_idx)]
        ref = (min(behind) if reverse else max(behind)) if behind else min(prompts, key=lambda p: abs(p - frame_idx))
        steps = frame_idx - ref
        dx, dy = self.drift[0] * steps, self.drift[1] * steps
        out = np.zeros((h, w), dtype=bool)
        src = prompts[ref]
        ys, xs = np.nonzero(src)
        ys, xs = ys + dy, xs + dx
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        out[ys[keep], xs[keep]] = True
        return out

    def _logits(self, state, frame_idx, reverse) -> np.ndarray:
        masks = [self._region_at(state, o, frame_idx, reverse) for o in state["obj_ids"]]
        arr = np.stack(masks)[:, None].astype(np.float32)
        return np.where(arr > 0, 10.0, -10.0).astype(np.float32)

    def propagate_in_video(self, state, start_frame_idx=None, max_frame_num_to_track=None, reverse=False):
        if not state["obj_ids"]:
            raise RuntimeError("No input points or masks are provided for any object.")
        n = state["num_frames"]
        if start_frame_idx is None:
            start_frame_idx = min(f for p in state["prompts"].values() for f in p)
        count = n if max_frame_num_to_track is None else max_frame_num_to_track
        self.calls.append((start_frame_idx, reverse))
        if reverse:
            order = range(start_frame_idx, max(start_frame_idx - count, 0) - 1, -1) if start_frame_idx > 0 else []
        else:
            order = range(start_frame_idx, min(start_frame_idx + count, n - 1) + 1)
        for t in order:
            yield t, list(state["obj_ids"]), self._logits(state, t, reverse)
