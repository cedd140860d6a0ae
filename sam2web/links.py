"""Parent -> child connections between consecutive polygons of each object, and across divisions.

Contract:
    connect(annotations, enabled=True, tags=(LINK_TAG,), parents=None) -> list[Connection]
    connect_by_label(annotations, enabled=True, parents=None) -> list[Connection]   (`convert`)
    parents_of(annotations) -> {obj_id: parent obj_id}   the lineage the annotations carry

The rule: per object (and per XY position, since a track never jumps between positions), polygons
are sorted by (Time, Z); each consecutive pair becomes one connection, parent = earlier, child =
later, whatever the direction of propagation. A frame where the object has no polygon is simply
absent, so the chain bridges it. ``enabled=False`` (the worker's unread checkbox, now honoured)
gives no connections at all.

Divisions: when object D has mother M (``parents[D] == M``, or ``Annotation.parent``), one more
connection goes from M's last polygon to D's first polygon at that XY, tagged ``DIVISION_TAG``
and carrying D's object id. It is an ordinary parent -> child connection, so the platform sees a
tree without knowing about divisions; the tag tells a reader which links are the branch points.
A division link is only made when the mother's last polygon comes before the daughter's first
(an impossible order means the lineage is wrong, and a wrong link is worse than none).
"""

from __future__ import annotations

from collections import defaultdict

from sam2web.types import Annotation, Connection

LINK_TAG = "SAM2_VIDEO"
DIVISION_TAG = "DIVISION"


def parents_of(annotations: list[Annotation]) -> dict[int, int]:
    """obj_id -> mother obj_id, as the annotations carry it (objects without a mother are absent)."""
    return {a.obj_id: int(a.parent) for a in annotations if a.parent is not None}


def connect(
    annotations: list[Annotation],
    enabled: bool = True,
    tags: tuple[str, ...] = (LINK_TAG,),
    parents: dict[int, int] | None = None,
) -> list[Connection]:
    """Chain each object's polygons in (Time, Z) order, then link mothers to daughters; [] when disabled."""
    if not enabled:
        return []
    groups: dict[tuple[int, int], list[Annotation]] = defaultdict(list)
    for ann in annotations:
        groups[(ann.obj_id, ann.loc.xy)].append(ann)
    out: list[Connection] = []
    chains: dict[tuple[int, int], list[Annotation]] = {}
    for key in sorted(groups):
        chain = sorted(groups[key], key=lambda a: (a.loc.time, a.loc.z))
        chains[key] = chain
        for parent, child in zip(chain, chain[1:]):
            out.append(Connection(parent.id, child.id, key[0], list(tags)))
    lineage = {**parents_of(annotations), **(parents or {})}
    for (obj, xy), chain in chains.items():
        mother = chains.get((lineage.get(obj, -1), xy)) if obj in lineage else None
        if not mother:
            continue
        last, first = mother[-1], chain[0]
        if (last.loc.time, last.loc.z) < (first.loc.time, first.loc.z):
            out.append(Connection(last.id, first.id, obj, [DIVISION_TAG]))
    return out


def connect_by_label(
    annotations: list[Annotation], enabled: bool = True, parents: dict[int, int] | None = None
) -> list[Connection]:
    """Links for label images converted by `convert`: the label is the identity, same rule."""
    return connect(annotations, enabled, parents=parents)
