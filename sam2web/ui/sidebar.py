"""The sidebar every page shares: current workspace, recent workspaces, new workspace, data folder.

Why: the user must always see which workspace they are in and be able to get back to earlier
work; everything else on the page depends on that choice.
"""
from __future__ import annotations

import time

import streamlit as st

from sam2web.store import Workspace
from sam2web.ui import state


def _delete(ws_id: str) -> None:
    """Stop the workspace's queued/running runs first, then delete everything of it."""
    from sam2web.jobs import get_runner

    s = state.store()
    for run in s.list_runs(ws_id):
        if run.status in ("queued", "running"):
            get_runner().cancel(run.id)
    s.delete_workspace(ws_id)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _leave_pages_directory_mode() -> None:
    """Make Streamlit run app.py (st.navigation) even when a page file was started directly.

    Why: Streamlit starts in its old "pages/ directory" mode whenever a pages/ folder exists, until
    some run calls st.navigation. A deep link (``/results``) as the first request after a server
    restart would then run the page without app.py: no page config, a wrong menu (listing app.py).
    Leaving that mode and rerunning hands the request to app.py's navigation. (Private flag,
    hence the guard.)
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - a future Streamlit without the flag
        return
    first_run = not st.session_state.get("_nav_checked")
    st.session_state["_nav_checked"] = True
    # Only on a session's first run: a rerun there loses no widget event (there is none yet).
    if first_run and PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def page(title: str) -> Workspace:
    """Start a page: the shared sidebar, the title; returns the current workspace."""
    _leave_pages_directory_mode()
    render()
    st.title(title)
    return state.current_workspace()


def render() -> None:
    ws = state.current_workspace()
    s = state.store()
    with st.sidebar:
        st.markdown(f"**Workspace:** {ws.name}")
        with st.expander("Rename workspace"):
            new_name = st.text_input("Workspace name", value=ws.name, key="sb_rename")
            if st.button("Rename", key="sb_rename_btn"):
                with state.guard():
                    s.rename_workspace(ws.id, new_name)
                    st.rerun()
        if st.button("New workspace", key="sb_new", icon=":material/add:", width="stretch"):
            state.new_workspace()
            st.rerun()
        others = [w for w in s.list_workspaces(20) if w.id != ws.id]
        if others:
            st.markdown("**Recent workspaces**")
            for other in others[:10]:
                c1, c2 = st.columns([4, 1])
                label = f"{other.name} · {_when(other.updated)}"
                if c1.button(label, key=f"sb_open_{other.id}", width="stretch"):
                    state.open_workspace(other.id)
                    st.rerun()
                if c2.button("✕", key=f"sb_del_{other.id}", help=f"Delete {other.name}"):
                    _delete(other.id)
                    st.rerun()
        with st.expander("Delete this workspace"):
            st.caption("Deletes its prompts, runs, masks and uploaded files. This cannot be undone.")
            if st.button("Delete this workspace", key="sb_del_current", type="primary"):
                _delete(ws.id)
                state.new_workspace()
                st.rerun()
        st.caption(f"Data folder: `{s.root}`")
        if state.is_random_weights():
            st.warning("SAM2WEB_RANDOM_WEIGHTS=1: the model has random weights; masks are meaningless.")
