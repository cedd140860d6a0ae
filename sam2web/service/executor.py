"""Where runs execute: the executor seam, and the local executor (a worker process per device).

Why out of the web server: a model is hundreds of MB and a run keeps a CPU busy for minutes; in a
worker process it neither slows every page nor dies with a page, and the Streamlit server never
imports torch. Each device has one FIFO lane (two users must not run two models on one device at
once) served by one long-lived worker process that loads each model once and keeps it for later
runs. Progress (phase, frames done, ETA) comes back as events; each finished frame is already in the
store, written by the worker. Cancel reaches the worker at once and takes effect within a frame; a
worker that dies leaves its run "interrupted" with every saved frame kept (Resume continues it).

An executor is anything with ``submit / cancel / progress / is_active / wait / describe``; the
``inline`` variant runs the same code in a thread of this process (tests that patch the tracker).

Interactive sessions (``service/sessions.py``) reach the same worker through a second pair of
pipes: its ``SessionHost`` thread answers prompts beside the run loop (``session_host.py`` says
why), so a box gets its mask while a long run is going on and with the model the runs use.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import itertools
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Protocol

from sam2web.config import settings
from sam2web.errors import UserError
from sam2web.service.spec import (
    CancelCommand,
    FinishedEvent,
    FrameEvent,
    PhaseEvent,
    Progress,
    RunCommand,
    RunSpec,
    StopCommand,
    worst_outcome,
)
from sam2web.service.worker import INTERRUPTED, execute, execute_part, finish, run_error
from sam2web.store import Store, get_store

log = logging.getLogger(__name__)

DIED = (
    "The worker process stopped during this run (exit code {code}); its finished frames are kept. "
    "Press Resume to finish the missing frames."
)


class Executor(Protocol):
    """What the service, the pages and the CLI call; the local, inline and Ray executors all match it."""

    def submit(self, spec: RunSpec) -> int: ...  # queue position: 0 = starts now

    def cancel(self, run_id: int) -> bool: ...

    def progress(self, run_id: int, store: Store | None = None) -> Progress | None: ...

    def is_active(self, run_id: int) -> bool: ...

    def wait(self, run_id: int, timeout: float = 60.0) -> bool: ...

    def describe(self) -> str: ...

    def shutdown(self) -> None: ...


def wait_inactive(executor: Executor, run_id: int, timeout: float) -> bool:
    """Block until a run has left ``executor`` (tests, the CLI, deleting a workspace); True if in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not executor.is_active(run_id):
            return True
        time.sleep(0.02)
    return False


def guess_device(requested: str) -> str:
    """The lane of a run, without importing torch: "auto" is CUDA when an NVIDIA device node exists."""
    if requested != "auto":
        return requested
    if settings().standin:
        return "cpu"
    if os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl"):
        return "cuda"
    if os.uname().sysname == "Darwin" and os.uname().machine == "arm64":
        return "mps"
    return "cpu"


# -- live progress ----------------------------------------------------------------------------
@dataclass
class _Live:
    phase: str = "queued"
    done: int = 0
    total: int = 0
    first_t: float | None = None  # the first frame event after the model was loaded
    first_done: int = 0
    last_t: float = 0.0

    def on_frame(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.first_t is None:
            self.first_t, self.first_done = now, done
        self.done, self.total, self.last_t = done, total, now

    def eta(self) -> float | None:
        """Seconds left: the pace since the first frame, counting down between frames."""
        if self.first_t is None or self.done <= self.first_done or self.total <= self.done:
            return None
        per_frame = (self.last_t - self.first_t) / (self.done - self.first_done)
        return max(0.0, per_frame * (self.total - self.done) - (time.monotonic() - self.last_t))


# -- workers ----------------------------------------------------------------------------------
WORKER_GONE = "The worker process stopped while answering; draw the prompt again."


class NoAnswer(UserError):
    """A session request got no reply in time (the worker is busy or still starting)."""


class _SessionClient:
    """The server's end of a worker's session requests: ids, waiting futures, replies matched to them."""

    def _init_sessions(self) -> None:
        self._pending: dict[int, Future] = {}
        self._ids = itertools.count(1)
        self._pending_lock = threading.Lock()

    def _deliver(self, msg: tuple) -> None:  # pragma: no cover - each worker kind sends its own way
        raise NotImplementedError

    def _resolve(self, req_id: int | None, ok: bool, payload) -> None:
        with self._pending_lock:
            fut = self._pending.pop(req_id, None) if req_id is not None else None
        if fut is not None and not fut.done():
            fut.set_result((ok, payload))

    def _fail_pending(self, sentence: str) -> None:
        with self._pending_lock:
            waiting, self._pending = list(self._pending.values()), {}
        for fut in waiting:
            if not fut.done():
                fut.set_result((False, sentence))

    def post(self, kind: str, *args) -> None:
        """A request whose answer nobody waits for (warm, view)."""
        self._deliver((None, kind, *args))

    def request(self, kind: str, *args, timeout: float = 30.0):
        """A request's answer; a UserError with the worker's sentence when it failed or took too long."""
        fut: Future = Future()
        with self._pending_lock:
            req_id = next(self._ids)
            self._pending[req_id] = fut
        try:
            self._deliver((req_id, kind, *args))
            ok, payload = fut.result(timeout=timeout)
        except FutureTimeout:
            raise NoAnswer(
                f"No answer from the model within {timeout:g} s (it may still be loading); try again in a moment."
            ) from None
        finally:
            with self._pending_lock:
                self._pending.pop(req_id, None)
        if not ok:
            raise UserError(payload)
        return payload


class _InlineWorker(_SessionClient):
    """Runs a spec in the lane's own thread (tests; no process boundary)."""

    where = "in the app's process"

    def __init__(self) -> None:
        self._init_sessions()
        self.host = None

    @property
    def started(self) -> bool:
        return self.host is not None

    def _deliver(self, msg: tuple) -> None:
        if self.host is None:
            from sam2web.service.session_host import SessionHost

            self.host = SessionHost(self._resolve)
        self.host.submit(*msg)

    def run(self, spec: RunSpec, on_event, cancel: threading.Event) -> tuple[str, str]:
        return execute(spec, get_store(spec.data_dir), lambda *m: on_event(m), cancel.is_set)

    def stop(self) -> None:
        if self.host is not None:
            self.host.stop()
            self.host = None


class _ProcessWorker(_SessionClient):
    """One long-lived worker process (spawned: the server is multi-threaded) and its pipes:
    commands and events of runs, and session requests and their replies."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.where = f"a worker process on {device}"
        self.proc: mp.process.BaseProcess | None = None
        self.env: dict[str, str] = {}
        self._send_lock = threading.Lock()
        self._ensure_lock = threading.RLock()
        self._init_sessions()

    @property
    def started(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def _ensure(self, restart: bool = True) -> None:
        """A live worker process; with ``restart`` a fresh one when the settings changed (never
        for a session request: that would kill a run going on)."""
        with self._ensure_lock:
            env = settings().as_env()
            if self.proc is not None and self.proc.is_alive():
                if env == self.env or not restart:
                    return
                self.stop()  # the settings changed (a test, a reconfigured server): a fresh worker reads them
            self.env = env
            ctx = mp.get_context("spawn")
            cmd_r, self.cmd = ctx.Pipe(duplex=False)
            self.events, evt_w = ctx.Pipe(duplex=False)
            sess_r, self.sess_cmd = ctx.Pipe(duplex=False)
            sess_events, sess_w = ctx.Pipe(duplex=False)
            self.proc = ctx.Process(
                target=worker_main,
                args=(self.device, cmd_r, evt_w, env, sess_r, sess_w),
                name=f"sam2web-worker-{self.device}",
                daemon=True,
            )
            self.proc.start()
            for end in (cmd_r, evt_w, sess_r, sess_w):
                end.close()
            threading.Thread(
                target=self._read_replies, args=(sess_events,), daemon=True, name=f"sessions-{self.device}"
            ).start()

    def _read_replies(self, conn) -> None:
        """Replies of this worker process to session requests, until it exits."""
        while True:
            try:
                req_id, ok, payload = conn.recv()
            except (EOFError, OSError):
                conn.close()
                self._fail_pending(WORKER_GONE)
                return
            self._resolve(req_id, ok, payload)

    def _deliver(self, msg: tuple) -> None:
        self._ensure(restart=False)
        try:
            with self._send_lock:
                self.sess_cmd.send(msg)
        except OSError:
            raise UserError(WORKER_GONE) from None

    def _send(self, msg: tuple) -> None:
        with self._send_lock:
            self.cmd.send(msg)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.is_alive() else None

    def run(self, spec: RunSpec, on_event, cancel: threading.Event) -> tuple[str, str]:
        self._ensure()
        self._send(RunCommand(spec))
        cancel_sent = False
        while True:
            if cancel.is_set() and not cancel_sent:
                self._send(CancelCommand(spec.run_id))
                cancel_sent = True
            try:
                ready = self.events.poll(0.05)
                msg = self.events.recv() if ready else None
            except (EOFError, OSError):
                msg, ready = None, True
            if isinstance(msg, FinishedEvent):
                return msg.status, msg.error
            if isinstance(msg, PhaseEvent):
                on_event(("phase", msg.phase))
            elif isinstance(msg, FrameEvent):
                on_event(("frame", msg.done, msg.total))
            elif msg is None and (ready or not self.proc.is_alive()):
                self.proc.join(5)
                code = self.proc.exitcode
                self.proc = None
                return "interrupted", DIED.format(code=code)

    def stop(self) -> None:
        proc = self.proc  # the lane thread may forget a dead worker (self.proc = None) meanwhile
        if proc is not None and proc.is_alive():
            try:
                self._send(StopCommand())
            except OSError:
                pass
            proc.join(10)  # a running frame ends first (the worker cancels it on "stop")
            if proc.is_alive():
                proc.kill()


def worker_main(device: str, cmd_r, evt_w, env: dict[str, str], sess_r=None, sess_w=None) -> None:
    """The worker process: runs specs one at a time; a listener thread takes cancels meanwhile,
    another hands session requests to the ``SessionHost`` thread."""
    os.environ.update(env)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker[%(process)d] %(levelname)s %(message)s")
    if sess_r is not None:
        _serve_sessions(sess_r, sess_w)
    jobs: queue.Queue = queue.Queue()
    cancels: dict[int, threading.Event] = collections.defaultdict(threading.Event)
    lost = threading.Event()  # the server is gone or stopping: runs end within a frame as "interrupted"

    def server_gone(*_: object) -> None:
        lost.set()
        for ev in list(cancels.values()):
            ev.set()
        jobs.put(None)

    # SIGTERM (the server's process group stopped, a system shutdown) ends the running frame cleanly
    signal.signal(signal.SIGTERM, server_gone)

    def listen() -> None:
        while True:
            try:
                msg = cmd_r.recv()
            except (EOFError, OSError):  # the server is gone: stop within a frame, then exit
                server_gone()
                return
            if isinstance(msg, RunCommand):
                cancels[msg.spec.run_id]  # noqa: B018 - create the event before the run starts
                jobs.put(msg.spec)
            elif isinstance(msg, CancelCommand):
                cancels[msg.run_id].set()
            elif isinstance(msg, StopCommand):
                server_gone()
                return

    threading.Thread(target=listen, daemon=True, name="sam2web-worker-listen").start()
    while not lost.is_set() and (spec := jobs.get()) is not None:
        run_id = spec.run_id

        def emit(kind: str, *values, run_id: int = run_id) -> None:
            try:
                evt_w.send(PhaseEvent(run_id, *values) if kind == "phase" else FrameEvent(run_id, *values))
            except OSError:  # nobody reads the events any more: the server died
                server_gone()

        part = spec.only is not None
        store = get_store(spec.data_dir)
        status, error = (execute_part if part else execute)(spec, store, emit, cancels[run_id].is_set)
        cancels.pop(run_id, None)
        if lost.is_set() and status == "cancelled":  # not the user's cancel: the server went away
            status, error = "interrupted", INTERRUPTED
            if not part:
                finish(store, run_id, status, error)
        try:
            evt_w.send(FinishedEvent(run_id, status, error))
        except OSError:
            return


def _serve_sessions(sess_r, sess_w) -> None:
    """The session host of this worker, working on one torch thread.

    Why one thread: the sessions work beside the runs of this worker, and on a shared or busy CPU
    torch's threads mostly wait for each other. Measured through this worker, tiny at 512 under a
    load average of 18 on 2 cores: a warm prompt 5.2 s / 0.69 CPU-s with torch's 2 threads, 0.3 s /
    0.075 CPU-s with one; a cold one 15.8 s / 3.3 CPU-s, then 6.6 s / 1.8 CPU-s. Torch's thread
    count is per thread once a thread has used it, but a thread's first use copies the count of
    the moment, so the main thread (which runs the runs) fixes its own first.
    """
    from sam2web.service.session_host import SessionHost

    threads = None
    if not settings().standin:
        from sam2web.tracking import factory

        factory.init_threads()
        threads = 1

    reply_lock = threading.Lock()

    def reply(req_id, ok, payload) -> None:
        with reply_lock:
            try:
                sess_w.send((req_id, ok, payload))
            except (OSError, ValueError):  # the server is gone: nobody to answer
                pass

    host = SessionHost(reply, threads=threads)

    def listen() -> None:
        while True:
            try:
                msg = sess_r.recv()
            except (EOFError, OSError):
                host.stop()
                return
            host.submit(*msg)

    threading.Thread(target=listen, daemon=True, name="sam2web-worker-sessions").start()


# -- the CPU pool -----------------------------------------------------------------------------
def pool_size(device: str) -> int:
    """Worker processes for a device's lane: on a CPU one per core (at most 4), or ``SAM2WEB_CPU_WORKERS``. Why: a run of several sequences (positions) goes faster as several
    single-threaded workers than as one process with all threads (one thread does 894 ms of work
    per frame, two threads 574 ms: far from 2x; ``bench.run`` prints the measured pool_speedup)."""
    if device != "cpu":
        return 1
    chosen = settings().cpu_workers
    return chosen or min(os.cpu_count() or 1, 4)  # at most 4: each worker holds its own copy of the model


def split(spec: RunSpec, n: int) -> list[RunSpec]:
    """A run's sequences dealt out to ``n`` workers, each with its share of the cores (corrections stay whole)."""
    n = min(n, len(spec.sequences))
    if n <= 1 or spec.correct_from is not None:
        return [spec]
    threads = max(1, (os.cpu_count() or 1) // n)
    return [dataclasses.replace(spec, only=list(range(i, len(spec.sequences), n)), threads=threads) for i in range(n)]


# -- the local executor -----------------------------------------------------------------------
@dataclass
class _Lane:
    device: str
    workers: list  # one, or a CPU pool of worker processes sharing the cores
    queue: collections.deque = field(default_factory=collections.deque)
    running: RunSpec | None = None
    thread: threading.Thread | None = None


class LocalExecutor:
    """One FIFO lane per device, each served by one worker (a process, or a thread when inline)."""

    def __init__(self, processes: bool = True) -> None:
        self.processes = processes
        self.cpu_workers = settings().cpu_workers
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._lanes: dict[str, _Lane] = {}
        self._cancels: dict[int, threading.Event] = {}
        self._live: dict[int, _Live] = {}
        self._where: dict[int, str] = {}
        self._unsaved: dict[int, tuple[str, str]] = {}  # run -> (status, error) its store could not take yet

    def describe(self) -> str:
        if not self.processes:
            return "in the app's own process (inline executor, for tests)"
        return "on this machine: one worker process per device, each keeping its model loaded between runs"

    def _lane(self, device: str) -> _Lane:
        """The lane of ``device`` (made on first use; the caller holds the lock)."""
        lane = self._lanes.get(device)
        if lane is None:
            n = pool_size(device) if self.processes else 1
            workers = [_ProcessWorker(device) for _ in range(n)] if self.processes else [_InlineWorker()]
            lane = self._lanes[device] = _Lane(device, workers)
        return lane

    def session_workers(self, device: str, start: bool = True) -> list:
        """The workers of ``device``'s lane: the first serves interactive sessions, all may be warmed.
        Without ``start``, [] when the lane has no worker process yet (a status must not spawn one)."""
        with self._lock:
            if not start and device not in self._lanes:
                return []
            return list(self._lane(device).workers)

    def devices(self) -> list[str]:
        with self._lock:
            return list(self._lanes)

    def submit(self, spec: RunSpec) -> int:
        with self._lock:
            lane = self._lane(spec.device)
            lane.queue.append(spec)
            self._cancels[spec.run_id] = threading.Event()
            self._live[spec.run_id] = _Live()
            shared = min(len(lane.workers), len(spec.sequences)) if spec.correct_from is None else 1
            self._where[spec.run_id] = lane.workers[0].where + (
                f" (its {len(spec.sequences)} sequences shared by a pool of {shared})" if shared > 1 else ""
            )
            if lane.thread is None or not lane.thread.is_alive():
                lane.thread = threading.Thread(
                    target=self._serve, args=(lane,), daemon=True, name=f"lane-{lane.device}"
                )
                lane.thread.start()
            self._wake.notify_all()
            return len(lane.queue) - (0 if lane.running else 1)

    def cancel(self, run_id: int) -> bool:
        """A queued run is dropped at once; a running one stops within a frame."""
        with self._lock:
            event = self._cancels.get(run_id)
            if event is None:
                return self._end_orphan(run_id)
            event.set()
            dropped = None
            for lane in self._lanes.values():
                for spec in list(lane.queue):
                    if spec.run_id == run_id:
                        lane.queue.remove(spec)
                        dropped = spec
            if dropped is not None:
                self._forget(run_id)
        if dropped is not None:
            finish(get_store(dropped.data_dir), run_id, "cancelled", "Cancelled before it started.")
        return True

    def _end_orphan(self, run_id: int) -> bool:
        """Cancel of a run the store calls active but no lane holds (its lane or process was lost):
        end it now, so Cancel always ends a run."""
        store = get_store(str(settings().data_dir))
        run = store.get_run(run_id)
        if run is None or run.finished:
            return False
        return finish(store, run_id, "cancelled", "Cancelled; the finished frames are kept.")

    def is_active(self, run_id: int) -> bool:
        with self._lock:
            return run_id in self._cancels

    def wait(self, run_id: int, timeout: float = 60.0) -> bool:
        return wait_inactive(self, run_id, timeout)

    def worker_pid(self, device: str) -> int | None:
        lane = self._lanes.get(device)
        return getattr(lane.workers[0], "pid", None) if lane else None

    def queue_position(self, run_id: int) -> int | None:
        with self._lock:
            for lane in self._lanes.values():
                if lane.running is not None and lane.running.run_id == run_id:
                    return 0
                for i, spec in enumerate(lane.queue):
                    if spec.run_id == run_id:
                        # the head of an idle lane is about to start: it is 0, not 1 (as submit() says)
                        return i + (1 if lane.running is not None else 0)
        return None

    def progress(self, run_id: int, store: Store | None = None) -> Progress | None:
        """The store's record of a run, refined by this executor's live phase, progress and ETA."""
        store = store or get_store(str(settings().data_dir))
        run = store.get_run(run_id)
        if run is None:
            return None
        position = self.queue_position(run_id)
        with self._lock:
            live = self._live.get(run_id)
            where = self._where.get(run_id, "")
        unsaved = self._unsaved.get(run_id)
        if unsaved is not None and not run.finished and live is None:  # its end could not be written yet
            if finish(store, run_id, *unsaved, tries=1):
                self._unsaved.pop(run_id, None)
            run = dataclasses.replace(run, status=unsaved[0], error=unsaved[1])
        done, total, eta, phase = run.done_frames, run.total_frames, None, ""
        if live is not None and not run.finished:
            phase = live.phase
            if live.first_t is not None:
                done, total = live.done, live.total or total
            eta = live.eta()
        return Progress(run.id, run.status, done, total, eta, position, phase, run.error, where)

    def shutdown(self) -> None:
        with self._lock:
            lanes = list(self._lanes.values())
        for lane in lanes:
            for worker in lane.workers:
                worker.stop()

    # -- internals ------------------------------------------------------------------------------
    def _forget(self, run_id: int) -> None:
        self._cancels.pop(run_id, None)
        self._live.pop(run_id, None)

    def _serve(self, lane: _Lane) -> None:
        while True:
            with self._lock:
                while not lane.queue:
                    self._wake.wait(timeout=30.0)
                    if not lane.queue:
                        lane.thread = None  # idle: submit() starts a new thread; the process stays
                        return
                spec = lane.queue.popleft()
                lane.running = spec
                cancel = self._cancels[spec.run_id]
                live = self._live[spec.run_id]
            store = get_store(spec.data_dir)
            try:
                parts = split(spec, len(lane.workers))
                if len(parts) == 1:
                    status, error = lane.workers[0].run(spec, lambda msg, live=live: self._on_event(live, msg), cancel)
                else:
                    status, error = self._run_parts(lane, spec, parts, live, cancel, store)
            except Exception as err:  # noqa: BLE001 - the lane must keep serving other runs
                log.exception("run %s could not be executed", spec.run_id)
                status, error = "failed", run_error(err, store)
            try:
                self._settle(store, spec.run_id, status, error)
            finally:
                with self._lock:
                    lane.running = None
                    self._forget(spec.run_id)

    def _settle(self, store: Store, run_id: int, status: str, error: str) -> None:
        """Make the store say how the run ended, unless the worker already did; what cannot be
        written now (a full disk) is kept here, reported by ``progress`` and written later."""
        try:
            run = store.get_run(run_id)
            if run is None or run.finished:
                return
        except Exception:  # noqa: BLE001 - unreadable now: keep the state and retry later
            log.warning("run %s: the store cannot be read to record its end", run_id)
        if not finish(store, run_id, status, error):
            self._unsaved[run_id] = (status, error)

    def _run_parts(self, lane: _Lane, spec: RunSpec, parts, live: _Live, cancel, store) -> tuple[str, str]:
        """The parts of one run on the pool's workers at once; the run's status is decided here."""
        store.update_run(spec.run_id, status="running", error="", total_frames=spec.total_frames)
        progress: dict[int, tuple[int, int]] = {}
        results: list[tuple[str, str]] = [("failed", "")] * len(parts)
        lock = threading.Lock()

        def on_event(i: int, msg: tuple) -> None:
            if msg[0] == "frame":
                with lock:
                    progress[i] = (int(msg[1]), int(msg[2]))
                    done, total = (sum(v) for v in zip(*progress.values(), strict=True))
                self._on_event(live, ("frame", done, total))
                try:
                    store.update_run(spec.run_id, done_frames=done)
                except Exception:  # noqa: BLE001 - progress is advisory; the part's own end says what failed
                    log.warning("run %s: progress could not be saved", spec.run_id)
            else:
                self._on_event(live, msg)

        def one(i: int) -> None:
            try:
                results[i] = lane.workers[i].run(parts[i], lambda msg: on_event(i, msg), cancel)
            except Exception as err:  # noqa: BLE001 - one part's failure ends the run, never the lane
                results[i] = ("failed", run_error(err, store))
            if results[i][0] != "done":
                cancel.set()  # one part failed or stopped: stop the others within a frame

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(parts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return worst_outcome(results)

    @staticmethod
    def _on_event(live: _Live, msg: tuple) -> None:
        if msg[0] == "phase":
            live.phase = msg[1]
        elif msg[0] == "frame":
            live.on_frame(int(msg[1]), int(msg[2]))


_EXECUTOR: LocalExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def get_executor() -> Executor:
    """The executor of this process, chosen by ``SAM2WEB_EXECUTOR`` (shared by every browser session)."""
    global _EXECUTOR
    if settings().executor == "ray":  # sequences fan out to Ray actors (service/ray_executor.py)
        from sam2web.service.ray_executor import get_ray_executor

        return get_ray_executor()
    with _EXECUTOR_LOCK:
        want_processes = settings().executor != "inline"
        if (
            _EXECUTOR is None
            or _EXECUTOR.processes != want_processes
            or _EXECUTOR.cpu_workers != settings().cpu_workers
        ):
            if _EXECUTOR is not None:
                _EXECUTOR.shutdown()
            _EXECUTOR = LocalExecutor(processes=want_processes)
        return _EXECUTOR


@atexit.register
def _shutdown() -> None:
    if _EXECUTOR is not None:
        _EXECUTOR.shutdown()
