"""Interactive sessions: a prompt on frame F gives F's mask at once, through the service API.

The stand-in tracker serves the same path as SAM2 (deterministic masks: the box, shifted along
the sequence), first in-process (inline executor), then in a real worker process; SAM2 itself runs
with random weights on a tiny stack (its masks mean nothing, so those tests check the plumbing:
right frame, right shape, refinement changes the state, sessions bounded and freed).
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from geom_synthetic import TRA, needs_tra

from sam2web.params import TrackParams
from sam2web.service import executor as executor_mod
from sam2web.service import session_host, sessions
from sam2web.stack import open_stack
from sam2web.store import get_store
from sam2web.tracking import factory
from sam2web.types import Location

T = 6


def _write_stack(path, t=T, h=48, w=64):
    arr = np.full((t, h, w), 20, np.uint8)
    for i in range(t):
        arr[i, 10 + i : 20 + i, 8 + 2 * i : 18 + 2 * i] = 220
    tifffile.imwrite(path, arr, imagej=True, metadata={"axes": "TYX"})


def _workspace(store, tmp_path, name="w"):
    ws = store.create_workspace(name)
    src = tmp_path / f"{name}.tif"
    _write_stack(src)
    store.save_upload(ws.id, "movie.tif", src.read_bytes())
    store.update_workspace(ws.id, dataset={"kind": "files", "files": ["movie.tif"], "pages_as": "time"})
    return store.get_workspace(ws.id)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "inline")
    monkeypatch.delenv("SAM2WEB_RANDOM_WEIGHTS", raising=False)
    factory.clear()
    store = get_store(str(tmp_path / "data"))
    ws = _workspace(store, tmp_path)
    yield store, ws
    executor_mod.get_executor().shutdown()
    factory.clear()


def _request(store, ws, t, params=None):
    params = params or TrackParams()
    with open_stack(str(store.dataset_paths(ws)[0])) as stack:
        return sessions.frame_request(store, ws, stack, params, {}, Location(0, t, 0))


def _mask(result):
    return result.mask.to_mask()


def test_box_gives_the_mask_of_that_frame(env):
    store, ws = env
    req = _request(store, ws, 3)
    assert req.loc == Location(0, 3, 0) and len(req.sequence.frames) == T
    res = sessions.prompt(req, 0, box=(10, 12, 30, 28))
    assert res.ok, res.status
    assert res.loc == Location(0, 3, 0) and res.frame == 3
    mask = _mask(res)
    assert mask.shape == (48, 64)
    assert mask[12:28, 10:30].all() and mask.sum() == 20 * 16  # the stand-in's mask is the box at its own frame
    assert res.area == 320
    xs = [x for ring in res.polygons for x, _ in ring]
    ys = [y for ring in res.polygons for _, y in ring]
    assert (min(xs), max(xs), min(ys), max(ys)) == (10, 30, 12, 28)  # full-resolution pixels


def test_a_second_point_refines_the_same_object(env):
    store, ws = env
    req = _request(store, ws, 2)
    first = _mask(sessions.prompt(req, 0, box=(10, 10, 30, 30)))
    refined = sessions.prompt(req, 0, box=(10, 10, 30, 30), points=[(20, 20, 0)])
    assert refined.ok
    cut = _mask(refined)
    assert first[20, 20] and not cut[20, 20] and cut.sum() < first.sum()
    again = _mask(sessions.prompt(req, 0, box=(10, 10, 30, 30), points=[(20, 20, 0), (40, 40, 1)]))
    assert again[40, 40] and not again[20, 20]
    removed = sessions.prompt(req, 0)
    assert removed.ok and removed.area == 0 and removed.polygons == []


def test_view_embeds_and_sessions_are_per_workspace(env, tmp_path):
    store, ws = env
    other = _workspace(store, tmp_path, "other")
    a, b = _request(store, ws, 1), _request(store, other, 1)
    sessions.view(a)
    ra = sessions.prompt(a, 0, box=(5, 5, 15, 15))
    rb = sessions.prompt(b, 0, box=(30, 20, 50, 40))
    assert _mask(ra)[5:15, 5:15].all() and not _mask(ra)[30, 40]
    assert _mask(rb)[30, 40] and not _mask(rb)[6, 6]
    info = sessions.session_info(a.params)
    assert sorted(k[0] for k in info["keys"]) == sorted([ws.id, other.id])
    sessions.close(ws.id)
    info = sessions.session_info(a.params)
    assert [k[0] for k in info["keys"]] == [other.id]
    from sam2web.service import runs

    runs.delete_workspace(store, other.id, 10)  # deleting a workspace frees its sessions too
    assert sessions.session_info(a.params)["keys"] == []


def test_sessions_are_bounded(env, monkeypatch):
    store, ws = env
    monkeypatch.setattr(session_host, "MAX_SESSIONS", 2)
    params = TrackParams()
    with open_stack(str(store.dataset_paths(ws)[0])) as stack:
        reqs = [sessions.frame_request(store, ws, stack, params, {}, Location(0, 0, 0))]
    # three sequences: along Time, and two others named by their frames (as different XY would be)
    from dataclasses import replace

    from sam2web.types import Sequence

    seqs = [
        reqs[0].sequence,
        Sequence(reqs[0].sequence.frames[:3], "time"),
        Sequence(reqs[0].sequence.frames[1:], "time"),
    ]
    for seq in seqs:
        assert sessions.prompt(replace(reqs[0], sequence=seq, frame=0), 0, box=(1, 1, 9, 9)).ok
    keys = sessions.session_info(params)["keys"]
    assert len(keys) == 2 and seqs[0] not in [k[1] for k in keys]  # the least recently used went first


def test_an_error_is_one_sentence_and_the_worker_goes_on(env):
    store, ws = env
    req = _request(store, ws, 1)
    from dataclasses import replace

    bad = sessions.prompt(replace(req, frame=99), 0, box=(1, 1, 5, 5))
    assert not bad.ok and bad.status.endswith(".") and "\n" not in bad.status and "frame" in bad.status
    gone = sessions.prompt(replace(req, paths=("/nonexistent/file.tif",)), 0, box=(1, 1, 5, 5))
    assert not gone.ok and "\n" not in gone.status
    assert sessions.prompt(req, 0, box=(1, 1, 5, 5)).ok  # the same host answers the next request


def _status_becomes(params, wanted: str, timeout: float = 120.0) -> bool:
    """Poll ``model_status`` (a busy machine may answer "loading" for a while) until ``wanted``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sessions.model_status(params) == wanted:
            return True
        time.sleep(0.05)
    return False


def test_warm_and_status(env):
    params = TrackParams()
    sessions.warm(params)
    assert _status_becomes(params, "ready")
    assert sessions.loading_label(params) == "Loading SAM2 small…"


def test_live_frames_deliver_what_was_saved_since_the_cursor(env):
    store, ws = env
    from sam2web.types import CompactMask

    run_id = store.create_run(ws.id, {}, objects={}, total_frames=T)
    box = np.zeros((48, 64), bool)
    box[5:10, 5:12] = True
    store.add_masks(run_id, [(0, Location(0, 0, 0), CompactMask.from_mask(box))], done_frames=1)
    first = sessions.live_frames(store, run_id)
    assert list(first.polygons) == [Location(0, 0, 0)] and first.polygons[Location(0, 0, 0)][0]
    store.add_masks(run_id, [(0, Location(0, 1, 0), CompactMask.from_mask(box))], done_frames=2)
    second = sessions.live_frames(store, run_id, after=first.cursor, epoch=first.epoch)
    assert list(second.polygons) == [Location(0, 1, 0)] and not second.reset
    store.replace_masks(run_id, [Location(0, 1, 0)], [])
    third = sessions.live_frames(store, run_id, after=second.cursor, epoch=second.epoch)
    assert third.reset and list(third.polygons) == [Location(0, 0, 0)]


# -- a real worker process ----------------------------------------------------------------------
@pytest.fixture
def process_env(env, monkeypatch):
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "local")
    monkeypatch.setenv("SAM2WEB_CPU_WORKERS", "1")
    yield env
    executor_mod.get_executor().shutdown()


def test_worker_process_serves_prompts_and_survives_errors(process_env):
    store, ws = process_env
    req = _request(store, ws, 4)
    assert sessions.model_status(req.params) == "cold"  # asking does not start a worker
    res = sessions.prompt(req, 1, box=(10, 12, 30, 28), timeout_s=120)
    assert res.ok, res.status
    assert res.loc == Location(0, 4, 0) and _mask(res)[12:28, 10:30].all() and res.area == 320
    assert _status_becomes(req.params, "ready")
    from dataclasses import replace

    bad = sessions.prompt(replace(req, frame=-1), 1, box=(1, 1, 5, 5), timeout_s=60)
    assert not bad.ok and "\n" not in bad.status
    again = sessions.prompt(req, 1, box=(10, 12, 30, 28), points=[(20, 20, 0)], timeout_s=60)
    assert again.ok and again.area == 320 - 49


def test_a_killed_worker_gives_a_sentence_then_a_fresh_one_answers(process_env):
    import os
    import signal

    store, ws = process_env
    req = _request(store, ws, 0)
    assert sessions.prompt(req, 0, box=(1, 1, 9, 9), timeout_s=120).ok
    ex = executor_mod.get_executor()
    worker = ex.session_workers("cpu")[0]
    pid = worker.pid
    os.kill(pid, signal.SIGKILL)
    worker.proc.join(10)
    res = sessions.prompt(req, 0, box=(1, 1, 9, 9), timeout_s=120)
    if not res.ok:  # the request raced the death: one sentence, and the next one gets a fresh worker
        assert res.status == executor_mod.WORKER_GONE
        res = sessions.prompt(req, 0, box=(1, 1, 9, 9), timeout_s=120)
    assert res.ok and worker.pid not in (None, pid)


# -- SAM2 itself, random weights ------------------------------------------------------------------
@pytest.fixture
def sam2_env(env, monkeypatch):
    monkeypatch.delenv("SAM2WEB_STANDIN")
    monkeypatch.setenv("SAM2WEB_RANDOM_WEIGHTS", "1")
    factory.clear()
    yield env
    executor_mod.get_executor().shutdown()
    factory.clear()


TINY = TrackParams(model="tiny", image_size=256, device="cpu", precision="fp32")


def _host():
    return executor_mod.get_executor().session_workers("cpu")[0].host


def test_sam2_prompt_gives_the_frame_mask_and_points_refine(sam2_env):
    store, ws = sam2_env
    req = _request(store, ws, 3, TINY)
    sessions.view(req)
    res = sessions.prompt(req, 0, box=(8, 10, 30, 30), timeout_s=300)
    assert res.ok, res.status
    assert res.loc == Location(0, 3, 0) and res.mask.shape == (48, 64)
    info = sessions.session_info(TINY)
    assert info["embeddings"] >= 1 and info["feature_bytes"] > 0
    entry = _host().sessions[req.key]
    state = entry.session.state
    obj_idx = state["obj_id_to_idx"][0]
    assert list(state["point_inputs_per_obj"][obj_idx]) == [3]  # the prompt sits on frame 3
    assert state["point_inputs_per_obj"][obj_idx][3]["point_labels"].shape[1] == 2  # the box's two corners
    refined = sessions.prompt(req, 0, box=(8, 10, 30, 30), points=[(15, 15, 1)], timeout_s=120)
    assert refined.ok and refined.warm  # frame 3's embedding was kept
    assert state["point_inputs_per_obj"][obj_idx][3]["point_labels"].shape[1] == 3
    cold = sessions.prompt(_request(store, ws, 5, TINY), 0, box=(8, 10, 30, 30), timeout_s=120)
    assert cold.ok and not cold.warm and cold.loc == Location(0, 5, 0)
    assert sorted(state["point_inputs_per_obj"][obj_idx]) == [3, 5]  # same session, same object


def test_sam2_sessions_share_one_bounded_embedding_budget_and_close_frees_them(sam2_env, monkeypatch):
    store, ws = sam2_env
    monkeypatch.setenv("SAM2WEB_CACHE_MB", "4")  # a quarter (1 MB) for embeddings: a few frames at 256
    for t in range(T):
        assert sessions.prompt(_request(store, ws, t, TINY), 0, box=(8, 10, 30, 30), timeout_s=300).ok
    info = sessions.session_info(TINY)
    assert 1 <= info["embeddings"] < T
    assert info["feature_bytes"] <= 1 << 20 or info["embeddings"] == 1
    sessions.close(ws.id)
    info = sessions.session_info(TINY)
    assert info["keys"] == [] and info["embeddings"] == 0 and info["feature_bytes"] == 0


def test_a_run_borrows_the_embedding_of_the_frame_just_prompted(sam2_env, monkeypatch):
    """Start after drawing: the first tracked frame skips the image encoder (the session has its embedding)."""
    from sam2web.service import runs
    from sam2web.stack.display import DisplaySettings
    from sam2web.types import Prompt

    store, ws = sam2_env
    params = TINY.with_(time="1-3", divisions=False)
    box = (8.0, 10.0, 30.0, 30.0)
    shown = sessions.prompt(_request(store, ws, 0, params), 0, box=box, timeout_s=300)
    assert shown.ok
    predictor = factory.get_predictor(params)
    encoded = []
    real = predictor.forward_image
    monkeypatch.setattr(predictor, "forward_image", lambda img: encoded.append(1) or real(img))
    stack = runs.open_dataset(store, ws)
    try:
        run_id, _ = runs.submit(
            store,
            ws,
            stack,
            params,
            [Prompt(0, Location(0, 0, 0), box=box)],
            DisplaySettings.default(stack),
            Location(0, 0, 0),
        )
    finally:
        stack.close()
    assert executor_mod.get_executor().wait(run_id, 300)
    assert store.get_run(run_id).status == "done"
    masks = store.load_masks(run_id)
    assert sorted(loc.time for (_, loc) in masks) == [0, 1, 2]
    assert len(encoded) == 2  # frames 1 and 2; frame 0 came from the session
    assert np.array_equal(masks[(0, Location(0, 0, 0))].to_mask(), shown.mask.to_mask())


# -- the oracle (ground truth under the prompt) serves the same path --------------------------------
@needs_tra
def test_oracle_gives_the_ground_truth_cell_of_that_frame(tmp_path, monkeypatch):
    from sam2web import ctc

    labels_stack, locs = ctc.open_labels(TRA, "time")
    with labels_stack:
        labels = np.array(ctc.label_frame(labels_stack, locs[2]))
    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SAM2WEB_STANDIN", f"oracle:{TRA}")
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "inline")
    factory.clear()
    store = get_store(str(tmp_path / "data"))
    ws = store.create_workspace("oracle")
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((4, *labels.shape), np.uint8), imagej=True, metadata={"axes": "TYX"})
    store.save_upload(ws.id, "b.tif", (tmp_path / "b.tif").read_bytes())
    store.update_workspace(ws.id, dataset={"kind": "files", "files": ["b.tif"], "pages_as": "time"})
    ws = store.get_workspace(ws.id)
    try:
        lab = int(np.unique(labels[labels > 0])[0])
        rows, cols = np.nonzero(labels == lab)
        res = sessions.prompt(_request(store, ws, 2), 0, box=(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
        assert res.ok, res.status
        assert res.loc == Location(0, 2, 0)
        assert np.array_equal(_mask(res), labels == lab)
    finally:
        executor_mod.get_executor().shutdown()
        factory.clear()


def test_a_prompt_is_answered_while_a_run_occupies_the_worker(process_env, monkeypatch):
    import time

    from sam2web.service import runs
    from sam2web.stack.display import DisplaySettings
    from sam2web.types import Prompt

    monkeypatch.setenv("SAM2WEB_STANDIN", "slow:3")  # 3 s per frame: the run lasts 18 s
    store, ws = process_env
    stack = runs.open_dataset(store, ws)
    try:
        run_id, _ = runs.submit(
            store,
            ws,
            stack,
            TrackParams(),
            [Prompt(0, Location(0, 0, 0), box=(5.0, 5.0, 15.0, 15.0))],
            DisplaySettings.default(stack),
            Location(0, 0, 0),
        )
    finally:
        stack.close()
    deadline = time.monotonic() + 120
    while store.count_masks(run_id) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.count_masks(run_id) >= 1  # the run is going on in the worker
    res = sessions.prompt(_request(store, ws, 3), 1, box=(20, 10, 40, 30), timeout_s=60)
    assert res.ok and res.area == 400
    ex = executor_mod.get_executor()
    assert ex.is_active(run_id) and store.count_masks(run_id) < T  # answered before the run ended
    ex.cancel(run_id)
    assert ex.wait(run_id, 60)


def test_threads_block_sets_and_restores_this_threads_count():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with factory.threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with factory.threads(None):
        assert torch.get_num_threads() == before
