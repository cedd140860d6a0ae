"""Opening Annotate or Track warms the Track form's model in the worker and says so until it is ready."""

from __future__ import annotations

import time

from app_helpers import assert_clean, data, new_app  # noqa: F401  (data: the fixture)

from sam2web.params import TrackParams
from sam2web.service import executor as executor_mod
from sam2web.service import sessions


def _captions(at) -> list[str]:
    return [c.value for c in at.caption]


def test_annotate_warms_the_model_and_a_failed_load_says_why(data, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.delenv("SAM2WEB_STANDIN")  # the real SAM2 loader, without a checkpoint anywhere
    monkeypatch.setenv("SAM2WEB_CHECKPOINTS", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    try:
        at = new_app()
        at.button(key="ds_open_sample").click().run()
        at.switch_page("pages/annotate.py").run()
        assert_clean(at)
        first = " ".join(_captions(at))
        assert "Loading SAM2 small…" in first or "checkpoint" in first
        params = TrackParams()  # nothing chosen yet: the form's defaults (small)
        deadline = time.monotonic() + 120
        while not sessions.model_status(params).startswith("failed") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sessions.model_status(params).startswith("failed: The SAM2.1 small checkpoint")
        at.run()
        assert any("checkpoint" in c and "Loading" not in c for c in _captions(at))
    finally:
        executor_mod.get_executor().shutdown()
