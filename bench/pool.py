"""``python -m bench.pool [--quick]``: sequences per minute of the CPU worker pool vs one process.

A run of several sequences (Z slices tracked across Time, as positions would be) goes through the real
run service and local executor twice: one worker process with all of torch's threads, then a pool of
one single-threaded worker per core (``SAM2WEB_CPU_WORKERS``). Real SAM2 tiny with random weights at a
small image size; each configuration first runs the same job once to load its models (not timed), then
is timed on a second run. Wall clock, because the pool's gain is parallel work. Prints the CPU beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile


def _job(folder: Path, n_seq: int, n_frames: int):
    from sam2web.store import get_store
    from sam2web.types import Location, Prompt

    store = get_store(str(folder / "data"))
    ws = store.create_workspace("pool")
    arr = (np.random.default_rng(0).random((n_frames, n_seq, 192, 192)) * 60).astype(np.uint8)
    for t in range(n_frames):
        arr[t, :, 40 + t : 80 + t, 50 + 2 * t : 90 + 2 * t] = 220
    tifffile.imwrite(folder / "tz.tif", arr, imagej=True, metadata={"axes": "TZYX"})
    store.save_upload(ws.id, "tz.tif", (folder / "tz.tif").read_bytes())
    store.update_workspace(ws.id, dataset={"kind": "files", "files": ["tz.tif"], "pages_as": "time"})
    prompts = [Prompt(z, Location(0, 0, z), box=(50.0, 40.0, 90.0, 80.0)) for z in range(n_seq)]
    return store, store.get_workspace(ws.id), prompts


def _run_once(store, ws, prompts) -> float:
    from sam2web.params import TrackParams
    from sam2web.service import runs
    from sam2web.stack.display import DisplaySettings
    from sam2web.types import Location

    stack = runs.open_dataset(store, ws)
    params = TrackParams(time="all", z="all", model="tiny", image_size=256, precision="fp32", divisions=False)
    t0 = time.perf_counter()
    run_id, _ = runs.submit(store, ws, stack, params, prompts, DisplaySettings.default(stack), Location(0, 0, 0))
    stack.close()
    while (run := store.get_run(run_id)).status in ("queued", "running"):
        time.sleep(0.05)
    if run.status != "done":
        raise RuntimeError(f"run {run_id} {run.status}: {run.error}")
    return time.perf_counter() - t0


def measure(quick: bool) -> dict:
    from sam2web.service import executor as executor_mod

    n_seq, n_frames = (4, 4) if quick else (8, 8)
    cores = os.cpu_count() or 1
    out: dict = {"sequences": n_seq, "frames": n_frames, "cores": cores}
    with tempfile.TemporaryDirectory(prefix="sam2web-pool-") as tmp:
        os.environ.update(SAM2WEB_EXECUTOR="local", SAM2WEB_RANDOM_WEIGHTS="1", SAM2WEB_DATA=str(Path(tmp) / "data"))
        os.environ.pop("SAM2WEB_STANDIN", None)
        store, ws, prompts = _job(Path(tmp), n_seq, n_frames)
        for name, workers in (("one_process", 1), ("pool", min(cores, 4))):
            os.environ["SAM2WEB_CPU_WORKERS"] = str(workers)
            _run_once(store, ws, prompts)  # loads the model in every worker
            wall = _run_once(store, ws, prompts)
            out[name] = {
                "workers": workers,
                "seconds": round(wall, 2),
                "sequences_per_min": round(60 * n_seq / wall, 2),
            }
            executor_mod.get_executor().shutdown()
    out["pool_speedup"] = round(out["pool"]["sequences_per_min"] / out["one_process"]["sequences_per_min"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pool", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    from bench.run import cpu_summary

    res = measure(args.quick)
    res["cpu"] = cpu_summary()
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
