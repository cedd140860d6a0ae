"""`track` and `sweep` with ``--executor ray``: the runs go to Ray workers, the bar follows them here.

The runs go through a private run store (a temporary data folder on this machine): the workers
read the frames from the STACK paths (give paths they can read, e.g. on a shared file system),
send each finished frame back, and this process writes it there and builds the exports from it.
Every run of a sweep is submitted at once, so the whole grid of settings x sequences fans out.
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
from sam2web.types import TrackResult

INFO_DEFAULTS = {"model": "?", "device": "?", "precision": "?", "image_size": "?", "random_weights": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where the tracking runs")
    where.add_argument(
        "--executor",
        choices=("local", "ray"),
        default=None,
        help="local: in this process; ray: sequences fan out to Ray workers (default: SAM2WEB_EXECUTOR, else local)",
    )
    where.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="the Ray cluster (auto, host:6379, ray://host:10001; default: SAM2WEB_RAY_ADDRESS, "
        "else a private one on this machine); see docs/scale-out.md",
    )


def wanted(args: argparse.Namespace) -> bool:
    chosen = getattr(args, "executor", None)
    return (chosen or settings().executor) == "ray"


def track_on_ray(
    args: argparse.Namespace, jobs: dict[Any, tuple[TrackParams, Any, list, list, Any]]
) -> dict[Any, tuple[TrackResult, dict]]:
    """Run every job ``key -> (params, stack, sequences, prompts, display)``; returns ``key -> (result, info)``."""
    from sam2web.service import review, runs
    from sam2web.service.executor import guess_device
    from sam2web.service.ray_executor import RayExecutor, require_ray
    from sam2web.service.spec import RunSpec
    from sam2web.store import Store

    require_ray()
    cfg = settings()
    if getattr(args, "ray_address", None):
        cfg = dataclasses.replace(cfg, ray_address=args.ray_address)
    paths = [str(Path(p).resolve()) for p in args.stack]
    folder = Path(tempfile.mkdtemp(prefix="sam2web-ray-"))
    store = Store(folder)
    executor = RayExecutor(cfg, store=store)
    ids: dict[Any, int] = {}
    try:
        ws = store.create_workspace("cli")
        for key, (params, _stack, sequences, prompts, display) in jobs.items():
            objects = {
                str(p.obj_id): {"name": p.name or f"Object {p.obj_id + 1}", "tags": list(p.tags)} for p in prompts
            }
            run_id = store.create_run(
                ws.id,
                params.to_dict(),
                objects=objects,
                total_frames=review.own_frames(sequences, prompts),
                random_weights=runs.random_weights_run(),
            )
            spec = RunSpec(
                run_id=run_id,
                data_dir=str(folder),
                paths=paths,
                pages_as=args.pages_as,
                params=params,
                sequences=list(sequences),
                prompts=list(prompts),
                display=display.to_dict(),
                device=guess_device(params.device),
            )
            executor.submit(spec)
            ids[key] = run_id
        _follow(executor, store, list(ids.values()), args.quiet)
        out = {}
        for key, run_id in ids.items():
            run = store.get_run(run_id)
            if run.status != "done":
                raise UserError(run.error or f"The Ray run ended {run.status}; run the command again.")
            info = {**INFO_DEFAULTS, **(run.info.get("model_info") or {})}
            out[key] = (store.load_result(run_id), info)
        return out
    finally:
        executor.shutdown()
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


def _follow(executor, store, run_ids: list[int], quiet: bool) -> None:
    """One tqdm bar over every run's frames until all are over; Ctrl-C cancels them (within a frame)."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit="frame", disable=quiet, file=sys.stderr, dynamic_ncols=True, desc="starting Ray")
    try:
        while True:
            progress = [executor.progress(r, store) for r in run_ids]
            total, done = sum(p.total for p in progress), sum(p.done for p in progress)
            if total != bar.total:
                bar.total = total
            bar.set_description("tracking on Ray" if any(p.phase == "tracking" for p in progress) else "starting Ray")
            bar.update(done - bar.n)
            if not any(executor.is_active(r) for r in run_ids):
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        for r in run_ids:
            executor.cancel(r)
        for r in run_ids:
            executor.wait(r, 30)
        raise
    finally:
        bar.close()
