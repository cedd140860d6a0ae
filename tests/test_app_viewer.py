"""The viewer's Python side: operations drawn in the browser become prompts once each, in order.

AppTest runs no JavaScript, so the operations arrive through the injection contract
(``st.session_state["canvas_inject"]``), with their own client ids where a test replays them; the
browser side (wheel zoom, drawing at 8x, 10 boxes in 3 s) is in tests/test_e2e_viewer.py.
"""

from __future__ import annotations

import pytest
import shapely.geometry as sg

from sam2web.ui import viewer
from sam2web.ui.viewer import INJECT_KEY

try:
    from tests.app_helpers import assert_clean, data, errors, new_app  # noqa: F401
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, errors, new_app


def _annotate(at):
    at.button(key="ds_open_sample").click().run()
    at.switch_page("pages/annotate.py").run()
    assert_clean(at)
    return at


def _ops(at, *ops):
    at.session_state[INJECT_KEY] = [dict(o) for o in ops]
    at.run()
    assert_clean(at)


def test_operations_are_saved_once_in_order_even_when_replayed(data):
    at = _annotate(new_app())
    ws_id = at.session_state["ws_id"]
    first = [
        {"cid": "a", "op": "add", "kind": "box", "box": [10.25, 20.5, 40.0, 50.0], "tool": "box_new"},
        {"cid": "b", "op": "add", "kind": "box", "box": [100.0, 100.0, 130.0, 120.0], "tool": "box_new"},
        {"cid": "c", "op": "add", "kind": "point", "x": 110.5, "y": 105.0, "label": 0, "obj": 1},
    ]
    _ops(at, *first)
    prompts = data.get_workspace(ws_id).prompts
    assert [p["obj_id"] for p in prompts] == [0, 1]
    assert tuple(prompts[0]["box"]) == pytest.approx((10.25, 20.5, 40.0, 50.0))
    assert [tuple(pt) for pt in prompts[1]["points"]] == [(110.5, 105.0, 0)]
    # A mask the moment a box is drawn: the interactive session (stand-in here) answered for each.
    masks = at.session_state["ann_masks"]
    assert {k[2] for k in masks if k[0] == ws_id} == {0, 1} and masks[(ws_id, (0, 0, 0), 0)][1]
    # The browser re-sends the whole unacknowledged list with the next shape: old ids are skipped.
    _ops(at, *first, {"cid": "d", "op": "add", "kind": "box", "box": [200, 10, 230, 40], "tool": "box_new"})
    prompts = data.get_workspace(ws_id).prompts
    assert [p["obj_id"] for p in prompts] == [0, 1, 2]
    assert {"a", "b", "c", "d"} <= set(at.session_state["_viewer_done_ann_viewer"])  # sent back as acked
    # Move a box, delete a point, delete an object's prompts on this frame.
    _ops(at, {"cid": "e", "op": "move", "obj": 0, "box": [12.0, 22.0, 42.0, 52.0]})
    _ops(at, {"cid": "f", "op": "delete", "obj": 1, "what": "point", "n": 0})
    _ops(at, {"cid": "g", "op": "delete", "obj": 2, "what": "all"})
    prompts = data.get_workspace(ws_id).prompts
    assert tuple(prompts[0]["box"]) == pytest.approx((12.0, 22.0, 42.0, 52.0))
    assert prompts[1]["points"] == [] and [p["obj_id"] for p in prompts] == [0, 1]
    # A box drawn for the selected object replaces its box at this frame.
    _ops(at, {"cid": "h", "op": "add", "kind": "box", "box": [14, 24, 44, 54], "tool": "box_obj", "obj": 0})
    prompts = data.get_workspace(ws_id).prompts
    assert len(prompts) == 2 and tuple(prompts[0]["box"]) == pytest.approx((14, 24, 44, 54))


def test_a_zero_size_box_is_refused_in_a_sentence_and_not_retried(data):
    at = _annotate(new_app())
    _ops(at, {"cid": "z", "op": "add", "kind": "box", "box": [330, 250, 340, 260], "tool": "box_new"})
    assert errors(at)
    assert data.get_workspace(at.session_state["ws_id"]).prompts == []
    _ops(at, {"cid": "z", "op": "add", "kind": "box", "box": [330, 250, 340, 260], "tool": "box_new"})
    assert not errors(at)  # acknowledged: the browser drops it, Python does not say it again


def test_division_by_drawing_two_daughter_boxes(data):
    at = _annotate(new_app())
    ws_id = at.session_state["ws_id"]
    _ops(at, {"cid": "m", "op": "add", "kind": "box", "box": [60, 40, 110, 90], "tool": "box_new"})
    at.slider(key="loc_an_time").set_value(3).run()
    # Without a selected mother: a sentence, nothing saved.
    at.session_state["ann_selected"] = None
    _ops(at, {"cid": "d0", "op": "add", "kind": "box", "box": [60, 40, 85, 90], "tool": "divide", "obj": None})
    assert errors(at)
    _ops(at, {"cid": "d1", "op": "add", "kind": "box", "box": [60, 40, 85, 90], "tool": "divide", "obj": 0})
    assert len(data.get_workspace(ws_id).prompts) == 1  # one daughter drawn: waiting for the second
    _ops(at, {"cid": "d2", "op": "add", "kind": "box", "box": [85, 40, 110, 90], "tool": "divide", "obj": 0})
    prompts = data.get_workspace(ws_id).prompts
    assert [(p["obj_id"], p.get("parent")) for p in prompts] == [(0, None), (1, 0), (2, 0)]
    assert all(p["loc"]["Time"] == 2 for p in prompts[1:])


def test_rings_json_and_screen_size():
    poly = sg.Polygon([(0, 0), (10, 0), (10, 5), (0, 5)], [[(2, 2), (3, 2), (3, 3), (2, 3)]])
    rings = viewer.rings_json(poly)
    assert len(rings) == 2 and rings[0][:4] == [0.0, 0.0, 10.0, 0.0]
    multi = sg.MultiPolygon([poly, sg.box(20, 20, 30, 30)])
    assert len(viewer.rings_json(multi)) == 3
    assert viewer.rings_json(sg.Polygon()) == []
    assert viewer.screen_size(1009, 1305) == (696, 900)
    assert viewer.screen_size(320, 240) == (320, 240)  # never enlarged: the browser scales up


def test_a_long_run_goes_to_the_browser_as_a_window_around_the_frame(data, monkeypatch):
    from sam2web.ui import results_ui

    try:
        from tests.app_helpers import submit_track, wait_runs
    except ImportError:  # pragma: no cover
        from app_helpers import submit_track, wait_runs

    monkeypatch.setattr(results_ui, "VIEWER_WINDOW", 3)  # 6 frames stand for a long run
    at = _annotate(new_app())
    _ops(at, {"cid": "w", "op": "add", "kind": "box", "box": [60, 40, 110, 90], "tool": "box_new"})
    at.switch_page("pages/track.py").run()
    submit_track(at, time="1-6")
    ws_id = at.session_state["ws_id"]
    wait_runs(data, ws_id)
    (run,) = data.list_runs(ws_id)
    at.switch_page("pages/results.py").run()
    assert_clean(at)
    at.session_state[f"res_frame_{run.id}"] = 5
    at.run()
    caption = next(c.value for c in at.caption if "object(s)" in c.value)
    assert "Time 5 of 6" in caption and "Frames 4–6 of 6 are in the viewer" in caption
    assert at.session_state[f"res_viewer_{run.id}_lo"] == 3
