"""The sidebar every page shares: current workspace, recent workspaces, new workspace, data folder.

Why: the user must always see which workspace they are in and be able to get back to earlier
work; everything else on the page depends on that choice.
"""

from __future__ import annotations

import time

import streamlit as st

from sam2web.errors import UserError
from sam2web.store import DataFolderError, Workspace
from sam2web.ui import state
from sam2web.ui.text import plain

DEL_PENDING = "sb_del_pending"  # the workspace whose delete button was pressed, awaiting confirmation
STOP_WAIT_S = 10.0  # how long a delete waits for a cancelled run to stop (it stops within a frame)


def delete_workspace(ws_id: str, wait_s: float | None = None) -> None:
    """Delete a workspace safely, or raise UserError saying why not (nothing is deleted then).

    Why: only the owner deletes a workspace (an admin may look, not delete). A workspace another
    live browser session has open is refused; queued/running runs are cancelled and waited for
    first, so no worker thread writes into a deleted run and the app keeps serving.
    """
    from sam2web.service import runs

    s = state.store()
    ws = s.get_workspace(ws_id)
    if ws is None:
        return
    if not state.may_delete(ws):
        raise UserError("Only the person who made a workspace can delete it.")
    if state.open_elsewhere(ws_id):
        raise UserError(
            f"The workspace {ws.name!r} is open in another browser session; it can be deleted "
            f"once that session has closed it or moved to another workspace."
        )
    runs.delete_workspace(s, ws_id, STOP_WAIT_S if wait_s is None else wait_s)


def _when(ts: float) -> str:
    """Short and readable: the time for today's workspaces, else the day."""
    now = time.localtime()
    t = time.localtime(ts)
    if (t.tm_year, t.tm_yday) == (now.tm_year, now.tm_yday):
        return time.strftime("%H:%M", t)
    return time.strftime("%d %b", t) if t.tm_year == now.tm_year else time.strftime("%Y-%m-%d", t)


def _short(name: str, limit: int = 26) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _label(ws: Workspace) -> str:
    """A workspace's name for the narrow recent list; an untouched one says so instead of its long default name."""
    if not ws.dataset and not ws.prompts and ws.name.startswith("Workspace "):
        return "(empty workspace)"
    return _short(ws.name)


def _untouched(ws: Workspace) -> bool:
    """No dataset, no prompts, no runs, the default name: nothing in it to come back to."""
    return not ws.dataset and not ws.prompts and ws.name.startswith("Workspace ") and not state.store().list_runs(ws.id)


def _drop_if_untouched(ws: Workspace) -> None:
    """Leaving an untouched workspace deletes it: it would only clutter everyone's Recent list.

    Untouched = ``_untouched`` and no other live browser session has it open.
    """
    if _untouched(ws) and not state.open_elsewhere(ws.id):
        state.store().delete_workspace(ws.id)


def _after_deleting_current() -> None:
    """Where a session goes when it deleted its own workspace: the latest one nobody else has open, else a new one.

    Why not always a new one: each delete would leave an "(empty workspace)" behind in the list.
    """
    for other in state.visible_workspaces(20):
        if not _untouched(other) and not state.open_elsewhere(other.id):
            state.open_workspace(other.id)
            return
    state.new_workspace()


def _confirm_delete(ws: Workspace, current: bool = False) -> None:
    """The confirmation step of a delete: what will be lost, active runs, Delete / Keep."""
    from sam2web.store import ACTIVE_STATUSES

    s = state.store()
    active = [r.id for r in s.list_runs(ws.id) if r.status in ACTIVE_STATUSES]
    text = (
        f"Delete the workspace **{plain(ws.name)}** ({_when(ws.updated)})? Its prompts, runs, masks and uploaded "
        f"files are removed; this cannot be undone."
    )
    if active:
        text += f" Its run(s) {', '.join(map(str, active))} in progress will be cancelled first."
    st.warning(text)
    c1, c2 = st.columns(2)
    if c1.button("Delete", key="sb_del_yes", type="primary", icon=":material/delete:"):
        with state.guard():
            with st.spinner("Deleting…"):
                delete_workspace(ws.id)
            st.session_state.pop(DEL_PENDING, None)
            if current:
                _after_deleting_current()
            st.toast(f"Deleted the workspace {plain(repr(ws.name))}.")
            st.rerun()
    if c2.button("Keep", key="sb_del_no"):
        st.session_state.pop(DEL_PENDING, None)
        st.rerun()


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


# Streamlit leaves 6rem above the title; on a 1280 x 800 screen that pushed frames below the fold.
# Long names without spaces (files, channels, workspaces) wrap instead of running out of their
# column.
_COMPACT_TOP = (
    "<style>[data-testid=stMainBlockContainer]{padding-top:2.5rem}"
    "[data-testid=stMarkdownContainer],[data-testid=stWidgetLabel],[data-testid=stCaptionContainer]"
    "{overflow-wrap:anywhere}</style>"
)


def _cannot_start(err: UserError) -> None:
    """The page when the settings or the data folder are unusable: what happened and what to do, then stop."""
    st.title("sam2web cannot open its data")
    st.error(plain(str(err)), icon=":material/error:")
    st.caption("Nothing was changed. Fix it on the server, then reload this page.")
    st.stop()


def page(title: str) -> Workspace:
    """Start a page: the shared sidebar, the title, how this session landed here; the current workspace."""
    _leave_pages_directory_mode()
    try:
        state.store()  # the settings and the data folder first: a bad value or a broken database stops here
        state.visitor()  # with sign-in on and nobody signed in: the sign-in page, and the script stops here
        st.html(_COMPACT_TOP)
        render()
        ws = state.current_workspace()
    except UserError as err:
        if isinstance(err, DataFolderError) or "SAM2WEB_" in str(err):
            _cannot_start(err)
        raise
    st.title(title)
    note = state.landing_note(ws)
    if note:
        c1, c2 = st.columns([8, 1])
        c1.info(note, icon=":material/info:")
        if c2.button("Dismiss", key="sb_note_ok"):
            st.session_state.pop(state.NOTE_KEY, None)
            st.rerun()
    return ws


def render() -> None:
    ws = state.current_workspace()
    s = state.store()
    who = state.visitor()
    with st.sidebar:
        if who.signed_in:
            st.caption("Signed in as " + plain(who.name) + (" (admin: sees every workspace)" if who.admin else ""))
            if st.button("Sign out", key="sb_logout", icon=":material/logout:"):
                st.logout()
        st.markdown("**Workspace:**")
        st.text(ws.name)
        with st.expander("Rename workspace"):
            new_name = st.text_input("Workspace name", value=ws.name, key="sb_rename")
            if st.button("Rename", key="sb_rename_btn"):
                with state.guard():
                    s.rename_workspace(ws.id, new_name)
                    st.rerun()
        if st.button("New workspace", key="sb_new", icon=":material/add:", width="stretch"):
            _drop_if_untouched(ws)
            state.new_workspace()
            st.rerun()
        others = [w for w in state.visible_workspaces(20) if w.id != ws.id and not _untouched(w)]
        if others:
            st.markdown("**Recent workspaces**")
            pending = st.session_state.get(DEL_PENDING)
            for other in others[:10]:
                if other.id == pending:
                    _confirm_delete(other)
                    continue
                c1, c2 = st.columns([6, 1], gap="small", vertical_alignment="center")
                label = f"{_when(other.updated)} · {plain(_label(other))}"
                if c1.button(
                    label,
                    key=f"sb_open_{other.id}",
                    width="stretch",
                    help=f"Open {plain(other.name)} (last changed "
                    f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(other.updated))})",
                ):
                    _drop_if_untouched(ws)
                    state.open_workspace(other.id)
                    st.rerun()
                if state.may_delete(other) and c2.button(
                    ":material/delete:", key=f"sb_del_{other.id}", help=f"Delete {plain(other.name)}…", type="tertiary"
                ):
                    st.session_state[DEL_PENDING] = other.id  # confirmed on the next run
                    st.rerun()
        with st.expander("Delete this workspace"):
            st.caption(
                "Deletes its prompts, runs, masks and uploaded files. This cannot be undone; "
                "runs in progress are cancelled first."
            )
            if st.session_state.get(DEL_PENDING) == ws.id:
                _confirm_delete(ws, current=True)
            elif st.button("Delete this workspace", key="sb_del_current", type="primary"):
                st.session_state[DEL_PENDING] = ws.id  # confirmed on the next run
                st.rerun()
        st.caption(f"Data folder: `{s.root}`")
        if state.is_random_weights():
            st.warning("SAM2WEB_RANDOM_WEIGHTS=1: the model has random weights; masks are meaningless.")
