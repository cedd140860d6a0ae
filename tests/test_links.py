"""The link rule: per object, sorted by (Time, Z), earlier -> later, gaps bridged, checkbox honoured."""

from __future__ import annotations

from shapely.geometry import box

from sam2web.geometry import annotation_id
from sam2web.links import LINK_TAG, connect, connect_by_label
from sam2web.types import Annotation, Location


def ann(obj: int, t: int, z: int = 0, xy: int = 0) -> Annotation:
    loc = Location(xy, t, z)
    return Annotation(annotation_id(obj, loc), obj, loc, box(0, 0, 1, 1))


def test_parent_is_earlier_whatever_the_input_order():
    anns = [ann(0, 5), ann(0, 3), ann(0, 4)]  # a backward run lists later frames first
    links = connect(anns)
    assert [(c.parent_id, c.child_id) for c in links] == [("0-0-3-0", "0-0-4-0"), ("0-0-4-0", "0-0-5-0")]
    assert all(c.tags == [LINK_TAG] and c.obj_id == 0 for c in links)


def test_missing_frames_are_bridged_and_objects_kept_apart():
    links = connect([ann(1, 0), ann(1, 4), ann(2, 1), ann(2, 2), ann(1, 2)])
    pairs = {(c.parent_id, c.child_id) for c in links}
    assert pairs == {("1-0-0-0", "1-0-2-0"), ("1-0-2-0", "1-0-4-0"), ("2-0-1-0", "2-0-2-0")}


def test_across_z_and_positions_never_link_between_positions():
    links = connect([ann(0, 0, 2), ann(0, 0, 0), ann(0, 0, 1), ann(0, 0, 0, xy=1)])
    assert [(c.parent_id, c.child_id) for c in links] == [("0-0-0-0", "0-0-0-1"), ("0-0-0-1", "0-0-0-2")]


def test_disabled_and_single_polygons_give_no_links():
    assert connect([ann(0, 0), ann(0, 1)], enabled=False) == []
    assert connect([ann(0, 0), ann(1, 1)]) == []
    assert connect([]) == []


def test_connect_by_label_is_the_same_rule():
    anns = [ann(7, 2), ann(7, 1)]
    assert [(c.parent_id, c.child_id) for c in connect_by_label(anns)] == [("7-0-1-0", "7-0-2-0")]
