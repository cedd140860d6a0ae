"""Parent -> child connections between consecutive polygons of each object (SPEC.md rule).

OWNER: geometry helper. Contract:
    connect(annotations: list[Annotation], enabled=True) -> list[Connection]
    connect_by_label(annotations, enabled=True) -> list[Connection]   (for `convert`: obj_id = label)

The rule: per object (and per XY position, since a track never jumps between positions), polygons
are sorted by (Time, Z); each consecutive pair becomes one connection, parent = earlier, child =
later, whatever the direction of propagation. A frame where the object has no polygon is simply
absent, so the chain bridges it. ``enabled=False`` (the worker's unread checkbox, now honoured)
gives no connections at all.
"""

from __future__ import annotations

from collections import defaultdict

from sam2web.types import Annotation, Connection

LINK_TAG = "SAM2_VIDEO"


def connect(
    annotations: list[Annotation], enabled: bool = True, tags: tuple[str, ...] = (LINK_TAG,)
) -> list[Connection]:
    """Chain each object's polygons in (Time, Z) order; [] when disabled."""
    if not enabled:
        return []
    groups: dict[tuple[int, int], list[Annotation]] = defaultdict(list)
    for ann in annotations:
        groups[(ann.obj_id, ann.loc.xy)].append(ann)
    out: list[Connection] = []
    for key in sorted(groups):
        chain = sorted(groups[key], key=lambda a: (a.loc.time, a.loc.z))
        for parent, child in zip(chain, chain[1:]):
            out.append(Connection(parent.id, child.id, key[0], list(tags)))
    return out


def connect_by_label(annotations: list[Annotation], enabled: bool = True) -> list[Connection]:
    """Links for label images converted by `convert`: the label is the identity, same rule."""
    return connect(annotations, enabled)
