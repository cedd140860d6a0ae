"""StandInTracker: a deterministic tracker with the SAM2VideoPredictor surface, for tests.

Re-exported as ``sam2web.tracking.track.StandInTracker`` (same class).
``SAM2WEB_STANDIN=1`` makes the app and the CLI use it instead of SAM2. No torch needed.

OracleTracker: A ground-truth oracle with the SAM2 video predictor's surface: a QA tool for lineage and scoring.

``SAM2WEB_STANDIN=oracle:PATH`` (PATH: a folder of per-frame label images in the Cell Tracking
Challenge layout, with man_track.txt for divisions) makes the CLI and the app track with it
instead of SAM2 (tracking/factory.py builds it). For each prompted object it finds the ground-truth label under the prompt at the
prompt frame (the label most of a mask or box covers, or under most positive points), and at
every frame returns that label **together with its descendants**, as one mask. That is what SAM2
often does when two daughters stay touching: the mother's mask keeps covering both. So the
oracle is perfect at identity and segmentation and exactly as blind to divisions as a tracker
without division detection; scoring it with and without ``sam2web.lineage`` measures the
detection alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sam2web.errors import UserError
from sam2web.types import Location


class StandInTracker:
    """A deterministic tracker with the SAM2VideoPredictor surface, for tests and the app's tests.

    Each object's mask at frame t is its prompt region (box, mask, or the box around its
    positive points; points given with a box add or cut a 7x7 square) at the nearest prompt frame p behind t in the propagation direction,
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
        delay_s: float = 0.0,
    ):
        self.delay_s = delay_s  # seconds per frame: a slow model for cancel/kill tests of the executors
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
            if points is not None:  # points refine a box: a 7x7 square added (positive) or cut out (negative)
                for (x, y), lab in zip(np.asarray(points, dtype=float).reshape(-1, 2), np.asarray(labels).ravel()):
                    ys, xs = (
                        slice(max(0, int(y) - 3), max(0, int(y) + 4)),
                        slice(max(0, int(x) - 3), max(0, int(x) + 4)),
                    )
                    region[ys, xs] = bool(lab == 1)
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
            if self.delay_s:
                time.sleep(self.delay_s)
            yield t, list(state["obj_ids"]), self._logits(state, t, reverse)


class OracleTracker(StandInTracker):
    """Ground truth under the prompt, plus its descendants (see the module doc)."""

    def __init__(self, labels: str | Path, image_size: int = 1024):
        super().__init__(image_size=image_size)
        from sam2web import ctc

        self.path = Path(labels)
        if not self.path.exists():
            raise UserError(f"The oracle's label folder {self.path} does not exist; give a CTC TRA folder.")
        stack, locs = ctc.open_labels(self.path, "time")
        stack.close()  # reopened per frame read: the oracle holds no file open between frames
        self._locs = {(loc.time, loc.z): loc for loc in locs}
        self._frames: dict[Location, np.ndarray] = {}
        lineage = ctc.read_lineage(self.path)
        self.children: dict[int, list[int]] = {}
        for child, parent in lineage.items():
            if parent:
                self.children.setdefault(parent, []).append(child)
        self.labels_of: dict[int, int] = {}  # obj_id -> ground-truth label (0: nothing under the prompt)

    def labels_at(self, loc: Location) -> np.ndarray:
        """The ground-truth label image at a frame of the tracked stack (matched by Time and Z)."""
        from sam2web import ctc

        key = self._locs.get((loc.time, loc.z)) or self._locs.get((loc.time, 0))
        if key is None:
            raise UserError(
                f"The oracle's labels have no frame at Time {loc.time + 1}; give labels for every tracked frame."
            )
        if key not in self._frames:
            if len(self._frames) > 64:
                self._frames.clear()
            stack, _ = ctc.open_labels(self.path, "time")
            with stack:
                self._frames[key] = np.array(ctc.label_frame(stack, key))
        return self._frames[key]

    def family(self, label: int) -> list[int]:
        out, todo = [], [label]
        while todo:
            lab = todo.pop()
            if lab not in out:
                out.append(lab)
                todo.extend(self.children.get(lab, []))
        return out

    def _register(self, state, obj_id, frame_idx, region) -> tuple:
        labels = self.labels_at(state["frames"].locs[frame_idx])
        under = labels[np.asarray(region, dtype=bool)]
        under = under[under != 0]
        self.labels_of[obj_id] = int(np.bincount(under.astype(np.int64)).argmax()) if under.size else 0
        return super()._register(state, obj_id, frame_idx, region)

    def add_new_points_or_box(
        self, state, frame_idx, obj_id, points=None, labels=None, clear_old_points=True, normalize_coords=True, box=None
    ):
        if box is None and points is not None:  # points: the labels under the positive points, not a box around them
            pts = np.asarray(points, dtype=float).reshape(-1, 2)
            labs = np.asarray(labels).ravel() if labels is not None else np.ones(len(pts))
            region = np.zeros((state["video_height"], state["video_width"]), dtype=bool)
            for (x, y), lab in zip(pts, labs):
                if lab == 1 and 0 <= int(y) < region.shape[0] and 0 <= int(x) < region.shape[1]:
                    region[int(y), int(x)] = True
            return self._register(state, obj_id, frame_idx, region)
        return super().add_new_points_or_box(state, frame_idx, obj_id, points, labels, clear_old_points, True, box)

    def _region_at(self, state, obj_id, frame_idx, reverse) -> np.ndarray:
        label = self.labels_of.get(obj_id, 0)
        labels = self.labels_at(state["frames"].locs[frame_idx])
        if not label:
            return np.zeros(labels.shape, dtype=bool)
        return np.isin(labels, self.family(label))
