"""The progress line under a run: a loading phase, and an ETA that counts down between frames."""

from __future__ import annotations

from dataclasses import dataclass

from sam2web.ui.progress_ui import countdown, progress_text


@dataclass
class _Status:
    run_id: int = 1
    status: str = "running"
    done: int = 3
    total: int = 24
    eta_s: float | None = 42.0
    phase: str | None = "tracking"


def test_loading_phase_is_named_instead_of_frame_zero():
    assert progress_text(_Status(done=0, eta_s=None, phase="loading"), seen={}) == "Loading the model…"
    # the first run on a machine: the one-off CPU lever check (and a compilation) inside the build
    preparing = progress_text(_Status(done=0, eta_s=None, phase="preparing"), seen={})
    assert preparing == "Preparing the model for this CPU…"
    assert progress_text(_Status(status="queued", done=0, eta_s=None, phase=None), seen={}).startswith(
        "Waiting to start"
    )


def test_eta_counts_down_between_frames_and_resets_on_a_new_estimate():
    seen: dict = {}
    assert countdown(1, 42.0, now=100.0, seen=seen) == 42.0
    assert countdown(1, 42.0, now=110.0, seen=seen) == 32.0  # no new frame yet: 10 s later, 10 s less
    assert countdown(1, 42.0, now=200.0, seen=seen) == 1.0  # never "0 s left" while frames remain
    assert countdown(1, 30.0, now=201.0, seen=seen) == 30.0  # a frame finished: the new estimate
    text = progress_text(_Status(eta_s=30.0), now=206.0, seen=seen)
    assert text == "Frame 3 of 24 · about 25 s left"
