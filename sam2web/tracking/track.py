"""One or more sequences through the SAM2 video predictor (or any stand-in with the same surface).

The surface other modules use:
    track(stack, sequences, prompts, predictor, display, direction="forward", progress=None,
          cancel=None, result=None, on_frame=None) -> TrackResult
        progress(seq_i, n_seq, frame_j, n_frames); cancel() -> bool; stops within one frame.
        on_frame(loc, {obj_id: CompactMask}) after each finished frame (the app persists it).
        result=previous: re-track only the objects prompted now, from their prompt frame on,
        and keep everything else of ``previous`` (a correction that survives an app restart).
    check_prompts_placed(sequences, prompts): the "no prompts on the selected frames" UserError.
    TrackSession: the same run, kept alive so corrections reuse SAM2's memory and features:
        s = TrackSession(stack, sequences, predictor, display, direction); s.add_prompts(p);
        s.run(...); s.add_prompts([correction]); s.run(...)  -> s.result
    StandInTracker: deterministic tracker with the predictor surface, for tests (standin.py).
    LazyFrames: the in-memory frame source handed to SAM2's ``init_state`` instead of a JPEG
        folder (``sam2web.tracking.predictor.SAM2WebPredictor`` takes it as is).

Directions. Sequences come from ``selection.build_sequences`` already in tracking order
(backward ones reversed), so "forward" and "backward" both propagate toward the end of the
sequence, and an object gets masks from its first prompt frame onward. "both" propagates
forward from the earliest prompt and then in reverse from the latest first-prompt, in one run:
every object gets masks on every frame, each frame coming from the pass that moves away from
that object's own prompt.

Memory. Frames are rendered only when SAM2 asks for them (one at a time, never all), and
per-frame outputs that fall out of SAM2's memory window (``num_maskmem`` frames for masks,
``max_obj_ptrs_in_encoder`` for object pointers) are dropped as the run goes, except around
prompt frames, so a long run holds about what a short one does. Backbone features of recently
visited frames are kept in one LRU per session (bounded in MB, ``predictor.FeatureLRU``, inside
the predictor subclass) so a correction does not recompute them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sam2web import params
from sam2web.errors import UserError
from sam2web.tracking.standin import StandInTracker  # noqa: F401  (re-exported: track.StandInTracker)
from sam2web.types import CompactMask, Location, ObjectInfo, Prompt, Sequence, TrackResult

IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)
DIRECTIONS = params.DIRECTIONS  # defined once, in TrackParams

ProgressFn = Callable[[int, int, int, int], None]
CancelFn = Callable[[], bool]
OnFrameFn = Callable[[Location, dict], None]
RenderFn = Callable[[Location], np.ndarray]


# ----------------------------------------------------------------------------- frame source


def to_model_input(rgb: np.ndarray, image_size: int):
    """uint8 RGB (H, W, 3) -> float tensor (3, S, S) resized and normalised exactly like SAM2's
    own JPEG loader (PIL bicubic resize, /255, ImageNet mean/std), minus the JPEG loss."""
    import torch
    from PIL import Image

    img = Image.fromarray(rgb).resize((image_size, image_size), Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(IMG_MEAN, np.float32)) / np.asarray(IMG_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class LazyFrames:
    """What SAM2 indexes as ``inference_state["images"]``: only ``len`` and ``[i]`` are needed.

    Each access renders one frame from the stack (``render_fn(loc)`` -> uint8 RGB) and converts
    it; nothing is kept, because the predictor caches the features of the frames it works on.
    ``sam2web_frame_source`` tells SAM2's ``init_state`` (patched) to take it instead of a folder.
    """

    sam2web_frame_source = True

    def __init__(
        self,
        render_fn: RenderFn,
        locs: Iterable[Location],
        image_size: int,
        height: int,
        width: int,
        device: str = "cpu",
    ):
        self.render_fn = render_fn
        self.locs = tuple(locs)
        self.image_size = int(image_size)
        self.height = int(height)
        self.width = int(width)
        self.device = device

    def __len__(self) -> int:
        return len(self.locs)

    def rgb(self, index: int) -> np.ndarray:
        rgb = np.asarray(self.render_fn(self.locs[index]))
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != (self.height, self.width):
            raise ValueError(f"render returned shape {rgb.shape}, expected ({self.height}, {self.width}, 3)")
        return rgb if rgb.dtype == np.uint8 else np.clip(rgb, 0, 255).astype(np.uint8)

    def __getitem__(self, index: int):
        return to_model_input(self.rgb(index), self.image_size).to(self.device)


# ----------------------------------------------------------------------------- the run

NO_PROMPTS_ON_FRAMES = (
    "There are no prompts on the selected frames; draw a box on one of the "
    "selected frames, or widen the XY/Time/Z ranges to include the prompts."
)


def check_prompts_placed(sequences: list[Sequence], prompts: list[Prompt]) -> None:
    """UserError unless some prompt lies on a frame of some sequence (cheap; before a model)."""
    if not any(s.index_of(p.loc) is not None for s in sequences for p in prompts):
        raise UserError(NO_PROMPTS_ON_FRAMES)


@dataclass
class _SeqRun:
    """Per-sequence state of a session: the inference state and what was prompted where."""

    index: int
    sequence: Sequence
    frames: LazyFrames
    state: dict | None = None
    pending: list[Prompt] = field(default_factory=list)
    prompted: dict[int, set[int]] = field(default_factory=dict)  # obj_id -> frame indices
    runs: int = 0


def _render_fn(stack, display) -> RenderFn:
    if callable(display):
        return display
    from sam2web.stack.display import render

    return lambda loc: render(stack, loc, display)


def _frame_size(stack, render: RenderFn, first: Location) -> tuple[int, int]:
    sizes = getattr(stack, "sizes", None)
    if isinstance(sizes, dict) and "Y" in sizes and "X" in sizes:
        return int(sizes["Y"]), int(sizes["X"])
    h, w = np.asarray(render(first)).shape[:2]
    return int(h), int(w)


def _display_channel(display) -> int:
    export_channel = getattr(display, "export_channel", None)
    return int(export_channel()) if callable(export_channel) else 0


def _to_numpy(masks) -> np.ndarray:
    if hasattr(masks, "detach"):
        return masks.detach().float().cpu().numpy()
    return np.asarray(masks)


def _feature_lru(predictor, budget_mb: float):
    """The session's feature LRU when the predictor is sam2web's SAM2 subclass, else None."""
    if not getattr(predictor, "sam2web_feature_lru", False):
        return None
    from sam2web.tracking.predictor import FeatureLRU

    return FeatureLRU(int(budget_mb * 1024 * 1024))


class TrackSession:
    """Everything needed to track, correct and re-track the prompts of one selection.

    Holds per-run state only (inference states, feature LRU); the predictor stays shareable.
    ``features`` is the session's ``FeatureLRU`` (None for stand-ins).
    ``result`` accumulates masks across ``run`` calls.
    """

    def __init__(
        self,
        stack,
        sequences: list[Sequence],
        predictor,
        display,
        direction: str = "forward",
        result: TrackResult | None = None,
        feature_cache_mb: float = 64.0,
        trim_memory: bool = True,
    ):
        if direction not in DIRECTIONS:
            raise UserError(f"Unknown direction '{direction}'; choose forward, backward or both.")
        if not sequences:
            raise UserError("No sequences to track; select at least two frames along the tracking axis.")
        from sam2web.tracking.model import describe

        self.stack = stack
        self.predictor = predictor
        self.direction = direction
        self.display = display
        self.render = _render_fn(stack, display)
        self.height, self.width = _frame_size(stack, self.render, sequences[0].frames[0])
        info = describe(predictor)
        self.info = info
        image_size = int(getattr(predictor, "image_size", 1024) or 1024)
        device = str(getattr(predictor, "device", "cpu"))
        self.seqs = [
            _SeqRun(i, s, LazyFrames(self.render, s.frames, image_size, self.height, self.width, device))
            for i, s in enumerate(sequences)
        ]
        self.features = _feature_lru(predictor, feature_cache_mb)  # one budget for all sequences
        self.trim_memory = trim_memory
        if result is None:
            result = TrackResult()
        else:
            result = copy.copy(result)
            result.masks = dict(result.masks)
            result.objects = dict(result.objects)
            result.settings = dict(result.settings)
        result.channel = _display_channel(display) if not callable(display) else result.channel
        result.random_weights = bool(info.get("random_weights")) or result.random_weights
        result.settings.update(
            {
                "direction": direction,
                "across": sequences[0].across,
                "model": info.get("model"),
                "device": info.get("device"),
                "precision": info.get("precision"),
                "image_size": info.get("image_size"),
            }
        )
        self.result = result

    # -- prompts ---------------------------------------------------------------------------
    def add_prompts(self, prompts: Iterable[Prompt]) -> None:
        """Queue prompts (first ones or corrections) for the next ``run``.

        All prompts are checked before any is queued, so a bad one leaves the session as it
        was. Prompts on frames of no sequence are ignored, unless that is all of them.
        """
        prompts = list(prompts)
        for p in prompts:
            self._check_prompt(p)
        placed = [(p, [run for run in self.seqs if run.sequence.index_of(p.loc) is not None]) for p in prompts]
        placed = [(p, runs) for p, runs in placed if runs]
        if prompts and not placed:
            raise UserError(NO_PROMPTS_ON_FRAMES)
        for p, runs in placed:
            for run in runs:
                run.pending.append(p)
            info = self.result.objects.get(p.obj_id)
            if info is None:
                self.result.objects[p.obj_id] = ObjectInfo(p.obj_id, p.name, list(p.tags), parent=p.parent)
            else:
                info.tags = info.tags + [t for t in p.tags if t not in info.tags]
                info.name = info.name or p.name

    def _check_prompt(self, p: Prompt) -> None:
        if p.box is None and not p.points and p.mask is None:
            raise UserError(f"Prompt of object {p.obj_id} has no box, points or mask; draw one or delete it.")
        if p.mask is not None and np.asarray(p.mask).shape != (self.height, self.width):
            raise UserError(
                f"Mask prompt of object {p.obj_id} is {np.asarray(p.mask).shape}, "
                f"not the image size ({self.height}, {self.width}); use a label "
                f"image of the stack's size."
            )
        if p.mask is not None and not np.asarray(p.mask).any():
            raise UserError(f"Mask prompt of object {p.obj_id} is empty; give it some pixels or delete it.")

    # -- running ---------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        return any(run.pending for run in self.seqs)

    def run(
        self, progress: ProgressFn | None = None, cancel: CancelFn | None = None, on_frame: OnFrameFn | None = None
    ) -> TrackResult:
        """Add queued prompts and propagate; only sequences with new prompts are visited.

        On cancel the masks finished so far stay in ``result`` and ``result.partial`` is True.
        """
        from sam2web.tracking.model import inference_context

        todo = [run for run in self.seqs if run.pending]
        self.result.partial = False
        skipped = sum(1 for run in self.seqs if run.runs == 0 and not run.pending)
        self.result.settings["sequences_without_prompts"] = skipped
        with inference_context(self.predictor):
            for i, run in enumerate(todo):
                if cancel is not None and cancel():
                    self.result.partial = True
                    break
                if not self._run_sequence(run, i, len(todo), progress, cancel, on_frame):
                    self.result.partial = True
                    break
        return self.result

    def _ensure_state(self, run: _SeqRun) -> dict:
        if run.state is None:
            if self.features is not None:
                from sam2web.tracking.interactive import seed_features

                run.state = self.predictor.init_state(run.frames, feature_cache=self.features)
                # prompt frames a user just drew on (an interactive session) are already embedded
                prompt_frames = [run.sequence.index_of(p.loc) for p in run.pending]
                seed_features(self.predictor, run.state, self.stack, self.display, run.frames.locs, prompt_frames)
            else:  # a stand-in, or SAM2's stock predictor (sam2_patches lets it take frames)
                run.state = self.predictor.init_state(run.frames)
        return run.state

    def _add(self, run: _SeqRun) -> tuple[dict[int, list[int]], dict[int, float]]:
        """Give the queued prompts to the predictor.

        Returns obj_id -> its new prompt frames, and obj_id -> its first prompt frame before
        these (infinity for a new object): what the pass planning needs.
        """
        state = self._ensure_state(run)
        grouped: dict[tuple[int, int], list[Prompt]] = {}
        for p in run.pending:
            grouped.setdefault((p.obj_id, run.sequence.index_of(p.loc)), []).append(p)
        run.pending = []
        before = {o: float(min(fs)) for o, fs in run.prompted.items()}
        new: dict[int, list[int]] = {}
        for (obj_id, f), group in sorted(grouped.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            masks = [p.mask for p in group if p.mask is not None]
            if masks:
                self.predictor.add_new_mask(state, f, obj_id, np.asarray(masks[-1], dtype=bool))
            else:
                boxes = [p.box for p in group if p.box is not None]
                pts = [pt for p in group for pt in p.points]
                kwargs: dict[str, Any] = {}
                if boxes:
                    kwargs["box"] = np.asarray(boxes[-1], dtype=np.float32)
                if pts:
                    kwargs["points"] = np.asarray([[x, y] for x, y, _ in pts], dtype=np.float32)
                    kwargs["labels"] = np.asarray([int(lab) for _, _, lab in pts], dtype=np.int32)
                self.predictor.add_new_points_or_box(state, f, obj_id, **kwargs)
            new.setdefault(obj_id, []).append(f)
            run.prompted.setdefault(obj_id, set()).add(f)
        return new, {o: before.get(o, float("inf")) for o in new}

    def _passes(self, new: dict[int, list[int]], before: dict[int, float]) -> list[tuple[int, bool, dict[int, int]]]:
        """Plan the propagations: (start frame, reverse, {obj_id: write bound}).

        Each object is tracked away from its prompts: a forward pass writes an object from its
        (new) prompt frame on; a reverse pass writes it only up to its first prompt frame, so
        frames between two objects' prompts come from the pass that starts at that object's
        own prompt. "both" = forward from the earliest prompt, then reverse from the latest
        first-prompt. A correction re-runs forward from its frame, and also in reverse when it
        is the object's new first prompt ("both" only).
        """
        fwd = {o: min(fs) for o, fs in new.items()}
        passes = [(min(fwd.values()), False, fwd)]
        if self.direction == "both":
            rev = {o: min(fs) for o, fs in new.items() if min(fs) <= before[o]}
            if rev:
                passes.append((max(rev.values()), True, rev))
        return passes

    def _run_sequence(self, run: _SeqRun, seq_i: int, n_seq: int, progress, cancel, on_frame) -> bool:
        new, before = self._add(run)
        run.runs += 1
        passes = [p for p in self._passes(new, before) if not (p[1] and p[0] == 0)]
        n = len(run.frames)
        total = sum((s + 1) if rev else (n - s) for s, rev, _ in passes)
        done = 0
        for start, reverse, bounds in passes:
            order = range(start, -1, -1) if reverse else range(start, n)
            gen = self.predictor.propagate_in_video(run.state, start_frame_idx=start, reverse=reverse)
            try:
                for _ in order:
                    try:
                        t, obj_ids, logits = next(gen)
                    except StopIteration:
                        break
                    self._store(run, t, obj_ids, logits, reverse, bounds, on_frame)
                    if self.trim_memory:
                        self._trim(run.state, t, reverse)
                    done += 1
                    if progress is not None:
                        progress(seq_i, n_seq, done, total)
                    if cancel is not None and cancel():
                        return False
            except MemoryError:
                raise UserError(self._oom_message()) from None
            except RuntimeError as err:
                if "out of memory" in str(err).lower():
                    raise UserError(self._oom_message()) from None
                raise
            finally:
                gen.close()
        return True

    def _oom_message(self) -> str:
        return (
            f"Tracking ran out of memory on {self.info.get('device', 'this device')}; use a "
            f"smaller model or image size, fewer objects, or shorter sequences, and run again."
        )

    def _store(self, run, t, obj_ids, logits, reverse, bounds, on_frame) -> None:
        loc = run.sequence.frames[t]
        arr = _to_numpy(logits)
        finished: dict[int, CompactMask] = {}
        for row, obj_id in enumerate(obj_ids):
            bound = bounds.get(obj_id)
            if bound is None or (t > bound if reverse else t < bound):
                continue  # not this pass's to write: keep what the object had
            cm = CompactMask.from_mask(arr[row, 0] > 0)
            self.result.masks[(obj_id, loc)] = cm
            finished[obj_id] = cm
        if on_frame is not None and finished:
            on_frame(loc, finished)

    # -- SAM2 state housekeeping (skipped for stand-ins) -----------------------------------
    def _trim(self, state: dict, t: int, reverse: bool) -> None:
        """Drop non-conditioning outputs SAM2 will not read again in this pass.

        SAM2 reads the last ``num_maskmem - 1`` frames (times the eval stride) for mask memory
        and the last ``max_obj_ptrs_in_encoder - 1`` frames for object pointers. Outputs near a
        prompt frame are kept: the reverse pass of "both" and corrections start there.
        """
        per_obj = state.get("output_dict_per_obj")
        if not per_obj:
            return
        p = self.predictor
        stride = int(getattr(p, "memory_temporal_stride_for_eval", 1) or 1)
        keep = max(int(getattr(p, "num_maskmem", 7)) * stride, int(getattr(p, "max_obj_ptrs_in_encoder", 16))) + 1
        for out in per_obj.values():
            cond = out["cond_frame_outputs"]
            non_cond = out["non_cond_frame_outputs"]
            for u in list(non_cond):
                behind = (u - t) if reverse else (t - u)
                if behind > keep and all(abs(u - c) > keep for c in cond):
                    del non_cond[u]


def track(
    stack,
    sequences: list[Sequence],
    prompts: list[Prompt],
    predictor,
    display,
    direction: str = "forward",
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    result: TrackResult | None = None,
    on_frame: OnFrameFn | None = None,
    session: TrackSession | None = None,
) -> TrackResult:
    """Track ``prompts`` through ``sequences`` in one joint propagation per sequence.

    ``display`` is the DisplaySettings for ``sam2web.stack.display.render`` (or a callable
    ``loc -> uint8 RGB``). With ``result=previous`` only the objects prompted now are re-tracked
    (from their prompt frame on) and the rest of ``previous`` is kept. With ``session`` the
    prompts are added to that live session (corrections reusing SAM2's memory).
    """
    if session is None:
        session = TrackSession(stack, sequences, predictor, display, direction, result=result)
    session.add_prompts(prompts)
    if not prompts and not session.pending:
        raise UserError("There are no prompts to track; draw a box around an object first.")
    return session.run(progress=progress, cancel=cancel, on_frame=on_frame)
