"""`track` and `sweep` through the run service: the same resolver, submit path and executors as the app.

Why: anything the service learns (ranges, prompts on frames, lineage, Resume, stored settings)
reaches the command line without being written twice. Each command makes one workspace whose
dataset is the STACK paths read in place, submits one run per setting with ``runs.submit``, and
follows the runs' progress with one bar; the exports are built from the stored masks.

The store is a temporary data folder, removed at the end, unless ``--data DIR`` keeps it (e.g.
the app's ``SAM2WEB_DATA``, to open the runs on the Results page). ``--executor``: ``inline``
tracks in this process (the default: the command is itself the worker), ``local`` in a worker
process per device as the app does, ``ray`` on Ray workers (docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sam2web.config import settings
from sam2web.errors import UserError
from sam2web.params import TrackParams
from sam2web.types import Location, TrackResult

INFO_DEFAULTS = {"model": "?", "device": "?", "precision": "?", "image_size": "?", "random_weights": False}
EXECUTORS = ("inline", "local", "ray")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where the tracking runs")
    where.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="inline: in this process; local: a worker process per device, as the app; ray: sequences fan "
        "out to Ray workers (default: ray when SAM2WEB_EXECUTOR=ray, else inline)",
    )
    where.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="the Ray cluster (auto, host:6379, ray://host:10001; default: SAM2WEB_RAY_ADDRESS, "
        "else a private one on this machine); see docs/scale-out.md",
    )
    where.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="keep the workspace and its runs in this data folder (e.g. the app's SAM2WEB_DATA) "
        "instead of a temporary one",
    )


def executor_name(args: argparse.Namespace) -> str:
    chosen = getattr(args, "executor", None)
    if chosen:
        return chosen
    return "ray" if settings().executor == "ray" else "inline"


def _executor(name: str, args: argparse.Namespace, store) -> Any:
    if name == "ray":
        from sam2web.service.ray_executor import RayExecutor, require_ray

        require_ray()
        cfg = settings()
        if getattr(args, "ray_address", None):
            cfg = dataclasses.replace(cfg, ray_address=args.ray_address)
        return RayExecutor(cfg, store=store)
    from sam2web.service.executor import LocalExecutor

    return LocalExecutor(processes=name == "local")


def _ensure_checkpoint(params: TrackParams, quiet: bool) -> None:
    """Download a missing SAM2.1 checkpoint here, with a bar (the command may wait; the app's server may not)."""
    from sam2web.service import runs

    try:
        runs.check_checkpoint(params)
        return
    except UserError:
        if params.checkpoint:
            raise  # an explicit file that is not there: say so, never download over it
    from tqdm import tqdm

    from sam2web.tracking import model

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            name = model.MODELS[params.model][1]
            bar = tqdm(total=total or None, unit="B", unit_scale=True, file=sys.stderr, disable=quiet, desc=name)
        bar.update(done - bar.n)

    try:
        model.download_checkpoint(params.model, progress=progress)
    finally:
        if bar is not None:
            bar.close()


def track_runs(
    args: argparse.Namespace, stack: Any, jobs: dict[Any, TrackParams], prompts: list, display: Any
) -> dict[Any, tuple[TrackResult, dict, int]]:
    """Submit one run per ``key -> params`` and wait for all; ``key -> (result, model info, run id)``.

    Every run is submitted before any is waited for, so on Ray a sweep's whole grid fans out.
    """
    from sam2web import prompts as prompts_mod
    from sam2web.service import runs
    from sam2web.store import get_store

    for params in jobs.values():
        _ensure_checkpoint(params, args.quiet)
    folder = Path(args.data) if getattr(args, "data", None) else Path(tempfile.mkdtemp(prefix="sam2web-cli-"))
    store = get_store(str(folder))
    executor = _executor(executor_name(args), args, store)
    ids: dict[Any, int] = {}
    try:
        ws = store.create_workspace(f"sam2web {args.command or 'track'}: {stack.name}")
        dataset = {"kind": "paths", "paths": [str(Path(p).resolve()) for p in args.stack], "pages_as": args.pages_as}
        store.update_workspace(ws.id, dataset=dataset, prompts=[prompts_mod.prompt_to_dict(p) for p in prompts])
        ws = store.get_workspace(ws.id)
        for key, params in jobs.items():
            ids[key], _ = runs.submit(store, ws, stack, params, prompts, display, Location(0, 0, 0), executor=executor)
        follow(executor, store, list(ids.values()), args.quiet)
        out = {}
        for key, run_id in ids.items():
            run = store.get_run(run_id)
            if run.status != "done":
                raise UserError(run.error or f"The run ended {run.status}; run the command again.")
            info = {**INFO_DEFAULTS, **(run.info.get("model_info") or {})}
            out[key] = (store.load_result(run_id), info, run_id)
        return out
    finally:
        for run_id in ids.values():  # interrupted outside follow(): the runs stop before their store goes
            if executor.is_active(run_id):
                executor.cancel(run_id)
                executor.wait(run_id, 30)
        executor.shutdown()
        if not getattr(args, "data", None):
            from sam2web.store import forget_store

            forget_store(str(folder))
            shutil.rmtree(folder, ignore_errors=True)


def follow(executor: Any, store: Any, run_ids: list[int], quiet: bool) -> None:
    """One tqdm bar over every run's frames until all are over; Ctrl-C cancels them (within a frame)."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit="frame", disable=quiet, file=sys.stderr, dynamic_ncols=True, desc="starting")
    try:
        while True:
            progress = [p for p in (executor.progress(r, store) for r in run_ids) if p is not None]
            total, done = sum(p.total for p in progress), sum(p.done for p in progress)
            if total != bar.total:
                bar.total = total
            bar.set_description("tracking" if any(p.phase == "tracking" for p in progress) else "loading the model")
            bar.update(done - bar.n)
            if not any(executor.is_active(r) for r in run_ids):
                break
            pause(0.1)
    except KeyboardInterrupt:
        for r in run_ids:
            executor.cancel(r)
        for r in run_ids:
            executor.wait(r, 30)
        raise
    finally:
        bar.close()


def pause(seconds: float) -> None:
    """The bar's refresh interval (a test sends Ctrl-C from here)."""
    time.sleep(seconds)
