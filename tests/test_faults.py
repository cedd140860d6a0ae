"""Every fault ends in a true state: a full disk, a lost server, a lost lane, a quick second Resume,
a broken database. The runs use the stand-in tracker (inline or in a worker process)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import tifffile

from sam2web import store as store_mod
from sam2web.service import executor as executor_mod
from sam2web.service import runs
from sam2web.store import DataFolderError, Store, get_store
from sam2web.types import Location, Prompt

try:
    from tests.test_service import T, _submit, _wait_frames, _wait_status, env, process_env  # noqa: F401
except ImportError:  # pragma: no cover
    from test_service import T, _submit, _wait_frames, _wait_status


def _resume(store, ws, run, prompts=None):
    from sam2web.stack.display import DisplaySettings

    stack = runs.open_dataset(store, ws)
    prompts = prompts or [Prompt(0, Location(0, 0, 0), box=(8.0, 10.0, 18.0, 20.0), name="cell")]
    try:
        return runs.rerun(store, ws, stack, store.get_run(run.id), True, prompts, DisplaySettings.default(stack))
    finally:
        stack.close()


def _times(store, run_id) -> set[int]:
    return {loc.time for (_, loc) in store.load_masks(run_id)}


# -- a full disk --------------------------------------------------------------------------------
def _enospc_after(monkeypatch, n_calls: int):
    real = Store.add_masks
    calls = {"n": 0}

    def add_masks(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > n_calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(Store, "add_masks", add_masks)
    return lambda: monkeypatch.setattr(Store, "add_masks", real)


def test_a_full_disk_fails_the_run_with_its_frames_kept_and_resume_finishes_it(env, monkeypatch):
    store, ws = env
    free_space = _enospc_after(monkeypatch, 3)
    run_id, _ = _submit(store, ws)
    run = _wait_status(store, run_id, ("failed", "done", "cancelled"))
    assert run.status == "failed" and "disk is full" in run.error and str(store.root) in run.error, run.error
    assert "Resume" in run.error and store.count_masks(run_id) == 3
    free_space()
    new_id = _resume(store, ws, run)
    done = _wait_status(store, new_id, ("done", "failed"))
    assert done.status == "done" and _times(store, new_id) == set(range(T))


def test_a_run_whose_end_cannot_be_written_is_reported_and_saved_later(env, monkeypatch):
    store, ws = env
    _enospc_after(monkeypatch, 2)
    real_update = Store.update_run

    def update_run(self, run_id, **k):
        if k.get("status") in ("failed",):
            raise store_mod.DiskFullError("full")
        return real_update(self, run_id, **k)

    monkeypatch.setattr(Store, "update_run", update_run)
    monkeypatch.setattr("sam2web.service.worker.time.sleep", lambda s: None)
    run_id, _ = _submit(store, ws)
    ex = executor_mod.get_executor()
    assert ex.wait(run_id, 60)  # the lane finished it and still serves
    assert store.get_run(run_id).status == "running"  # the store could not take the end…
    assert ex.progress(run_id, store).status == "failed"  # …but the page is told the truth
    monkeypatch.setattr(Store, "update_run", real_update)  # space freed: the next look writes it
    assert ex.progress(run_id, store).status == "failed"
    assert store.get_run(run_id).status == "failed"


def test_cancel_ends_a_run_that_no_lane_holds(env):
    store, ws = env
    run_id = store.create_run(ws.id, {}, total_frames=3)
    store.update_run(run_id, status="running")
    assert runs.cancel(run_id) is True
    assert store.get_run(run_id).status == "cancelled"


# -- Resume ----------------------------------------------------------------------------------------
@pytest.fixture
def long_env(env, tmp_path, monkeypatch):
    """30 frames, the stand-in slowed so a run can be cancelled midway."""
    store, ws = env
    arr = np.full((30, 48, 64), 20, np.uint8)
    for t in range(30):
        arr[t, 10:22, 8 + t : 20 + t] = 220
    path = store.files_dir(ws.id) / "long.tif"
    tifffile.imwrite(path, arr, imagej=True, metadata={"axes": "TYX"})
    store.update_workspace(ws.id, dataset={"kind": "files", "files": ["long.tif"], "pages_as": "time"})
    monkeypatch.setenv("SAM2WEB_STANDIN", "slow:0.05")
    return store, store.get_workspace(ws.id)


def test_resume_of_a_cancelled_forward_run_with_a_division_is_never_done_with_frames_missing(long_env):
    """Forward from Time 16 with a hand-marked division at Time 22, cancelled at 6 of 15 frames."""
    store, ws = long_env
    mother = Prompt(0, Location(0, 15, 0), box=(20.0, 10.0, 34.0, 22.0), name="mother")
    d1 = Prompt(1, Location(0, 21, 0), box=(28.0, 10.0, 34.0, 16.0), name="mother.1", parent=0)
    d2 = Prompt(2, Location(0, 21, 0), box=(28.0, 16.0, 34.0, 22.0), name="mother.2", parent=0)
    prompts = [mother, d1, d2]
    run_id, _ = _submit(store, ws, prompts=prompts, time="16-30", direction="forward")
    _wait_frames(store, run_id, 6)
    runs.cancel(run_id)
    run = _wait_status(store, run_id, ("cancelled", "done"))
    assert run.status == "cancelled"
    missing_before = set(range(15, 30)) - _times(store, run_id)
    assert missing_before
    first = _resume(store, ws, run, prompts)
    assert _resume(store, ws, run, prompts) == first  # a second quick Resume is the same run
    resumed = _wait_status(store, first, ("done", "failed", "cancelled"), timeout=120)
    assert resumed.status == "done", resumed.error
    assert _times(store, first) == set(range(15, 30))  # no frame of the run without masks
    assert resumed.info["frames_tracked"] >= len(missing_before)
    assert len([r for r in store.list_runs(ws.id) if r.info.get("resumed_from") == run.id]) == 1


# -- a lost server ------------------------------------------------------------------------------
def test_a_worker_that_loses_its_server_ends_the_run_interrupted(process_env):
    store, ws = process_env
    ex = executor_mod.get_executor()
    run_id, _ = _submit(store, ws)
    _wait_frames(store, run_id, 3)
    worker = ex._lanes["cpu"].workers[0]
    worker.cmd.close()  # what the worker sees when the server process is killed
    worker.events.close()
    run = _wait_status(store, run_id, ("interrupted", "failed", "cancelled", "done"))
    assert run.status == "interrupted" and "Resume" in run.error, (run.status, run.error)
    assert 3 <= store.count_masks(run_id) < T


def test_sigterm_to_the_worker_ends_the_running_frame_cleanly(process_env):
    store, ws = process_env
    ex = executor_mod.get_executor()
    run_id, _ = _submit(store, ws)
    _wait_frames(store, run_id, 3)
    os.kill(ex.worker_pid("cpu"), signal.SIGTERM)
    run = _wait_status(store, run_id, ("interrupted", "failed", "cancelled", "done"))
    assert run.status == "interrupted", (run.status, run.error)
    assert store.count_masks(run_id) < T


# -- the database --------------------------------------------------------------------------------
def test_a_damaged_database_is_a_sentence(tmp_path):
    (tmp_path / "sam2web.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataFolderError, match="is damaged.*restore sam2web.db"):
        Store(tmp_path)


def test_an_emptied_database_is_never_recreated_over_workspace_folders(tmp_path):
    s = Store(tmp_path)
    s.create_workspace("kept", owner="browser:a")
    s.close()
    (tmp_path / "sam2web.db").write_bytes(b"")
    for extra in ("sam2web.db-wal", "sam2web.db-shm"):
        (tmp_path / extra).unlink(missing_ok=True)
    with pytest.raises(DataFolderError, match="is empty, but the data folder holds 1 workspace"):
        Store(tmp_path)
    assert (tmp_path / "sam2web.db").stat().st_size == 0  # nothing was created over it


def test_a_read_only_database_is_a_sentence(tmp_path):
    if os.geteuid() == 0:
        s = Store(tmp_path)
        ws = s.create_workspace("x")
        s._conn.execute("PRAGMA query_only=ON")  # root ignores file modes: make the connection read-only
        with pytest.raises(DataFolderError, match="cannot be written"):
            s.rename_workspace(ws.id, "y")
        s.close()
        return
    s = Store(tmp_path)
    s.close()
    os.chmod(tmp_path / "sam2web.db", 0o444)
    with pytest.raises(DataFolderError, match="cannot be written"):
        Store(tmp_path).create_workspace("x")


def test_the_app_says_what_happened_to_a_damaged_database(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path))
    (tmp_path / "sam2web.db").write_bytes(b"this is not sqlite" * 100)
    at = AppTest.from_file(str(runs_root() / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("is damaged" in e.value for e in at.error), [e.value for e in at.error]
    monkeypatch.setenv("SAM2WEB_CACHE_MB", "nan")
    at = AppTest.from_file(str(runs_root() / "app.py"), default_timeout=60).run()
    assert not at.exception and any("SAM2WEB_CACHE_MB" in e.value for e in at.error), [e.value for e in at.error]


def runs_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def test_the_cli_says_a_bad_setting_in_one_sentence(tmp_path):
    import sys

    env = {**os.environ, "SAM2WEB_CACHE_MB": "nan", "PYTHONPATH": str(runs_root())}
    out = subprocess.run(
        [sys.executable, "-m", "sam2web", "track", "x.tif", "--prompts", "p.json", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 2 and "SAM2WEB_CACHE_MB" in out.stderr and "Traceback" not in out.stderr, out.stderr
    env["SAM2WEB_CACHE_MB"] = "64"
    env["SAM2WEB_STANDIN"] = "slow:abc"
    out = subprocess.run(
        [sys.executable, "-m", "sam2web", "track", "x.tif", "--prompts", "p.json", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 2 and "slow:0.5" in out.stderr and "Traceback" not in out.stderr, out.stderr


# -- a real full disk (a small tmpfs) -----------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"mounting a small tmpfs is not allowed here ({(out.stderr or out.stdout).strip()[:120]})")
    try:
        yield mnt
    finally:
        opened = store_mod._STORES.pop(store_mod.data_root(mnt / "data"), None)
        if opened is not None:
            opened.close()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(folder, leave: int):
    """Fill the disk holding ``folder``, then give back ``leave`` bytes."""
    filler = folder / "filler.bin"
    chunk = b"\0" * 65536
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def test_a_really_full_disk_ends_the_run_failed_and_resume_finishes_it(tiny_disk, monkeypatch):
    from sam2web.tracking import factory

    data = tiny_disk / "data"
    monkeypatch.setenv("SAM2WEB_DATA", str(data))
    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "inline")
    monkeypatch.delenv("SAM2WEB_RANDOM_WEIGHTS", raising=False)
    monkeypatch.setattr("sam2web.service.worker.time.sleep", lambda s: None)
    factory.clear()
    store = get_store(str(data))
    ws = store.create_workspace("w", owner="browser:a")
    arr = np.full((T, 48, 64), 20, np.uint8)
    tifffile.imwrite(store.files_dir(ws.id) / "movie.tif", arr, imagej=True, metadata={"axes": "TYX"})
    store.update_workspace(ws.id, dataset={"kind": "files", "files": ["movie.tif"], "pages_as": "time"})
    ws = store.get_workspace(ws.id)
    filler = _fill(tiny_disk, 12 * 1024)
    ex = executor_mod.get_executor()
    try:
        run_id, _ = _submit(store, ws)
    except DataFolderError as err:  # the disk was already too full to queue it: said as a sentence
        assert "is full" in str(err) and str(data) in str(err)
        filler.unlink()
        run_id, _ = _submit(store, ws)
        filler = _fill(tiny_disk, 0)
    assert ex.wait(run_id, 60)
    seen = ex.progress(run_id, store)
    assert seen.status == "failed" and "disk is full" in seen.error and str(data) in seen.error, seen
    kept = store.count_masks(run_id)
    assert kept < T
    filler.unlink()  # space freed: the end is written, Resume finishes the run
    assert ex.progress(run_id, store).status == "failed" and store.get_run(run_id).status == "failed"
    new_id = _resume(store, ws, store.get_run(run_id))
    done = _wait_status(store, new_id, ("done", "failed"))
    assert done.status == "done" and store.count_masks(new_id) == T
    ex.shutdown()
    factory.clear()


# -- track --out ---------------------------------------------------------------------------------
def _cli_inputs(tmp_path):
    import json

    from tests.test_service import _write_stack

    _write_stack(tmp_path / "movie.tif")
    box = [[[8, 10], [18, 10], [18, 20], [8, 20], [8, 10]]]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"XY": 0, "Time": 0, "Z": 0},
                "geometry": {"type": "Polygon", "coordinates": box},
            }
        ],
    }
    (tmp_path / "p.geojson").write_text(json.dumps(doc))


def _track(tmp_path, slow: str) -> subprocess.Popen:
    import sys

    env = {**os.environ, "SAM2WEB_STANDIN": slow, "PYTHONPATH": str(runs_root()), "SAM2WEB_DATA": str(tmp_path / "d")}
    args = [sys.executable, "-m", "sam2web", "track", "movie.tif", "--prompts", "p.geojson", "--out", "out"]
    return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_tmp(tmp_path, proc) -> None:
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*.tmp")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "track never started writing"
        time.sleep(0.05)  # poll interval; the deadline bounds it


def test_a_killed_track_leaves_nothing_beside_out(tmp_path):
    _cli_inputs(tmp_path)
    proc = _track(tmp_path, "slow:0.5")
    _wait_tmp(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert not list(tmp_path.glob(".out.*")) and not (tmp_path / "out").exists()
    # SIGKILL cannot clean up: the next track beside the same --out removes what it left
    proc = _track(tmp_path, "slow:0.5")
    _wait_tmp(tmp_path, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert list(tmp_path.glob(".out.*.tmp"))
    proc = _track(tmp_path, "1")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert not list(tmp_path.glob(".out.*")) and (tmp_path / "out" / "annotations.geojson").is_file()
