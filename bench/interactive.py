"""``python -m bench.interactive [--model tiny] [--image-size 512] [--first-frame]``: interactive latencies.

- ``box_to_mask_ms``: a box drawn -> its mask back, through the service API and a real worker
  process (``sessions.prompt``: IPC, SAM2, polygons), SAM2 with random weights on the CPU, the model
  already loaded. "warm": the frame's embedding was computed when it was opened (``view``);
  "cold": the first prompt on a frame nobody opened (the image encoder runs inside the prompt).
  Medians over a few frames.
- ``start_to_first_frame_s``: Start pressed (``runs.submit``) -> the first tracked frame in the
  store, the worker warm (``sessions.warm`` done) at the Track page's defaults; the run is then
  cancelled (only its first frame matters here).

Wall clock (the user waits for wall time), on 512 x 512 synthetic frames (``bench.data``); the
CPU's flags are printed beside the figures by ``bench.run``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def _service(tmp: Path, n_frames: int):
    """A data folder with one workspace holding ``n_frames`` synthetic frames, a local executor."""
    from bench import data
    from sam2web.service import executor as executor_mod
    from sam2web.store import get_store

    env = {
        "SAM2WEB_DATA": str(tmp / "data"),
        "SAM2WEB_RANDOM_WEIGHTS": "1",
        "SAM2WEB_EXECUTOR": "local",
        "SAM2WEB_CPU_WORKERS": "1",
    }
    old = {k: os.environ.get(k) for k in [*env, "SAM2WEB_STANDIN"]}
    os.environ.update(env)
    os.environ.pop("SAM2WEB_STANDIN", None)
    try:
        store = get_store(env["SAM2WEB_DATA"])
        ws = store.create_workspace("bench")
        tiff = data.write_tiff(tmp / "frames.tif", data.make_frames(n_frames, 5))
        store.save_upload(ws.id, "frames.tif", tiff.read_bytes())
        store.update_workspace(ws.id, dataset={"kind": "files", "files": ["frames.tif"], "pages_as": "time"})
        yield store, store.get_workspace(ws.id)
    finally:
        executor_mod.get_executor().shutdown()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _wait_ready(params, timeout: float = 600.0) -> float:
    from sam2web.service import sessions

    t0 = time.perf_counter()
    sessions.warm(params)
    while time.perf_counter() - t0 < timeout:
        status = sessions.model_status(params)
        if status == "ready":
            return time.perf_counter() - t0
        if status.startswith("failed"):
            raise RuntimeError(status)
        time.sleep(0.05)
    raise TimeoutError("the model did not load in time")


def box_to_mask(model: str = "tiny", image_size: int = 512, frames: int = 3) -> dict:
    """Warm and cold box -> mask times (ms) through the service and a worker process."""
    from bench import data
    from sam2web.params import TrackParams
    from sam2web.service import runs, sessions
    from sam2web.types import Location

    params = TrackParams(model=model, image_size=image_size, device="cpu")
    box = data.boxes(1)[0]
    with tempfile.TemporaryDirectory(prefix="bench-int-") as tmp, _service(Path(tmp), 2 * frames + 1) as (store, ws):
        load_s = _wait_ready(params)
        stack = runs.open_dataset(store, ws)
        try:
            reqs = [sessions.frame_request(store, ws, stack, params, {}, Location(0, t, 0)) for t in range(2 * frames)]
        finally:
            stack.close()
        # an untimed first prompt: session, stack and first-call overheads are not a frame's cost
        sessions.prompt(reqs[-1], 0, box=box, timeout_s=600)
        cold, warm, worker_cold, worker_warm, cpu_cold, cpu_warm = [], [], [], [], [], []
        for i in range(frames):
            t0 = time.perf_counter()
            res = sessions.prompt(reqs[i], 0, box=box, timeout_s=600)
            cold.append((time.perf_counter() - t0) * 1000)
            worker_cold.append(res.worker_ms)
            cpu_cold.append(res.worker_cpu_ms)
            assert res.ok and not res.warm, res.status
            viewed = reqs[frames + i]
            sessions.view(viewed)
            sessions.session_info(params, timeout_s=600)  # served after the view: the embedding is ready
            t0 = time.perf_counter()
            res = sessions.prompt(viewed, 0, box=box, timeout_s=600)
            warm.append((time.perf_counter() - t0) * 1000)
            worker_warm.append(res.worker_ms)
            cpu_warm.append(res.worker_cpu_ms)
            assert res.ok and res.warm, res.status
    return {
        "warm": round(statistics.median(warm), 1),
        "cold": round(statistics.median(cold), 1),
        "worker_ms": {
            "warm": round(statistics.median(worker_warm), 1),
            "cold": round(statistics.median(worker_cold), 1),
        },
        # the worker process's CPU time per request: the figure least disturbed by a shared machine
        "worker_cpu_ms": {"warm": round(statistics.median(cpu_warm), 1), "cold": round(statistics.median(cpu_cold), 1)},
        "model": model,
        "image_size": image_size,
        "frame": "512 x 512",
        "model_load_s": round(load_s, 2),
        "threads": "sessions: one torch thread (executor._serve_sessions); runs: torch default",
    }


def start_to_first_frame(n_frames: int = 30, drawn: bool = True) -> dict:
    """Seconds from Start to the first tracked frame in the store, the worker warm, the Track page's
    defaults. ``drawn``: the box was drawn on Annotate first (its mask shown by a session), as a user
    does; else the run's first frame also pays the image encoder."""
    from bench import data
    from sam2web.params import TrackParams
    from sam2web.service import runs, sessions
    from sam2web.service.executor import get_executor
    from sam2web.stack.display import DisplaySettings
    from sam2web.types import Location, Prompt

    params = TrackParams()  # the form's defaults: small, model image size, auto device and precision
    box = data.boxes(1)[0]
    with tempfile.TemporaryDirectory(prefix="bench-int-") as tmp, _service(Path(tmp), n_frames) as (store, ws):
        load_s = _wait_ready(params)
        stack = runs.open_dataset(store, ws)
        try:
            if drawn:
                req = sessions.frame_request(
                    store, ws, stack, params, DisplaySettings.default(stack), Location(0, 0, 0)
                )
                shown = sessions.prompt(req, 0, box=box, timeout_s=600)
                assert shown.ok, shown.status
            t0 = time.perf_counter()
            run_id, _ = runs.submit(
                store,
                ws,
                stack,
                params,
                [Prompt(0, Location(0, 0, 0), box=box)],
                DisplaySettings.default(stack),
                Location(0, 0, 0),
            )
            while store.count_masks(run_id) == 0:
                run = store.get_run(run_id)
                if run.status in ("failed", "cancelled", "interrupted"):
                    raise RuntimeError(run.error)
                time.sleep(0.02)
            first = time.perf_counter() - t0
        finally:
            stack.close()
        get_executor().cancel(run_id)
        get_executor().wait(run_id, 600)
    return {
        "seconds": round(first, 2),
        "box_drawn_first": drawn,
        "model": params.model,
        "image_size": "model default (1024)",
        "frames": n_frames,
        "model_load_s": round(load_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.interactive", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=3, help="frames timed warm and cold (medians)")
    ap.add_argument("--first-frame", action="store_true", help="also measure start_to_first_frame_s")
    ap.add_argument(
        "--undrawn", action="store_true", help="... also without a box drawn first (the encoder in the run)"
    )
    args = ap.parse_args(argv)
    from bench.run import cpu_summary

    load_before = os.getloadavg()[0]
    out = {"box_to_mask_ms": box_to_mask(args.model, args.image_size, args.frames)}
    if args.first_frame:
        out["start_to_first_frame_s"] = start_to_first_frame()
        if args.undrawn:
            out["start_to_first_frame_undrawn_s"] = start_to_first_frame(drawn=False)
    out["cpu"] = cpu_summary()
    # wall figures on a shared machine: the 1-minute load average says how shared it was
    out["load_avg_1min"] = {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
