"""A ground-truth oracle with the SAM2 video predictor's surface: a QA tool for lineage and scoring.

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

from pathlib import Path

import numpy as np

from sam2web.errors import UserError
from sam2web.tracking.track import StandInTracker
from sam2web.types import Location


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
