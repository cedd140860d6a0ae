"""The words under a run's progress bar: the phase, the frame count and an ETA that keeps moving.

Why here: the run service reports progress only when a frame finishes (and, with worker processes,
a "loading" phase while the model loads), but the page refreshes every second; between two frames
the ETA counts down instead of standing still, and while the model loads the bar says so instead of
"Frame 0 of 24".
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

_SEEN_KEY = "_eta_seen"  # run id -> (the service's ETA, when this session first saw that value)


def countdown(run_id: int, eta_s: float | None, now: float | None = None, seen: dict | None = None) -> float | None:
    """The ETA as of ``now``: the service's last estimate minus the time since it was first seen.

    Never below 1 s while frames remain (the estimate was too short; the next frame corrects it).
    """
    if eta_s is None:
        return None
    now = time.monotonic() if now is None else now
    seen = st.session_state.setdefault(_SEEN_KEY, {}) if seen is None else seen
    held = seen.get(run_id)
    if held is None or held[0] != eta_s:
        seen[run_id] = (eta_s, now)
        return eta_s
    return max(1.0, eta_s - (now - held[1]))


def fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    return f" · about {seconds // 60} min {seconds % 60:02d} s left" if seconds >= 60 else f" · about {seconds} s left"


PHASES = {
    "divisions": "Checking for cell divisions…",
    "daughters": "Tracking daughters…",
}


def progress_text(status: Any, now: float | None = None, seen: dict | None = None, span: str = "") -> str:
    """The words under the bar: the phase, the run's own frames (``3 of 15, from Time 16``), an ETA.

    ``span`` (``labels.run_span``) says where the run's frames lie, so "3 of 15" is not read as Time 3.
    """
    phase = getattr(status, "phase", None)
    where = f", {span}" if span else ""
    if phase == "loading":
        return "Loading the model…"
    if status.status == "queued":
        return f"Waiting to start · 0 of {status.total} frames{where}"
    if phase in PHASES:  # lineage work after the frames were tracked once: no frame count moves
        return f"{PHASES[phase]} · {status.done} of {status.total} frames tracked{where}"
    if status.done == 0 and not phase:
        return f"Starting · frame 0 of {status.total}{where}"
    return f"Frame {status.done} of {status.total}{where}" + fmt_eta(countdown(status.run_id, status.eta_s, now, seen))
