"""``python -m bench.ray_bench``: sequences per minute on Ray with 1 and 2 workers, and the start-up cost.

One run, one local 2-node cluster (``ray.cluster_utils.Cluster``: two nodes with one CPU each, like
tests/test_ray_executor.py), the real SAM2 tiny with random weights, one torch thread per worker
(Ray sets OMP_NUM_THREADS from ``num_cpus=1``). For each worker count: start the workers, track one
warm-up run (each worker loads its model once; not timed), then time a run of ``--positions``
sequences from submit to done. The ratio 2 workers / 1 worker is measured in the same run, so a
busy shared machine shifts both figures alike. Prints a table, and as its last line one JSON object.

    .venv/bin/python -m bench.ray_bench                 # 6 positions x 8 frames, image size 256
    .venv/bin/python -m bench.ray_bench --standin       # the stand-in tracker: the plumbing alone
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _stack(path: Path, positions: int, frames: int, size: int = 256) -> None:
    import numpy as np
    import tifffile

    rng = np.random.default_rng(0)
    with tifffile.TiffWriter(path, ome=True) as w:
        for p in range(positions):
            arr = (rng.random((frames, size, size)) * 50).astype(np.uint8)
            for t in range(frames):
                arr[t, 40 + 2 * t : 80 + 2 * t, 40 + 3 * t + p : 80 + 3 * t + p] = 220
            w.write(arr, metadata={"axes": "TYX"})


def _specs(store, stack_path: Path, positions: int, frames: int, image_size: int):
    """One run over ``positions`` sequences, as the service would build it (RunSpec, plain data)."""
    from sam2web import selection
    from sam2web.params import TrackParams
    from sam2web.service.spec import RunSpec
    from sam2web.stack import open_stack
    from sam2web.stack.display import DisplaySettings
    from sam2web.types import Location, Prompt

    stack = open_stack(str(stack_path))
    display = DisplaySettings.default(stack).to_dict()
    stack.close()
    sequences = selection.build_sequences(list(range(positions)), list(range(frames)), [0], "time", "forward")
    prompts = [Prompt(0, Location(p, 0, 0), box=(40.0 + p, 40.0, 80.0 + p, 80.0)) for p in range(positions)]
    params = TrackParams(model="tiny", image_size=image_size, device="cpu", precision="fp32")
    ws = store.create_workspace("bench")

    def make(n: int) -> RunSpec:
        run_id = store.create_run(ws.id, params.to_dict(), total_frames=n * frames)
        return RunSpec(
            run_id, str(store.root), [str(stack_path)], "time", params, sequences[:n], prompts, display, "cpu"
        )

    return make


def _timed_run(executor, store, spec, timeout: float = 1800) -> float:
    """Seconds from submit to done (the driver's CPU seconds meanwhile go to ``DRIVER_CPU``)."""
    t0, c0 = time.perf_counter(), time.process_time()
    executor.submit(spec)
    if not executor.wait(spec.run_id, timeout):
        raise SystemExit(f"run {spec.run_id} did not finish in {timeout:.0f} s")
    run = store.get_run(spec.run_id)
    if run.status != "done":
        raise SystemExit(f"run {spec.run_id} ended {run.status}: {run.error}")
    DRIVER_CPU.append(time.process_time() - c0)
    return time.perf_counter() - t0


DRIVER_CPU: list[float] = []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positions", type=int, default=6, help="sequences in the timed run (default 6)")
    ap.add_argument("--frames", type=int, default=8, help="frames per sequence (default 8)")
    ap.add_argument("--image-size", type=int, default=256, help="model input side (default 256)")
    ap.add_argument("--standin", action="store_true", help="the stand-in tracker (slow:0.05) instead of SAM2")
    args = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="rb-", dir="/tmp")  # short: AF_UNIX socket paths must stay under 107 bytes
    os.makedirs(os.path.join(tmp, "ray"))
    os.environ.update(
        RAY_TMPDIR=tmp,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        SAM2WEB_DATA=os.path.join(tmp, "data"),
    )
    if args.standin:
        os.environ["SAM2WEB_STANDIN"] = "slow:0.05"
        os.environ.pop("SAM2WEB_RANDOM_WEIGHTS", None)
    else:
        os.environ["SAM2WEB_RANDOM_WEIGHTS"] = "1"
        os.environ.pop("SAM2WEB_STANDIN", None)

    import ray
    from ray.cluster_utils import Cluster

    from sam2web.config import settings
    from sam2web.service.ray_executor import RayExecutor, refresh_auth_config
    from sam2web.store import get_store

    refresh_auth_config()
    cluster = None
    figures: dict = {}
    try:
        t0 = time.perf_counter()
        node = {"num_cpus": 1, "object_store_memory": 80 << 20, "resources": {"sam2web_worker": 1}}
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False, "temp_dir": tmp})
        cluster.add_node(**node)
        ray.init(address=cluster.address, namespace="sam2web-bench", log_to_driver=False)
        figures["cluster_start_s"] = round(time.perf_counter() - t0, 2)
        store = get_store(os.environ["SAM2WEB_DATA"])
        stack_path = Path(tmp) / "plate.ome.tif"
        _stack(stack_path, args.positions, args.frames)
        make = _specs(store, stack_path, args.positions, args.frames, args.image_size)
        base = dataclasses.replace(
            settings(), ray_address=cluster.address, ray_resources=(("CPU", 1.0), ("sam2web_worker", 1.0))
        )
        for n in (1, 2):
            ex = RayExecutor(dataclasses.replace(base, ray_workers=n))
            t0 = time.perf_counter()
            ex.start()
            figures[f"workers_ready_s_{n}"] = round(time.perf_counter() - t0, 2)
            figures[f"warmup_s_{n}"] = round(_timed_run(ex, store, make(n)), 2)  # each worker loads its model
            seconds = _timed_run(ex, store, make(args.positions))
            figures[f"run_s_{n}"] = round(seconds, 2)
            figures[f"driver_cpu_share_{n}"] = round(DRIVER_CPU[-1] / seconds, 3)  # of one core, while it ran
            figures[f"sequences_per_min_{n}"] = round(args.positions * 60 / seconds, 2)
            ex.shutdown()
        figures["ratio_2_vs_1"] = round(figures["sequences_per_min_2"] / figures["sequences_per_min_1"], 3)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.shutdown()  # never `ray stop`: it ends every Ray process on the machine
        shutil.rmtree(tmp, ignore_errors=True)
    what = "stand-in (slow:0.05)" if args.standin else f"SAM2 tiny, random weights, image size {args.image_size}"
    print(f"Ray executor on a local 2-node cluster: {args.positions} sequences x {args.frames} frames, {what}")
    print(f"  cluster start-up (2 nodes, connect)    {figures['cluster_start_s']:8.2f} s")
    for n in (1, 2):
        print(
            f"  {n} worker(s): ready {figures[f'workers_ready_s_{n}']:6.2f} s, warm-up {figures[f'warmup_s_{n}']:6.2f} s,"
            f" run {figures[f'run_s_{n}']:7.2f} s = {figures[f'sequences_per_min_{n}']:6.2f} sequences/min"
        )
    print(f"  ratio 2 workers / 1 worker             {figures['ratio_2_vs_1']:8.3f}")
    print(
        f"  driver CPU while tracking (of one core) {figures['driver_cpu_share_1']:7.3f} / "
        f"{figures['driver_cpu_share_2']:.3f}"
    )
    print(json.dumps({"positions": args.positions, "frames": args.frames, "standin": args.standin, **figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
