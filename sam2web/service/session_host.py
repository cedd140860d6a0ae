"""The worker's side of interactive sessions: one thread beside the run loop, one session per (workspace, sequence).

Why a thread of the worker process, not a queue behind its runs: the worker already holds the
model, so a prompt needs no second copy, and a box must get its mask in about a second even while
a long run occupies the lane. Both threads call the same predictor (it keeps no per-run state;
everything per session lives in its inference state); on a CPU they share the cores, so a
running job slows by about one frame per prompt, which is the price of an answer at once.

In a worker process the host works on one torch thread (``executor._serve_sessions`` says why:
on a busy CPU, or beside a run, torch's threads mostly wait for each other).

Requests come from the server as ``(req_id, kind, *args)`` and are served in order on one thread
(SAM2's state is not thread-safe); ``status`` is answered at once from the listener, and a
``view`` is skipped when a newer view of the same sequence is already waiting (the user moved on).
Bounds: at most ``MAX_SESSIONS`` sessions (least recently used closed first) and one feature LRU
of ``Settings.session_cache_bytes`` for the embeddings of all of them. Every failure of a request
is one sentence in its reply; the thread never stops on one.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sam2web.config import settings
from sam2web.errors import UserError
from sam2web.params import TrackParams
from sam2web.service.spec import FrameRequest
from sam2web.types import CompactMask

log = logging.getLogger(__name__)

MAX_SESSIONS = 8
Reply = Callable[[int | None, bool, Any], None]  # reply(req_id, ok, payload or error sentence)


def failure_sentence(err: BaseException) -> str:
    """One sentence for a failed interactive request, chosen by the error's type."""
    if isinstance(err, UserError):
        return str(err)
    if isinstance(err, MemoryError) or "OutOfMemoryError" in {c.__name__ for c in type(err).__mro__}:
        return "The device ran out of memory for this mask; choose a smaller model or image size and try again."
    if isinstance(err, IndexError):
        return f"That frame is not in the sequence shown ({err}); move to another frame and draw again."
    if isinstance(err, OSError):
        return f"The image could not be read for this mask ({type(err).__name__}: {err}); check the dataset's files."
    return f"The mask could not be computed ({type(err).__name__}: {str(err)[:200]}); draw the prompt again."


class _Entry:
    """A live session and what it was built from (a request that differs rebuilds it)."""

    def __init__(self, req: FrameRequest, session, stack, model_key: tuple) -> None:
        self.session, self.stack = session, stack
        self.source = (tuple(req.paths), req.pages_as, _frozen(req.display), model_key)

    def close(self) -> None:
        self.session.close()
        close = getattr(self.stack, "close", None)
        if callable(close):
            close()


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


class SessionHost:
    """Serves warm / status / view / prompt / close requests for one worker (see the module doc)."""

    def __init__(self, reply: Reply, threads: int | None = None) -> None:
        self.reply = reply
        self.threads = threads  # torch threads of this host's work (None: torch's own)
        self.jobs: queue.Queue = queue.Queue()
        self.sessions: collections.OrderedDict[tuple, _Entry] = collections.OrderedDict()
        self.loading: dict[tuple, str] = {}  # predictor key -> "loading" | "failed: ..." while not ready
        self.latest_view: dict[tuple, int] = {}
        self.features = None  # the FeatureLRU shared by every session (made with the first SAM2 session)
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True, name="sam2web-sessions")
        self.thread.start()

    # -- the listener's side ---------------------------------------------------------------
    def submit(self, req_id: int | None, kind: str, *args: Any) -> None:
        if kind == "status":
            self.reply(req_id, True, self.model_status(args[0]))
            return
        if kind == "warm" and not self._loaded(args[0]):
            with self._lock:  # a failure stays shown while it is retried (a checkpoint may have arrived)
                self.loading.setdefault(self._model_key(args[0]), "loading")
        if kind == "view":
            self.latest_view[args[0].key] = args[0].frame
        self.jobs.put((req_id, kind, args))

    def stop(self) -> None:
        self.jobs.put(None)

    def model_status(self, params: TrackParams) -> str:
        with self._lock:
            state = self.loading.get(self._model_key(params))
        if state is not None:
            return state
        return "ready" if self._loaded(params) else "cold"

    @staticmethod
    def _model_key(params: TrackParams) -> tuple:
        from sam2web.tracking import factory

        return factory.predictor_key(params)

    @staticmethod
    def _loaded(params: TrackParams) -> bool:
        from sam2web.tracking import factory

        return factory.is_loaded(params)

    # -- the session thread ----------------------------------------------------------------
    def _serve(self) -> None:
        from sam2web.tracking import factory

        while (job := self.jobs.get()) is not None:
            req_id, kind, args = job
            try:
                with factory.threads(self.threads):
                    result = getattr(self, "_" + kind)(*args)
            except Exception as err:  # noqa: BLE001 - one request fails, the sessions go on
                if not isinstance(err, UserError):
                    log.exception("interactive %s failed", kind)
                if req_id is not None:
                    self.reply(req_id, False, failure_sentence(err))
            else:
                if req_id is not None:
                    self.reply(req_id, True, result)
        for entry in self.sessions.values():
            entry.close()
        self.sessions.clear()

    def _predictor(self, params: TrackParams):
        from sam2web.tracking import factory

        key = self._model_key(params)
        if not self._loaded(params):
            with self._lock:
                self.loading.setdefault(key, "loading")
        try:
            predictor = factory.get_predictor(params)
        except Exception as err:
            with self._lock:
                self.loading[key] = "failed: " + failure_sentence(err)
            raise
        with self._lock:
            self.loading.pop(key, None)
        return predictor

    def _warm(self, params: TrackParams) -> str:
        self._predictor(params)
        return "ready"

    def _entry(self, req: FrameRequest) -> _Entry:
        """The session of ``req``'s (workspace, sequence), built when missing or built from other inputs."""
        from sam2web.stack import open_stack
        from sam2web.stack.display import DisplaySettings, render
        from sam2web.tracking.interactive import InteractiveSession, source_identity

        predictor = self._predictor(req.params)
        model_key = self._model_key(req.params)
        entry = self.sessions.get(req.key)
        if entry is not None and entry.source == (tuple(req.paths), req.pages_as, _frozen(req.display), model_key):
            self.sessions.move_to_end(req.key)
            return entry
        if entry is not None:
            self.sessions.pop(req.key).close()
        stack = open_stack(list(req.paths) if len(req.paths) > 1 else req.paths[0], pages_as=req.pages_as)
        try:
            display = DisplaySettings.from_dict(req.display) if req.display else DisplaySettings.default(stack)
            if self.features is None and getattr(predictor, "sam2web_feature_lru", False):
                from sam2web.tracking.predictor import FeatureLRU

                self.features = FeatureLRU(settings().session_cache_bytes)
            session = InteractiveSession(
                predictor,
                lambda loc: render(stack, loc, display),
                req.sequence.frames,
                int(stack.sizes["Y"]),
                int(stack.sizes["X"]),
                self.features,
                identity=source_identity(stack, display, predictor),
            )
        except BaseException:
            stack.close()
            raise
        entry = self.sessions[req.key] = _Entry(req, session, stack, model_key)
        while len(self.sessions) > MAX_SESSIONS:
            _, old = self.sessions.popitem(last=False)
            old.close()
        return entry

    def _view(self, req: FrameRequest) -> bool:
        if self.latest_view.get(req.key, req.frame) != req.frame:
            return False  # a newer view of this sequence is waiting: this frame is no longer looked at
        self._entry(req).session.embed(req.frame)
        return True

    def _prompt(self, req: FrameRequest, obj_id: int, box, points) -> dict:
        t0, c0 = time.perf_counter(), time.process_time()
        entry = self._entry(req)
        warm = entry.session.embedded(req.frame)
        mask = entry.session.set_prompt(int(obj_id), req.frame, box, points)
        return {
            "mask": CompactMask.from_mask(mask),
            "warm": warm,
            "ms": (time.perf_counter() - t0) * 1000.0,
            "cpu_ms": (time.process_time() - c0) * 1000.0,  # the whole process: a run going on counts too
            "sessions": len(self.sessions),
        }

    def _close(self, workspace_id: str) -> int:
        keys = [k for k in self.sessions if k[0] == workspace_id]
        for k in keys:
            self.sessions.pop(k).close()
            self.latest_view.pop(k, None)
        return len(keys)

    def _info(self) -> dict:
        """What the host holds (tests and the bench): sessions, embeddings, their bytes."""
        return {
            "sessions": [list(map(str, k[:1])) + [len(k[1].frames)] for k in self.sessions],
            "keys": [k for k in self.sessions],
            "embeddings": len(self.features) if self.features is not None else 0,
            "feature_bytes": int(self.features.used) if self.features is not None else 0,
        }
