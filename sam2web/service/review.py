"""Rules of what a run is and where its review starts, for every face (pages, CLI, tests).

Why here and not in the pages: "which frames are the run's own", "which sequences had nothing to
track" and "which frame to open" are decisions about runs; the pages only put them into words
(``sam2web.ui.labels``).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence as Seq

from sam2web.types import Location, Prompt, Sequence


def has_prompt(seq: Sequence, prompts: Iterable[Prompt]) -> bool:
    """Does any prompt lie on this sequence's frames? A sequence without one is not tracked."""
    return any(seq.index_of(p.loc) is not None for p in prompts)


def own_frames(sequences: Iterable[Sequence], prompts: Seq[Prompt]) -> int:
    """The frames a run really tracks: those of its sequences that hold a prompt.

    Why: a run over 36 positions with boxes on 2 of them tracks 2 sequences; counting the other
    34 as "done" would say "36 of 36 done" for a run that tracked almost nothing.
    """
    return sum(len(s.frames) for s in sequences if has_prompt(s, prompts))


def unprompted(sequences: Iterable[Sequence], prompts: Seq[Prompt]) -> list[Location]:
    """The first frame of each sequence that has no prompt (what a run card names as skipped)."""
    return [s.frames[0] for s in sequences if s.frames and not has_prompt(s, prompts)]


def first_masked_frame(frames: Seq[Location], masked: Iterable[Location]) -> int:
    """The index in ``frames`` where review starts: the first frame holding a mask, else 0.

    Why: a backward run, or one prompted at Time 16, has nothing to show on its first frames; a
    review that opens on an empty frame looks like a failed run.
    """
    have = set(masked)
    return next((i for i, loc in enumerate(frames) if loc in have), 0)
