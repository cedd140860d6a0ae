"""AppTest over every page through app.py: sample, uploads, drawing (injected), tracking with the
stand-in tracker, results, downloads, errors, two sessions at once, and runs interrupted by a restart."""

from __future__ import annotations

import io
import json
import sqlite3
import threading

import numpy as np
import pytest
from PIL import Image

from sam2web.service import executor as executor_mod
from sam2web.tracking import factory
from sam2web.ui.viewer import INJECT_KEY

try:  # tests/ may be a package; the fallback keeps a plain rootdir run working
    from tests.app_helpers import assert_clean, data, errors, hold_standin_runs, new_app, submit_track, wait_runs
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, errors, hold_standin_runs, new_app, submit_track, wait_runs


def _sample(at):
    at.button(key="ds_open_sample").click().run()
    assert_clean(at)
    return at


def _ws(at, store):
    """The session's current workspace (as the sidebar shows it)."""
    return store.get_workspace(at.session_state["ws_id"])


def _draw(at, *shapes):
    at.session_state[INJECT_KEY] = list(shapes)
    return at.run()


def _frame(at, run, frame: int):
    """The viewer reported frame ``frame`` (1-based) after a step or a pause."""
    at.session_state[f"res_frame_{run.id}"] = frame
    return at.run()


def test_dataset_sample_browse_and_refresh_brings_it_back(data):
    at = new_app()
    assert_clean(at)
    assert any("built-in sample" in i.value for i in at.info)
    _sample(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Time points"] == "24" and metrics["Width"] == "320" and metrics["Height"] == "240"
    at.slider(key="loc_ds_time").set_value(7).run()
    assert_clean(at)
    assert len(at.image) == 1 and "Time 7/24" in at.image[0].captions[0]
    ws = _ws(at, data)
    assert ws.dataset["kind"] == "sample" and ws.view["time"] == 6
    # Channel toggles / contrast are saved to the workspace.
    at.checkbox(key="loc_ch_vis_1").uncheck().run()
    assert data.get_workspace(ws.id).display["channels"][1]["visible"] is False
    # A "refresh": a new session with the same URL lands on the same workspace and frame.
    again = new_app(ws.id)
    assert_clean(again)
    assert again.slider(key="loc_ds_time").value == 7
    # A new session without the URL (closed tab): a new workspace, with this one a click away.
    fresh = new_app()
    assert _ws(fresh, data).id != ws.id
    assert f"sb_open_{ws.id}" in [b.key for b in fresh.sidebar.button]


def test_bad_uploads_say_what_to_do_and_keep_the_dataset(data):
    at = _sample(new_app())
    ws = _ws(at, data)
    at.file_uploader(key="ds_upload").set_value(("cells.tif", b"this is not a tiff", "image/tiff")).run()
    at.button(key="ds_open_upload").click().run()
    assert_clean(at)
    assert len(errors(at)) == 1 and "cells.tif" in errors(at)[0]
    assert data.get_workspace(ws.id).dataset["kind"] == "sample"  # nothing lost
    assert not data.staging_dir(ws.id).exists()
    at.file_uploader(key="ds_upload").set_value(("empty.tif", b"", "image/tiff")).run()
    at.button(key="ds_open_upload").click().run()
    assert any("empty" in e for e in errors(at))
    at.file_uploader(key="ds_upload").set_value(None).run()
    at.button(key="ds_open_upload").click().run()
    assert any("Choose one or more files" in e for e in errors(at))
    assert any("Upload limit" in c.value for c in at.caption)


def _png(value: int) -> bytes:
    img = np.full((48, 64), value, np.uint8)
    img[10:20, 10:30] = 255
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_several_frames_with_unsafe_names(data):
    at = new_app()
    files = [(f"../../t{i:03d}.png", _png(40 + i), "image/png") for i in range(3)]
    at.file_uploader(key="ds_upload").set_value(files).run()
    at.button(key="ds_open_upload").click().run()
    assert_clean(at)
    assert not errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Time points"] == "3" and metrics["Width"] == "64"
    ws = _ws(at, data)
    names = sorted(p.name for p in data.files_dir(ws.id).iterdir())
    assert names == ["t000.png", "t001.png", "t002.png"]
    # Frames of different sizes: one sentence, and the good dataset stays.
    odd = io.BytesIO()
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(odd, format="PNG")
    at.file_uploader(key="ds_upload").set_value(
        [("a.png", _png(1), "image/png"), ("b.png", odd.getvalue(), "image/png")]
    ).run()
    at.button(key="ds_open_upload").click().run()
    assert_clean(at)
    assert len(errors(at)) == 1
    assert sorted(p.name for p in data.files_dir(ws.id).iterdir()) == names
    assert {m.label: m.value for m in at.metric}["Time points"] == "3"


def test_annotate_draw_rename_retag_delete(data):
    at = _sample(new_app())
    at.switch_page("pages/annotate.py").run()
    assert_clean(at)
    _draw(at, {"kind": "box", "box": [100.5, 60.25, 140.0, 90.0]})
    assert_clean(at)
    ws = _ws(at, data)
    (p,) = ws.prompts
    assert p["obj_id"] == 0 and tuple(p["box"]) == pytest.approx((100.5, 60.25, 140.0, 90.0))
    assert p["tags"] == ["cell"]
    # A second object, then a negative point for the selected (second) object.
    _draw(at, {"kind": "box", "box": [10, 10, 40, 40]})
    _draw(at, {"kind": "point", "x": 20.0, "y": 22.0, "label": 0})
    prompts = data.get_workspace(ws.id).prompts
    assert [q["obj_id"] for q in prompts] == [0, 1]
    assert [tuple(pt) for pt in prompts[1]["points"]] == [(20.0, 22.0, 0)]
    # Rename and re-tag object 0, delete object 1.
    ver = at.session_state["ann_version"]
    at.text_input(key=f"ann_name_0_{ver}").set_value("Mother").run()
    at.text_input(key=f"ann_tagsof_0_{ver}").set_value("cell, dividing").run()
    prompts = data.get_workspace(ws.id).prompts
    assert prompts[0]["name"] == "Mother" and prompts[0]["tags"] == ["cell", "dividing"]
    at.button(key="ann_del_1").click().run()
    assert [q["obj_id"] for q in data.get_workspace(ws.id).prompts] == [0]
    # A box outside the image is clipped; a zero-size one is refused with a sentence.
    _draw(at, {"kind": "box", "box": [300, 200, 400, 300]})
    assert tuple(data.get_workspace(ws.id).prompts[-1]["box"]) == (300, 200, 320, 240)
    _draw(at, {"kind": "box", "box": [330, 250, 340, 260]})
    assert_clean(at)
    assert errors(at)


def test_import_geojson_prompts(data):
    at = _sample(new_app())
    at.switch_page("pages/annotate.py").run()
    gj = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"Time": 0, "XY": 0, "Z": 0, "tags": ["cell"]},
                "geometry": {"type": "Polygon", "coordinates": [[[50, 40], [90, 40], [90, 80], [50, 80], [50, 40]]]},
            }
        ],
    }
    at.file_uploader(key="ann_import_file").set_value(("p.geojson", json.dumps(gj).encode(), "application/json")).run()
    at.button(key="ann_import_btn").click().run()
    assert_clean(at)
    assert not errors(at), errors(at)
    prompts = _ws(at, data).prompts
    assert len(prompts) == 1 and tuple(prompts[0]["box"]) == (50, 40, 90, 80)
    at.file_uploader(key="ann_import_file").set_value(("bad.geojson", b"{not json", "application/json")).run()
    at.button(key="ann_import_btn").click().run()
    assert_clean(at)
    assert errors(at)
    assert len(_ws(at, data).prompts) == 1  # nothing lost


def test_track_error_paths(data, monkeypatch):
    at = _sample(new_app())
    at.switch_page("pages/track.py").run()
    assert_clean(at)
    submit_track(at)
    assert any("no prompts" in e for e in errors(at)), errors(at)
    at.switch_page("pages/annotate.py").run()
    _draw(at, {"kind": "box", "box": [60, 40, 110, 90]})
    at.switch_page("pages/track.py").run()
    submit_track(at, time="3-1")
    assert_clean(at)
    assert len(errors(at)) == 1 and "3-1" in errors(at)[0]
    submit_track(at, time="1-999")
    assert "999" in errors(at)[0]
    submit_track(at, time="5-8")
    assert "No prompt lies on the frames" in errors(at)[0]
    submit_track(at, time="")  # blank = the current frame only: a one-frame sequence
    assert errors(at)
    # No checkpoint (real model, no random weights): say what to do and offer the download.
    monkeypatch.delenv("SAM2WEB_STANDIN")
    monkeypatch.setenv("SAM2WEB_CHECKPOINTS", str(data.root / "no-checkpoints"))
    monkeypatch.setenv("HOME", str(data.root / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(data.root / "cache"))
    submit_track(at, time="1-3", model="tiny")
    assert_clean(at)
    assert any("checkpoint" in e and "sam2.1_hiera_tiny.pt" in e for e in errors(at)), errors(at)
    assert at.button(key="trk_download")
    assert not data.list_runs(_ws(at, data).id)  # nothing was queued


def _track_sample(at, data, **values):
    at.switch_page("pages/annotate.py").run()
    _draw(at, {"kind": "box", "box": [60, 40, 110, 90]})
    at.switch_page("pages/track.py").run()
    submit_track(at, **values)
    assert_clean(at)
    assert not errors(at), errors(at)
    return _ws(at, data)


def test_track_then_results_overlay_table_downloads(data):
    at = _sample(new_app())
    ws = _track_sample(at, data, time="1-6", padding=1.0)
    wait_runs(data, ws.id)
    (run,) = data.list_runs(ws.id)
    assert run.status == "done" and run.done_frames == 6 and data.count_masks(run.id) == 6
    at.run()
    assert any("done" in m.value for m in at.markdown)
    at.switch_page("pages/results.py").run()
    assert_clean(at)
    assert any(" of 6 · " in c.value for c in at.caption)  # the viewer's caption
    table = at.dataframe[0].value
    assert table["frames tracked"].tolist() == [6] and table["first time"].tolist() == [1]
    names = [d.label for d in at.get("download_button")]
    assert names == ["annotations.geojson", "annotations.csv", "connections.csv", "nimbus.json", "All (zip)"]
    # Re-polygonise at once: smoothing changes the polygons, not the run.
    at.number_input(key=f"res_smoothing_{run.id}").set_value(2.0).run()
    assert_clean(at)
    _frame(at, run, 4)
    assert_clean(at)
    caption = next(c.value for c in at.caption if "object(s)" in c.value)
    assert "Time 4 of 6" in caption and "1 object(s)" in caption
    at.multiselect(key=f"res_visible_{run.id}").set_value([]).run()
    assert "0 object(s)" in next(c.value for c in at.caption if "object(s)" in c.value)


def test_results_geojson_content(data):
    from sam2web import export, geometry, links

    at = _sample(new_app())
    ws = _track_sample(at, data, time="1-4")
    wait_runs(data, ws.id)
    (run,) = data.list_runs(ws.id)
    result = data.load_result(run.id)
    anns = geometry.annotations_from_result(result, padding=0, smoothing=0.3)
    files = export.export_bytes(anns, links.connect(anns), random_weights=False)
    gj = json.loads(files["annotations.geojson"])
    assert len(gj["features"]) == 4
    assert sorted(f["properties"]["Time"] for f in gj["features"]) == [0, 1, 2, 3]
    assert len(files["connections.csv"].decode().strip().splitlines()) == 1 + 3


def test_cancel_and_resume_keep_finished_frames(data, monkeypatch):
    from sam2web.tracking import track

    gate, reached = threading.Event(), threading.Event()
    original = track.StandInTracker.propagate_in_video

    def slow(self, *a, **k):
        for i, out in enumerate(original(self, *a, **k)):
            if i == 2:
                reached.set()
                assert gate.wait(30)
            yield out

    monkeypatch.setattr(track.StandInTracker, "propagate_in_video", slow)
    at = _sample(new_app())
    ws = _track_sample(at, data, time="1-8")
    assert reached.wait(30)
    (run,) = data.list_runs(ws.id)
    at.run()
    assert at.button(key=f"trk_cancel_{run.id}")
    assert any(p.value is not None for p in at.get("progress"))
    # A refresh mid-run (a new session on the same URL) finds the run going, with its Cancel button.
    refreshed = new_app(ws.id)
    refreshed.switch_page("pages/track.py").run()
    assert_clean(refreshed)
    assert refreshed.button(key=f"trk_cancel_{run.id}")
    assert any("running" in m.value for m in refreshed.markdown)
    at.button(key=f"trk_cancel_{run.id}").click().run()
    gate.set()
    wait_runs(data, ws.id)
    run = data.get_run(run.id)
    assert run.status == "cancelled" and 1 <= data.count_masks(run.id) < 8
    at.run()
    at.button(key=f"trk_resume_{run.id}").click().run()
    assert_clean(at)
    wait_runs(data, ws.id)
    newest = data.list_runs(ws.id)[0]
    assert newest.id != run.id and newest.status == "done"
    assert data.count_masks(newest.id) == 8


def test_two_sessions_queue_and_share_one_predictor(data, monkeypatch):
    gate, reached = hold_standin_runs(monkeypatch)
    a = _sample(new_app())
    ws_a = _track_sample(a, data, time="1-4")
    assert reached.wait(30)
    b = new_app()
    b.button(key="sb_new").click().run()
    _sample(b)
    ws_b = _track_sample(b, data, time="1-4")
    assert ws_a.id != ws_b.id
    b.run()
    (run_b,) = data.list_runs(ws_b.id)
    assert executor_mod.get_executor().queue_position(run_b.id) == 1
    assert any("position 1 in the queue" in i.value for i in b.info)
    gate.set()
    wait_runs(data, ws_a.id)
    wait_runs(data, ws_b.id)
    assert data.list_runs(ws_a.id)[0].status == "done" and data.get_run(run_b.id).status == "done"
    assert sum(factory.LOAD_COUNT.values()) == 1  # one shared predictor


def test_restart_mid_run_shows_interrupted_with_frames_and_resume(data):
    at = _sample(new_app())
    ws = _track_sample(at, data, time="1-5")
    wait_runs(data, ws.id)
    (run,) = data.list_runs(ws.id)
    # Simulate a server that died mid-run: status running, owned by a dead process, 2 frames kept.
    with sqlite3.connect(data.db_path) as c:
        c.execute("UPDATE runs SET status='running', owner='999999999:gone', done_frames=2 WHERE id=?", (run.id,))
        c.execute("DELETE FROM masks WHERE run_id=? AND t >= 2", (run.id,))
    assert data.recover_interrupted() == [run.id]
    at = new_app(ws.id)
    at.switch_page("pages/results.py").run()
    assert_clean(at)
    assert any("interrupted" in m.value for m in at.markdown)
    assert at.dataframe[0].value["frames tracked"].tolist() == [2]
    at.button(key=f"res_rerun_{run.id}").click().run()
    assert_clean(at)
    wait_runs(data, ws.id)
    assert data.list_runs(ws.id)[0].status == "done"


def test_sidebar_new_reopen_delete(data):
    # AppTest shows sidebar widgets only on a session's first run (st.navigation quirk of AppTest),
    # so each sidebar action starts from a fresh session on the workspace's URL, as a refresh would.
    at = _sample(new_app())
    first = _ws(at, data)
    at = new_app(first.id)
    assert any(str(data.root) in c.value for c in at.sidebar.caption)
    at.button(key="sb_new").click().run()
    second = _ws(at, data)
    assert second.id != first.id
    data.rename_workspace(second.id, "Second")  # an untouched workspace is not listed (nothing to reopen)
    at = new_app(second.id)
    at.button(key=f"sb_open_{first.id}").click().run()
    assert _ws(at, data).id == first.id
    # ✕ asks first: Keep leaves it, Delete removes it.
    at = new_app(first.id)
    at.button(key=f"sb_del_{second.id}").click().run()
    assert data.get_workspace(second.id) is not None
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="sb_del_no").click().run()
    assert data.get_workspace(second.id) is not None and not at.warning
    at.button(key=f"sb_del_{second.id}").click().run()
    at.button(key="sb_del_yes").click().run()
    assert_clean(at)
    assert data.get_workspace(second.id) is None
    at = new_app(first.id)
    at.text_input(key="sb_rename").set_value("Renamed")
    at.button(key="sb_rename_btn").click().run()
    assert data.get_workspace(first.id).name == "Renamed"


def test_results_correction_and_qa(data):
    import tifffile

    from sam2web.stack import sample

    at = _sample(new_app())
    ws = _track_sample(at, data, time="1-6")
    wait_runs(data, ws.id)
    (run,) = data.list_runs(ws.id)
    at.switch_page("pages/results.py").run()
    _frame(at, run, 3)
    assert "res_corr_go" not in [b.key for b in at.button]  # collapsed: nothing in it is built
    # Correction: a new box for object 0 at Time 3, re-tracked from there; the rest is kept.
    at.session_state["res_corr_open"] = True
    _draw(at, {"kind": "box", "box": [150, 100, 200, 150]})
    assert_clean(at)
    at.button(key="res_corr_go").click().run()
    assert_clean(at)
    assert not errors(at), errors(at)
    wait_runs(data, ws.id)
    newest = data.list_runs(ws.id)[0]
    assert newest.id != run.id and newest.status == "done", newest.error
    assert newest.settings["correction"]["loc"] == [0, 2, 0]
    res = data.load_result(newest.id)
    bbox_t2 = res.masks[(0, (0, 2, 0))].bbox  # (r0, c0, r1, c1): the corrected box's place
    assert bbox_t2[1] >= 145 and bbox_t2[0] >= 95
    assert (0, (0, 0, 0)) in res.masks  # frames before the correction are kept
    # QA against the sample's own true labels, and against uploaded label images.
    at.run()
    at.selectbox(key="res_run").set_value(run.id).run()
    at.session_state["res_qa_open"] = True
    at.run()
    at.button(key="res_score_sample").click().run()
    assert_clean(at)
    assert not errors(at), errors(at)
    assert any(m.label == "Mean IoU" for m in at.metric)
    labels = sample.sample_labels(24, 240, 320)
    buf = __import__("io").BytesIO()
    tifffile.imwrite(buf, labels[:6])
    at.file_uploader(key="res_gt").set_value([("gt_labels.tif", buf.getvalue(), "image/tiff")]).run()
    at.button(key="res_score").click().run()
    assert_clean(at)
    assert not errors(at), errors(at)
    assert any(m.label == "Mean IoU" for m in at.metric)


def test_import_label_image_and_wrong_shape(data):
    at = _sample(new_app())
    at.switch_page("pages/annotate.py").run()
    labels = np.zeros((240, 320), np.uint8)
    labels[20:40, 30:60] = 1
    labels[100:130, 200:240] = 2
    buf = io.BytesIO()
    Image.fromarray(labels).save(buf, format="PNG")
    at.file_uploader(key="ann_import_file").set_value(("labels.png", buf.getvalue(), "image/png")).run()
    at.button(key="ann_import_btn").click().run()
    assert_clean(at)
    assert not errors(at), errors(at)
    prompts = _ws(at, data).prompts
    assert [p["obj_id"] for p in prompts] == [0, 1]
    wrong = io.BytesIO()
    Image.fromarray(np.ones((10, 10), np.uint8)).save(wrong, format="PNG")
    at.file_uploader(key="ann_import_file").set_value(("small.png", wrong.getvalue(), "image/png")).run()
    at.button(key="ann_import_btn").click().run()
    assert_clean(at)
    assert errors(at)
    assert len(_ws(at, data).prompts) == 2


SHARED = __import__("pathlib").Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "bacteria_ctc" / "img").is_dir(), reason="../shared/data/bacteria_ctc is absent")
def test_real_bacteria_frames_upload_and_annotate(data):
    files = sorted((SHARED / "bacteria_ctc" / "img").glob("t*.tif"))[:3]
    at = new_app()
    at.file_uploader(key="ds_upload").set_value([(f.name, f.read_bytes(), "image/tiff") for f in files]).run()
    at.button(key="ds_open_upload").click().run()
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    # The files are 1305 rows x 1009 columns (numpy shape (1305, 1009)): height 1305, width 1009.
    assert (metrics["Width"], metrics["Height"], metrics["Time points"]) == ("1009", "1305", "3")
    at.switch_page("pages/annotate.py").run()
    assert_clean(at)
    assert any("frame 1009 × 1305 px" in c.value for c in at.caption)
    _draw(at, {"kind": "box", "box": [900.0, 1200.0, 1100.0, 1400.0]})  # past the corner: clipped
    (p,) = _ws(at, data).prompts
    assert tuple(p["box"]) == (900.0, 1200.0, 1009.0, 1305.0)
