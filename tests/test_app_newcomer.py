"""What a first-time user met on the pages: one 1-based numbering, Results opening where the masks
are and keeping its frame on Play, runs followed after Resume, run cards and progress in words."""

from __future__ import annotations

import threading

from sam2web.ui.viewer import INJECT_KEY

try:
    from tests.app_helpers import assert_clean, data, errors, new_app, submit_track, wait_runs  # noqa: F401
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, data, errors, new_app, submit_track, wait_runs  # noqa: F401


def _sample_with_box(at, time: int = 1):
    at.button(key="ds_open_sample").click().run()
    if time > 1:
        at.slider(key="loc_ds_time").set_value(time).run()
    at.switch_page("pages/annotate.py").run()
    at.session_state[INJECT_KEY] = [{"kind": "box", "box": [60, 40, 110, 90]}]
    at.run()
    assert_clean(at)
    return at


def _ws(at, store):
    return store.get_workspace(at.session_state["ws_id"])


def test_results_opens_at_the_first_masked_frame_and_play_keeps_the_frame(data):
    at = _sample_with_box(new_app(), time=5)
    at.switch_page("pages/track.py").run()
    submit_track(at, time="1-10")  # prompted at Time 5, tracked forward: Time 1-4 have no mask
    assert not errors(at), errors(at)
    ws = _ws(at, data)
    wait_runs(data, ws.id)
    (run,) = data.list_runs(ws.id)
    at.switch_page("pages/results.py").run()
    assert_clean(at)
    key = f"res_frame_{run.id}"
    assert at.session_state[key] == 5, "Results must open where the masks start"
    caption = next(c.value for c in at.caption if "object(s)" in c.value)
    assert "Time 5 of 10" in caption and "1 object(s)" in caption
    # Play runs in the browser (tests/test_e2e_viewer.py: the frame moves with no rerun and Pause
    # keeps it); the frame the viewer reports after a pause stays the page's frame.
    at.session_state[key] = 7
    at.run()
    assert_clean(at)
    assert at.session_state[key] == 7
    assert "Time 7 of 10" in next(c.value for c in at.caption if "object(s)" in c.value)


def test_resume_on_results_follows_the_new_run(data, monkeypatch):
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
    at = _sample_with_box(new_app())
    at.switch_page("pages/track.py").run()
    submit_track(at, time="1-8")
    assert reached.wait(30)
    ws = _ws(at, data)
    (run,) = data.list_runs(ws.id)
    at.run()
    at.button(key=f"trk_cancel_{run.id}").click().run()
    gate.set()
    wait_runs(data, ws.id)
    monkeypatch.setattr(track.StandInTracker, "propagate_in_video", original)
    at.switch_page("pages/results.py").run()
    assert at.selectbox(key="res_run").value == run.id
    at.button(key=f"res_resume_{run.id}").click().run()
    assert_clean(at)
    newest = data.list_runs(ws.id)[0]
    assert newest.id != run.id
    assert at.selectbox(key="res_run").value == newest.id, "Results shows the run just resumed"
    wait_runs(data, ws.id)


def test_one_numbering_in_object_lists_lineage_and_divisions(data):
    from sam2web.stack import sample

    at = new_app()
    at.button(key="ds_open_sample").click().run()
    at.switch_page("pages/annotate.py").run()
    at.session_state[INJECT_KEY] = [{"kind": "box", "box": [60, 40, 110, 90]}]
    at.run()
    # Annotate: the selected object and the division form's list say "#1 Object 1".
    sel = [s for s in at.selectbox if str(s.key).startswith("ann_sel_")][0]
    assert "#1 Object 1" in sel.options
    at.slider(key="loc_an_time").set_value(6).run()
    mother = at.selectbox(key="lin_mother")
    assert mother.options == ["#1 Object 1"]
    at.text_input(key="lin_box1_0").set_value("60, 40, 85, 90").run()
    at.text_input(key="lin_box2_0").set_value("85, 40, 110, 90").run()
    at.button(key="lin_divide").click().run()
    assert_clean(at)
    captions = " ".join(c.value for c in at.caption)
    assert "#1 → #2 at Time 6" in captions and "#1 → #3 at Time 6" in captions, captions
    del sample
    at.switch_page("pages/track.py").run()
    submit_track(at, time="1-10")
    ws = _ws(at, data)
    wait_runs(data, ws.id)
    (run,) = data.list_runs(ws.id)
    assert run.status == "done", run.error
    at.switch_page("pages/results.py").run()
    assert_clean(at)
    lineage = next(d.value for d in at.dataframe if "parent" in d.value.columns)
    assert lineage["object"].tolist()[:3] == ["#1 Object 1", "#2 Object 1.1", "#3 Object 1.2"]
    assert lineage["parent"].tolist()[1:3] == ["#1", "#1"] and lineage["daughters"].tolist()[0] == "#2, #3"
    division = at.selectbox(key=f"lin_event_{run.id}")
    assert division.options[0] == "#1 → #2, #3 at Time 6"
    shown = at.multiselect(key=f"res_visible_{run.id}")
    assert shown.options[:3] == ["#1 Object 1", "#2 Object 1.1", "#3 Object 1.2"]


def test_run_card_in_words(data):
    at = _sample_with_box(new_app())
    at.switch_page("pages/track.py").run()
    submit_track(at, time="1-6")
    ws = _ws(at, data)
    wait_runs(data, ws.id)
    (run,) = data.list_runs(ws.id)
    at.run()
    text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert f"Run {run.id} · done · SAM2.1 hiera small, across Time, forward · started" in text
    assert "Tracked all 6 frames (from Time 1) · 6 object masks saved." in text, text
    ran = [e for e in at.expander if e.label.startswith("Ran ")]
    assert ran and " on the CPU in full precision (fp32)" in ran[0].label
    assert any(c.value.startswith("How the precision was chosen: ") for c in ran[0].caption)
    # QA in words: the sentences first, the numbers under their names.
    at.switch_page("pages/results.py").run()
    at.session_state["res_qa_open"] = True
    at.run()
    at.button(key="res_score_sample").click().run()
    assert_clean(at)
    words = " ".join(m.value for m in at.markdown)
    assert "1 of 1 tracked object matched a true cell." in words, words
    assert "Cell Tracking Challenge scores (0–1, higher is better): tracking " in words
    assert {"Frames tracked", "Tracking (TRA)", "Detection (DET)"} <= {m.label for m in at.metric}
    assert next(m.value for m in at.metric if m.label == "Frames tracked").endswith("%")


def test_model_and_image_size_are_remembered_for_the_user_not_per_workspace(data):
    at = _sample_with_box(new_app())
    at.switch_page("pages/track.py").run()
    submit_track(at, time="1-3", model="tiny", image_size=512)
    assert not errors(at), errors(at)
    first = _ws(at, data)
    wait_runs(data, first.id)
    at.button(key="sb_new").click().run()  # a new workspace: a new dataset, the same person
    at.switch_page("pages/dataset.py").run()
    at.button(key="ds_open_sample").click().run()
    assert _ws(at, data).id != first.id
    at.switch_page("pages/track.py").run()
    assert_clean(at)
    assert at.selectbox(key="trk_model").value == "tiny"
    assert at.selectbox(key="trk_image_size").value == 512
    assert any("model image size: **512 px**" in c.value for c in at.caption)
    # A fresh browser session (another tab, a restart) finds the same choices.
    again = new_app(_ws(at, data).id)
    again.switch_page("pages/track.py").run()
    assert again.selectbox(key="trk_model").value == "tiny"


def test_the_server_starts_without_a_file_watcher_over_the_checkout():
    """scripts/run.sh starts `streamlit run app.py` with the project's config: no watcher over .venv/."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none" and config["server"]["runOnSave"] is False
    assert "streamlit run app.py" in (root / "scripts" / "run.sh").read_text()
