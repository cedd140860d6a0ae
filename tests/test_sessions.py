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


def test_warm_and_status(env):
    params = TrackParams()
    sessions.warm(params)
    got = None
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = sessions.model_status(params)
        if got == "ready":
            break
        time.sleep(0.05)
    assert got == "ready"
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
