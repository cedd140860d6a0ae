"""A process-wide job runner: tracking runs in background threads, queued per device.

Why: a run takes seconds to minutes per frame on a CPU. The page must stay usable, a refresh
must not lose the run, and two users on one server must not run two models on one device at
once (they would both crawl, or the GPU would run out of memory). So each device gets one
worker thread consuming a FIFO queue; every run reports per-frame progress and an ETA, can be
cancelled within a frame, and persists each finished frame to the Store as it comes.

The predictor is built once per (model, checkpoint, device, image size, precision) and shared
read-only by every run of the process (``get_predictor``): the same role as st.cache_resource,
but reachable from worker threads, which have no Streamlit script context.

Injection points for tests (documented, stable):
  * ``sam2web.tracking.model.load_predictor`` is looked up at call time, so monkeypatching it works;
  * ``SAM2WEB_STANDIN=1`` in the environment uses ``sam2web.tracking.track.StandInTracker`` instead of SAM2.
No streamlit here.
"""

from __future__ import annotations

import collections
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sam2web.errors import UserError
from sam2web.store import Store
from sam2web.types import CompactMask, Location, TrackResult

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a job when the user pressed Cancel (caught by the runner)."""


@dataclass
class JobContext:
    """What a job's work function may use: progress, the cancel flag and per-frame saving."""

    run_id: int
    store: Store
    cancel_event: threading.Event
    runner: JobRunner
    done: int = 0
    total: int = 0

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def set_total(self, total: int) -> None:
        self.total = int(total)
        self.runner._set_progress(self.run_id, self.done, self.total)
        self.store.update_run(self.run_id, total_frames=self.total)

    def save_frames(self, items: list[tuple[int, Location, CompactMask]], frames_done: int = 1) -> None:
        """Persist masks of finished frame(s) and advance the progress in one transaction."""
        self.done = min(self.done + frames_done, self.total) if self.total else self.done + frames_done
        self.store.add_masks(self.run_id, items, done_frames=self.done)
        self.runner._set_progress(self.run_id, self.done, self.total)


@dataclass
class _Job:
    run_id: int
    device: str
    work: Callable[[JobContext], None]
    store: Store
    cancel_event: threading.Event = field(default_factory=threading.Event)


@dataclass
class JobStatus:
    """A run as the page shows it: state, progress, ETA, queue position, error sentence."""

    run_id: int
    status: str
    done: int
    total: int
    eta_s: float | None
    queue_position: int | None  # 0 = running now, n = n-th waiting; None = not in the queue
    error: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


def error_sentence(err: BaseException) -> str:
    """One sentence for a failed run: the user's fault says what to do; memory/device faults too."""
    if isinstance(err, UserError):
        return str(err)
    text = f"{type(err).__name__}: {err}"
    low = text.lower()
    if "out of memory" in low or isinstance(err, MemoryError):
        return (
            "The device ran out of memory during this run; choose a smaller model, a smaller image "
            "size or fewer frames, and run again."
        )
    if "cuda" in low or "mps" in low or "device" in low:
        return f"The compute device failed during this run ({text[:200]}); try the CPU device or run again."
    return f"Tracking failed unexpectedly ({text[:300]}); the finished frames are kept, try Re-run."


class JobRunner:
    """One worker thread per device, each draining its own FIFO queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, collections.deque[_Job]] = {}
        self._running: dict[str, _Job | None] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._wake: dict[str, threading.Condition] = {}
        self._progress: dict[int, tuple[int, int, float | None, float]] = {}  # done, total, started, last
        self._jobs: dict[int, _Job] = {}
        self._finished: dict[int, str] = {}

    # -- public ---------------------------------------------------------------------------------
    def submit(self, store: Store, run_id: int, device: str, work: Callable[[JobContext], None]) -> int:
        """Queue a run on ``device``; returns its position (0 = it starts now)."""
        job = _Job(int(run_id), device, work, store)
        with self._lock:
            queue = self._queues.setdefault(device, collections.deque())
            queue.append(job)
            self._jobs[job.run_id] = job
            cond = self._wake.setdefault(device, threading.Condition(self._lock))
            thread = self._threads.get(device)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(
                    target=self._worker, args=(device,), daemon=True, name=f"sam2web-jobs-{device}"
                )
                self._threads[device] = thread
                thread.start()
            cond.notify_all()
            position = len(queue) - (0 if self._running.get(device) else 1)
        return position

    def cancel(self, run_id: int) -> bool:
        """Ask a run to stop. A queued run is dropped at once; a running one stops within a frame."""
        with self._lock:
            job = self._jobs.get(int(run_id))
            if job is None:
                return False
            job.cancel_event.set()
            queue = self._queues.get(job.device)
            if queue is not None and job in queue:
                queue.remove(job)
                self._jobs.pop(job.run_id, None)
                dropped = True
            else:
                dropped = False
        if dropped:
            job.store.update_run(job.run_id, status="cancelled", error="Cancelled before it started.")
        return True

    def queue_position(self, run_id: int) -> int | None:
        with self._lock:
            job = self._jobs.get(int(run_id))
            if job is None:
                return None
            if self._running.get(job.device) is job:
                return 0
            queue = self._queues.get(job.device, collections.deque())
            try:
                return list(queue).index(job) + 1
            except ValueError:
                return None

    def is_active(self, run_id: int) -> bool:
        with self._lock:
            return int(run_id) in self._jobs

    def status(self, store: Store, run_id: int) -> JobStatus | None:
        """Live status: the store's record, refined by this process's in-memory progress and ETA."""
        run = store.get_run(run_id)
        if run is None:
            return None
        position = self.queue_position(run_id)
        done, total = run.done_frames, run.total_frames
        eta = None
        with self._lock:
            prog = self._progress.get(int(run_id))
        if prog is not None:
            done, mem_total, started, last = prog
            # The job may not have called set_total yet: the stored total (known when the run was
            # created) is the truth until it does, so a just-started run never shows "0 of 0".
            total = mem_total or total
            if started is not None and done > 0 and total > done:
                eta = (last - started) / done * (total - done)
        return JobStatus(run.id, run.status, done, total, eta, position, run.error)

    def wait(self, run_id: int, timeout: float = 60.0) -> bool:
        """Block until a run leaves the runner (tests and the CLI); True when it finished in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_active(run_id):
                return True
            time.sleep(0.02)
        return False

    # -- internals ------------------------------------------------------------------------------
    def _set_progress(self, run_id: int, done: int, total: int) -> None:
        with self._lock:
            old = self._progress.get(run_id)
            started = old[2] if old else None
            now = time.monotonic()
            self._progress[run_id] = (done, total, started if started is not None else now, now)

    def _worker(self, device: str) -> None:
        while True:
            with self._lock:
                cond = self._wake[device]
                queue = self._queues[device]
                while not queue:
                    cond.wait(timeout=30.0)
                    if not queue:
                        # Idle: let the thread end; submit() starts a new one when needed.
                        self._threads.pop(device, None)
                        return
                job = queue.popleft()
                self._running[device] = job
            try:
                self._execute(job)
            finally:
                with self._lock:
                    self._running[device] = None
                    self._jobs.pop(job.run_id, None)

    def _execute(self, job: _Job) -> None:
        store = job.store
        run = store.get_run(job.run_id)
        total = run.total_frames if run else 0  # seed with the stored total: never "Frame 0 of 0"
        ctx = JobContext(job.run_id, store, job.cancel_event, self, total=total)
        with self._lock:
            self._progress[job.run_id] = (0, total, time.monotonic(), time.monotonic())
        if job.cancel_event.is_set():
            store.update_run(job.run_id, status="cancelled", error="Cancelled before it started.")
            return
        store.update_run(job.run_id, status="running", error="")
        try:
            job.work(ctx)
        except Cancelled:
            store.update_run(job.run_id, status="cancelled", error="Cancelled; the finished frames are kept.")
            return
        except BaseException as err:  # noqa: BLE001 - a run's failure must never take the server down
            log.exception("run %s failed", job.run_id)
            store.update_run(job.run_id, status="failed", error=error_sentence(err))
            return
        if job.cancel_event.is_set():
            store.update_run(job.run_id, status="cancelled", error="Cancelled; the finished frames are kept.")
        else:
            store.update_run(job.run_id, status="done", error="")


_RUNNER: JobRunner | None = None
_RUNNER_LOCK = threading.Lock()


def get_runner() -> JobRunner:
    """The one runner of this process (shared by every browser session)."""
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None:
            _RUNNER = JobRunner()
        return _RUNNER


# -- the shared predictor ---------------------------------------------------------------------
_PREDICTORS: dict[tuple, Any] = {}
_PREDICTOR_LOCK = threading.Lock()
LOAD_COUNT = collections.Counter()  # how many times each key was built (tests check sharing)


def predictor_key(size: str, checkpoint: str | None, device: str, image_size: int | None, precision: str) -> tuple:
    return (
        size,
        checkpoint or "",
        device,
        image_size or 0,
        precision,
        os.environ.get("SAM2WEB_STANDIN", ""),
        os.environ.get("SAM2WEB_RANDOM_WEIGHTS", ""),
    )


def get_predictor(
    size: str = "small",
    checkpoint: str | None = None,
    device: str = "auto",
    image_size: int | None = None,
    precision: str = "auto",
) -> Any:
    """Build the predictor once per settings and share it between runs and sessions."""
    key = predictor_key(size, checkpoint, device, image_size, precision)
    with _PREDICTOR_LOCK:
        if key in _PREDICTORS:
            return _PREDICTORS[key]
        if os.environ.get("SAM2WEB_STANDIN") == "1":
            from sam2web.tracking import track as track_mod

            predictor = track_mod.StandInTracker()
        else:
            from sam2web.tracking import model as model_mod

            kwargs: dict[str, Any] = {"size": size, "checkpoint": checkpoint, "device": device}
            if image_size:
                kwargs["image_size"] = image_size
            if precision and precision != "auto":
                kwargs["precision"] = precision
            predictor = model_mod.load_predictor(**kwargs)
        LOAD_COUNT[key] += 1
        _PREDICTORS[key] = predictor
        return predictor


def clear_predictors() -> None:
    with _PREDICTOR_LOCK:
        _PREDICTORS.clear()
        LOAD_COUNT.clear()


# -- the tracking job -------------------------------------------------------------------------
@dataclass
class TrackJob:
    """Everything a tracking run needs, resolved by the page before it is queued.

    ``open_stack`` is a zero-argument callable so the (possibly large) stack is opened in the
    worker, not in the page's rerun.
    """

    open_stack: Callable[[], Any]
    sequences: list
    prompts: list
    display: Any
    direction: str
    model: str = "small"
    checkpoint: str | None = None
    device: str = "auto"
    image_size: int | None = None
    precision: str = "auto"
    skip_sequences: set = field(default_factory=set)  # indices already done (Resume)
    previous: TrackResult | None = None  # a correction: re-track only the prompted objects, keep the rest

    def __call__(self, ctx: JobContext) -> None:

        stack = self.open_stack()
        try:
            self._track(ctx, stack)
        finally:
            close = getattr(stack, "close", None)
            if callable(close):
                close()

    def _track(self, ctx: JobContext, stack: Any) -> None:
        from sam2web.tracking import track as track_mod

        todo = [(i, s) for i, s in enumerate(self.sequences) if i not in self.skip_sequences]
        ctx.set_total(sum(len(s.frames) for _, s in todo))
        predictor = get_predictor(self.model, self.checkpoint, self.device, self.image_size, self.precision)
        params = inspect.signature(track_mod.track).parameters
        base = 0
        for seq_i, seq in todo:
            if ctx.cancelled():
                raise Cancelled()
            ctx.done = base
            seq_prompts = [p for p in self.prompts if seq.index_of(p.loc) is not None]
            if not seq_prompts:
                base += len(seq.frames)
                ctx.save_frames([], frames_done=len(seq.frames))
                continue
            limit = base + len(seq.frames)

            def on_frame(loc: Location, masks: dict, limit: int = limit) -> None:
                # Persist each finished frame at once: a crash or refresh keeps it.
                items = [(int(obj), Location(*loc), m) for obj, m in masks.items()]
                ctx.save_frames(items, frames_done=1 if ctx.done < limit else 0)

            kwargs: dict[str, Any] = {"direction": self.direction, "cancel": ctx.cancelled, "on_frame": on_frame}
            if self.previous is not None:
                kwargs["result"] = self.previous
            kwargs = {k: v for k, v in kwargs.items() if k in params}
            out = track_mod.track(stack, [seq], seq_prompts, predictor, self.display, **kwargs)
            if isinstance(out, TrackResult):
                # The returned result is the truth for this sequence (a correction may drop frames).
                frames = set(seq.frames)
                items = [(k[0], k[1], m) for k, m in out.masks.items() if Location(*k[1]) in frames]
                ctx.store.replace_masks(ctx.run_id, list(frames), items)
                if out.partial:
                    raise Cancelled()
            base = limit
            ctx.done = base - 1
            ctx.save_frames([], frames_done=1)
            if ctx.cancelled():
                raise Cancelled()
            run = ctx.store.get_run(ctx.run_id)
            info = run.info if run else {}
            done_seq = sorted(set(info.get("done_sequences", [])) | {seq_i})
            ctx.store.update_run(ctx.run_id, info={**info, "done_sequences": done_seq})
