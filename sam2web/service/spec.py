"""``RunSpec``: everything a worker needs to execute one run, as plain picklable data.

Why plain data: the same spec goes to a thread (tests), a worker process on this machine, or a Ray
actor on another node. Frames are not shipped: the worker opens the dataset from ``paths``, which
it can read, and writes each finished frame to the store at ``data_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sam2web.params import TrackParams
from sam2web.service.review import own_frames
from sam2web.types import Location, Prompt, Sequence


@dataclass
class RunSpec:
    run_id: int
    data_dir: str
    paths: list[str]
    pages_as: str
    params: TrackParams
    sequences: list[Sequence]
    prompts: list[Prompt]
    display: dict  # DisplaySettings.to_dict()
    device: str  # the lane: "cpu", "cuda", "cuda:1", "mps"
    # A correction: re-track only ``prompts`` and keep the rest of this earlier run's masks.
    correct_from: int | None = None
    # One part of a run that several workers share (the CPU pool): the indices of the sequences it
    # tracks (None: all) and the torch threads it may use (0: torch's default).
    only: list[int] | None = None
    threads: int = 0
    # One unit of a run on Ray: the run-wide index of each of ``sequences`` and the run's sequence
    # count (daughters' ids are numbered by them; None: this spec is the whole run), what the worker
    # reads instead of the store (the masks saved on its frames, a correction's earlier result), and
    # the token its cancel and progress are keyed by (run ids restart in every data folder).
    seq_indices: list[int] | None = None
    n_sequences: int | None = None
    saved: dict | None = None
    previous: Any = None
    ray_token: str = ""

    @property
    def total_frames(self) -> int:
        """The run's own frames: those of its sequences that hold a prompt (``review.own_frames``)."""
        return own_frames(self.sequences, self.prompts)


WORST_FIRST = ("failed", "interrupted", "cancelled")  # a run of several parts ends as its worst part


def worst_outcome(results: list[tuple[str, str]]) -> tuple[str, str]:
    """(status, error) of a run whose parts ended with ``results``: the worst status names the run's."""
    for status in WORST_FIRST:
        for got, error in results:
            if got == status:
                return got, error
    return "done", ""


@dataclass(frozen=True)
class FrameRequest:
    """One frame of one workspace's sequence, as an interactive request names it (plain, picklable).

    ``frame`` is the index in ``sequence.frames``. The worker keeps one session per ``key``
    (workspace, sequence): two workspaces never share one, whatever their files.
    """

    workspace_id: str
    paths: tuple[str, ...]
    pages_as: str
    display: dict  # DisplaySettings.to_dict(); {} = the stack's default display
    sequence: Sequence
    frame: int
    params: TrackParams

    @property
    def key(self) -> tuple:
        return (self.workspace_id, self.sequence)

    @property
    def loc(self) -> Location | None:
        """The frame's place in the stack; None when ``frame`` is outside the sequence (the worker says so)."""
        frames = self.sequence.frames
        return frames[self.frame] if 0 <= self.frame < len(frames) else None


@dataclass
class Progress:
    """A run as a page or a progress bar shows it."""

    run_id: int
    status: str  # the store's status: queued, running, done, cancelled, interrupted, failed
    done: int
    total: int
    eta_s: float | None = None
    queue_position: int | None = None  # 0 = running now, n = n-th waiting; None = not queued here
    phase: str = ""  # "loading" while the model loads, "tracking" after
    error: str = ""
    where: str = ""  # e.g. "worker process on cpu"

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0
