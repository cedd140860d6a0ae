"""Results settings (padding, smoothing, fragments, links, visible objects) are kept with the workspace,
and the area plot leaves a gap where an object has no mask."""

from __future__ import annotations

import math

from sam2web.ui.viewer import INJECT_KEY

try:
    from tests.app_helpers import assert_clean, data, new_app, submit_track, wait_runs  # noqa: F401
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, new_app, submit_track, wait_runs


def _two_object_run(data):
    at = new_app()
    at.button(key="ds_open_sample").click().run()
    at.switch_page("pages/annotate.py").run()
    at.session_state[INJECT_KEY] = [{"kind": "box", "box": [60, 40, 110, 90]}]
    at.run()
    at.session_state[INJECT_KEY] = [{"kind": "box", "box": [200, 120, 250, 170]}]
    at.run()
    at.switch_page("pages/track.py").run()
    submit_track(at, time="1-4")
    ws_id = at.session_state["ws_id"]
    wait_runs(data, ws_id)
    (run,) = data.list_runs(ws_id)
    return at, ws_id, run


def test_results_settings_survive_a_reload(data):
    at, ws_id, run = _two_object_run(data)
    at.switch_page("pages/results.py").run()
    assert_clean(at)
    assert at.multiselect(key=f"res_visible_{run.id}").value == [0, 1]
    at.number_input(key=f"res_padding_{run.id}").set_value(2.0).run()
    at.number_input(key=f"res_smoothing_{run.id}").set_value(1.5).run()
    at.checkbox(key=f"res_connect_{run.id}").uncheck().run()
    at.multiselect(key=f"res_visible_{run.id}").set_value([1]).run()
    assert_clean(at)
    again = new_app(ws_id)  # a reload: a new browser session on the same workspace
    again.switch_page("pages/results.py").run()
    assert_clean(again)
    assert again.number_input(key=f"res_padding_{run.id}").value == 2.0
    assert again.number_input(key=f"res_smoothing_{run.id}").value == 1.5
    assert again.checkbox(key=f"res_connect_{run.id}").value is False
    assert again.multiselect(key=f"res_visible_{run.id}").value == [1]
    assert "1 object(s)" in next(c.value for c in again.caption if "object(s)" in c.value)


def test_area_plot_has_gaps_where_no_mask():
    import pandas as pd
    from shapely.geometry import box

    from sam2web.store import Run
    from sam2web.types import Annotation, Location
    from sam2web.ui.results_ui import area_frame, area_spec

    run = Run(
        id=1,
        ws_id="w",
        created=0,
        updated=0,
        settings={"across": "time"},
        objects={},
        status="done",
        done_frames=0,
        total_frames=0,
        error="",
        owner="",
        random_weights=False,
        info={},
    )
    anns = [Annotation(f"0-0-{t}-0", 0, Location(0, t, 0), box(0, 0, 2 + t, 2)) for t in (0, 1, 4)]
    df = area_frame(run, anns, {0})
    assert list(df["frame"]) == [1, 2, 3, 4, 5]
    assert [None if math.isnan(a) else a for a in df["area"]] == [4.0, 6.0, None, None, 12.0]
    spec = area_spec(df, "Time")
    assert spec["mark"]["invalid"] == "break-paths-show-domains" and spec["encoding"]["x"]["axis"]["values"] == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert isinstance(df, pd.DataFrame)


def test_run_selector_label_follows_the_run_state(data):
    at, ws_id, run = _two_object_run(data)
    data.update_run(run.id, status="running", done_frames=2)
    at.switch_page("pages/results.py").run()
    assert "running 2 of 4" in at.selectbox(key="res_run").options[0]
    data.update_run(run.id, status="done", done_frames=4)
    at.run()
    assert at.selectbox(key="res_run").options[0].startswith(f"Run {run.id} · done")
