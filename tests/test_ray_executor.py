"""The Ray executor on a real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``).

Two nodes with one CPU each and a ``sam2web_worker`` resource each, so the two worker actors land on
different nodes; token auth on; no dashboard; a short temp dir (AF_UNIX paths over 107 bytes fail).
Runs go through the real service (resolve -> store -> executor -> actors -> store) on a
three-position OME-TIFF and must give exactly the masks the in-process executor gives. Never
``ray stop`` here: it would end every Ray process on the machine, other users' too.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from sam2web.params import TrackParams
from sam2web.service import executor as executor_mod
from sam2web.service import runs
from sam2web.store import get_store
from sam2web.tracking import factory
from sam2web.types import Location, Prompt

ray = pytest.importorskip("ray")
ray_executor = pytest.importorskip("sam2web.service.ray_executor")

ROOT = Path(__file__).resolve().parents[1]
XY, T = 3, 10
WORKER = '{"CPU": 1, "sam2web_worker": 1}'


def _write_stack(path: Path, n_xy: int = XY, n_t: int = T) -> None:
    """Positions as OME series, each with its own bright square moving on noise."""
    rng = np.random.default_rng(0)
    with tifffile.TiffWriter(path, ome=True) as w:
        for p in range(n_xy):
            arr = (rng.random((n_t, 48, 64)) * 50).astype(np.uint8)
            for t in range(n_t):
                arr[t, 10 + t + p : 20 + t + p, 8 + 2 * t : 18 + 2 * t] = 220
            w.write(arr, metadata={"axes": "TYX"})


def _prompts(n_xy: int = XY) -> list[Prompt]:
    return [Prompt(0, Location(p, 0, 0), box=(8.0, 10.0 + p, 18.0, 20.0 + p), name="cell") for p in range(n_xy)]


@pytest.fixture(scope="session")
def cluster():
    """A 2-node Ray cluster for the whole file (about 10-25 s to start on a busy 2-core machine)."""
    from ray.cluster_utils import Cluster

    tmp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    os.makedirs(os.path.join(tmp, "ray"))
    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                                            "PYTHONPATH")}  # fmt: skip
    os.environ.update(
        RAY_TMPDIR=tmp,  # Ray's address file lives here, not in the shared /tmp/ray
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), saved["PYTHONPATH"]) if p),  # workers import this tree
    )
    ray_executor.refresh_auth_config()  # ray was imported above, before the variables were set
    node = {"num_cpus": 1, "object_store_memory": 80 << 20}
    c = Cluster(
        initialize_head=True,
        head_node_args={**node, "resources": {"sam2web_worker": 1}, "include_dashboard": False, "temp_dir": tmp},
    )
    c.add_node(**node, resources={"sam2web_worker": 1})
    ray.init(address=c.address, namespace="sam2web-test", log_to_driver=False)
    try:
        yield c
    finally:
        ray_executor.shutdown()
        ray.shutdown()
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def env(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SAM2WEB_STANDIN", "slow:0.1")  # the same in most tests: their workers are reused
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "ray")
    monkeypatch.setenv("SAM2WEB_RAY_ADDRESS", cluster.address)
    monkeypatch.setenv("SAM2WEB_RAY_WORKERS", "2")
    monkeypatch.setenv("SAM2WEB_RAY_RESOURCES", WORKER)
    monkeypatch.delenv("SAM2WEB_RANDOM_WEIGHTS", raising=False)
    factory.clear()
    store = get_store(str(tmp_path / "data"))
    ws = store.create_workspace("w")
    src = tmp_path / "plate.ome.tif"
    _write_stack(src)
    store.save_upload(ws.id, "plate.ome.tif", src.read_bytes())
    store.update_workspace(ws.id, dataset={"kind": "files", "files": ["plate.ome.tif"], "pages_as": "time"})
    yield store, store.get_workspace(ws.id)
    factory.clear()


def _submit(store, ws, prompts=None, **params) -> int:
    from sam2web.stack.display import DisplaySettings

    stack = runs.open_dataset(store, ws)
    try:
        run_id, _ = runs.submit(
            store,
            ws,
            stack,
            TrackParams(**{"xy": "all", "time": "all", **params}),
            prompts or _prompts(),
            DisplaySettings.default(stack),
            Location(0, 0, 0),
        )
    finally:
        stack.close()
    return run_id


def _finish(store, run_id, timeout=90.0):
    assert executor_mod.get_executor().wait(run_id, timeout), f"run {run_id} did not finish in {timeout}s"
    return store.get_run(run_id)


def _local_masks(store, ws, monkeypatch, **params):
    """The same run through the in-process (inline) executor: the reference."""
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "inline")
    run_id = _submit(store, ws, **params)
    run = _finish(store, run_id)
    assert run.status == "done", run.error
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "ray")
    return store.load_masks(run_id)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k].to_mask(), b[k].to_mask()) for k in a)


def _overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_standin_run_fans_out_to_both_nodes_with_progress_and_matches_local(env, monkeypatch):
    store, ws = env
    ex = executor_mod.get_executor()
    assert isinstance(ex, ray_executor.RayExecutor)
    run_id = _submit(store, ws)
    seen = []
    deadline = time.monotonic() + 90
    while ex.is_active(run_id) and time.monotonic() < deadline:
        p = ex.progress(run_id, store)
        seen.append((p.status, p.done, p.total, p.phase))
        time.sleep(0.05)
    run = _finish(store, run_id)
    assert run.status == "done", run.error
    assert run.done_frames == run.total_frames == XY * T and store.count_masks(run_id) == XY * T
    assert run.info["done_sequences"] == [0, 1, 2] and run.info["frames_tracked"] == XY * T
    assert any(s == "running" and 0 < d < t for s, d, t, _ in seen), seen[-5:]  # per-frame progress came back
    units = run.info["executed_on"]
    assert sorted(u["index"] for u in units) == [0, 1, 2]
    assert len({u["node"] for u in units}) == 2  # both nodes did work...
    assert any(_overlap(a, b) for a in units for b in units if a["node"] != b["node"])  # ...at the same time
    assert "2 workers" in ex.describe() and "2 nodes" in ex.describe()
    monkeypatch.setenv("SAM2WEB_STANDIN", "1")  # the same drift, no delay
    assert _same(store.load_masks(run_id), _local_masks(store, ws, monkeypatch))


def test_cancel_stops_every_sequence_within_a_frame(env, monkeypatch):
    store, ws = env
    monkeypatch.setenv("SAM2WEB_STANDIN", "slow:0.1")
    ex = executor_mod.get_executor()
    run_id = _submit(store, ws)
    deadline = time.monotonic() + 60
    while store.count_masks(run_id) < 4:
        assert time.monotonic() < deadline, "no frames were saved"
        time.sleep(0.02)
    t_cancel = time.time()
    assert ex.cancel(run_id)
    run = _finish(store, run_id, timeout=30)
    assert run.status == "cancelled" and "finished frames are kept" in run.error
    # Each worker stopped within about a frame (0.1 s) of the cancel, plus Ray's message latency.
    ends = [u["end"] for u in run.info["executed_on"]]
    assert ends and max(ends) - t_cancel < 1.5, [e - t_cancel for e in ends]
    assert store.count_masks(run_id) < XY * T


def test_killed_worker_is_restarted_and_its_unit_tracks_only_the_missing_frames(env, monkeypatch):
    store, ws = env
    monkeypatch.setenv("SAM2WEB_STANDIN", "slow:0.1")
    ex = executor_mod.get_executor()
    run_id = _submit(store, ws)
    deadline = time.monotonic() + 60
    # both busy units (positions 1 and 2) have saved frames, whichever worker is killed
    while min(sum(1 for _, loc in store.load_masks(run_id) if loc.xy == xy) for xy in (0, 1)) < 2:
        assert time.monotonic() < deadline, "no frames were saved"
        time.sleep(0.02)
    pids = ex.worker_pids()
    victim = pids[0][0]
    assert victim != os.getpid()
    os.kill(victim, signal.SIGKILL)
    run = _finish(store, run_id, timeout=90)
    assert run.status == "done", run.error
    masks = store.load_masks(run_id)
    assert len(masks) == store.count_masks(run_id) == XY * T  # nothing lost, nothing doubled
    assert victim not in {pid for pid, _ in ex.worker_pids()}  # the actor was restarted in a new process
    ran_in = {u["pid"] for u in run.info["executed_on"]}
    assert ran_in - {pid for pid, _ in pids}  # a sequence was re-run by the restarted actor
    assert run.info["done_sequences"] == [0, 1, 2]
    retried = [u for u in run.info["executed_on"] if u["attempt"] > 0]
    assert len(retried) == 1, run.info["executed_on"]  # the killed unit was resubmitted once...
    assert 0 < retried[0]["frames_tracked"] <= T - 2  # ...and tracked only the frames still missing
    monkeypatch.setenv("SAM2WEB_STANDIN", "1")  # the same drift, no delay
    assert _same(masks, _local_masks(store, ws, monkeypatch))


def test_app_tracks_on_ray_and_says_where(env, tmp_path):
    from sam2web.ui.viewer import INJECT_KEY
    from tests.app_helpers import assert_clean, new_app, submit_track, wait_runs

    store, _ = env
    at = new_app()
    at.button(key="ds_open_sample").click().run()
    at.switch_page("pages/annotate.py").run()
    at.session_state[INJECT_KEY] = [{"kind": "box", "box": [60, 40, 110, 90]}]
    at.run()
    at.switch_page("pages/track.py").run()
    assert_clean(at)
    # Where runs execute is the Track caption's tooltip (the caption itself stays one line).
    captions = " ".join(c.value + " " + c.proto.help for c in at.caption) + " ".join(m.value for m in at.markdown)
    assert "Ray cluster at" in captions, captions
    submit_track(at, time="1-6")
    assert_clean(at)
    ws = store.get_workspace(at.session_state["ws_id"])
    wait_runs(store, ws.id, timeout=60)
    (run,) = store.list_runs(ws.id)
    assert run.status == "done", run.error
    assert run.done_frames == 6 and store.count_masks(run.id) == 6 and run.info["executed_on"]
    at.run()
    assert_clean(at)
    text = " ".join(c.value + " " + c.proto.help for c in at.caption) + " ".join(m.value for m in at.markdown)
    assert "2 workers" in text and "done" in text, text


def test_a_correction_on_ray_equals_the_in_process_one(env, monkeypatch):
    """A correction re-tracks one object from a new box and keeps the rest of the earlier run's masks."""
    from sam2web.stack.display import DisplaySettings

    store, ws = env

    def corrected() -> dict:
        run = _finish(store, _submit(store, ws))
        assert run.status == "done", run.error
        stack = runs.open_dataset(store, ws)
        try:
            loc = Location(1, 4, 0)
            new_id = runs.correct(
                store, ws, stack, run, 0, loc, [30.0, 20.0, 40.0, 30.0], DisplaySettings.default(stack)
            )
        finally:
            stack.close()
        fixed = _finish(store, new_id)
        assert fixed.status == "done", fixed.error
        before, after = store.load_masks(run.id), store.load_masks(new_id)
        assert not _same(before, after)  # the correction changed the object's later masks
        return after

    on_ray = corrected()
    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "inline")
    local = corrected()
    assert len(on_ray) == XY * T and _same(on_ray, local)


def test_workers_that_cannot_read_the_frames_fail_the_run_with_one_sentence(env, monkeypatch, tmp_path):
    store, ws = env
    monkeypatch.setenv("SAM2WEB_RAY_DATA_DIR", str(tmp_path / "not-mounted"))  # where workers would see the data
    run = _finish(store, _submit(store, ws))
    assert run.status == "failed"
    assert "cannot read" in run.error and "SAM2WEB_RAY_DATA_DIR" in run.error and "not-mounted" in run.error
    assert store.count_masks(run.id) == 0


def test_ray_settings_are_parsed_in_one_place(monkeypatch):
    from sam2web.config import settings
    from sam2web.errors import UserError

    monkeypatch.setenv("SAM2WEB_RAY_RESOURCES", '{"GPU": 1, "CPU": 4, "big_mem": 0.5}')
    monkeypatch.setenv("SAM2WEB_RAY_WORKERS", "3")
    monkeypatch.setenv("SAM2WEB_RAY_ADDRESS", "ray://head:10001")
    cfg = settings()
    assert cfg.ray_resources == (("CPU", 4.0), ("GPU", 1.0), ("big_mem", 0.5)) and cfg.ray_workers == 3
    assert ray_executor._worker_options(cfg) == {"num_cpus": 4.0, "num_gpus": 1.0, "resources": {"big_mem": 0.5}}
    assert "ray://head:10001: 3 (CPU 4, GPU 1, big_mem 0.5 each)" in ray_executor.RayExecutor(cfg).describe()
    for bad in ("GPU=1", "[1]", '{"GPU": "one"}', '{"GPU": -1}'):
        monkeypatch.setenv("SAM2WEB_RAY_RESOURCES", bad)
        with pytest.raises(UserError, match="SAM2WEB_RAY_RESOURCES"):
            settings()


def test_missing_ray_is_one_sentence(monkeypatch):
    import builtins

    from sam2web.errors import UserError

    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UserError, match=r"pip install 'sam2web\[ray\]'"):
        ray_executor.require_ray()


def test_a_cluster_without_auth_is_refused(monkeypatch):
    from sam2web.config import settings
    from sam2web.errors import UserError

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(UserError, match="without authentication"):
        ray_executor.RayExecutor(settings()).start()


def test_real_sam2_random_weights_matches_local(env, monkeypatch):
    store, ws = env
    monkeypatch.setenv("SAM2WEB_STANDIN", "")
    monkeypatch.setenv("SAM2WEB_RANDOM_WEIGHTS", "1")
    params = {"model": "tiny", "image_size": 128, "device": "cpu", "precision": "fp32", "xy": "1-2", "time": "1-3"}
    run_id = _submit(store, ws, **params)
    run = _finish(store, run_id, timeout=120)
    assert run.status == "done", run.error
    assert run.random_weights and run.info["model_info"]["random_weights"]
    assert len({u["node"] for u in run.info["executed_on"]}) == 2
    ray_masks = store.load_masks(run_id)
    assert len(ray_masks) == 2 * 3
    assert _same(ray_masks, _local_masks(store, ws, monkeypatch, **params))


def _cli(args: list[str]) -> int:
    from sam2web import cli

    return cli.main(args)


def test_cli_track_and_sweep_on_ray_write_what_the_in_process_run_writes(env, cluster, tmp_path, monkeypatch):
    import json

    from sam2web.stack import sample

    ray_executor.shutdown()  # the app's workers would hold both nodes: the command starts its own
    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    stack = sample.write_sample(tmp_path / "sample.tif", n_frames=6)
    gt = sample.write_sample_ground_truth(tmp_path / "TRA", n_frames=6)
    boxes = [(60, 40, 110, 90), (150, 100, 200, 150)]
    features = [
        {
            "type": "Feature",
            "properties": {"XY": 0, "Time": 0, "Z": 0},
            "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
        }
        for x0, y0, x1, y1 in boxes
    ]
    prompts = tmp_path / "prompts.geojson"
    prompts.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    common = [str(stack), "--prompts", str(prompts), "--quiet"]
    ray_flags = ["--executor", "ray", "--ray-address", cluster.address]
    assert _cli(["track", *common, "--out", str(tmp_path / "local")]) == 0
    assert _cli(["track", *common, "--out", str(tmp_path / "ray"), *ray_flags]) == 0
    for name in ("annotations.geojson", "annotations.csv", "connections.csv"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    grid = ["--gt", str(gt), "--models", "tiny", "--directions", "forward,both"]
    assert _cli(["sweep", *common, *grid, "--out", str(tmp_path / "sweep-local")]) == 0
    assert _cli(["sweep", *common, *grid, "--out", str(tmp_path / "sweep-ray"), *ray_flags]) == 0
    local = json.loads((tmp_path / "sweep-local" / "sweep.json").read_text())
    on_ray = json.loads((tmp_path / "sweep-ray" / "sweep.json").read_text())
    assert len(on_ray) == 2 and on_ray == local


def test_a_dead_driver_leaves_its_run_interrupted_and_resumable(env, monkeypatch, tmp_path):
    """The app killed mid-run: Ray ends its actors, the next server marks the run interrupted, Resume finishes it."""
    import subprocess
    import sys

    from sam2web.stack.display import DisplaySettings
    from sam2web.store import Store

    store, ws = env
    ray_executor.shutdown()  # the driver below starts its own workers on both nodes
    code = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from tests.test_ray_executor import _submit
from sam2web.store import get_store
store = get_store({str(store.root)!r})
print(_submit(store, store.get_workspace({ws.id!r})), flush=True)
time.sleep(120)
"""
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    ) as driver:
        try:
            run_id = int(driver.stdout.readline())
            deadline = time.monotonic() + 60
            while store.count_masks(run_id) < 4:
                assert time.monotonic() < deadline and driver.poll() is None, "the driver saved no frames"
                time.sleep(0.05)
        finally:
            driver.kill()
            driver.wait(10)
    time.sleep(1.0)  # Ray ends the dead driver's actors: nothing more is written
    kept = store.count_masks(run_id)
    time.sleep(1.0)
    assert store.count_masks(run_id) == kept < XY * T
    assert run_id in Store(store.root).recover_interrupted()  # what the next server does on start
    run = store.get_run(run_id)
    assert run.status == "interrupted"
    stack = runs.open_dataset(store, ws)
    new_id = runs.rerun(store, ws, stack, run, True, _prompts(), DisplaySettings.default(stack))
    stack.close()
    resumed = _finish(store, new_id)
    assert resumed.status == "done", resumed.error
    assert store.count_masks(new_id) == XY * T
    # Only the missing frames were tracked, plus the last saved frame of each sequence it continues (<= 2 workers).
    assert resumed.info["frames_tracked"] <= XY * T - kept + 2


def test_two_positions_each_dividing_give_the_local_executors_lineage_on_ray(env, monkeypatch, tmp_path):
    """The oracle on both nodes: daughters keep their parents (the actors' objects reach the store),
    their ids are distinct across positions, and connections.csv equals the local executor's."""
    try:
        from tests import lineage_runs
    except ImportError:  # pragma: no cover
        import lineage_runs

    store, _ = env
    tra, stack = lineage_runs.write_inputs(tmp_path / "lineage")
    monkeypatch.setenv("SAM2WEB_STANDIN", f"oracle:{tra}")
    ws = lineage_runs.add_workspace(store, stack)
    run_id = lineage_runs.submit(store, ws)
    run = _finish(store, run_id, timeout=120)
    on_ray = lineage_runs.check_lineage(store, run_id)
    assert len({u["node"] for u in run.info["executed_on"]}) == 2  # one position per node
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "local")
    local_id = lineage_runs.submit(store, ws)
    assert executor_mod.get_executor().wait(local_id, 120)
    assert lineage_runs.check_lineage(store, local_id) == on_ray
    executor_mod.get_executor().shutdown()
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "ray")
