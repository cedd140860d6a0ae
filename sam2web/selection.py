"""Batch ranges ("1-3, 5-8", "all", blank = current) and the sequences to track.

The surface other modules use:

    parse_ranges(text: str, size: int, current: int, name: str = "Time") -> list[int]   (0-based, sorted, unique)
    format_ranges(indices) -> str        0-based indices -> "1-3, 5" (the inverse of parse_ranges)
    build_sequences(xys, times, zs, across: "time"|"z", direction: "forward"|"backward"|"both") -> list[Sequence]
        across time: one Sequence per (xy, z) over the times; across z: one per (xy, time) over the zs.
        "backward" reverses frame order; "both" keeps forward order (the tracker propagates both ways).
        A sequence of fewer than 2 frames raises UserError naming the axis and how to fix it.

Why strict: the original worker turned a blank Batch Time into a one-frame video and tracked
nothing without a word. Every text the user types is either understood exactly or refused with
a sentence naming the bad part and the valid range.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sam2web import params
from sam2web.errors import UserError
from sam2web.types import Location, Sequence

ACROSS = ("time", "z")
DIRECTIONS = params.DIRECTIONS  # defined once, in TrackParams
_DASHES = re.compile(r"\s*[-\u2013\u2014:]\s*")  # "1-3", "1 – 3", "1:3"
_NUMBER = re.compile(r"\d+")


def _show(part: str) -> str:
    part = part.strip()
    return part if len(part) <= 40 else part[:37] + "..."


def parse_ranges(text: str | None, size: int, current: int, name: str = "Time") -> list[int]:
    """Parse 1-based ranges into sorted unique 0-based indices.

    "1-3, 5-8" and "all" (any case) are understood; commas, semicolons or spaces separate parts;
    a blank text means just the ``current`` (0-based) index.
    """
    size = int(size)
    if size < 1:
        raise UserError(f"The stack has no {name} values to choose from: open a stack first.")
    valid = f"choose numbers from 1 to {size}" if size > 1 else "the only choice is 1"
    raw = "" if text is None else str(text)
    stripped = raw.strip()
    if not stripped:
        if not 0 <= int(current) < size:
            raise UserError(f"The current {name} {int(current) + 1} is outside the stack: {valid}.")
        return [int(current)]
    if stripped.lower() in ("all", "*"):
        return list(range(size))
    chosen: set[int] = set()
    # split on commas/semicolons, then on whitespace that is not part of a "a - b" range
    for chunk in re.split(r"[,;]", stripped):
        chunk = chunk.strip()
        if not chunk:
            continue
        normalized = _DASHES.sub("-", chunk)
        for part in normalized.split():
            chosen.update(_parse_part(part, size, name, valid))
    if not chosen:
        raise UserError(f'Batch {name} "{_show(raw)}" names no frames: {valid}, like "1-3, 5" or "all".')
    return sorted(chosen)


def _parse_part(part: str, size: int, name: str, valid: str) -> range:
    if part.lower() == "all":
        return range(size)
    pieces = part.split("-")
    if len(pieces) == 1:
        pieces = [pieces[0], pieces[0]]
    if len(pieces) != 2 or not all(_NUMBER.fullmatch(p) for p in pieces):
        raise UserError(f'Batch {name} "{_show(part)}" is not a number or a range like "1-3": {valid}.')
    a, b = int(pieces[0]), int(pieces[1])
    if a < 1 or b < 1:
        raise UserError(f'Batch {name} "{_show(part)}" starts below 1 (numbers are 1-based): {valid}.')
    if a > b:
        raise UserError(f'Batch {name} "{_show(part)}" runs backwards: write it as "{b}-{a}" ({valid}).')
    if b > size:
        raise UserError(f'Batch {name} "{_show(part)}" goes past the end: {valid}.')
    return range(a - 1, b)


def format_ranges(indices: Iterable[int]) -> str:
    """0-based indices -> "1-3, 5" (1-based, merged runs); the inverse of parse_ranges."""
    values = sorted({int(i) for i in indices})
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        a, b = values[i] + 1, values[j] + 1
        parts.append(str(a) if a == b else f"{a}-{b}")
        i = j + 1
    return ", ".join(parts)


def build_sequences(
    xys: Iterable[int],
    times: Iterable[int],
    zs: Iterable[int],
    across: str = "time",
    direction: str = "forward",
    sizes: dict | None = None,
) -> list[Sequence]:
    """The "videos" to track, one per position (and Z or Time) outside the tracking axis.

    Across Time: one sequence per (XY, Z) over the chosen times; across Z: one per (XY, Time)
    over the chosen slices. Backward reverses the frame order so the predictor propagates from
    later frames to earlier ones; "both" keeps forward order (the tracker goes both ways).
    ``sizes`` (the stack's T and Z) lets a too-short range suggest the other axis when it would work.
    """
    across = str(across).strip().lower()
    direction = str(direction).strip().lower()
    if across not in ACROSS:
        raise UserError(f'Track across must be "time" or "z", not "{across}".')
    if direction not in DIRECTIONS:
        raise UserError(f'Track direction must be "forward", "backward" or "both", not "{direction}".')
    xys = sorted({int(v) for v in xys})
    times = sorted({int(v) for v in times})
    zs = sorted({int(v) for v in zs})
    for values, label in ((xys, "XY"), (times, "Time"), (zs, "Z")):
        if not values:
            raise UserError(f"No {label} was chosen: enter a {label} range such as 1 or all.")
    steps, label = (times, "Time") if across == "time" else (zs, "Z")
    if len(steps) < 2:
        raise UserError(
            f"Tracking across {label} needs at least 2 {label} frames but only "
            f"{format_ranges(steps)} is chosen: set Batch {label} to a range such as "
            '"1-10" or "all".' + _other_axis_hint(across, times, zs, sizes)
        )
    sequences = []
    for xy in xys:
        others = zs if across == "time" else times
        for other in others:
            if across == "time":
                frames = [Location(xy, t, other) for t in steps]
            else:
                frames = [Location(xy, other, z) for z in steps]
            if direction == "backward":
                frames.reverse()
            sequences.append(Sequence(frames=tuple(frames), across=across))
    return sequences


def _other_axis_hint(across: str, times: list[int], zs: list[int], sizes: dict | None) -> str:
    """ " Or track across the other axis", when that axis has (or was given) at least 2 frames."""
    other, chosen, key = ("Z", zs, "Z") if across == "time" else ("Time", times, "T")
    available = int((sizes or {}).get(key, 0) or 0)
    own_key = "T" if across == "time" else "Z"
    if len(chosen) >= 2:
        return f" Or choose Track across {other}: {len(chosen)} {other} frames are chosen."
    if available >= 2 and (sizes or {}).get(own_key, 2) < 2:
        return f" This stack has {available} {other} frames: choose Track across {other} and set Batch {other} to all."
    return ""
