"""One interactive session: SAM2's inference state over one sequence, prompted frame by frame.

Like SAM2's own demo backend (a session per video; ``add_new_points_or_box`` returns the frame's
mask at once), but the frames come lazily from the stack (``track.LazyFrames``: a frame is rendered
only when its embedding is computed) and the embeddings live in a ``FeatureLRU`` shared by every
session of the worker, so one byte budget bounds them all.

Contract:
    s = InteractiveSession(predictor, render, locs, height, width, features)
    s.embed(i)                                   -> None: frame i's backbone features (a "view")
    s.embedded(i)                                -> bool
    s.set_prompt(obj_id, i, box, points)         -> bool mask (H, W) of obj_id on frame i
        box/points are the object's whole prompt on frame i (they replace the earlier one);
        neither: the object's prompt on frame i is removed (and an empty mask returned).
    s.close()

Why "whole prompt" and not "add a point": the page holds the shapes drawn, so resending them is
idempotent (a lost or repeated message changes nothing) and a removed point is simply absent.
A removal replays the remaining prompts into a fresh state (SAM2 cannot forget a click), which
costs only the mask decoder: the embeddings stay in the LRU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sam2web.tracking.track import LazyFrames
from sam2web.types import Location

Box = tuple[float, float, float, float]
Point = tuple[float, float, int]


class InteractiveSession:
    """SAM2's inference state for one sequence plus the prompts given to it (see the module doc)."""

    def __init__(
        self,
        predictor,
        render: Callable[[Location], np.ndarray],
        locs: Sequence[Location],
        height: int,
        width: int,
        features=None,
    ) -> None:
        self.predictor = predictor
        image_size = int(getattr(predictor, "image_size", 1024) or 1024)
        device = str(getattr(predictor, "device", "cpu"))
        self.frames = LazyFrames(render, locs, image_size, height, width, device)
        self.height, self.width = int(height), int(width)
        self.prompts: dict[tuple[int, int], tuple[Box | None, tuple[Point, ...]]] = {}
        self._uses_lru = bool(getattr(predictor, "sam2web_feature_lru", False)) and features is not None
        with self._inference():
            if self._uses_lru:
                self.state = predictor.init_state(self.frames, feature_cache=features)
            else:  # a stand-in: no embeddings
                self.state = predictor.init_state(self.frames)

    # -- embeddings ------------------------------------------------------------------------
    def _key(self, index: int) -> tuple:
        return (self.state["sam2web_state_id"], int(index))

    def embedded(self, index: int) -> bool:
        if not self._uses_lru:
            return True
        return self._key(index) in self.state["sam2web_features"].entries

    def embed(self, index: int) -> None:
        """Compute frame ``index``'s backbone features now (nothing to do for a stand-in)."""
        self._check_index(index)
        if not self._uses_lru or self.embedded(index):
            return
        with self._inference():
            self.predictor._get_image_feature(self.state, int(index), 1)

    # -- prompts ---------------------------------------------------------------------------
    def set_prompt(self, obj_id: int, index: int, box: Box | None = None, points: Sequence[Point] = ()) -> np.ndarray:
        """The mask of ``obj_id`` on frame ``index`` given its whole prompt there (see the module doc)."""
        self._check_index(index)
        key = (int(obj_id), int(index))
        points = tuple((float(x), float(y), int(lab)) for x, y, lab in points)
        if box is None and not points:
            if self.prompts.pop(key, None) is not None:
                self._replay()
            return np.zeros((self.height, self.width), dtype=bool)
        self.prompts[key] = (tuple(float(v) for v in box) if box is not None else None, points)
        return self._add(key)

    def _add(self, key: tuple[int, int]) -> np.ndarray:
        obj_id, index = key
        box, points = self.prompts[key]
        kwargs: dict[str, Any] = {"clear_old_points": True}
        if box is not None:
            kwargs["box"] = np.asarray(box, dtype=np.float32)
        if points:
            kwargs["points"] = np.asarray([[x, y] for x, y, _ in points], dtype=np.float32)
            kwargs["labels"] = np.asarray([lab for _, _, lab in points], dtype=np.int32)
        with self._inference():
            _, obj_ids, logits = self.predictor.add_new_points_or_box(self.state, index, obj_id, **kwargs)
        row = list(obj_ids).index(obj_id)
        arr = logits[row, 0]
        if hasattr(arr, "detach"):
            arr = arr.detach().float().cpu().numpy()
        return np.asarray(arr) > 0

    def _replay(self) -> None:
        with self._inference():
            self.predictor.reset_state(self.state)
        for key in sorted(self.prompts, key=lambda k: (k[1], k[0])):
            self._add(key)

    def _check_index(self, index: int) -> None:
        if not 0 <= int(index) < len(self.frames):
            raise IndexError(f"frame {index} is outside this sequence of {len(self.frames)} frames")

    def _inference(self):
        from sam2web.tracking.model import inference_context

        if not hasattr(self.predictor, "sam2web_info"):
            return inference_context(self.predictor)  # a no-op for stand-ins
        import contextlib

        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(inference_context(self.predictor))
        return stack

    def close(self) -> None:
        """Drop the state and this session's embeddings from the shared LRU."""
        if self._uses_lru:
            lru = self.state["sam2web_features"]
            sid = self.state["sam2web_state_id"]
            for key in [k for k in lru.entries if k[0] == sid]:
                _, size = lru.entries.pop(key)
                lru.used -= size
        self.prompts.clear()
        self.state = {}
