"""Execute one ``RunSpec`` wherever it lands: a worker process, a thread (tests), a Ray actor.

Each finished frame is written to the store at once (idempotent: a mask is keyed by run, object and
frame), so a cancel, a crash or a killed worker keeps every saved frame. A run that finds masks already
saved for a sequence (Resume copies them from the interrupted run) continues that sequence from its
last saved frame instead of tracking it again (``plan_resume``).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sam2web.errors import UserError
from sam2web.service import review
from sam2web.service.spec import RunSpec
from sam2web.store import Store
from sam2web.types import CompactMask, Location, Prompt, Sequence, TrackResult

log = logging.getLogger(__name__)

Emit = Callable[..., None]  # emit(kind, *values): ("phase", name) | ("frame", done, total)


class Cancelled(Exception):
    """The user pressed Cancel (raised inside a run, caught here)."""


def _mro_names(err: BaseException) -> set[str]:
    return {c.__name__ for c in type(err).__mro__}


def error_sentence(err: BaseException) -> str:
    """One sentence for a failed run, chosen by the error's type (never by words in its message)."""
    if isinstance(err, UserError):
        return str(err)
    text = f"{type(err).__name__}: {err}"[:300]
    if isinstance(err, MemoryError) or "OutOfMemoryError" in _mro_names(err):
        return (
            "The device ran out of memory during this run; choose a smaller model, a smaller image "
            "size or fewer frames, and run again."
        )
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "The disk holding the data folder is full; free some space, then press Resume."
    if isinstance(err, OSError):
        return f"A file could not be read or written during this run ({text}); check the data folder, then Resume."
    if _mro_names(err) & {"AcceleratorError", "CudaError"}:
        return f"The compute device failed during this run ({text}); try the CPU device or run again."
    return f"Tracking failed unexpectedly ({text}); the finished frames are kept, try Re-run."


@dataclass
class Leg:
    """One propagation: ``prompts`` through ``sequence`` (direction as ``track`` reads it)."""

    sequence: Sequence
    prompts: list[Prompt]
    direction: str


def plan_resume(
    seq: Sequence, prompts: list[Prompt], direction: str, saved: dict[tuple[int, Location], CompactMask]
) -> list[Leg]:
    """The propagations that finish ``seq`` given the masks already ``saved`` for it.

    Forward/backward sequences are already in tracking order: continue from L, the last frame of
    the unbroken saved run of frames from the earliest prompt on (a frame saved beyond a gap, e.g. a
    daughter's prompt frame, does not count: the frames before it are still missing), each object
    prompted with its own mask at L (plus any later prompt). "both" first runs forward from the
    earliest prompt to the end, then in reverse from the latest first prompt: an unfinished forward
    pass continues from L and is followed by the whole reverse pass; a finished forward pass is
    followed by the rest of the reverse pass from the lowest frame of the unbroken saved run
    down from the earliest prompt.
    """
    index = {loc: i for i, loc in enumerate(seq.frames)}
    done = sorted({index[loc] for (_, loc) in saved if loc in index})
    if not done:
        return [Leg(seq, prompts, direction)]
    n = len(seq.frames)
    first: dict[int, int] = {}
    for p in prompts:
        first[p.obj_id] = min(first.get(p.obj_id, n), index[p.loc])
    info = {p.obj_id: p for p in prompts}

    def masks_at(i: int) -> list[Prompt]:
        out = []
        for obj in first:
            cm = saved.get((obj, seq.frames[i]))
            if cm is not None and not cm.empty:
                ref = info[obj]
                out.append(Prompt(obj, seq.frames[i], mask=cm.to_mask(), tags=list(ref.tags), name=ref.name))
        return out

    def onward(i: int) -> Leg:
        later = [p for p in prompts if index[p.loc] > i]
        return Leg(Sequence(seq.frames[i:], seq.across), masks_at(i) + later, "forward")

    def reverse(i: int, start_prompts: list[Prompt]) -> Leg:
        return Leg(Sequence(tuple(reversed(seq.frames[: i + 1])), seq.across), start_prompts, "forward")

    saved_at = set(done)
    earliest, latest = min(first.values()), max(first.values())
    gap = next((i for i in range(earliest, n) if i not in saved_at), None)  # the first missing frame
    if direction != "both":
        if gap is None:
            return []
        return [Leg(seq, prompts, direction)] if gap == earliest else [onward(gap - 1)]
    firsts = [p for p in prompts if index[p.loc] == first[p.obj_id]]
    if gap is not None:  # the forward pass stopped midway
        if gap == earliest:
            return [Leg(seq, prompts, direction)]
        return [onward(gap - 1), reverse(latest, firsts)]
    low = earliest
    while low > 0 and low - 1 in saved_at:
        low -= 1
    if low == 0:
        return []
    if low == earliest:  # the reverse pass had not got below the first prompts: run all of it
        return [reverse(latest, firsts)]
    return [reverse(low, masks_at(low))]


class _Counter:
    """Frames done of the run: a frame counts once, whichever pass or leg finished it."""

    def __init__(self, total: int, emit: Emit) -> None:
        self.total, self.emit = total, emit
        self.done: set[Location] = set()
        self.tracked = 0  # frames the model really ran on (Resume's test: only the missing ones)

    def add(self, locs) -> int:
        self.done.update(locs)
        self.emit("frame", len(self.done), self.total)
        return len(self.done)


def execute(spec: RunSpec, store: Store, emit: Emit, cancelled: Callable[[], bool]) -> tuple[str, str]:
    """Run ``spec`` to its end; returns the final (status, error sentence) also written to the store."""
    run_id = spec.run_id
    if cancelled():
        store.update_run(run_id, status="cancelled", error="Cancelled before it started.")
        return "cancelled", "Cancelled before it started."
    try:
        store.update_run(run_id, status="running", error="")
        _execute(spec, store, emit, cancelled)
    except Cancelled:
        status, error = "cancelled", "Cancelled; the finished frames are kept."
    except Exception as err:  # noqa: BLE001 - a run's failure is reported, never raised into the worker loop
        if cancelled():  # failed after a cancel (a shutdown closes the store under it): the cancel is the truth
            status, error = "cancelled", "Cancelled; the finished frames are kept."
        else:
            status, error = "failed", run_error(err, store)
    else:
        status, error = ("cancelled", "Cancelled; the finished frames are kept.") if cancelled() else ("done", "")
    finish(store, run_id, status, error)
    return status, error


INTERRUPTED = (
    "The server stopped during this run; its finished frames are kept. Press Resume to finish the missing frames."
)


def run_error(err: BaseException, store: Store) -> str:
    """The sentence a failed run keeps (a full disk names the data folder and offers Resume)."""
    from sam2web.store import is_disk_full

    if is_disk_full(err):
        log.warning("run failed: the disk is full (%s)", err)
        return f"The disk is full: the data folder {store.root} has no space left; its finished frames are kept: free some space, then press Resume."
    if isinstance(err, UserError):
        return str(err)
    log.error("run failed", exc_info=err)
    return error_sentence(err)


def finish(store: Store, run_id: int, status: str, error: str, tries: int = 3) -> bool:
    """Write a run's final state; retried, and never raised: a run's end must not kill the worker loop.

    Why: on a full disk the final write can fail too; the caller (the executor) then keeps the state
    in memory, reports it, and writes it once it can, so a run is never left "running".
    """
    for attempt in range(tries):
        try:
            store.update_run(run_id, status=status, error=error)
            return True
        except Exception as err:  # noqa: BLE001 - see the docstring
            log.warning("run %s: its final state %r could not be saved (%s)", run_id, status, err)
            time.sleep(0.2 * (attempt + 1))  # back-off between retries of the final write
    return False


def _execute(spec: RunSpec, store: Store, emit: Emit, cancelled: Callable[[], bool]) -> None:
    """Track the spec's sequences still to do; ``spec.only`` limits it to some (one part of a
    run that several workers share: then the run's totals and status are the executor's)."""
    from sam2web.stack import open_stack
    from sam2web.stack.display import DisplaySettings
    from sam2web.tracking import factory
    from sam2web.tracking.model import describe

    only = spec.only
    run = store.get_run(spec.run_id)
    finished = set((run.info if run else {}).get("done_sequences", []))
    todo = [(i, s) for i, s in enumerate(spec.sequences) if i not in finished and (only is None or i in only)]
    counter = _Counter(review.own_frames([s for _, s in todo], spec.prompts), emit)
    if only is None:
        store.update_run(spec.run_id, total_frames=counter.total)
    emit("phase", "loading")
    if spec.threads:
        factory.set_threads(spec.threads)
    # "preparing": a one-off per-machine check (and compilation) inside the build, shown to the user
    predictor = factory.get_predictor(spec.params, phase=lambda name: emit("phase", name))
    model_info = {k: v for k, v in describe(predictor).items() if isinstance(v, (str, int, float, bool))}
    store.update_run_info(spec.run_id, lambda info: {**info, "model_info": model_info})
    emit("phase", "tracking")
    previous = store.load_result(spec.correct_from) if spec.correct_from is not None else None
    saved = store.load_masks(spec.run_id) if previous is None else {}
    counter.add({loc for (_, loc) in saved if any(loc in s.frames for _, s in todo)})
    display = DisplaySettings.from_dict(spec.display)
    stack = open_stack(spec.paths if len(spec.paths) > 1 else spec.paths[0], pages_as=spec.pages_as)
    recorded = 0  # frames_tracked already added to the run's info

    def record(seq_i: int | None) -> None:
        nonlocal recorded
        delta, recorded = counter.tracked - recorded, counter.tracked

        def change(info: dict) -> dict:
            done = set(info.get("done_sequences", [])) | ({seq_i} if seq_i is not None else set())
            workers = sorted(set(info.get("workers", [])) | {os.getpid()})  # which processes did the work
            return {
                **info,
                "done_sequences": sorted(done),
                "frames_tracked": info.get("frames_tracked", 0) + delta,
                "workers": workers,
            }

        store.update_run_info(spec.run_id, change)

    try:
        for seq_i, seq in todo:
            if cancelled():
                raise Cancelled()
            seq_prompts = [p for p in spec.prompts if seq.index_of(p.loc) is not None]
            if seq_prompts:  # a sequence without a prompt is not the run's: not tracked, not counted
                global_i = spec.seq_indices[seq_i] if spec.seq_indices else seq_i
                _sequence(
                    spec,
                    store,
                    stack,
                    predictor,
                    display,
                    global_i,
                    seq,
                    seq_prompts,
                    saved,
                    previous,
                    counter,
                    cancelled,
                )
                counter.add(seq.frames)
            record(seq_i)
            if only is None:
                store.update_run(spec.run_id, done_frames=len(counter.done))
    finally:
        record(None)
        close = getattr(stack, "close", None)
        if callable(close):
            close()


def execute_part(spec: RunSpec, store: Store, emit: Emit, cancelled: Callable[[], bool]) -> tuple[str, str]:
    """One part of a run shared by several workers: like ``execute`` but leaves the run's status alone."""
    try:
        _execute(spec, store, emit, cancelled)
    except Cancelled:
        return "cancelled", "Cancelled; the finished frames are kept."
    except Exception as err:  # noqa: BLE001 - reported to the executor, which ends the run
        return "failed", run_error(err, store)
    return ("cancelled", "Cancelled; the finished frames are kept.") if cancelled() else ("done", "")


def daughter_ids(spec: RunSpec, seq_i: int, previous_objects=()) -> Iterator[int]:
    """The ids daughters found in sequence ``seq_i`` (its index in the whole run) take, in birth order.

    Why interleaved: sequences are tracked by different workers at once (a CPU pool, Ray units)
    that cannot ask each other for ids; sequence i of n takes base + i, base + i + n, ... so no
    two sequences ever give one id, and a run gives the same ids on every executor. ``base`` lies
    above every object id the run starts with (prompts, parents, a corrected run's objects).
    """
    known = [p.obj_id for p in spec.prompts] + [p.parent for p in spec.prompts if p.parent is not None]
    base = 1 + max([*known, *(int(o) for o in previous_objects), -1])
    n = max(1, spec.n_sequences or len(spec.sequences))
    return itertools.count(base + seq_i, n)


def _sequence(spec, store, stack, predictor, display, seq_i, seq, prompts, saved, previous, counter, cancelled) -> None:
    from sam2web.lineage import lineage_kwargs, track_lineage
    from sam2web.store import objects_to_dict

    def on_frame(loc: Location, masks: dict) -> None:
        items = [(int(obj), Location(*loc), m) for obj, m in masks.items()]
        counter.tracked += 1
        counter.done.add(Location(*loc))
        store.add_masks(spec.run_id, items, done_frames=len(counter.done))
        emit_frame()

    def emit_frame() -> None:
        counter.emit("frame", len(counter.done), counter.total)

    if previous is not None:
        legs = [Leg(seq, prompts, spec.params.direction)]
    else:
        mine = {k: v for k, v in saved.items() if k[1] in set(seq.frames)}
        legs = plan_resume(seq, prompts, spec.params.direction, mine)
    for leg in legs:
        if cancelled():
            raise Cancelled()
        if not leg.prompts:
            continue
        counter.emit("phase", "tracking")
        out = track_lineage(  # lineage hook: track + manual and detected divisions (sam2web/lineage.py)
            stack,
            [leg.sequence],
            leg.prompts,
            predictor,
            display,
            direction=leg.direction,
            cancel=cancelled,
            on_frame=on_frame,
            result=previous,
            new_ids=daughter_ids(spec, seq_i, previous.objects if previous is not None else ()),
            **lineage_kwargs(spec.params),
            on_phase=lambda name: counter.emit("phase", name),  # "divisions", "daughters": the bar says so
        )
        if isinstance(out, TrackResult):  # the objects, with parents, are stored with the run
            store.merge_objects(spec.run_id, objects_to_dict(out.objects))
        if isinstance(out, TrackResult) and previous is not None:
            # A correction's result is the truth for this sequence (it may drop frames of the object).
            frames = set(seq.frames)
            items = [(k[0], k[1], m) for k, m in out.masks.items() if Location(*k[1]) in frames]
            store.replace_masks(spec.run_id, list(frames), items)
        if isinstance(out, TrackResult) and out.partial:
            raise Cancelled()
