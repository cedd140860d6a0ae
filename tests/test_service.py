"""The run service and its executors, without Streamlit.

Runs go through the real service (resolve -> store -> executor -> worker -> store) on a small TIFF
with the stand-in tracker; the process executor's tests spawn real worker processes, kill one
mid-run and check that Resume tracks only the missing frames.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time

import numpy as np
import pytest
import tifffile

from sam2web.errors import UserError
from sam2web.params import TrackParams
from sam2web.service import executor as executor_mod
from sam2web.service import runs
from sam2web.service.worker import Leg, error_sentence, plan_resume
from sam2web.store import get_store
from sam2web.tracking import factory
from sam2web.types import CompactMask, Location, Prompt, Sequence

T = 12


def _write_stack(path):
    rng = np.random.default_rng(0)
    arr = (rng.random((T, 48, 64)) * 50).astype(np.uint8)
    for t in range(T):
        arr[t, 10 + t : 20 + t, 8 + 2 * t : 18 + 2 * t] = 220
    tifffile.imwrite(path, arr, imagej=True, metadata={"axes": "TYX"})


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "inline")
    monkeypatch.delenv("SAM2WEB_RANDOM_WEIGHTS", raising=False)
    factory.clear()
    store = get_store(str(tmp_path / "data"))
    ws = store.create_workspace("w")
    src = tmp_path / "movie.tif"
    _write_stack(src)
    store.save_upload(ws.id, "movie.tif", src.read_bytes())
    store.update_workspace(ws.id, dataset={"kind": "files", "files": ["movie.tif"], "pages_as": "time"})
    ws = store.get_workspace(ws.id)
    yield store, ws
    executor_mod.get_executor().shutdown()
    factory.clear()


def _submit(store, ws, prompts=None, **params):
    from sam2web.stack.display import DisplaySettings

    stack = runs.open_dataset(store, ws)
    prompts = prompts or [Prompt(0, Location(0, 0, 0), box=(8.0, 10.0, 18.0, 20.0), name="cell")]
    try:
        return runs.submit(
            store,
            ws,
            stack,
            TrackParams(**{"time": "all", **params}),
            prompts,
            DisplaySettings.default(stack),
            Location(0, 0, 0),
        )
    finally:
        stack.close()


def _wait_status(store, run_id, statuses, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = store.get_run(run_id)
        if run.status in statuses:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} stayed {store.get_run(run_id).status}")


def _wait_frames(store, run_id, n, timeout=60):
    deadline = time.monotonic() + timeout
    while store.count_masks(run_id) < n:
        assert time.monotonic() < deadline, f"run {run_id} saved only {store.count_masks(run_id)} masks"
        time.sleep(0.01)


# -- rules without any executor -----------------------------------------------------------------
def test_resolve_refuses_what_a_user_can_get_wrong(env):
    store, ws = env
    stack = runs.open_dataset(store, ws)
    p = [Prompt(0, Location(0, 3, 0), box=(1.0, 1.0, 9.0, 9.0), tags=["cell"])]
    with pytest.raises(UserError, match="no prompts yet"):
        runs.resolve(stack, TrackParams(), [], Location(0, 0, 0))
    with pytest.raises(UserError, match="chosen tags"):
        runs.resolve(stack, TrackParams(tags=("other",)), p, Location(0, 0, 0))
    with pytest.raises(UserError, match="No prompt lies"):
        runs.resolve(stack, TrackParams(time="5-8"), p, Location(0, 0, 0))
    with pytest.raises(UserError, match="outside -20..20"):
        runs.resolve(stack, TrackParams(padding=25.0), p, Location(0, 0, 0))
    got = runs.resolve(stack, TrackParams(time="all"), p, Location(0, 0, 0))
    assert [len(s.frames) for s in got.sequences] == [T] and got.objects == {
        "0": {"name": "Object 1", "tags": ["cell"]}
    }
    stack.close()


def test_correction_direction_rule():
    from sam2web.store import Run

    def run(direction):
        prompt = {"obj_id": 1, "loc": {"XY": 0, "Time": 4, "Z": 0}}
        return Run(1, "w", 0, 0, {"direction": direction, "across": "time", "prompts": [prompt]}, {}, "done", 0, 0, "",
                   "", False, {})  # fmt: skip

    assert runs.correction_direction(run("forward"), 1, Location(0, 2, 0)) == "forward"
    assert runs.correction_direction(run("backward"), 1, Location(0, 6, 0)) == "backward"
    assert runs.correction_direction(run("both"), 1, Location(0, 6, 0)) == "forward"
    assert runs.correction_direction(run("both"), 1, Location(0, 2, 0)) == "backward"
    assert runs.correction_direction(run("both"), 7, Location(0, 2, 0)) == "forward"  # an object never prompted


def test_random_weights_is_one_rule_for_every_spelling(env, monkeypatch):
    store, ws = env
    monkeypatch.setenv("SAM2WEB_STANDIN", "0")
    for spelling in ("1", "true", "YES", "on"):
        monkeypatch.setenv("SAM2WEB_RANDOM_WEIGHTS", spelling)
        assert runs.random_weights_run()
    monkeypatch.setenv("SAM2WEB_RANDOM_WEIGHTS", "maybe")
    with pytest.raises(UserError, match="SAM2WEB_RANDOM_WEIGHTS"):
        runs.random_weights_run()
    monkeypatch.setenv("SAM2WEB_RANDOM_WEIGHTS", "0")


def test_a_run_with_random_weights_is_recorded_as_such(env, monkeypatch):
    """SAM2WEB_RANDOM_WEIGHTS=true once ran random weights while the run was recorded as real."""
    store, ws = env
    monkeypatch.setenv("SAM2WEB_STANDIN", "")
    monkeypatch.setenv("SAM2WEB_RANDOM_WEIGHTS", "true")
    monkeypatch.setattr(
        factory, "_build", lambda *a: __import__("sam2web.tracking.track").tracking.track.StandInTracker()
    )
    run_id, _ = _submit(store, ws, model="tiny")
    assert executor_mod.get_executor().wait(run_id, 30)
    run = store.get_run(run_id)
    assert run.status == "done" and run.random_weights


@pytest.mark.parametrize(
    ("err", "words"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk holding the data folder is full"),
        (MemoryError(), "ran out of memory"),
        (type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory"), "ran out of memory"),
        (type("AcceleratorError", (RuntimeError,), {})("device-side assert"), "compute device failed"),
        (RuntimeError("cuda device mps whatever"), "Tracking failed unexpectedly"),
        (UserError("Say what to do."), "Say what to do."),
    ],
)
def test_errors_are_classified_by_type_not_by_words(err, words):
    assert words in error_sentence(err)


# -- resume planning ------------------------------------------------------------------------------
def _masks(seq, idx, objs=(0,)):
    m = np.zeros((8, 8), bool)
    m[2:5, 2:5] = True
    return {(o, seq.frames[i]): CompactMask.from_mask(m) for i in idx for o in objs}


def test_plan_resume_forward_continues_from_the_last_saved_frame():
    seq = Sequence(tuple(Location(0, t, 0) for t in range(10)), "time")
    prompts = [Prompt(0, seq.frames[0], box=(1, 1, 4, 4)), Prompt(1, seq.frames[6], box=(1, 1, 4, 4))]
    legs = plan_resume(seq, prompts, "forward", _masks(seq, range(5)))
    assert len(legs) == 1 and legs[0].sequence.frames == seq.frames[4:]
    assert [(p.obj_id, p.loc.time, p.mask is not None) for p in legs[0].prompts] == [(0, 4, True), (1, 6, False)]
    assert plan_resume(seq, prompts, "forward", {}) == [Leg(seq, prompts, "forward")]
    assert plan_resume(seq, prompts, "forward", _masks(seq, range(10))) == []


def test_plan_resume_both_finishes_the_forward_pass_then_the_reverse_one():
    seq = Sequence(tuple(Location(0, t, 0) for t in range(10)), "time")
    prompts = [Prompt(0, seq.frames[3], box=(1, 1, 4, 4)), Prompt(1, seq.frames[5], box=(1, 1, 4, 4))]
    fwd, rev = plan_resume(seq, prompts, "both", _masks(seq, range(3, 7)))
    assert fwd.sequence.frames == seq.frames[6:]
    assert [f.time for f in rev.sequence.frames] == [5, 4, 3, 2, 1, 0]
    assert {(p.obj_id, p.loc.time) for p in rev.prompts} == {(0, 3), (1, 5)}
    # forward done, reverse reached frame 2: continue the reverse from 2 with the masks there
    (rest,) = plan_resume(seq, prompts, "both", _masks(seq, range(2, 10), (0, 1)))
    assert [f.time for f in rest.sequence.frames] == [2, 1, 0] and all(p.mask is not None for p in rest.prompts)


# -- executors ------------------------------------------------------------------------------------
def test_inline_run_persists_each_frame_and_matches_a_direct_track(env):
    store, ws = env
    run_id, position = _submit(store, ws)
    assert position == 0
    assert executor_mod.get_executor().wait(run_id, 30)
    run = store.get_run(run_id)
    assert run.status == "done", run.error
    assert run.done_frames == run.total_frames == T and store.count_masks(run_id) == T
    assert run.info["done_sequences"] == [0] and run.info["frames_tracked"] == T
    assert run.settings["model"] == "small" and run.settings["padding"] == 0.0  # TrackParams stored whole


def test_fifo_queue_positions_and_cancel_of_a_queued_run(env, monkeypatch):
    store, ws = env
    monkeypatch.setenv("SAM2WEB_STANDIN", "slow:0.05")
    ex = executor_mod.get_executor()
    r1, p1 = _submit(store, ws)
    r2, p2 = _submit(store, ws)
    r3, p3 = _submit(store, ws)
    assert (p1, p2, p3) == (0, 1, 2)
    assert ex.progress(r3, store).queue_position == 2
    assert ex.cancel(r2)
    assert store.get_run(r2).status == "cancelled" and ex.queue_position(r3) == 1
    assert ex.wait(r1, 30) and ex.wait(r3, 30)
    assert store.get_run(r1).status == store.get_run(r3).status == "done"
    assert store.count_masks(r2) == 0


def test_predictor_is_built_once_and_shared(monkeypatch):
    factory.clear()
    built = []
    monkeypatch.delenv("SAM2WEB_STANDIN", raising=False)
    monkeypatch.setattr(factory, "_build", lambda params, d, p: built.append(params) or object())
    barrier = threading.Barrier(4)
    got = []

    def get():
        barrier.wait()
        got.append(factory.get_predictor(TrackParams(model="tiny", image_size=256)))

    threads = [threading.Thread(target=get) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and built[0].image_size == 256
    assert len({id(p) for p in got}) == 1
    factory.clear()


@pytest.fixture
def process_env(env, monkeypatch):
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "local")
    monkeypatch.setenv("SAM2WEB_STANDIN", "slow:0.15")
    yield env
    executor_mod.get_executor().shutdown()


def test_worker_process_cancel_stops_within_one_frame(process_env):
    store, ws = process_env
    ex = executor_mod.get_executor()
    assert ex.processes
    run_id, _ = _submit(store, ws)
    _wait_frames(store, run_id, 3)
    ex.cancel(run_id)
    at_cancel = store.count_masks(run_id)
    run = _wait_status(store, run_id, ("cancelled",))
    assert store.count_masks(run_id) <= at_cancel + 1  # the frame in progress may finish, no more
    assert "finished frames are kept" in run.error


def test_killed_worker_leaves_run_interrupted_and_resume_tracks_only_the_missing_frames(process_env):
    store, ws = process_env
    ex = executor_mod.get_executor()
    run_id, _ = _submit(store, ws)
    _wait_frames(store, run_id, 5)
    pid = ex.worker_pid("cpu")
    assert pid and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    run = _wait_status(store, run_id, ("interrupted",))
    kept = store.count_masks(run_id)
    assert 5 <= kept < T and "Resume" in run.error
    stack = runs.open_dataset(store, ws)
    from sam2web.stack.display import DisplaySettings

    prompts = [Prompt(0, Location(0, 0, 0), box=(8.0, 10.0, 18.0, 20.0), name="cell")]
    new_id = runs.rerun(store, ws, stack, run, True, prompts, DisplaySettings.default(stack))
    stack.close()
    resumed = _wait_status(store, new_id, ("done", "failed"), timeout=90)
    assert resumed.status == "done", resumed.error
    assert store.count_masks(new_id) == T
    # Only the missing frames were tracked, plus the last saved one it restarts from.
    assert resumed.info["frames_tracked"] == T - kept + 1
    # The resumed masks equal an uninterrupted run's (the stand-in drifts deterministically).
    full_id, _ = _submit(store, ws)
    _wait_status(store, full_id, ("done",), timeout=90)
    a, b = store.load_masks(new_id), store.load_masks(full_id)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k].to_mask(), b[k].to_mask()) for k in a)


def test_the_web_server_side_never_imports_torch(tmp_path):
    """Submitting a run, and downloading a checkpoint as the Track page does, load torch only in workers."""
    import subprocess
    import sys

    code = f"""
import os, sys, time
os.environ.update(SAM2WEB_DATA={str(tmp_path / "d")!r}, SAM2WEB_STANDIN="1", SAM2WEB_EXECUTOR="local")
sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
import test_service as t
from sam2web.store import get_store
store = get_store({str(tmp_path / "d")!r})
ws = store.create_workspace("w")
t._write_stack({str(tmp_path / "m.tif")!r})
store.save_upload(ws.id, "m.tif", open({str(tmp_path / "m.tif")!r}, "rb").read())
store.update_workspace(ws.id, dataset={{"kind": "files", "files": ["m.tif"], "pages_as": "time"}})
ws = store.get_workspace(ws.id)
import sam2web.ui.track_ui  # the Track page's module graph
run_id, _ = t._submit(store, ws)
run = t._wait_status(store, run_id, ("done", "failed"))
assert run.status == "done", run.error
# the Track page's Download button: the real download path, the file checked in a worker process
import io
from sam2web.errors import UserError
from sam2web.service import checkpoints
from sam2web.tracking import model
class _Response(io.BytesIO):
    headers = {{"Content-Length": "32"}}
model._open_url = lambda url, timeout=30.0: _Response(b"not a checkpoint, 32 bytes long.")
os.environ["XDG_CACHE_HOME"] = {str(tmp_path / "cache")!r}
os.environ.pop("SAM2WEB_CHECKPOINTS", None)
try:
    checkpoints.download("tiny")
except UserError as err:
    print("REFUSED", str(err))
print("LEFT", sorted(p.name for p in model.download_dir().iterdir()))
print("TORCH", "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert "TORCH False" in out.stdout, out.stdout + out.stderr
    assert "REFUSED" in out.stdout and "LEFT []" in out.stdout, out.stdout + out.stderr  # checked, not kept


# -- one rule for the app and the CLI ---------------------------------------------------------------
def test_app_qa_and_evaluate_score_a_multi_z_run_the_same(tmp_path):
    """A run across Time over several Z slices: the app's QA and `sam2web evaluate` use one function."""
    from shapely.geometry import box

    from sam2web import evaluate, export, links
    from sam2web.store import Run
    from sam2web.types import Annotation
    from sam2web.ui import results_ui

    labels = np.zeros((3, 32, 32), np.uint16)
    for t in range(3):
        labels[t, 4 + t : 12 + t, 4:12] = 1
    anns = []
    for t in range(3):
        for z, dx in ((0, 0), (1, 6)):  # the object drawn at two Z slices, shifted on the second
            geom = box(4 + dx, 4 + t, 12 + dx, 12 + t)
            anns.append(Annotation(f"a{t}{z}", 0, Location(0, t, z), geom))
    export.write_exports(tmp_path / "out", anns, links.connect(anns))
    cli = evaluate.evaluate_paths(_label_files(tmp_path, labels), tmp_path / "out")
    run = Run(1, "w", 0, 0, {"across": "time", "prompts": []}, {}, "done", 0, 0, "", "", False, {})
    preds, prompt_frames = results_ui._predictions(run, anns, 0)
    app = evaluate.evaluate({t: labels[t] for t in range(3)}, preds, prompt_frames, {})
    assert app.to_dict() == cli.to_dict()


def _label_files(folder, labels):
    paths = []
    for t in range(labels.shape[0]):
        p = folder / f"man_track{t:03d}.tif"
        tifffile.imwrite(p, labels[t])
        paths.append(str(p))
    return paths


def test_export_channel_is_the_first_visible_channel():
    from sam2web.stack.display import ChannelDisplay, DisplaySettings

    d = DisplaySettings([ChannelDisplay(0, "#ff0000", visible=False), ChannelDisplay(1, "#00ff00")])
    assert d.export_channel() == 1
    assert DisplaySettings([ChannelDisplay(0, "#fff", visible=False)]).export_channel() == 0


def test_cli_honours_the_stand_in_setting(tmp_path, monkeypatch, capsys):
    """`sam2web track` with SAM2WEB_STANDIN=1 needs no checkpoint (one factory for the CLI and the app)."""
    import json

    from sam2web import cli

    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    monkeypatch.delenv("SAM2WEB_RANDOM_WEIGHTS", raising=False)
    monkeypatch.setenv("SAM2WEB_CHECKPOINTS", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    factory.clear()
    _write_stack(tmp_path / "m.tif")
    prompts = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[[8, 10], [18, 10], [18, 20], [8, 20], [8, 10]]]},
                "properties": {"object_id": 0, "XY": 0, "Time": 0, "Z": 0},
            }
        ],
    }
    (tmp_path / "p.geojson").write_text(json.dumps(prompts))
    rc = cli.main(["track", str(tmp_path / "m.tif"), "--prompts", str(tmp_path / "p.geojson"), "--out",
                   str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "out" / "annotations.geojson").read_text())
    assert len(doc["features"]) == T
    factory.clear()


def test_cpu_pool_deals_a_runs_sequences_to_several_workers(env, monkeypatch, tmp_path):
    """Two Z slices tracked across Time are two sequences: a pool of two workers runs one each, and the
    masks equal the single-process executor's."""
    from sam2web.stack.display import DisplaySettings

    store, ws = env
    arr = np.zeros((T, 2, 48, 64), np.uint8)
    for t in range(T):
        arr[t, :, 10 + t : 20 + t, 8 + 2 * t : 18 + 2 * t] = 220
    tifffile.imwrite(tmp_path / "tz.tif", arr, imagej=True, metadata={"axes": "TZYX"})
    store.save_upload(ws.id, "tz.tif", (tmp_path / "tz.tif").read_bytes())
    store.update_workspace(ws.id, dataset={"kind": "files", "files": ["tz.tif"], "pages_as": "time"})
    ws = store.get_workspace(ws.id)
    prompts = [Prompt(z, Location(0, 0, z), box=(8.0, 10.0, 18.0, 20.0)) for z in (0, 1)]

    def run_with(workers: str) -> int:
        monkeypatch.setenv("SAM2WEB_EXECUTOR", "local")
        monkeypatch.setenv("SAM2WEB_STANDIN", "slow:0.05")
        monkeypatch.setenv("SAM2WEB_CPU_WORKERS", workers)
        stack = runs.open_dataset(store, ws)
        run_id, _ = runs.submit(
            store, ws, stack, TrackParams(time="all", z="all"), prompts, DisplaySettings.default(stack),
            Location(0, 0, 0),
        )  # fmt: skip
        stack.close()
        run = _wait_status(store, run_id, ("done", "failed"), timeout=120)
        assert run.status == "done", run.error
        return run_id

    pooled, single = run_with("2"), run_with("1")
    info = store.get_run(pooled).info
    assert info["done_sequences"] == [0, 1] and info["frames_tracked"] == 2 * T
    assert len(info["workers"]) == 2  # both worker processes did work
    assert len(store.get_run(single).info["workers"]) == 1
    a, b = store.load_masks(pooled), store.load_masks(single)
    assert a.keys() == b.keys() and len(a) == 2 * T
    assert all(np.array_equal(a[k].to_mask(), b[k].to_mask()) for k in a)
    assert store.get_run(pooled).done_frames == 2 * T
    executor_mod.get_executor().shutdown()
