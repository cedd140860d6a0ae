"""The one predictor factory for the CLI, the app's workers and the benchmarks.

A predictor is built once per (model, checkpoint, device, image size, precision, stand-in, random
weights) and kept for later runs of the same process, in a small LRU (``Settings.model_cache_count``
models: a tiny SAM2 is ~150 MB, a large one ~900 MB), so a worker process that switches models does
not keep every one it ever loaded. ``SAM2WEB_STANDIN`` selects a stand-in tracker for tests, for the
CLI and the app alike; otherwise the model's family in ``sam2web.trackers.TRACKERS`` builds it.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from typing import Any

from sam2web.config import settings
from sam2web.params import TrackParams

_PREDICTORS: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
_LOCK = threading.Lock()
LOAD_COUNT: collections.Counter = collections.Counter()  # builds per key (tests check sharing)


def predictor_key(params: TrackParams) -> tuple:
    cfg = settings()
    return (
        params.model,
        params.checkpoint,
        params.device,
        params.image_size or cfg.image_size or 0,
        params.precision,
        cfg.standin,
        cfg.random_weights,
    )


def get_predictor(params: TrackParams, download: bool = False, progress=None) -> Any:
    """The shared predictor for these parameters (built on first use)."""
    key = predictor_key(params)
    with _LOCK:
        if key in _PREDICTORS:
            _PREDICTORS.move_to_end(key)
            return _PREDICTORS[key]
        predictor = _build(params, download, progress)
        LOAD_COUNT[key] += 1
        _PREDICTORS[key] = predictor
        while len(_PREDICTORS) > settings().model_cache_count:
            _PREDICTORS.popitem(last=False)
        return predictor


def is_loaded(params: TrackParams) -> bool:
    """Whether these parameters' predictor is built in this process (no lock: a status must not wait for a load)."""
    return predictor_key(params) in _PREDICTORS


def _build(params: TrackParams, download: bool, progress) -> Any:
    standin = settings().standin
    if standin:
        from sam2web.tracking import track

        if standin.startswith("slow:"):
            return track.StandInTracker(delay_s=float(standin.split(":", 1)[1]))
        if standin.startswith("oracle:"):
            from sam2web.tracking import standin as standin_mod

            return standin_mod.OracleTracker(standin.split(":", 1)[1])
        return track.StandInTracker()
    from sam2web.registry import lazy
    from sam2web.trackers import family_of

    return lazy(family_of(params.model).build)(
        params.model,
        params.checkpoint or None,
        params.device,
        params.image_size or None,
        params.precision,
        download=download,
        progress=progress,
    )


def set_threads(n: int) -> None:
    """Torch's intra-op threads in this worker (a CPU pool gives each worker a share of the cores)."""
    import torch

    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def init_threads() -> None:
    """Fix this thread's torch thread count now (see ``service.executor._serve_sessions``)."""
    import torch

    torch.get_num_threads()


@contextlib.contextmanager
def threads(n: int | None):
    """Torch's intra-op threads set to ``n`` in this thread for a block (None: unchanged)."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def clear() -> None:
    with _LOCK:
        _PREDICTORS.clear()
        LOAD_COUNT.clear()
