"""Annotate at zoom: the zoom and the place looked at are saved with the workspace; the minimap and the
pan buttons move the view; prompts drawn at zoom are stored in full-frame image pixels."""

from __future__ import annotations

import pytest

from sam2web.ui.canvas import INJECT_KEY, MINIMAP_INJECT_KEY

try:
    from tests.app_helpers import assert_clean, data, new_app  # noqa: F401 - data is a fixture
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, new_app


def _annotate(at):
    at.button(key="ds_open_sample").click().run()
    at.switch_page("pages/annotate.py").run()
    assert_clean(at)
    return at


def test_zoom_and_view_survive_a_reload_and_the_minimap_moves_the_view(data):
    at = _annotate(new_app())
    ws_id = at.session_state["ws_id"]
    assert not [b for b in at.button if str(b.key).startswith("ann_pan_")]  # 1x: no pan controls
    at.select_slider(key="ann_zoom").set_value(4.0).run()
    assert_clean(at)
    view = data.get_workspace(ws_id).view
    assert view["zoom"] == 4.0 and (view["cx"], view["cy"]) == (160.0, 120.0)  # the sample is 320 x 240
    at.session_state[MINIMAP_INJECT_KEY] = [{"kind": "point", "x": 300.0, "y": 20.0, "label": 1}]
    at.run()
    view = data.get_workspace(ws_id).view
    assert (view["cx"], view["cy"]) == (280.0, 30.0)  # pulled inside: the view is 80 x 60 px
    at.button(key="ann_pan_←").click().run()
    assert data.get_workspace(ws_id).view["cx"] == 240.0
    # A box drawn at zoom is stored as given in image pixels (the canvas maps it, see test_app_canvas).
    at.session_state[INJECT_KEY] = [{"kind": "box", "box": [205.0, 10.0, 215.0, 18.0]}]
    at.run()
    assert tuple(data.get_workspace(ws_id).prompts[0]["box"]) == pytest.approx((205.0, 10.0, 215.0, 18.0))
    assert any("of 320 × 240" in c.value for c in at.caption)  # the caption says which pixels are shown
    # A new browser session on the same workspace (a reload): same zoom, same place.
    again = new_app(ws_id)
    again.switch_page("pages/annotate.py").run()
    assert_clean(again)
    assert again.select_slider(key="ann_zoom").value == 4.0
    assert data.get_workspace(ws_id).view["cx"] == 240.0


def test_tags_for_new_objects_are_kept(data):
    at = _annotate(new_app())
    at.text_input(key="ann_tags").set_value("bacterium, phase").run()
    again = new_app(at.session_state["ws_id"])
    again.switch_page("pages/annotate.py").run()
    assert again.text_input(key="ann_tags").value == "bacterium, phase"
