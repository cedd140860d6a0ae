"""Batch ranges ("1-3, 5-8", "all", blank = current) and the sequences to track.

OWNER: stack helper. Contract:

    parse_ranges(text: str, size: int, current: int, name: str = "Time") -> list[int]   (0-based, sorted, unique)
    build_sequences(xys, times, zs, across: "time"|"z", direction: "forward"|"backward"|"both") -> list[Sequence]
        across time: one Sequence per (xy, z) over the times; across z: one per (xy, time) over the zs.
        "backward" reverses frame order; "both" keeps forward order (the tracker propagates both ways).
        A sequence of fewer than 2 frames raises UserError naming the axis and how to fix it.
"""
