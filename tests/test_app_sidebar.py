"""Workspace switching and deletion leave nothing behind: no stale uploads, no open confirmation, no
pile of empty workspaces; choosing files says what to press next."""

from __future__ import annotations

try:
    from tests.app_helpers import assert_clean, data, new_app  # noqa: F401 - data is a fixture
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, new_app


def _sample(at):
    at.button(key="ds_open_sample").click().run()
    assert_clean(at)
    return at


def test_deleting_the_current_workspace_opens_the_latest_other_one(data):
    at = _sample(new_app())
    kept = data.get_workspace(at.session_state["ws_id"])
    doomed = data.create_workspace("Doomed")
    at = new_app(doomed.id)
    at.button(key="sb_del_current").click().run()
    assert_clean(at)
    assert data.get_workspace(doomed.id) is not None  # asks first
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="sb_del_yes").click().run()
    assert_clean(at)
    assert data.get_workspace(doomed.id) is None
    assert at.session_state["ws_id"] == kept.id  # not a new empty workspace
    assert [w.id for w in data.list_workspaces()] == [kept.id]


def test_leaving_an_untouched_workspace_drops_it_and_it_is_never_listed(data):
    at = _sample(new_app())
    sample_ws = at.session_state["ws_id"]
    for _ in range(3):
        data.create_workspace()  # e.g. left behind by other sessions
    at = new_app(sample_ws)
    labels = [b.label for b in at.sidebar.button if str(b.key).startswith("sb_open_")]
    assert labels == []
    at.button(key="sb_new").click().run()
    fresh = at.session_state["ws_id"]
    at = new_app(fresh)
    at.button(key=f"sb_open_{sample_ws}").click().run()
    assert data.get_workspace(fresh) is None and at.session_state["ws_id"] == sample_ws


def _switcher():
    import streamlit as st

    from sam2web.ui import state

    if st.button("Switch", key="go"):
        state.open_workspace(st.session_state["target"])
    st.markdown(f"uploader: {state.upload_key()}")


def test_switching_workspace_forgets_chosen_files_and_open_confirmations(data):
    from streamlit.testing.v1 import AppTest

    other = data.create_workspace("Other")
    at = AppTest.from_function(_switcher)
    at.session_state["target"] = other.id
    at.session_state["sb_del_pending"] = "some-workspace"
    at.session_state["trk_xy"] = "1-3"  # a form value typed for the previous workspace
    at.run()
    assert at.markdown[0].value == "uploader: ds_upload"
    at.button(key="go").click().run()
    assert at.markdown[0].value == "uploader: ds_upload_1"  # a fresh uploader: no stale files in it
    assert "sb_del_pending" not in at.session_state and "trk_xy" not in at.session_state
    assert at.session_state["ws_id"] == other.id


def test_chosen_files_say_what_to_press_next(data):
    import io

    import numpy as np
    from PIL import Image

    at = new_app()
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    assert not at.info or not any("Open uploaded files" in i.value for i in at.info)
    files = [("a.png", buf.getvalue(), "image/png"), ("b.png", buf.getvalue(), "image/png")]
    at.file_uploader(key="ds_upload").set_value(files).run()
    assert any("2 file(s) chosen: press **Open uploaded files**" in i.value for i in at.info)


def test_user_errors_are_logged_as_one_line(data, caplog):
    import logging

    at = new_app()
    with caplog.at_level(logging.INFO, logger="sam2web.ui.state"):
        at.button(key="ds_open_upload").click().run()
    assert at.error and "Choose one or more files" in at.error[0].value
    records = [r for r in caplog.records if r.name == "sam2web.ui.state"]
    assert len(records) == 1 and records[0].exc_info is None and "\n" not in records[0].getMessage()
