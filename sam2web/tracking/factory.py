"""The one predictor factory for the CLI, the app's workers and the benchmarks.

A predictor is built once per (model, checkpoint, device, image size, precision, stand-in, random
weights) and kept for later runs of the same process, in a small LRU (``Settings.model_cache_count``
models: a tiny SAM2 is ~150 MB, a large one ~900 MB), so a worker process that switches models does
not keep every one it ever loaded. ``SAM2WEB_STANDIN`` selects a stand-in tracker for tests, for the
CLI and the app alike.
"""

from __future__ import annotations

import collections
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
    from sam2web.tracking import model

    return model.load_predictor(
        params.model,
        params.checkpoint or None,
        params.device,
        params.image_size or None,
        params.precision,
        download=download,
        progress=progress,
    )


def resolve_device(params: TrackParams) -> str:
    """The device a run with these parameters uses (the stand-in runs on the CPU)."""
    if settings().standin:
        return "cpu"
    from sam2web.tracking import model

    return model.pick_device(params.device)


def set_threads(n: int) -> None:
    """Torch's intra-op threads in this worker (a CPU pool gives each worker a share of the cores)."""
    import torch

    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def clear() -> None:
    with _LOCK:
        _PREDICTORS.clear()
        LOAD_COUNT.clear()
