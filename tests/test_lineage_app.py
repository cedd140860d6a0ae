"""AppTest: a division marked by hand on Annotate, tracked (stand-in), shown on Results, kept by a
correction and by a restart of the app."""

from __future__ import annotations

import pytest

from sam2web.ui.viewer import INJECT_KEY

try:
    from tests.app_helpers import assert_clean, data, errors, new_app, submit_track, wait_runs  # noqa: F401
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, errors, new_app, submit_track, wait_runs


def _ws(at, store):
    return store.get_workspace(at.session_state["ws_id"])


def test_manual_division_tracked_shown_and_kept(data):
    at = new_app()
    at.button(key="ds_open_sample").click().run()
    at.switch_page("pages/annotate.py").run()
    at.session_state[INJECT_KEY] = [{"kind": "box", "box": [60, 40, 110, 90]}]
    at.run()
    assert_clean(at)
    # The division form: object 0 divides at Time 3 into two boxes.
    at.slider(key="loc_an_time").set_value(3).run()
    assert_clean(at)
    at.selectbox(key="lin_mother").set_value(0).run()
    at.text_input(key="lin_box1_0").set_value("60, 40, 85, 90").run()
    at.text_input(key="lin_box2_0").set_value("85, 40, 110, 90").run()
    at.button(key="lin_divide").click().run()
    assert_clean(at)
    assert not errors(at), errors(at)
    ws = _ws(at, data)
    assert [(p["obj_id"], p.get("parent"), p["loc"]["Time"]) for p in ws.prompts] == [
        (0, None, 0),
        (1, 0, 2),
        (2, 0, 2),
    ]
    # A bad box is one sentence, nothing saved.
    at.text_input(key="lin_box1_0").set_value("1, 2, 3").run()
    at.button(key="lin_divide").click().run()
    assert any("four numbers" in e for e in errors(at)), errors(at)
    assert len(_ws(at, data).prompts) == 3

    at.switch_page("pages/track.py").run()
    assert at.checkbox(key="trk_divisions").value is True  # detection is on by default
    submit_track(at, time="1-6", division_frames=3)
    assert not errors(at), errors(at)
    wait_runs(data, ws.id)
    (run,) = data.list_runs(ws.id)
    assert run.status == "done", run.error
    assert run.settings["divisions"] is True and run.settings["division_frames"] == 3
    res = data.load_result(run.id)  # what a restarted app reads back
    assert {o: i.parent for o, i in res.objects.items()} == {0: None, 1: 0, 2: 0}
    assert sorted(loc.time for o, loc in res.masks if o == 0 and not res.masks[(o, loc)].empty) == [0, 1]
    assert sorted(loc.time for o, loc in res.masks if o == 1) == [2, 3, 4, 5]

    at.switch_page("pages/results.py").run()
    assert_clean(at)
    table = next(d.value for d in at.dataframe if "parent" in d.value.columns)
    assert table.set_index("object")["parent"].to_dict() == {  # numbered from 1, like every list on screen
        "#1 Object 1": "",
        "#2 Object 1.1": "#1",
        "#3 Object 1.2": "#1",
    }
    at.button(key=f"lin_go_{run.id}").click().run()
    assert_clean(at)
    assert at.session_state[f"res_frame_{run.id}"] == 3
    assert "Time 3" in next(c.value for c in at.caption if "object(s)" in c.value)

    # A correction of a daughter keeps the lineage, and so does a fresh app (restart).
    at.session_state["res_corr_open"] = True  # the section builds its canvas only when open
    at.session_state[INJECT_KEY] = [{"kind": "box", "box": [62, 42, 84, 88]}]
    at.run()
    at.selectbox(key="res_corr_obj").set_value(1).run()
    at.button(key="res_corr_go").click().run()
    assert not errors(at), errors(at)
    wait_runs(data, ws.id)
    newest = data.list_runs(ws.id)[0]
    assert newest.id != run.id and newest.status == "done", newest.error
    again = data.load_result(newest.id)
    assert {o: i.parent for o, i in again.objects.items()} == {0: None, 1: 0, 2: 0}
    fresh = new_app(ws.id)
    fresh.switch_page("pages/results.py").run()
    assert_clean(fresh)
    assert any("parent" in d.value.columns for d in fresh.dataframe)


@pytest.mark.parametrize("time", [1])
def test_division_before_the_mother_starts_is_refused(data, time):
    at = new_app()
    at.button(key="ds_open_sample").click().run()
    at.switch_page("pages/annotate.py").run()
    at.session_state[INJECT_KEY] = [{"kind": "box", "box": [60, 40, 110, 90]}]
    at.run()
    at.slider(key="loc_an_time").set_value(time).run()
    at.button(key="lin_divide").click().run()
    assert any("must be prompted before" in e for e in errors(at)), errors(at)
