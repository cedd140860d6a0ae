"""Helpers for the AppTest suites: a fresh app per test on its own data folder, run waits."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sam2web.service import executor as executor_mod
from sam2web.tracking import factory

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


BROWSER = "test-browser-token-0123456789abcdef"  # every AppTest session is this one browser unless told


def new_app(ws_id: str | None = None, timeout: float = 60, browser: str = BROWSER) -> AppTest:
    """The app in a new session of ``browser`` (the owner token a real browser keeps in a cookie)."""
    from sam2web.ui import owner

    at = AppTest.from_file(APP, default_timeout=timeout)
    at.session_state[owner.TOKEN_KEY] = browser
    if ws_id:
        at.query_params["ws"] = ws_id
    return at.run()


def assert_clean(at: AppTest) -> None:
    """No traceback on the page."""
    assert not at.exception, [e.value for e in at.exception]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def wait_runs(store, ws_id: str, timeout: float = 120) -> None:
    """Block until every run of the workspace has left the executor."""
    runner = executor_mod.get_executor()
    for run in store.list_runs(ws_id):
        assert runner.wait(run.id, timeout), f"run {run.id} did not finish in {timeout}s"


def submit_track(at: AppTest, **values) -> AppTest:
    """Fill the Track form (only the fields given) and submit it."""
    for key, value in values.items():
        for kind in ("text_input", "radio", "selectbox", "number_input", "checkbox", "multiselect"):
            found = [w for w in at.get(kind) if getattr(w, "key", None) == f"trk_{key}"]
            if found:
                found[0].set_value(value)
                break
        else:
            raise KeyError(key)
    at.get("form_submit_button")[0].click()
    return at.run()


def hold_standin_runs(monkeypatch):
    """Make stand-in runs wait at their first frame until ``gate`` is set.

    Returns ``(gate, reached)``: ``reached`` is set once a run is inside propagation, so a test
    can act while a run is really in progress (queueing, delete, refresh) without sleeping.
    """
    import threading

    from sam2web.tracking import track

    gate, reached = threading.Event(), threading.Event()
    original = track.StandInTracker.propagate_in_video

    def held(self, *a, **k):
        reached.set()
        assert gate.wait(30)
        yield from original(self, *a, **k)

    monkeypatch.setattr(track.StandInTracker, "propagate_in_video", held)
    return gate, reached


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A fresh data folder, the stand-in tracker, and a fresh predictor cache (the app tests' store)."""
    from sam2web import store as store_mod

    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path))
    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "inline")  # runs in this process, so tests can patch the tracker
    monkeypatch.delenv("SAM2WEB_RANDOM_WEIGHTS", raising=False)
    monkeypatch.delenv("SAM2WEB_IMAGE_SIZE", raising=False)
    factory.clear()
    yield store_mod.get_store(str(tmp_path))
    factory.clear()
