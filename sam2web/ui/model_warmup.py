"""Warm the tracking model when a user opens Annotate or Track, and say so until it is ready.

Why: loading SAM2 takes seconds to tens of seconds on a CPU; started when the page opens (in the
device's worker, ``service.sessions.warm``), it is done by the time the first box is drawn or
Start is pressed. The model is the one of the Track form's saved choices. Stand-ins load nothing.
"""

from __future__ import annotations

import streamlit as st

from sam2web.config import settings
from sam2web.params import TrackParams
from sam2web.service import sessions
from sam2web.store import Workspace


def form_params(ws: Workspace) -> TrackParams:
    """The model choices the Track form will show (the user's own, else this workspace's, else defaults)."""
    from sam2web.ui import track_ui

    return TrackParams.from_dict(track_ui.saved_form(ws))


def show(ws: Workspace) -> None:
    """Start loading the model in the background; "Loading SAM2 small…" until it is ready."""
    if settings().standin:
        return
    params = form_params(ws)
    try:
        params.validate()
    except Exception:  # noqa: BLE001 - a bad saved form is the Track page's to report, not a warm-up's
        return
    sessions.warm(params)
    status = sessions.model_status(params)
    if status == "ready":
        return
    if status.startswith("failed"):
        st.caption(f":material/warning: {status.removeprefix('failed: ')}")
        return
    _loading(params)


@st.fragment(run_every=1.0)
def _loading(params: TrackParams) -> None:
    status = sessions.model_status(params)
    if status == "ready" or status.startswith("failed"):
        st.rerun()  # the whole page once: the next run finds it ready and stops polling
    st.caption(f":material/hourglass_top: {sessions.loading_label(params)}")
