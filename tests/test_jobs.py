"""The job runner: FIFO per device with queue positions, cancel keeps frames, failures end one run."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sam2web.errors import UserError
from sam2web.service import jobs
from sam2web.service.jobs import Cancelled, JobRunner, error_sentence
from sam2web.store import Store
from sam2web.types import CompactMask, Location


def _mask() -> CompactMask:
    m = np.zeros((16, 24), bool)
    m[2:6, 3:9] = True
    return CompactMask.from_mask(m)


def _gate_job(gate: threading.Event, started: threading.Event, frames: int = 2):
    def work(ctx):
        ctx.set_total(frames)
        started.set()
        assert gate.wait(10)
        for t in range(frames):
            if ctx.cancelled():
                raise Cancelled()
            ctx.save_frames([(0, Location(0, t, 0), _mask())])

    return work


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path)
    yield s
    s.close()


def test_fifo_per_device_with_queue_positions(store):
    runner = JobRunner()
    ws = store.create_workspace()
    gate, started = threading.Event(), threading.Event()
    r1, r2, r3 = (store.create_run(ws.id, {}) for _ in range(3))
    assert runner.submit(store, r1, "cpu", _gate_job(gate, started)) == 0
    assert started.wait(10)
    assert runner.submit(store, r2, "cpu", _gate_job(gate, threading.Event())) == 1
    assert runner.submit(store, r3, "cpu", _gate_job(gate, threading.Event())) == 2
    assert runner.queue_position(r1) == 0
    assert runner.queue_position(r2) == 1 and runner.queue_position(r3) == 2
    st2 = runner.status(store, r2)
    assert st2.status == "queued" and st2.queue_position == 1
    gate.set()
    for r in (r1, r2, r3):
        assert runner.wait(r, 20)
        assert store.get_run(r).status == "done"
        assert store.count_masks(r) == 2
    assert runner.status(store, r3).done == 2


def test_other_device_does_not_wait(store):
    runner = JobRunner()
    ws = store.create_workspace()
    gate, started = threading.Event(), threading.Event()
    r1, r2 = store.create_run(ws.id, {}), store.create_run(ws.id, {})
    runner.submit(store, r1, "cpu", _gate_job(gate, started))
    assert started.wait(10)
    started2 = threading.Event()
    assert runner.submit(store, r2, "cuda", _gate_job(gate, started2)) == 0
    assert started2.wait(10)  # runs at once on its own device
    gate.set()
    assert runner.wait(r1, 20) and runner.wait(r2, 20)


def test_cancel_running_keeps_finished_frames(store):
    runner = JobRunner()
    ws = store.create_workspace()
    run = store.create_run(ws.id, {})
    first_saved, go_on = threading.Event(), threading.Event()

    def work(ctx):
        ctx.set_total(5)
        for t in range(5):
            if ctx.cancelled():
                raise Cancelled()
            ctx.save_frames([(0, Location(0, t, 0), _mask())])
            if t == 1:
                first_saved.set()
                assert go_on.wait(10)

    runner.submit(store, run, "cpu", work)
    assert first_saved.wait(10)
    runner.cancel(run)
    go_on.set()
    assert runner.wait(run, 20)
    r = store.get_run(run)
    assert r.status == "cancelled" and "kept" in r.error
    assert store.count_masks(run) == 2


def test_cancel_queued_run_drops_it(store):
    runner = JobRunner()
    ws = store.create_workspace()
    gate, started = threading.Event(), threading.Event()
    r1, r2 = store.create_run(ws.id, {}), store.create_run(ws.id, {})
    runner.submit(store, r1, "cpu", _gate_job(gate, started))
    assert started.wait(10)
    runner.submit(store, r2, "cpu", _gate_job(gate, threading.Event()))
    assert runner.cancel(r2)
    assert store.get_run(r2).status == "cancelled" and runner.queue_position(r2) is None
    gate.set()
    assert runner.wait(r1, 20) and store.get_run(r1).status == "done"


@pytest.mark.parametrize(
    "err, words",
    [
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "ran out of memory"),
        (MemoryError(), "ran out of memory"),
        (UserError("Choose a smaller range."), "Choose a smaller range."),
        (RuntimeError("CUDA error: device-side assert triggered"), "device failed"),
    ],
)
def test_failures_end_the_run_with_a_sentence_and_runner_keeps_serving(store, err, words):
    runner = JobRunner()
    ws = store.create_workspace()
    bad, good = store.create_run(ws.id, {}), store.create_run(ws.id, {})

    def boom(ctx):
        ctx.set_total(1)
        raise err

    runner.submit(store, bad, "cpu", boom)
    open_gate = threading.Event()
    open_gate.set()
    runner.submit(store, good, "cpu", _gate_job(open_gate, threading.Event(), 1))
    assert runner.wait(bad, 20) and runner.wait(good, 20)
    r = store.get_run(bad)
    assert r.status == "failed" and words in r.error
    assert store.get_run(good).status == "done"
    assert error_sentence(err).endswith(".")


def test_predictor_is_built_once_and_shared(monkeypatch):
    from sam2web.tracking import model

    jobs.clear_predictors()
    built = []
    monkeypatch.delenv("SAM2WEB_STANDIN", raising=False)
    monkeypatch.setattr(model, "load_predictor", lambda **kw: built.append(kw) or object())
    barrier = threading.Barrier(4)
    got = []

    def get():
        barrier.wait()
        got.append(jobs.get_predictor("tiny", None, "cpu", 256, "auto"))

    threads = [threading.Thread(target=get) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and built[0]["image_size"] == 256
    assert len({id(p) for p in got}) == 1
    jobs.clear_predictors()


def test_track_job_with_standin_persists_each_frame(store, monkeypatch):
    from sam2web.stack import Stack, display
    from sam2web.tracking import track
    from sam2web.types import Prompt, Sequence

    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    jobs.clear_predictors()
    arr = (np.random.default_rng(0).random((4, 40, 56)) * 255).astype(np.uint8)
    stack = Stack.from_array(arr, axes="TYX")
    seq = Sequence(tuple(Location(0, t, 0) for t in range(4)), "time")
    prompt = Prompt(obj_id=0, loc=Location(0, 0, 0), box=(5.0, 6.0, 20.0, 18.0), tags=["cell"])
    ws = store.create_workspace()
    run = store.create_run(ws.id, {}, objects={"0": {"name": "a", "tags": ["cell"]}})
    job = jobs.TrackJob(
        open_stack=lambda: stack,
        sequences=[seq],
        prompts=[prompt],
        display=display.DisplaySettings.default(stack),
        direction="forward",
        model="tiny",
    )
    saved = []
    orig = store.add_masks
    monkeypatch.setattr(store, "add_masks", lambda *a, **k: (saved.append(len(list(a[1]))), orig(*a, **k))[1])
    runner = JobRunner()
    runner.submit(store, run, "cpu", job)
    assert runner.wait(run, 60)
    r = store.get_run(run)
    assert r.status == "done", r.error
    assert r.done_frames == r.total_frames == 4
    assert store.count_masks(run) == 4
    assert sum(1 for n in saved if n) >= 4  # masks were written frame by frame, not only at the end
    assert r.info["done_sequences"] == [0]
    assert isinstance(jobs.get_predictor("tiny", None, "auto", None, "auto"), track.StandInTracker)
    jobs.clear_predictors()


def test_just_started_run_shows_its_stored_total(store):
    """A run that has started but not yet called set_total shows the total known at creation."""
    gate, started = threading.Event(), threading.Event()

    def work(ctx):
        started.set()
        assert gate.wait(10)
        ctx.set_total(4)
        for t in range(4):
            ctx.save_frames([(0, Location(0, t, 0), _mask())])

    ws = store.create_workspace("w")
    run_id = store.create_run(ws.id, {}, total_frames=4)
    runner = JobRunner()
    runner.submit(store, run_id, "cpu", work)
    assert started.wait(10)
    status = runner.status(store, run_id)
    assert (status.status, status.done, status.total) == ("running", 0, 4)
    gate.set()
    assert runner.wait(run_id, 10)
    status = runner.status(store, run_id)
    assert (status.status, status.done, status.total) == ("done", 4, 4)
