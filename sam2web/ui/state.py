"""Session state the pages share: the store, the current workspace, the open stack, cached frames.

Why: every page needs "which workspace, which dataset, which frame"; keeping that here makes the
pages thin and makes a refresh or a restart land the user where they were (the workspace id lives
in the URL, ``?ws=...``; who may open it is sam2web.ui.owner's rule).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from sam2web.config import settings
from sam2web.errors import UserError
from sam2web.store import Store, Workspace, get_store
from sam2web.types import Location
from sam2web.ui.text import plain

log = logging.getLogger(__name__)

WS_KEY = "ws_id"


def store() -> Store:
    """The process-wide store for the data folder of the current settings."""
    return get_store(str(settings().data_dir))


# -- which browser session has which workspace open (this server process) ---------------------
# Why: a workspace open in another live tab (of the same owner) must not be deleted under it, and
# leaving an untouched workspace drops it only when nobody else has it open. Who may open a
# workspace at all is sam2web.ui.owner's rule; a new session at the bare address gets a new
# workspace of its own (its earlier ones are listed in the sidebar).
TOKEN_KEY = "_sam2web_session"
NOTE_KEY = "ws_landing_note"
_OPEN: dict[str, tuple[str, str | None]] = {}  # session token -> (workspace id, Streamlit session id)
_OPEN_LOCK = threading.Lock()


def _session_token() -> str:
    """A token per browser session (AppTest sessions all share one Streamlit session id)."""
    token = st.session_state.get(TOKEN_KEY)
    if not token:
        token = uuid.uuid4().hex
        st.session_state[TOKEN_KEY] = token
    return token


def _runtime_session_id() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def session_alive(runtime_sid: str | None) -> bool:
    """Is that browser session still connected? Streamlit's runtime knows; without one (AppTest), no."""
    from streamlit import runtime

    if not runtime_sid or not runtime.exists():
        return False
    try:
        # ``is True``: AppTest installs a MagicMock runtime whose answer is a (truthy) mock.
        return runtime.get_instance().is_active_session(runtime_sid) is True
    except Exception:  # noqa: BLE001 - liveness is advisory; never break a page over it
        return False


def open_elsewhere(ws_id: str) -> bool:
    """True when another live browser session has ``ws_id`` open (dead entries are forgotten)."""
    me = st.session_state.get(TOKEN_KEY)
    with _OPEN_LOCK:
        entries = [(tok, sid) for tok, (w, sid) in _OPEN.items() if w == ws_id and tok != me]
    for tok, sid in entries:
        if session_alive(sid):
            return True
        with _OPEN_LOCK:
            _OPEN.pop(tok, None)
    return False


def landing_note(ws: Workspace) -> str | None:
    """The sentence explaining how this session landed in ``ws`` (shown until dismissed or left)."""
    note = st.session_state.get(NOTE_KEY)
    if note and note[0] == ws.id:
        return note[1]
    return None


def _remember(ws_id: str) -> None:
    with _OPEN_LOCK:
        _OPEN[_session_token()] = (ws_id, _runtime_session_id())
    if st.session_state.get(WS_KEY) != ws_id:  # opened in this session: keeps it from ``admin prune``
        store().touch_workspace(ws_id)
    st.session_state[WS_KEY] = ws_id
    if st.query_params.get("ws") != ws_id:
        st.query_params["ws"] = ws_id


def visitor() -> Any:
    """This session's visitor (sam2web.ui.owner.Visitor); with sign-in on and nobody signed in, the
    sign-in page is shown and the script stops."""
    from sam2web.ui import owner

    return owner.visitor()


def visible_workspaces(limit: int = 20) -> list[Workspace]:
    """The workspaces this visitor may list: their own, or everyone's for an admin."""
    who = visitor()
    return store().list_workspaces(limit, owner=None if who.admin else who.owner)


def may_delete(ws: Workspace) -> bool:
    return ws.owner == visitor().owner


def current_workspace() -> Workspace:
    """The workspace of this session, else the URL's ``ws`` (a refresh), else a new one of this visitor.

    The session's choice wins over the URL so that switching workspaces takes effect at once even
    before the browser's URL has caught up. A workspace id the visitor may not open (another
    owner's, or a deleted one) is never opened: the session gets a new workspace and a sentence
    that says so, the same sentence either way (it tells nobody whether the id exists).
    """
    from sam2web.ui import owner

    s = store()
    who = visitor()
    asked = st.query_params.get("ws")
    for candidate in (st.session_state.get(WS_KEY), asked):
        ws = s.get_workspace(candidate) if candidate else None
        if ws is not None and owner.may_open(who, ws):
            if not ws.owner and not who.admin:  # from a data folder made before workspaces had owners
                s.set_owner(ws.id, who.owner)
                ws.owner = who.owner
            _remember(ws.id)
            return ws
    ws = s.create_workspace(owner=who.owner)
    _remember(ws.id)
    if asked:
        st.session_state[NOTE_KEY] = (
            ws.id,
            "The workspace in that address is not one of yours or no longer exists, so this is a new "
            "workspace; yours are listed in the sidebar.",
        )
    return ws


UPLOAD_VERSION_KEY = "ds_upload_ver"


def open_workspace(ws_id: str) -> None:
    """Switch this session to a workspace; forget the previous one's widget state.

    The uploader is a new widget (its key carries a version), so files chosen for the previous
    workspace are not offered in this one; an open delete confirmation is closed.
    """
    _remember(ws_id)
    for key in [k for k in st.session_state.keys() if str(k).startswith(("loc_", "ann_", "res_", "trk_"))]:
        del st.session_state[key]
    st.session_state.pop("sb_del_pending", None)
    st.session_state[UPLOAD_VERSION_KEY] = st.session_state.get(UPLOAD_VERSION_KEY, 0) + 1


def upload_key() -> str:
    """The Dataset uploader's key: "ds_upload", then a new one after each workspace switch."""
    ver = st.session_state.get(UPLOAD_VERSION_KEY, 0)
    return "ds_upload" if not ver else f"ds_upload_{ver}"


def new_workspace(name: str = "") -> Workspace:
    ws = store().create_workspace(name, owner=visitor().owner)
    open_workspace(ws.id)
    return ws


@contextmanager
def guard() -> Iterator[None]:
    """Show a UserError as one sentence in the page (never a traceback); the page goes on.

    Anything else is sam2web's own bug: its traceback goes to the server log, and the page says so
    plainly instead of blaming the user's file. (Streamlit's control-flow exceptions pass through.)
    """
    from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

    try:
        yield
    except UserError as err:
        log.info("user error: %s", err)  # one line, no traceback: it is the user's to fix
        st.error(plain(str(err)), icon=":material/error:")  # sentences quote file and object names
    except ScriptControlException:
        raise
    except Exception as err:  # noqa: BLE001 - shown as a bug, logged with its traceback
        from sam2web.store import disk_full_sentence, is_disk_full

        if is_disk_full(err):  # an upload, the sample, an export: the disk, not the user's file
            log.warning("disk full: %s", err)
            st.error(plain(disk_full_sentence(settings().data_dir)), icon=":material/error:")
            return
        log.exception("unexpected error in a page")
        st.error(
            f"Something went wrong inside sam2web ({type(err).__name__}); this is a bug, not a problem with your "
            "data. Your work is saved; the details are in the server log.",
            icon=":material/bug_report:",
        )


# -- the dataset -------------------------------------------------------------------------------
def dataset_key(ws: Workspace) -> str:
    """A short fingerprint of the dataset reference (cache key; changes when files change)."""
    s = store()
    ds = ws.dataset or {}
    parts: list[Any] = [ds.get("kind"), ds.get("pages_as")]
    if ds.get("kind") in ("files", "server"):
        for p in s.dataset_paths(ws):
            st_ = p.stat() if p.exists() else None
            parts.append((str(p), st_.st_size if st_ else -1, st_.st_mtime_ns if st_ else -1))
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def sample_paths() -> list[Path]:
    """The built-in sample, written once under the data folder."""
    from sam2web.service import runs

    return runs.sample_paths(store())


@st.cache_resource(max_entries=16, show_spinner=False, on_release=lambda stack: stack.close())
def _open_cached(key: str, paths: tuple[str, ...], pages_as: str) -> Any:
    from sam2web import stack as stack_mod

    arg: Any = list(paths) if len(paths) > 1 else paths[0]
    return stack_mod.open_stack(arg, pages_as=pages_as)


def open_dataset(ws: Workspace) -> Any | None:
    """The workspace's Stack (cached per dataset), or None when no dataset was chosen yet."""
    from sam2web.service import runs

    source = runs.dataset_source(store(), ws)
    if source is None:
        return None
    paths, pages_as = source
    return _open_cached(dataset_key(ws), tuple(str(p) for p in paths), pages_as)


def display_settings(ws: Workspace, stack: Any) -> Any:
    """The workspace's DisplaySettings, or the default for this stack when none was saved or it no longer fits."""
    from sam2web.stack import display

    saved = ws.display or {}
    if saved.get("channels"):
        try:
            settings = display.DisplaySettings.from_dict(saved)
            if all(0 <= c.index < stack.sizes["C"] for c in settings.channels):
                return settings
        except (KeyError, TypeError, ValueError):
            pass
    return display.DisplaySettings.default(stack)


# Rendered (composited RGB) frames: one byte-bounded LRU per server process (a quarter of
# SAM2WEB_CACHE_MB, see sam2web.config), shared by every session. Why not st.cache_data(512
# entries): 512 bacteria frames are 2 GB, and the server's memory never came back down.
_RENDERED: Any = None
_RENDERED_LOCK = threading.Lock()


def render_cache() -> Any:
    """The process's rendered-frame cache (created on first use with the settings' byte budget)."""
    global _RENDERED
    with _RENDERED_LOCK:
        if _RENDERED is None:
            from sam2web.stack.common import FrameCache

            _RENDERED = FrameCache(settings().render_cache_bytes)
        return _RENDERED


def render(ws: Workspace, stack: Any, loc: Location, settings_: Any) -> np.ndarray:
    """The frame as uint8 RGB, cached per (dataset, location, display settings): switching frames is instant.

    The array is shared between sessions: callers draw on copies (``draw_geometries`` does).
    """
    from sam2web.stack import display

    key = (dataset_key(ws), tuple(int(v) for v in loc), json.dumps(settings_.to_dict(), sort_keys=True))
    cache = render_cache()
    rgb = cache.get(key)
    if rgb is None:
        rgb = display.render(stack, Location(*loc), settings_)
        rgb.setflags(write=False)
        cache.put(key, rgb)
    return rgb


# -- location ----------------------------------------------------------------------------------
def current_location(ws: Workspace, stack: Any) -> Location:
    view = ws.view or {}
    sizes = stack.sizes

    def clamp(v: Any, n: int) -> int:
        try:
            return min(max(int(v), 0), max(n - 1, 0))
        except (TypeError, ValueError):
            return 0

    return Location(
        clamp(view.get("xy", 0), sizes["XY"]),
        clamp(view.get("time", 0), sizes["T"]),
        clamp(view.get("z", 0), sizes["Z"]),
    )


def save_location(ws: Workspace, loc: Location) -> None:
    view = dict(ws.view or {})
    if (view.get("xy"), view.get("time"), view.get("z")) != tuple(loc):
        view.update(xy=int(loc.xy), time=int(loc.time), z=int(loc.z))
        store().update_workspace(ws.id, view=view)
        ws.view = view


def location_sliders(ws: Workspace, stack: Any, prefix: str) -> Location:
    """XY / Time / Z sliders (only for axes longer than 1), 1-based on screen; saved to the workspace."""
    loc = current_location(ws, stack)
    sizes = stack.sizes
    values = {"xy": loc.xy, "time": loc.time, "z": loc.z}
    axes = [
        (a, k, lab) for a, k, lab in (("xy", "XY", "XY"), ("time", "T", "Time"), ("z", "Z", "Z")) if int(sizes[k]) > 1
    ]
    if axes:
        cols = st.columns(max(2, len(axes)))
        for col, (axis, size_key, label) in zip(cols, axes):
            with col:
                values[axis] = (
                    int(st.slider(label, 1, int(sizes[size_key]), values[axis] + 1, key=f"{prefix}_{axis}")) - 1
                )
    new = Location(values["xy"], values["time"], values["z"])
    save_location(ws, new)
    return new


# -- the person's own choices ------------------------------------------------------------------
def user_key() -> str:
    """Whose preferences these are: the signed-in user's e-mail when sign-in is on, else this server's user.

    Why not per workspace: the model and image size suit the person and the machine, not the
    dataset, so every new workspace starts with the ones chosen last.
    """
    try:
        if st.user.get("is_logged_in"):
            return str(st.user.get("email") or st.user.get("sub") or "local")
    except Exception:  # noqa: BLE001 - no auth configured (or no runtime): one local user
        pass
    return "local"


def preferences() -> dict:
    return store().preferences(user_key())


def save_preferences(**values: Any) -> None:
    if any(preferences().get(k) != v for k, v in values.items()):
        store().set_preferences(user_key(), **values)


# -- prompts -----------------------------------------------------------------------------------
def load_prompts(ws: Workspace) -> list:
    from sam2web import prompts as prompts_mod

    return [prompts_mod.prompt_from_dict(d) for d in (ws.prompts or [])]


def save_prompts(ws: Workspace, prompts: list) -> None:
    from sam2web import prompts as prompts_mod

    data = [prompts_mod.prompt_to_dict(p) for p in prompts]
    # merged with what another tab saved since this page loaded ``ws`` (Store.save_prompts)
    ws.prompts = store().save_prompts(ws.id, list(ws.prompts or []), data)


def image_width(rgb: np.ndarray) -> int:
    """Screen width for a frame: small frames are enlarged (to 640 px) so cells are visible, large ones fit."""
    return int(min(max(rgb.shape[1], 640), 1000))


def is_random_weights() -> bool:
    """Runs made now use random weights (the service's one rule, also for the CLI)."""
    from sam2web.service import runs

    return runs.random_weights_run()
