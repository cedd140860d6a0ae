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

import itertools
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from sam2web.tracking.track import LazyFrames
from sam2web.types import Location

Box = tuple[float, float, float, float]
Point = tuple[float, float, int]

_LIVE: weakref.WeakSet = weakref.WeakSet()  # the sessions of this process, for runs to borrow embeddings
_LIVE_LOCK = threading.Lock()
_TOKENS = itertools.count(1)


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def source_identity(stack, display, predictor) -> tuple | None:
    """What makes two frame sources give the same embeddings: the files (with their size and
    modification time, so a file replaced under the same name is not mistaken for the old one),
    how they are read, the display composite, the model object and its input side. None when
    unknown (an in-memory stack, a render callable): then nothing is shared."""
    source = getattr(stack, "source", None) or {}
    if not source.get("paths") or callable(display) or display is None:
        return None
    try:
        files = tuple((p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in source["paths"])
    except OSError:
        return None
    token = getattr(predictor, "_sam2web_feature_token", None)
    if token is None:
        token = next(_TOKENS)
        try:
            predictor._sam2web_feature_token = token
        except AttributeError:
            return None
    shown = display.to_dict() if hasattr(display, "to_dict") else display
    return (
        files,
        source.get("pages_as"),
        source.get("axes"),
        _frozen(shown),
        token,
        getattr(predictor, "image_size", 0),
    )


def cached_features(identity: tuple, loc: Location) -> dict | None:
    """The embedding of ``loc`` computed by a live session of the same source, or None."""
    with _LIVE_LOCK:
        live = [s for s in _LIVE if s.identity == identity]
    for session in live:
        slim = session.features_at(loc)
        if slim is not None:
            return slim
    return None


def seed_features(predictor, state: dict, stack, display, locs: Sequence[Location], indices: Iterable[int]) -> int:
    """Give a run's inference state the embeddings that sessions already computed for the frames
    ``indices`` (its prompt frames): the first tracked frame then skips the image encoder, which
    is nearly all of its time. Returns how many were found."""
    lru = state.get("sam2web_features")
    identity = source_identity(stack, display, predictor) if lru is not None else None
    if identity is None:
        return 0
    sid, found = state["sam2web_state_id"], 0
    for i in sorted(set(indices)):
        if (sid, i) in lru.entries:
            continue
        slim = cached_features(identity, locs[i])
        if slim is not None:
            lru.put((sid, i), slim)
            found += 1
    return found


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
        identity: tuple | None = None,
    ) -> None:
        self.predictor = predictor
        self.identity = identity  # ``source_identity``: runs of the same source may borrow embeddings
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
        self._index = {loc: i for i, loc in enumerate(self.frames.locs)}
        if identity is not None and self._uses_lru:
            with _LIVE_LOCK:
                _LIVE.add(self)

    # -- embeddings ------------------------------------------------------------------------
    def _key(self, index: int) -> tuple:
        return (self.state["sam2web_state_id"], int(index))

    def embedded(self, index: int) -> bool:
        if not self._uses_lru:
            return True
        return self._key(index) in self.state["sam2web_features"].entries

    def features_at(self, loc: Location) -> dict | None:
        index = self._index.get(loc)
        if index is None or not self._uses_lru or not self.state:
            return None
        entry = self.state["sam2web_features"].entries.get(self._key(index))
        return entry[0] if entry is not None else None

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
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._uses_lru and self.state:
            lru = self.state["sam2web_features"]
            sid = self.state["sam2web_state_id"]
            for key in [k for k in lru.entries if k[0] == sid]:
                _, size = lru.entries.pop(key)
                lru.used -= size
        self.prompts.clear()
        self.state = {}
