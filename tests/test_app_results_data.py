"""The Results page's data path without Streamlit: masks read as deltas, polygons traced once per mask,
exports built only on demand."""

from __future__ import annotations

import numpy as np
import pytest

from sam2web import geometry
from sam2web.store import Store
from sam2web.types import CompactMask, Location, ObjectInfo
from sam2web.ui.results_data import RunView

OBJECTS = {0: ObjectInfo(0, "a"), 1: ObjectInfo(1, "b")}


def _mask(t: int, obj: int, size: int = 6) -> CompactMask:
    m = np.zeros((64, 64), bool)
    r, c = 4 + 3 * t, 4 + 20 * obj
    m[r : r + size, c : c + size] = True
    return CompactMask.from_mask(m)


def _frame(t: int, size: int = 6) -> list:
    return [(obj, Location(0, t, 0), _mask(t, obj, size)) for obj in (0, 1)]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path)
    ws = s.create_workspace("w")
    run_id = s.create_run(ws.id, {"across": "time"}, objects={"0": {"name": "a"}, "1": {"name": "b"}})
    yield s, run_id
    s.close()


def test_masks_since_returns_only_rows_written_after(store):
    s, run_id = store
    s.add_masks(run_id, _frame(0))
    first, last = s.load_masks_since(run_id, 0)
    assert len(first) == 2 and last > 0
    assert s.load_masks_since(run_id, last) == ({}, last)
    s.add_masks(run_id, _frame(1))
    new, last2 = s.load_masks_since(run_id, last)
    assert sorted(k[1].time for k in new) == [1, 1] and last2 > last
    # A mask rewritten in place (INSERT OR REPLACE) is new again.
    s.add_masks(run_id, [(0, Location(0, 0, 0), _mask(0, 0, size=9))])
    again, _ = s.load_masks_since(run_id, last2)
    assert list(again) == [(0, Location(0, 0, 0))]


def test_run_view_follows_adds_rewrites_and_deletes(store):
    s, run_id = store
    view = RunView(s, run_id)
    v0 = view.refresh()
    assert view.masks == {}
    s.add_masks(run_id, _frame(0))
    v1 = view.refresh()
    assert v1 != v0 and len(view.masks) == 2
    assert view.refresh() == v1  # nothing new: same version, nothing re-read
    # replace_masks deletes then inserts: SQLite may hand out the same row ids again, so the
    # view must notice through the epoch and reload (a bigger mask at the same place).
    s.replace_masks(run_id, [Location(0, 0, 0)], _frame(0, size=9))
    view.refresh()
    assert len(view.masks) == 2
    assert [int(m.crop().sum()) for m in view.masks.values()] == [81, 81]
    s.replace_masks(run_id, [Location(0, 0, 0)], _frame(0, size=9)[:1])  # a mask deleted
    view.refresh()
    assert set(view.masks) == {(0, Location(0, 0, 0))}


def test_annotations_trace_only_new_masks(store, monkeypatch):
    s, run_id = store
    view = RunView(s, run_id)
    s.add_masks(run_id, _frame(0) + _frame(1))
    view.refresh()
    traced: list[int] = []
    real = geometry.annotations_from_result

    def counting(result, *a, **k):
        traced.append(len(result.masks))
        return real(result, *a, **k)

    monkeypatch.setattr(geometry, "annotations_from_result", counting)
    anns, links = view.annotations(OBJECTS, 0, 0.0, 0.3, "largest", True)
    assert len(anns) == 4 and len(links) == 2 and traced == [4]
    assert view.annotations(OBJECTS, 0, 0.0, 0.3, "largest", True)[0] is anns  # same version: cached
    s.add_masks(run_id, _frame(2))
    view.refresh()
    anns2, links2 = view.annotations(OBJECTS, 0, 0.0, 0.3, "largest", True)
    assert traced == [4, 2]  # only the new frame's two masks
    assert [a.id for a in anns2] == ["0-0-0-0", "0-0-1-0", "0-0-2-0", "1-0-0-0", "1-0-1-0", "1-0-2-0"]
    assert len(links2) == 4
    assert view.annotations(OBJECTS, 0, 0.0, 0.3, "largest", False)[1] == []  # links off


def test_outline_cache_is_keyed_by_content():
    m = _mask(3, 1, size=7)
    geometry.raw_geometry(m)
    size = len(geometry._RAW_CACHE)
    copy = CompactMask(m.shape, m.bbox, bytes(bytearray(m.bits)))  # equal content, a new object
    assert geometry._cached(copy, ("largest", True, 0.0)) is not None
    geometry.raw_geometry(copy)
    assert len(geometry._RAW_CACHE) == size


def test_download_builders_make_the_export_files_on_demand(store):
    from sam2web import export
    from sam2web.ui import results_ui

    s, run_id = store
    s.add_masks(run_id, _frame(0) + _frame(1))
    view = RunView(s, run_id)
    view.refresh()
    anns, links = view.annotations(OBJECTS, 0, 0.0, 0.3, "largest", True)
    run = s.get_run(run_id)
    builders = results_ui.download_builders(run, anns, links)
    expected = export.export_bytes(anns, links, names=export.object_names(run.objects))
    assert set(builders) == set(expected)
    assert all(callable(b) for b in builders.values())
    assert {name: build() for name, build in builders.items()} == expected


def test_object_names_from_annotate_reach_every_export(store):
    import csv
    import io
    import json

    from sam2web import export
    from sam2web.ui import results_ui

    s, run_id = store
    s.add_masks(run_id, _frame(0))
    s.update_run(run_id, objects={"0": {"name": 'Mother, "left"', "tags": ["cell"]}, "1": {"name": "", "tags": []}})
    run = s.get_run(run_id)
    view = RunView(s, run_id)
    view.refresh()
    anns, links = view.annotations(results_ui._objects(run), 0, 0.0, 0.3, "largest", True)
    files = {name: build() for name, build in results_ui.download_builders(run, anns, links).items()}
    props = [f["properties"] for f in json.loads(files["annotations.geojson"])["features"]]
    assert props[0]["name"] == 'Mother, "left"'
    rows = list(csv.DictReader(io.StringIO(files["annotations.csv"].decode())))
    assert [r["name"] for r in rows] == ['Mother, "left"', ""]  # an unnamed object: an empty cell
    records = json.loads(files["nimbus.json"])["annotations"]
    assert records[0]["name"] == 'Mother, "left"'
    assert export.CSV_FIELDS.index("name") == export.CSV_FIELDS.index("tags") + 1
