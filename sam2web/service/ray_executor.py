"""The Ray executor: a run's sequences fan out to worker actors on a Ray cluster.

Why Ray and not a scheduler of our own: it places actors on GPUs or CPU slots, restarts a dead
actor and re-runs the task it held, and its actors keep a model loaded between tasks. What is
ours is small: a run is split into one unit per sequence (sequences are independent), the driver
thread here hands the next unit to a free actor, polls the busy actors for per-frame progress,
and writes the run's status and bookkeeping (``done_sequences``, frames tracked, where each
sequence ran) into the store when the units come back. Actors write masks straight into the
store at ``spec.data_dir`` (idempotent: keyed by run, object and frame), read frames from
``spec.paths``, and never receive arrays through the object store.

A unit re-run after its actor died continues from its last saved frame (``worker.plan_resume``),
so a killed worker loses and doubles nothing. The actors belong to this driver: if the driver
(the app, the CLI) dies, Ray ends them and the next server marks the run "interrupted", as the
local executor does. Token authentication is always on: a cluster without it is refused.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sam2web.config import Settings, settings
from sam2web.errors import UserError
from sam2web.service.executor import _Live, wait_inactive
from sam2web.service.spec import Progress, RunSpec, worst_outcome
from sam2web.service.worker import error_sentence, execute
from sam2web.store import Store, get_store

log = logging.getLogger(__name__)

INSTALL = (
    "Ray is not installed; add it with `pip install 'sam2web[ray]'` (or `pip install ray==2.60.0`), "
    "or set SAM2WEB_EXECUTOR=local."
)
DIED = (
    "A Ray worker stopped during this run more often than SAM2WEB_RAY_RETRIES allows; its finished frames "
    "are kept. Press Resume to finish the missing frames."
)
POLL_S = 0.2  # how often the driver asks busy workers for progress and new masks
CONTROL = "control"  # the actors' concurrency group for poll/cancel: never queued behind a sequence


def require_ray():
    """``ray``, or the one sentence that says how to add it."""
    try:
        import ray
    except ImportError:
        raise UserError(INSTALL) from None
    return ray


# -- the worker actor (runs on the cluster) ------------------------------------------------------
class _PartStore:
    """The store as one unit (one sequence of a run) sees it on a worker: no database at all.

    Why: the data folder's SQLite database must not be written from other machines (its WAL needs
    shared memory, which network file systems do not give), and several units of one run execute
    at once. So a unit gets from its spec what it must read (the masks already saved for its
    sequence, a correction's previous result) and its writes become operations that the driver
    fetches while the unit runs and applies to the store, in order. Run-level writes (status,
    totals, info) are the driver's; ``model_info`` and ``frames_tracked`` are kept for its result.
    """

    def __init__(self, spec: RunSpec, ops: list, lock: threading.Lock) -> None:
        self.spec, self.ops, self.lock = spec, ops, lock
        self.model_info: dict = {}
        self.frames_tracked = 0

    def get_run(self, run_id: int) -> None:
        return None  # nothing recorded as done: the driver hands out only sequences still to do

    def update_run(self, run_id: int, *, info: dict | None = None, **_ignored: Any) -> None:
        if info:
            self.model_info = info.get("model_info", self.model_info)
            self.frames_tracked = int(info.get("frames_tracked", self.frames_tracked))

    def update_run_info(self, run_id: int, change) -> dict:
        info = change({"model_info": self.model_info, "frames_tracked": self.frames_tracked})
        self.model_info = info.get("model_info", self.model_info)
        self.frames_tracked = int(info.get("frames_tracked", self.frames_tracked))
        return info

    def load_masks(self, run_id: int) -> dict:
        return dict(self.spec.saved or {})

    def load_result(self, run_id: int):
        return self.spec.previous

    def add_masks(self, run_id: int, items, done_frames: int | None = None) -> None:
        with self.lock:
            self.ops.append(("add", list(items)))

    def replace_masks(self, run_id: int, locs, items) -> None:
        with self.lock:
            self.ops.append(("replace", list(locs), list(items)))

    def merge_objects(self, run_id: int, objects: dict) -> dict:
        with self.lock:
            self.ops.append(("objects", dict(objects)))
        return objects


class SequenceWorker:
    """One Ray actor: loads each model once (``factory.get_predictor``) and runs one unit at a time.

    ``poll`` and ``cancel`` are called in the ``control`` concurrency group, so they answer while
    ``run`` is busy in the default group (which runs one task at a time).
    """

    def __init__(self, env: dict[str, str]) -> None:
        os.environ.update(env)  # the driver's SAM2WEB_* settings: stand-in, random weights, checkpoints...
        self._lock = threading.Lock()
        self._live: dict[tuple[str, int], tuple[str, int, int]] = {}  # (token, sequence) -> phase, done, total
        self._ops: dict[tuple[str, int], list] = {}
        # Keyed by the submission's token: run ids restart at 1 in every data folder.
        self._cancels: dict[str, threading.Event] = collections.defaultdict(threading.Event)

    def run(self, spec: RunSpec, index: int) -> dict:
        import ray

        start = time.time()
        token = spec.ray_token
        key = (token, index)
        with self._lock:
            cancel = self._cancels[token]
            self._live[key] = ("loading", 0, spec.total_frames)
            ops = self._ops[key] = []

        def emit(kind: str, *values: Any) -> None:
            with self._lock:
                phase, done, total = self._live.get(key, ("loading", 0, 0))
                if kind == "phase":
                    self._live[key] = (values[0], done, total)
                elif kind == "frame":
                    self._live[key] = (phase, int(values[0]), int(values[1]))

        part = _PartStore(spec, ops, self._lock)
        missing = [p for p in spec.paths if not os.path.exists(p)]
        if missing:
            status, error = (
                "failed",
                (
                    f"A Ray worker on {os.uname().nodename} cannot read {missing[0]}; mount the data folder there "
                    "(read-only is enough) or set SAM2WEB_RAY_DATA_DIR to its path on the workers."
                ),
            )
        else:
            status, error = execute(spec, part, emit, cancel.is_set)
        with self._lock:
            self._live.pop(key, None)
            rest = self._ops.pop(key, [])
            if not cancel.is_set():
                self._cancels.pop(token, None)
        return {
            "status": status,
            "error": error,
            "ops": list(rest),
            "model_info": part.model_info,
            "frames_tracked": part.frames_tracked,
            "node": ray.get_runtime_context().get_node_id(),
            "host": os.uname().nodename,
            "pid": os.getpid(),
            "start": start,
            "end": time.time(),
        }

    def poll(self) -> dict:
        """Progress of the unit in hand, and the writes it made since the last poll (handed over once)."""
        with self._lock:
            ops = {key: list(v) for key, v in self._ops.items() if v}
            for v in self._ops.values():
                v.clear()
            return {"live": dict(self._live), "ops": ops}

    def cancel(self, token: str) -> None:
        with self._lock:
            self._cancels[token].set()

    def pid(self) -> tuple[int, str]:
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()


# -- the driver side -----------------------------------------------------------------------------
@dataclass
class _Unit:
    run_id: int
    index: int
    spec: RunSpec  # the unit's spec: one sequence, run-wide paths and parameters
    retries: int = 0  # times it was resubmitted after its actor died


@dataclass
class _Slot:
    actor: Any
    unit: _Unit | None = None
    ref: Any = None
    poll_ref: Any = None


@dataclass
class _RayRun:
    spec: RunSpec
    store: Store
    units: dict[int, _Unit]
    frames: dict[int, int]  # sequence index -> frames (its total until the unit says otherwise)
    done: dict[int, int] = field(default_factory=dict)  # index -> frames done (live)
    finished: set[int] = field(default_factory=set)
    results: list[dict] = field(default_factory=list)
    started: bool = False
    cancelled: bool = False
    phase: str = "queued"
    live: _Live = field(default_factory=_Live)

    @property
    def outstanding(self) -> bool:
        return len(self.finished) < len(self.units)


def _worker_options(cfg: Settings) -> dict:
    """Actor options from SAM2WEB_RAY_RESOURCES: an explicit num_cpus always (Ray sets OMP threads from it)."""
    res = dict(cfg.ray_resources)
    options: dict[str, Any] = {"num_cpus": res.pop("CPU", 1.0), "num_gpus": res.pop("GPU", 0.0)}
    if res:
        options["resources"] = res
    return options


def _ensure_token_auth(cfg: Settings) -> None:
    """Token authentication on, whatever the cluster: never connect to or start one without it."""
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode and mode != "token":
        raise UserError(
            f"RAY_AUTH_MODE={mode} would run the Ray cluster without authentication; unset it "
            "(sam2web always uses token authentication, see docs/scale-out.md)."
        )
    os.environ["RAY_AUTH_MODE"] = "token"
    if cfg.ray_token_file is not None:
        if not cfg.ray_token_file.is_file():
            raise UserError(
                f"SAM2WEB_RAY_TOKEN_FILE {cfg.ray_token_file} is not a file; copy the cluster's token there "
                "(`ray get-auth-token` prints it on the head node)."
            )
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(cfg.ray_token_file)
    refresh_auth_config()


def refresh_auth_config() -> None:
    """Make an already imported Ray read RAY_AUTH_* again (it caches its config at import).

    Ray does the same when it turns token auth on for a new local cluster; without it a process that
    imported ray before setting the variables would connect unauthenticated and be refused.
    """
    import sys

    if "ray" not in sys.modules:
        return
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # another Ray version: it read the variables at import
        pass


class RayExecutor:
    """Sequences of every run fan out to ``SAM2WEB_RAY_WORKERS`` actors; runs are served FIFO."""

    def __init__(self, cfg: Settings | None = None, store: Store | None = None) -> None:
        """``store``: the store of runs submitted here (the CLI's private one); default ``get_store(data_dir)``."""
        self.cfg = cfg or settings()
        self._store = store
        self.key = _key(self.cfg)
        self._lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self._runs: dict[int, _RayRun] = {}
        self._pending: collections.deque[_Unit] = collections.deque()
        self._slots: list[_Slot] = []
        self._thread: threading.Thread | None = None
        self._connected = False
        self._owns_ray = False
        self._nodes = 0
        self.startup_s: float | None = None  # connect + workers ready (bench)

    # -- the protocol --------------------------------------------------------------------------
    def describe(self) -> str:
        res = ", ".join(f"{k} {v:g}" for k, v in self.cfg.ray_resources)
        where = self.cfg.ray_address or "a private Ray cluster on this machine"
        if where != "a private Ray cluster on this machine":
            where = f"the Ray cluster at {where}"
        with self._lock:
            n = len(self._slots)
        if n:
            nodes = f" on {self._nodes} node{'s' if self._nodes != 1 else ''}" if self._nodes else ""
            return f"on {where}: {n} worker{'s' if n != 1 else ''} ({res} each){nodes}, one sequence at a time each"
        count = str(self.cfg.ray_workers) if self.cfg.ray_workers else "as many workers as fit"
        return f"on {where}: {count} ({res} each), started with the first run"

    def submit(self, spec: RunSpec) -> int:
        require_ray()
        _ensure_token_auth(self.cfg)
        store = self._store if self._store is not None else get_store(spec.data_dir)
        spec = dataclasses.replace(spec, ray_token=uuid.uuid4().hex)
        run = store.get_run(spec.run_id)
        already = set((run.info if run else {}).get("done_sequences", []))
        prompted = {
            i
            for i, seq in enumerate(spec.sequences)
            if i not in already and any(seq.index_of(p.loc) is not None for p in spec.prompts)
        }
        saved = store.load_masks(spec.run_id) if spec.correct_from is None else {}
        previous = store.load_result(spec.correct_from) if spec.correct_from is not None else None
        units = {i: _Unit(spec.run_id, i, self._unit_spec(spec, i, saved, previous)) for i in sorted(prompted)}
        todo = [i for i in range(len(spec.sequences)) if i not in already]
        # A sequence without a prompt is not tracked and not counted (review.own_frames): 0 of 0 frames.
        rec = _RayRun(spec, store, units, {i: len(spec.sequences[i].frames) if i in units else 0 for i in todo})
        for i in todo:
            if i not in units:
                rec.done[i] = 0
        with self._lock:
            position = self._position_locked(None)
            self._runs[spec.run_id] = rec
            self._pending.extend(units.values())
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True, name="sam2web-ray-driver")
                self._thread.start()
        store.update_run(spec.run_id, total_frames=sum(rec.frames.values()))
        return position

    def cancel(self, run_id: int) -> bool:
        """Queued units are dropped at once; running ones stop within a frame."""
        with self._lock:
            rec = self._runs.get(run_id)
            if rec is None:
                return False
            rec.cancelled = True
            self._pending = collections.deque(u for u in self._pending if u.run_id != run_id)
            busy = [s.actor for s in self._slots if s.unit is not None and s.unit.run_id == run_id]
        for actor in busy:
            actor.cancel.options(concurrency_group=CONTROL).remote(rec.spec.ray_token)
        return True

    def is_active(self, run_id: int) -> bool:
        with self._lock:
            return run_id in self._runs

    def wait(self, run_id: int, timeout: float = 60.0) -> bool:
        return wait_inactive(self, run_id, timeout)

    def queue_position(self, run_id: int) -> int | None:
        with self._lock:
            return self._position_locked(run_id)

    def progress(self, run_id: int, store: Store | None = None) -> Progress | None:
        store = store or get_store(str(settings().data_dir))
        run = store.get_run(run_id)
        if run is None:
            return None
        position = self.queue_position(run_id)
        with self._lock:
            rec = self._runs.get(run_id)
            done, total, eta, phase = run.done_frames, run.total_frames, None, ""
            if rec is not None and not run.finished:
                phase = rec.phase
                done, total = sum(rec.done.values()), sum(rec.frames.values())
                eta = rec.live.eta()
            n = len(self._slots)
        cluster = f"the Ray cluster at {self.cfg.ray_address}" if self.cfg.ray_address else "a private Ray cluster"
        where = f"{cluster} ({n} worker{'s' if n != 1 else ''})" if n else cluster
        return Progress(run.id, run.status, done, total, eta, position, phase, run.error, where)

    def shutdown(self) -> None:
        """Cancel what runs, end the actors, and the private cluster if this executor started one."""
        with self._lock:
            ids = list(self._runs)
        for run_id in ids:
            self.cancel(run_id)
        for run_id in ids:
            self.wait(run_id, 10)
        if not self._connected:
            return
        ray = require_ray()
        with self._lock:
            slots, self._slots = self._slots, []
            self._connected = False
        for slot in slots:
            try:
                ray.kill(slot.actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    # -- extras for tests and benchmarks ---------------------------------------------------------
    def worker_pids(self, timeout: float = 30.0) -> list[tuple[int, str]]:
        """(pid, node id) of each actor."""
        ray = require_ray()
        with self._lock:
            actors = [s.actor for s in self._slots]
        return ray.get([a.pid.options(concurrency_group=CONTROL).remote() for a in actors], timeout=timeout)

    def start(self, timeout: float = 120.0) -> None:
        """Connect and start the workers now (the first submit does it otherwise)."""
        require_ray()
        _ensure_token_auth(self.cfg)
        self._connect(timeout)

    # -- internals -------------------------------------------------------------------------------
    def _position_locked(self, run_id: int | None) -> int | None:
        """0: runs now; n: n-th in line (runs with units still waiting are served first come, first served).

        ``run_id`` None: the position a run submitted now would get.
        """
        order: list[int] = []
        for unit in self._pending:
            if unit.run_id not in order:
                order.append(unit.run_id)
        if run_id is None:
            free = not self._slots or any(s.unit is None for s in self._slots)
            return 0 if free and not order else len(order) + 1
        rec = self._runs.get(run_id)
        if rec is None:
            return None
        if rec.started or run_id not in order:
            return 0
        return order.index(run_id) + 1

    def _unit_spec(self, spec: RunSpec, index: int, saved: dict, previous: Any) -> RunSpec:
        """One sequence, with what its worker must read from the store: the masks already saved on its
        frames (Resume continues from them), or a correction's previous result on its frames."""
        seq = spec.sequences[index]
        frames = set(seq.frames)
        mine = {k: m for k, m in saved.items() if k[1] in frames}
        if previous is not None:
            previous = dataclasses.replace(previous, masks={k: m for k, m in previous.masks.items() if k[1] in frames})
        one = dataclasses.replace(
            spec,
            sequences=[seq],
            saved=mine,
            previous=previous,
            seq_indices=[index],
            n_sequences=len(spec.sequences),
        )
        remote = self.cfg.ray_data_dir
        if remote is None:
            return one
        local = Path(spec.data_dir)

        def mapped(path: str) -> str:
            p = Path(path)
            return str(remote / p.relative_to(local)) if p.is_relative_to(local) else path

        return dataclasses.replace(one, data_dir=str(remote), paths=[mapped(p) for p in one.paths])

    def _worker_env(self) -> dict[str, str]:
        env = settings().as_env()
        if self.cfg.ray_data_dir is not None:
            env["SAM2WEB_DATA"] = str(self.cfg.ray_data_dir)
        return env

    def _connect(self, timeout: float = 120.0) -> None:
        with self._connect_lock:  # start() and the driver thread may both ask
            if not self._connected:
                self._connect_locked(timeout)

    def _connect_locked(self, timeout: float) -> None:
        ray = require_ray()
        t0 = time.monotonic()
        cfg = self.cfg
        if cfg.ray_address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
            raise UserError(
                "A ray:// address needs Ray's client; add it with `pip install 'ray[client]==2.60.0'`, or run "
                "sam2web on a node of the cluster with SAM2WEB_RAY_ADDRESS=auto."
            )
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"namespace": cfg.ray_namespace, "log_to_driver": False}
            if cfg.ray_address:
                kwargs["address"] = cfg.ray_address
            else:  # a private cluster on this machine, no dashboard, a small object store
                kwargs.update(include_dashboard=False, object_store_memory=int(cfg.ray_object_store_mb * (1 << 20)))
            try:
                ray.init(**kwargs)
            except Exception as err:  # noqa: BLE001 - ConnectionError, AuthenticationError, ...
                raise UserError(
                    f"Could not reach the Ray cluster at {cfg.ray_address or 'this machine'} "
                    f"({type(err).__name__}: {str(err)[:200]}); check SAM2WEB_RAY_ADDRESS and the auth token."
                ) from None
            self._owns_ray = True
        options = _worker_options(cfg)
        n = cfg.ray_workers or self._fitting_workers(ray, options)
        actor_cls = ray.remote(
            max_restarts=cfg.ray_retries,  # Ray restarts a dead actor; the driver resubmits its unit
            max_task_retries=0,  # never Ray's retry: it would re-track the unit from its first frame
            concurrency_groups={CONTROL: 2},
            **options,
        )(SequenceWorker)
        env = self._worker_env()
        slots = [_Slot(actor_cls.remote(env)) for _ in range(n)]
        try:
            pids = ray.get(
                [s.actor.pid.options(concurrency_group=CONTROL).remote() for s in slots],
                timeout=max(1.0, timeout - (time.monotonic() - t0)),
            )
        except ray.exceptions.GetTimeoutError:
            for s in slots:
                ray.kill(s.actor)
            raise UserError(
                f"The Ray cluster could not place {n} worker(s) with {dict(cfg.ray_resources)} each; lower "
                "SAM2WEB_RAY_WORKERS or SAM2WEB_RAY_RESOURCES, or add nodes."
            ) from None
        with self._lock:
            self._slots = slots
            self._nodes = len({node for _, node in pids})
            self._connected = True
        self.startup_s = time.monotonic() - t0

    @staticmethod
    def _fitting_workers(ray, options: dict) -> int:
        total = ray.cluster_resources()
        need = {"CPU": options["num_cpus"], "GPU": options["num_gpus"], **options.get("resources", {})}
        fits = [int(total.get(k, 0) // v) for k, v in need.items() if v > 0]
        return max(1, min(fits) if fits else 1)

    def _loop(self) -> None:
        """The driver thread: connect, then serve until nothing is active; a failure fails the runs it held."""
        try:
            self._connect()
            self._serve(require_ray())
        except Exception as err:  # noqa: BLE001 - never leave runs "running" with nobody serving them
            if not isinstance(err, UserError):
                log.exception("the Ray driver thread failed")
            self._fail_all(str(err) if isinstance(err, UserError) else error_sentence(err))

    def _fail_all(self, sentence: str) -> None:
        with self._lock:
            recs, self._runs, self._pending = list(self._runs.values()), {}, collections.deque()
            busy = [(s.actor, s.unit) for s in self._slots if s.unit is not None]
            for slot in self._slots:
                slot.unit = slot.ref = slot.poll_ref = None
            self._thread = None
        for actor, unit in busy:
            try:
                actor.cancel.options(concurrency_group=CONTROL).remote(unit.spec.ray_token)
            except Exception:  # noqa: BLE001 - the actor may be gone too
                pass
        for rec in recs:
            rec.store.update_run(rec.spec.run_id, status="failed", error=sentence)

    def _serve(self, ray) -> None:
        last_write = last_poll = 0.0
        while True:
            with self._lock:
                self._finish_empty_locked()
                if not self._runs:
                    self._thread = None
                    return
                started = self._dispatch_locked()
            for rec in started:
                rec.store.update_run(rec.spec.run_id, status="running", error="")
            busy = [s for s in self._slots if s.ref is not None]
            if not busy:
                time.sleep(0.05)
                continue
            ready, _ = ray.wait([s.ref for s in busy], num_returns=len(busy), timeout=0.1)
            ready_ids = {r.hex() for r in ready}
            for slot in busy:
                if slot.ref.hex() in ready_ids:
                    self._collect(ray, slot)
            if time.monotonic() - last_poll > POLL_S:
                last_poll = time.monotonic()
                self._poll(ray, [s for s in busy if s.ref is not None])
            if time.monotonic() - last_write > 1.0:
                last_write = time.monotonic()
                self._write_progress()

    def _dispatch_locked(self) -> list[_RayRun]:
        started = []
        for slot in self._slots:
            if slot.unit is not None or not self._pending:
                continue
            unit = self._pending.popleft()
            rec = self._runs[unit.run_id]
            slot.unit, slot.ref = unit, slot.actor.run.remote(unit.spec, unit.index)
            if not rec.started:
                rec.started, rec.phase = True, "loading"
                started.append(rec)
        return started

    def _collect(self, ray, slot: _Slot) -> None:
        unit, ref = slot.unit, slot.ref
        if slot.poll_ref is not None:  # writes fetched before the end come first
            self._take_poll(ray, slot, timeout=10)
        try:
            out = ray.get(ref, timeout=30)
            self._apply(unit.run_id, {(unit.spec.ray_token, unit.index): out.pop("ops", [])})
        except ray.exceptions.RayActorError:
            if unit.retries < self.cfg.ray_retries and self._resubmit(unit, slot):
                return
            out = {"status": "interrupted", "error": DIED}  # retries used up: a fresh actor for what follows
            slot.actor = self._fresh_actor(ray)
        except ray.exceptions.TaskCancelledError:
            out = {"status": "cancelled", "error": ""}
        except Exception as err:  # noqa: BLE001
            out = {"status": "failed", "error": error_sentence(err)}
        with self._lock:
            slot.unit = slot.ref = slot.poll_ref = None
            rec = self._runs.get(unit.run_id)
            if rec is None:
                return
            rec.finished.add(unit.index)
            rec.results.append({"index": unit.index, "attempt": unit.retries, **out})
            if out["status"] == "done":
                rec.done[unit.index] = rec.frames[unit.index]
        if out["status"] in ("failed", "interrupted"):
            self.cancel(unit.run_id)  # one sequence failed: stop the rest (as the local executor stops a run)

    def _resubmit(self, unit: _Unit, slot: _Slot) -> bool:
        """Queue a unit whose actor died again, first, with the masks saved since: it tracks only the rest.

        Ray restarts the actor (``max_restarts``); the unit goes to whichever actor is free first.
        """
        with self._lock:
            rec = self._runs.get(unit.run_id)
            slot.unit = slot.ref = slot.poll_ref = None
            if rec is None or rec.cancelled:
                return False
        saved = rec.store.load_masks(unit.run_id) if unit.spec.correct_from is None else {}
        frames = set(unit.spec.sequences[0].frames)
        mine = {k: m for k, m in saved.items() if k[1] in frames}
        retry = _Unit(unit.run_id, unit.index, dataclasses.replace(unit.spec, saved=mine), unit.retries + 1)
        with self._lock:
            self._pending.appendleft(retry)
        log.warning("run %s: sequence %s resubmitted after its worker died", unit.run_id, unit.index + 1)
        return True

    def _fresh_actor(self, ray):
        cfg = self.cfg
        actor_cls = ray.remote(
            max_restarts=cfg.ray_retries,  # Ray restarts a dead actor; the driver resubmits its unit
            max_task_retries=0,  # never Ray's retry: it would re-track the unit from its first frame
            concurrency_groups={CONTROL: 2},
            **_worker_options(cfg),
        )(SequenceWorker)
        return actor_cls.remote(self._worker_env())

    def _poll(self, ray, busy: list[_Slot]) -> None:
        for slot in busy:
            if slot.poll_ref is None:
                slot.poll_ref = slot.actor.poll.options(concurrency_group=CONTROL).remote()
        refs = [s.poll_ref for s in busy]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        ready_ids = {r.hex() for r in ready}
        for slot in busy:
            if slot.poll_ref is not None and slot.poll_ref.hex() in ready_ids:
                self._take_poll(ray, slot, timeout=1)

    def _take_poll(self, ray, slot: _Slot, timeout: float) -> None:
        """Apply one poll's answer: the unit's new masks to the store, its progress to the run."""
        try:
            got = ray.get(slot.poll_ref, timeout=timeout)
        except Exception:  # noqa: BLE001 - a dying actor: its unit is re-run, or its result says what happened
            got = {"live": {}, "ops": {}}
        slot.poll_ref = None
        unit = slot.unit
        if unit is None:
            return
        self._apply(unit.run_id, got["ops"])
        with self._lock:
            rec = self._runs.get(unit.run_id)
            for (token, index), (phase, done, total) in got["live"].items():
                if rec is None or token != unit.spec.ray_token or index in rec.finished:
                    continue
                rec.frames[index], rec.done[index] = max(total, done), done
                if phase == "tracking" and done:
                    rec.phase = "tracking"
                    rec.live.on_frame(sum(rec.done.values()), sum(rec.frames.values()))

    def _apply(self, run_id: int, ops: dict) -> None:
        """Write a unit's masks into the store, in the order the unit made them (idempotent)."""
        with self._lock:
            rec = self._runs.get(run_id)
        if rec is None or not ops:
            return
        for batch in ops.values():
            for op in batch:
                if op[0] == "add":
                    rec.store.add_masks(run_id, op[1])
                elif op[0] == "replace":
                    rec.store.replace_masks(run_id, op[1], op[2])
                elif op[0] == "objects":  # daughters and their parents: the run's lineage
                    rec.store.merge_objects(run_id, op[1])

    def _write_progress(self) -> None:
        with self._lock:
            rows = [(r.store, r.spec.run_id, sum(r.done.values())) for r in self._runs.values() if r.started]
        for store, run_id, done in rows:
            store.update_run(run_id, done_frames=done)

    def _finish_empty_locked(self) -> None:
        """Runs with no unit outstanding get their final status, info and totals."""
        for run_id, rec in list(self._runs.items()):
            if rec.outstanding and not (rec.cancelled and not self._has_work_locked(run_id)):
                continue
            del self._runs[run_id]
            self._finalize(rec)

    def _has_work_locked(self, run_id: int) -> bool:
        return any(s.unit is not None and s.unit.run_id == run_id for s in self._slots) or any(
            u.run_id == run_id for u in self._pending
        )

    def _finalize(self, rec: _RayRun) -> None:
        status, error = worst_outcome([(r["status"], r.get("error", "")) for r in rec.results])
        if status not in ("failed", "interrupted") and rec.cancelled:  # units dropped from the queue report nothing
            status = "cancelled"
            error = "Cancelled; the finished frames are kept." if rec.results else "Cancelled before it started."
        run = rec.store.get_run(rec.spec.run_id)
        info = dict(run.info if run else {})
        done_seqs = set(info.get("done_sequences", []))
        done_seqs |= {r["index"] for r in rec.results if r["status"] == "done"}
        done_seqs |= {i for i in rec.frames if i not in rec.units}  # nothing to track on them
        model_info = next((r["model_info"] for r in rec.results if r.get("model_info")), None)
        info.update(
            done_sequences=sorted(done_seqs),
            frames_tracked=sum(int(r.get("frames_tracked", 0)) for r in rec.results),
            executed_on=[
                {
                    k: r[k]
                    for k in ("index", "attempt", "frames_tracked", "node", "host", "pid", "start", "end")
                    if k in r
                }
                for r in rec.results
            ],
        )
        if model_info:
            info["model_info"] = model_info
        rec.store.update_run(rec.spec.run_id, status=status, error=error, done_frames=sum(rec.done.values()), info=info)


_EXECUTOR: RayExecutor | None = None
_LOCK = threading.Lock()


def _key(cfg: Settings) -> tuple:
    """What the workers were started with: every SAM2WEB_* setting but the data folder (each spec names its own)."""
    env = {k: v for k, v in cfg.as_env().items() if k != "SAM2WEB_DATA"}
    return tuple(sorted(env.items()))


def get_ray_executor() -> RayExecutor:
    """The process's Ray executor: a new one (fresh workers) when a SAM2WEB_* setting changed."""
    global _EXECUTOR
    cfg = settings()
    with _LOCK:
        if _EXECUTOR is None or _EXECUTOR.key != _key(cfg):
            if _EXECUTOR is not None:
                _EXECUTOR.shutdown()
            _EXECUTOR = RayExecutor(cfg)
        return _EXECUTOR


def shutdown() -> None:
    global _EXECUTOR
    with _LOCK:
        if _EXECUTOR is not None:
            _EXECUTOR.shutdown()
            _EXECUTOR = None
