"""The rules behind what the pages say about runs (sam2web.service.review) and the words for them
(sam2web.ui.labels, sam2web.ui.progress_ui): own frames, skipped sequences, where review opens."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import tifffile

from sam2web.service import review
from sam2web.types import Location, Prompt, Sequence
from sam2web.ui import labels
from sam2web.ui.progress_ui import progress_text


def _seq(xy: int, z: int, times=range(5)) -> Sequence:
    return Sequence(tuple(Location(xy, t, z) for t in times), "time")


def test_own_frames_and_unprompted_sequences():
    seqs = [_seq(0, 0), _seq(1, 0), _seq(2, 0)]
    prompts = [Prompt(0, Location(1, 2, 0), box=(0, 0, 4, 4))]
    assert review.own_frames(seqs, prompts) == 5
    assert review.unprompted(seqs, prompts) == [Location(0, 0, 0), Location(2, 0, 0)]
    assert review.own_frames(seqs, []) == 0


def test_first_masked_frame():
    frames = [Location(0, t, 0) for t in range(10)]
    assert review.first_masked_frame(frames, {Location(0, 6, 0), Location(0, 8, 0)}) == 6
    assert review.first_masked_frame(frames, set()) == 0
    assert review.first_masked_frame(frames, {Location(3, 1, 0)}) == 0  # not one of these frames


def test_object_labels_count_from_one():
    assert labels.object_label(0, "") == "#1 Object 1"
    assert labels.object_label(4, "mother.1") == "#5 mother.1"
    assert labels.object_ref(2) == "#3"


def test_run_span_and_skipped_sequences_in_words():
    forward = {"across": "time", "direction": "forward", "resolved": {"xy": [0], "time": list(range(15, 30)), "z": [0]}}
    assert labels.run_span(forward) == "from Time 16"
    assert labels.run_span({**forward, "direction": "backward"}) == "from Time 30 back"
    assert labels.run_span({**forward, "direction": "both"}) == "Time 16–30"
    assert labels.run_span({"across": "z", "direction": "forward", "resolved": {"z": [4, 5]}}) == "from Z 5"
    many = {
        **forward,
        "resolved": {"xy": list(range(36)), "time": list(range(15, 30)), "z": [0]},
        "n_sequences": 36,
        "unprompted": [[i, 15, 0] for i in range(2, 36)],
    }
    note = labels.unprompted_note(many)
    assert note.startswith("No prompt on 34 of 36 sequences (XY 3, XY 4, XY 5, XY 6, XY 7, XY 8 and 28 more)")
    assert labels.unprompted_note(forward) == ""
    two_axes = {**many, "resolved": {**many["resolved"], "z": [0, 1]}, "unprompted": [[1, 15, 1]], "n_sequences": 4}
    assert labels.unprompted_note(two_axes) == "No prompt on 1 of 4 sequences (XY 2 · Z 2): not tracked."


def test_progress_counts_the_runs_own_frames_and_names_lineage_work():
    @dataclass
    class S:
        run_id: int = 1
        status: str = "running"
        done: int = 3
        total: int = 15
        eta_s: float | None = None
        phase: str | None = "tracking"

    assert progress_text(S(), seen={}, span="from Time 16") == "Frame 3 of 15, from Time 16"
    assert progress_text(S(done=15, phase="daughters"), seen={}).startswith("Tracking daughters…")
    assert progress_text(S(done=15, phase="divisions"), seen={}).startswith("Checking for cell divisions…")


def test_run_card_sentences():
    settings = {"across": "time", "direction": "forward", "resolved": {"time": list(range(15, 30))}, "model": "tiny"}
    assert labels.frames_sentence("done", 15, 15, 30, settings) == (
        "Tracked all 15 frames (from Time 16) · 30 object masks saved."
    )
    assert labels.frames_sentence("cancelled", 4, 15, 4, settings).startswith("4 of 15 frames (from Time 16) tracked")
    info = {"model": "tiny", "device": "cpu", "precision": "bf16", "image_size": 512}
    assert labels.model_sentence(info) == "Ran SAM2.1 hiera tiny on the CPU in bfloat16 autocast at 512 px."
    assert labels.run_title(3, "done", settings, "16:12") == (
        "Run 3 · done · SAM2.1 hiera tiny, across Time, forward · started 16:12"
    )


def test_qa_summary_in_words():
    overall = {
        "objects": 3,
        "matched": 2,
        "scored_frames": 20,
        "mean_iou": 0.8123,
        "tracked_fraction": 0.95,
        "lost_frames": 1,
        "id_switches": 0,
        "wrong_id_frames": 2,
        "TRA": 0.91,
        "DET": 0.93,
        "LNK": None,
        "division_recall": 0.5,
        "division_precision": 1.0,
        "divisions_true": 2,
        "divisions_found": 1,
    }
    text = labels.qa_summary(overall)
    assert "2 of 3 tracked objects matched a true cell." in text
    assert "by 0.81 on average" in text and "95 % of them by at least half" in text
    assert "1 frame lost" in text and "0 identity switches" in text and "2 frames on the wrong cell" in text
    assert "tracking 0.91, detection 0.93." in text and "linking" not in text  # undefined measures are left out
    assert "1 division found, 2 in the truth (50 % of the true ones found, 100 % of those found right)." in text


@pytest.fixture
def tz_workspace(tmp_path, monkeypatch):
    """Two Z slices tracked across Time: two sequences."""
    from sam2web.store import get_store
    from sam2web.tracking import factory

    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "inline")
    monkeypatch.delenv("SAM2WEB_RANDOM_WEIGHTS", raising=False)
    factory.clear()
    arr = np.zeros((6, 2, 48, 64), np.uint8)
    for t in range(6):
        arr[t, :, 10 + t : 20 + t, 8 + 2 * t : 18 + 2 * t] = 220
    tifffile.imwrite(tmp_path / "tz.tif", arr, imagej=True, metadata={"axes": "TZYX"})
    store = get_store(str(tmp_path / "data"))
    ws = store.create_workspace("w")
    store.save_upload(ws.id, "tz.tif", (tmp_path / "tz.tif").read_bytes())
    store.update_workspace(ws.id, dataset={"kind": "files", "files": ["tz.tif"], "pages_as": "time"})
    yield store, store.get_workspace(ws.id)
    factory.clear()


def test_a_run_counts_only_the_sequences_it_tracks(tz_workspace):
    from sam2web.params import TrackParams
    from sam2web.service import runs
    from sam2web.service.executor import get_executor
    from sam2web.stack.display import DisplaySettings

    store, ws = tz_workspace
    stack = runs.open_dataset(store, ws)
    try:
        run_id, _ = runs.submit(
            store,
            ws,
            stack,
            TrackParams(time="all", z="all"),
            [Prompt(0, Location(0, 0, 1), box=(8.0, 10.0, 18.0, 20.0))],  # only on Z 2
            DisplaySettings.default(stack),
            Location(0, 0, 0),
        )
    finally:
        stack.close()
    assert get_executor().wait(run_id, 60)
    run = store.get_run(run_id)
    assert run.status == "done", run.error
    assert (run.done_frames, run.total_frames) == (6, 6)  # not "12 of 12": Z 1 had nothing to track
    assert run.settings["unprompted"] == [[0, 0, 0]]
    assert labels.unprompted_note(run.settings) == "No prompt on 1 of 2 sequences (Z 1): not tracked."
