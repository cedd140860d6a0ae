"""AppTest of what the browser e2e test found on a shared server: where a new session lands,
deleting with a confirmation (and with a run in progress), distinct sample names, the effective
model image size, "Frame N of N" on a just-started run, and what a correction re-tracks."""

from __future__ import annotations

import uuid

import pytest

from sam2web.service import executor as executor_mod
from sam2web.tracking import factory
from sam2web.ui import sidebar, state
from sam2web.ui.viewer import INJECT_KEY

try:  # tests/ may be a package; the fallback keeps a plain rootdir run working
    from tests.app_helpers import assert_clean, data, errors, hold_standin_runs, new_app, submit_track, wait_runs
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, errors, hold_standin_runs, new_app, submit_track, wait_runs


@pytest.fixture
def live(monkeypatch):
    """Which browser sessions count as connected (AppTest has no real runtime): all, until closed."""
    closed: set[str | None] = set()
    monkeypatch.setattr(state, "session_alive", lambda sid: sid not in closed)
    return closed


def _ws(at, store):
    return store.get_workspace(at.session_state["ws_id"])


def _sample(at):
    at.button(key="ds_open_sample").click().run()
    assert_clean(at)
    return at


def _draw(at, *shapes):
    at.session_state[INJECT_KEY] = list(shapes)
    return at.run()


def _track_sample(at, store, box=(60, 40, 110, 90), **values):
    at.switch_page("pages/annotate.py").run()
    _draw(at, {"kind": "box", "box": list(box)})
    at.switch_page("pages/track.py").run()
    submit_track(at, **values)
    assert_clean(at)
    assert not errors(at), errors(at)
    return _ws(at, store)


def _notes(at) -> list[str]:
    return [i.value for i in at.info]


# -- where a new session lands -------------------------------------------------------------------
def _recent(at) -> list[str]:
    return [btn.key for btn in at.sidebar.button if str(btn.key).startswith("sb_open_")]


def test_another_browser_never_sees_nor_opens_a_workspace_it_did_not_make(data):
    a = _sample(new_app(browser="browser-a-0123456789abcdefghijklmnop"))
    ws_a = _ws(a, data)
    assert uuid.UUID(ws_a.id).version == 4 and len(ws_a.id) == 32  # a whole uuid4: 122 random bits
    b = new_app(browser="browser-b-0123456789abcdefghijklmnop")  # someone else, bare URL
    assert_clean(b)
    ws_b = _ws(b, data)
    assert ws_b.id != ws_a.id and not ws_b.dataset
    _sample(b)
    assert f"sb_open_{ws_a.id}" not in _recent(b) and f"sb_del_{ws_a.id}" not in [x.key for x in b.sidebar.button]
    # B has A's link (copied, guessed): a new workspace of B's own, with the same sentence as for a gone id.
    c = new_app(ws_a.id, browser="browser-b-0123456789abcdefghijklmnop")
    assert_clean(c)
    assert _ws(c, data).id not in (ws_a.id, ws_b.id) and not _ws(c, data).dataset
    assert any("not one of yours or no longer exists" in n for n in _notes(c)), _notes(c)
    assert f"sb_open_{ws_b.id}" in _recent(c) and f"sb_open_{ws_a.id}" not in _recent(c)
    c.button(key="sb_note_ok").click().run()
    assert not any("not one of yours" in n for n in _notes(c))
    # A, back in the same browser, still has it
    assert _ws(new_app(ws_a.id, browser="browser-a-0123456789abcdefghijklmnop"), data).id == ws_a.id


def test_the_bare_address_opens_a_new_workspace_and_lists_the_earlier_ones(data):
    a = _sample(new_app())
    again = new_app()
    assert_clean(again)
    assert _ws(again, data).id != _ws(a, data).id and not _ws(again, data).dataset
    assert f"sb_open_{_ws(a, data).id}" in _recent(again)
    again.button(key=f"sb_open_{_ws(a, data).id}").click().run()
    assert _ws(again, data).id == _ws(a, data).id


def test_two_tabs_on_one_workspace_keep_each_others_prompts(data):
    a = _sample(new_app())
    ws = _ws(a, data)
    b = new_app(ws.id)  # the same person's second tab
    a.switch_page("pages/annotate.py").run()
    b.switch_page("pages/annotate.py").run()
    _draw(a, {"kind": "box", "box": [10, 10, 40, 40]})
    _draw(b, {"kind": "box", "box": [60, 40, 110, 90]})  # B's page loaded before A saved
    assert_clean(a)
    assert_clean(b)
    boxes = sorted(tuple(p["box"]) for p in data.get_workspace(ws.id).prompts)
    assert boxes == [(10.0, 10.0, 40.0, 40.0), (60.0, 40.0, 110.0, 90.0)], boxes
    assert len({p["obj_id"] for p in data.get_workspace(ws.id).prompts}) == 2  # two objects, not one


# -- deleting --------------------------------------------------------------------------------------
def test_delete_is_refused_while_another_session_has_it_open(data, live, monkeypatch):
    monkeypatch.setattr(state, "_runtime_session_id", lambda: state.st.session_state.get(state.TOKEN_KEY))
    a = _sample(new_app())
    ws_a = _ws(a, data)
    b = new_app()
    b.button(key="sb_new").click().run()
    b = new_app(_ws(b, data).id)
    b.button(key=f"sb_del_{ws_a.id}").click().run()
    b.button(key="sb_del_yes").click().run()
    assert_clean(b)
    assert data.get_workspace(ws_a.id) is not None
    assert any("open in another browser session" in e for e in errors(b)), errors(b)


def test_delete_cancels_a_running_run_first_and_the_app_keeps_serving(data, monkeypatch):
    gate, reached = hold_standin_runs(monkeypatch)
    a = _sample(new_app())
    ws_a = _track_sample(a, data, time="1-4")
    assert reached.wait(30)
    (run,) = data.list_runs(ws_a.id)
    b = new_app()
    b.button(key="sb_new").click().run()
    b = new_app(_ws(b, data).id)
    b.button(key=f"sb_del_{ws_a.id}").click().run()
    assert any("in progress will be cancelled" in w.value for w in b.warning)
    # The run is stuck inside a frame: the delete waits a little, then refuses with a sentence.
    monkeypatch.setattr(sidebar, "STOP_WAIT_S", 0.3)
    b.button(key="sb_del_yes").click().run()
    assert_clean(b)
    assert any("still finishing its frame" in e for e in errors(b)), errors(b)
    assert data.get_workspace(ws_a.id) is not None
    gate.set()
    assert executor_mod.get_executor().wait(run.id, 30)
    assert data.get_run(run.id).status == "cancelled"
    b.button(key="sb_del_yes").click().run()
    assert_clean(b)
    assert data.get_workspace(ws_a.id) is None and data.get_run(run.id) is None
    # The runner still serves: a new run in B's workspace finishes (the gate stays open).
    _sample(b)
    ws_b = _track_sample(b, data, time="1-3")
    wait_runs(data, ws_b.id)
    assert data.list_runs(ws_b.id)[0].status == "done"


# -- names -------------------------------------------------------------------------------------
def test_two_sample_workspaces_get_distinct_readable_names(data):
    a = _sample(new_app())
    b = new_app()
    b.button(key="sb_new").click().run()
    _sample(b)
    names = {_ws(a, data).name, _ws(b, data).name}
    assert names == {"Sample time-lapse", "Sample time-lapse 2"}
    empty = data.create_workspace()
    assert data.create_workspace().name != empty.name  # two made in the same minute differ too
    c = new_app(_ws(b, data).id)
    labels = [btn.label for btn in c.sidebar.button if btn.key.startswith("sb_open_")]
    assert any(lab.endswith("· Sample time-lapse") for lab in labels), labels
    assert not any("(empty workspace)" in lab for lab in labels), labels  # untouched ones are not listed


# -- Track page ---------------------------------------------------------------------------------
def test_track_page_shows_the_effective_image_size(data, monkeypatch):
    monkeypatch.setenv("SAM2WEB_IMAGE_SIZE", "256")
    at = _sample(new_app())
    at.switch_page("pages/track.py").run()
    assert_clean(at)
    assert any("model image size: **256 px**" in c.value for c in at.caption), [c.value for c in at.caption]
    options = at.selectbox(key="trk_image_size").options
    assert options[0] == "default: 256 px ($SAM2WEB_IMAGE_SIZE)", options
    monkeypatch.delenv("SAM2WEB_IMAGE_SIZE")  # the environment is fixed per server: a new session
    at = new_app(_ws(at, data).id)
    at.switch_page("pages/track.py").run()
    assert at.selectbox(key="trk_image_size").options[0] == "model default (1024 px)"
    assert any("model image size: **1024 px**" in c.value for c in at.caption)


def test_running_run_card_never_says_frame_0_of_0(data, monkeypatch):
    gate, reached = hold_standin_runs(monkeypatch)
    at = _sample(new_app())
    ws = _track_sample(at, data, time="1-4")
    assert reached.wait(30)
    at.run()
    texts = [p.proto.text for p in at.get("progress")]
    assert texts and all("of 4" in t for t in texts), texts
    gate.set()
    wait_runs(data, ws.id)


# -- corrections --------------------------------------------------------------------------------
def _correct(at, store, ws, run, frame: int, box):
    at.switch_page("pages/results.py").run()
    at.session_state[f"res_frame_{run.id}"] = frame  # the frame the viewer reports
    at.run()
    at.session_state["res_corr_open"] = True  # the section builds its canvas only when open
    _draw(at, {"kind": "box", "box": list(box)})
    at.button(key="res_corr_go").click().run()
    assert_clean(at)
    assert not errors(at), errors(at)
    wait_runs(store, ws.id)
    newest = store.list_runs(ws.id)[0]
    assert newest.id != run.id and newest.status == "done", newest.error
    return newest


@pytest.mark.parametrize(
    "direction, prompt_time, corr_frame, kept, retracked",
    [
        ("forward", 1, 3, [0, 1], [2, 3, 4, 5]),
        ("both", 3, 5, [0, 1, 2, 3], [4, 5]),  # after the prompt: onward only
        ("both", 4, 2, [2, 3, 4, 5], [0, 1]),  # before the prompt: back to the start only
        ("backward", 6, 4, [4, 5], [0, 1, 2, 3]),
    ],
)
def test_correction_retracks_that_object_from_its_frame_only(data, direction, prompt_time, corr_frame, kept, retracked):
    at = _sample(new_app())
    at.switch_page("pages/annotate.py").run()
    at.slider(key="loc_an_time").set_value(prompt_time).run()
    ws = _track_sample(at, data, time="1-6", direction=direction)
    wait_runs(data, ws.id)
    (run,) = data.list_runs(ws.id)
    before = data.load_result(run.id).masks
    newest = _correct(at, data, ws, run, corr_frame, (150, 100, 200, 150))
    assert newest.settings["correction"]["direction"] == (
        "forward"
        if direction == "both" and corr_frame > prompt_time
        else "backward"
        if direction == "both"
        else direction
    )
    after = data.load_result(newest.id).masks
    for t in kept:  # the frames the user did not correct are the old run's, bit for bit
        assert after[(0, (0, t, 0))].bits == before[(0, (0, t, 0))].bits, t
    for t in retracked:
        assert after[(0, (0, t, 0))].bbox != before[(0, (0, t, 0))].bbox, t
    corr = after[(0, (0, corr_frame - 1, 0))].bbox
    assert corr[1] >= 145 and corr[0] >= 95  # the correction box's place
    # The page says what the correction run did.
    at.run()
    notes = [i.value for i in at.info]
    assert any(f"Run {newest.id} is a correction" in n and f"Time {corr_frame}" in n for n in notes), notes


# -- smaller findings ------------------------------------------------------------------------------
def test_selected_object_survives_a_refresh(data):
    at = _sample(new_app())
    at.switch_page("pages/annotate.py").run()
    _draw(at, {"kind": "box", "box": [60, 40, 110, 90]})
    at.run()
    sel = [s for s in at.selectbox if s.label == "Selected object"]
    assert sel and sel[0].value == 0
    again = new_app(_ws(at, data).id)
    again.switch_page("pages/annotate.py").run()
    assert_clean(again)
    assert [s for s in again.selectbox if s.label == "Selected object"][0].value == 0


def test_done_run_opens_in_results_and_resumed_run_offers_no_duplicate(data):
    import sqlite3

    at = _sample(new_app())
    ws = _track_sample(at, data, time="1-4")
    wait_runs(data, ws.id)
    (run,) = data.list_runs(ws.id)
    at.run()
    at.button(key=f"trk_open_{run.id}").click().run()
    assert_clean(at)
    assert at.selectbox(key="res_run").value == run.id
    vega = [e for e in at.get("vega_lite_chart")]
    assert vega and '"point"' in vega[0].proto.spec and '"format": "d"' in vega[0].proto.spec
    # An interrupted run, resumed once: no second Resume / Re-run on it (a duplicate run).
    with sqlite3.connect(data.db_path) as c:
        c.execute("UPDATE runs SET status='interrupted' WHERE id=?", (run.id,))
    at.switch_page("pages/track.py").run()
    at.button(key=f"trk_resume_{run.id}").click().run()
    assert_clean(at)
    wait_runs(data, ws.id)
    at.run()
    newest = data.list_runs(ws.id)[0]
    assert newest.id != run.id
    keys = [b.key for b in at.button]
    assert f"trk_resume_{run.id}" not in keys and f"trk_rerun_{run.id}" not in keys, keys
    assert any(f"as run {newest.id}" in c.value for c in at.caption)


def test_new_workspace_drops_the_untouched_one_it_leaves(data):
    at = new_app()
    untouched = _ws(at, data)
    at.button(key="sb_new").click().run()
    assert _ws(at, data).id != untouched.id
    assert data.get_workspace(untouched.id) is None  # nothing in it: not left in Recent workspaces
    worked = _sample(new_app(_ws(at, data).id))
    kept = _ws(worked, data)
    worked.button(key="sb_new").click().run()
    assert data.get_workspace(kept.id) is not None  # a workspace with a dataset stays
