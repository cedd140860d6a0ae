"""One AppTest run through the real SAM2 video predictor (tiny, random weights, small image size)."""

from __future__ import annotations

import pytest

from sam2web import store as store_mod
from sam2web.service import executor as executor_mod
from sam2web.tracking import factory
from sam2web.ui.viewer import INJECT_KEY

try:
    from tests.app_helpers import assert_clean, errors, new_app, submit_track, wait_runs
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, errors, new_app, submit_track, wait_runs

pytest.importorskip("sam2")


def test_real_sam2_tiny_random_weights_through_the_app(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path))
    monkeypatch.setenv("SAM2WEB_RANDOM_WEIGHTS", "1")
    monkeypatch.delenv("SAM2WEB_STANDIN", raising=False)
    factory.clear()
    data = store_mod.get_store(str(tmp_path))
    at = new_app(timeout=120)
    at.button(key="ds_open_sample").click().run()
    at.switch_page("pages/annotate.py").run()
    at.session_state[INJECT_KEY] = [{"kind": "box", "box": [60, 40, 110, 90]}]
    at.run()
    at.switch_page("pages/track.py").run()
    assert any("RANDOM weights" in w.value for w in at.warning)
    submit_track(at, time="1-3", model="tiny", image_size=256, device="cpu", direction="both")
    assert_clean(at)
    assert not errors(at), errors(at)
    ws = data.get_workspace(at.session_state["ws_id"])
    wait_runs(data, ws.id, timeout=300)
    (run,) = data.list_runs(ws.id)
    assert run.status == "done", run.error
    assert run.random_weights and run.done_frames == 3
    result = data.load_result(run.id)
    assert {loc.time for (_, loc) in result.masks} <= {0, 1, 2}
    assert all(m.shape == (240, 320) for m in result.masks.values())
    at.switch_page("pages/results.py").run()
    assert_clean(at)
    assert any("RANDOM weights" in w.value for w in at.warning)
    assert [d.label for d in at.get("download_button")][0] == "annotations.geojson"
    factory.clear()
