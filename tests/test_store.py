"""The workspace store: reopen after a restart, interrupted runs keep frames, deletes, safe names."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from sam2web import store as store_mod
from sam2web.errors import UserError
from sam2web.store import Store, atomic_write_bytes, safe_join, sanitize_filename
from sam2web.types import CompactMask, Location


def _mask(h=20, w=30, r=5, c=7) -> CompactMask:
    m = np.zeros((h, w), bool)
    m[r : r + 4, c : c + 6] = True
    return CompactMask.from_mask(m)


def test_workspace_round_trip_survives_restart(tmp_path):
    s = Store(tmp_path)
    ws = s.create_workspace("My cells")
    s.update_workspace(
        ws.id,
        dataset={"kind": "sample"},
        display={"channels": [{"index": 0}]},
        prompts=[{"obj_id": 0, "box": [1, 2, 3, 4]}],
        view={"time": 3},
    )
    s.set_last_opened(ws.id)
    s.close()
    s2 = Store(tmp_path)  # a "restart": a new Store on the same folder
    again = s2.get_workspace(ws.id)
    assert again is not None and again.name == "My cells"
    assert again.dataset == {"kind": "sample"}
    assert again.prompts == [{"obj_id": 0, "box": [1, 2, 3, 4]}]
    assert again.view == {"time": 3}
    assert s2.last_opened() == ws.id
    assert [w.id for w in s2.list_workspaces()] == [ws.id]


def test_masks_per_frame_and_load_result(tmp_path):
    s = Store(tmp_path)
    ws = s.create_workspace()
    run = s.create_run(
        ws.id, {"model": "tiny", "channel": 0}, objects={"0": {"name": "a", "tags": ["cell"]}}, total_frames=3
    )
    s.add_masks(run, [(0, Location(0, 0, 0), _mask())], done_frames=1)
    s.add_masks(run, [(0, Location(0, 1, 0), _mask(r=6))], done_frames=2)
    res = s.load_result(run)
    assert set(res.masks) == {(0, Location(0, 0, 0)), (0, Location(0, 1, 0))}
    assert np.array_equal(res.masks[(0, Location(0, 1, 0))].to_mask(), _mask(r=6).to_mask())
    assert res.objects[0].name == "a" and res.objects[0].tags == ["cell"]
    assert res.partial  # not "done" yet
    assert s.get_run(run).done_frames == 2
    s.replace_masks(run, [Location(0, 1, 0)], [])
    assert s.count_masks(run) == 1


def test_orphaned_running_run_becomes_interrupted_and_keeps_frames(tmp_path, monkeypatch):
    s = Store(tmp_path)
    ws = s.create_workspace()
    run = s.create_run(ws.id, {})
    s.update_run(run, status="running")
    s.add_masks(run, [(0, Location(0, 0, 0), _mask())], done_frames=1)
    # The process that owned the run is gone: pretend a new process with another token starts.
    with sqlite3.connect(tmp_path / "sam2web.db") as c:
        c.execute("UPDATE runs SET owner = '999999999:deadbeef' WHERE id = ?", (run,))
    s.close()
    s2 = Store(tmp_path)
    assert s2.recover_interrupted() == [run]
    r = s2.get_run(run)
    assert r.status == "interrupted" and "finished frames are kept" in r.error
    assert s2.count_masks(run) == 1


def test_own_running_run_is_not_interrupted(tmp_path):
    s = Store(tmp_path)
    ws = s.create_workspace()
    run = s.create_run(ws.id, {})
    s.update_run(run, status="running")
    assert s.recover_interrupted() == []
    assert s.get_run(run).status == "running"


def test_delete_removes_files_runs_and_masks(tmp_path):
    s = Store(tmp_path)
    ws = s.create_workspace()
    path = s.save_upload(ws.id, "stack.tif", b"abc")
    run = s.create_run(ws.id, {})
    s.add_masks(run, [(0, Location(0, 0, 0), _mask())])
    s.set_last_opened(ws.id)
    s.delete_workspace(ws.id)
    assert not path.exists() and not (tmp_path / "workspaces" / ws.id).exists()
    assert s.get_workspace(ws.id) is None and s.get_run(run) is None and s.count_masks(run) == 0
    assert s.last_opened() is None


@pytest.mark.parametrize(
    "name, expected",
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("/abs/path/cells.tif", "cells.tif"),
        ("..", "file"),
        ("", "file"),
        ("my cells (1).ome.tif", "my_cells_1_.ome.tif"),
        ("-rf.tif", "rf.tif"),
    ],
)
def test_sanitize_filename(name, expected):
    assert sanitize_filename(name) == expected


def test_uploads_stay_inside_the_workspace(tmp_path):
    s = Store(tmp_path)
    ws = s.create_workspace()
    p1 = s.save_upload(ws.id, "../../evil.tif", b"1")
    p2 = s.save_upload(ws.id, "evil.tif", b"2")  # same clean name: a unique one, nothing overwritten
    files = s.files_dir(ws.id)
    assert p1.parent == files and p2.parent == files and p1 != p2
    assert p1.read_bytes() == b"1" and p2.read_bytes() == b"2"
    with pytest.raises(UserError):
        safe_join(tmp_path, "..", "outside")
    with pytest.raises(UserError):
        s.workspace_dir("../x")


def test_staging_replaces_files_only_on_commit(tmp_path):
    s = Store(tmp_path)
    ws = s.create_workspace()
    s.save_upload(ws.id, "old.tif", b"old")
    s.save_upload(ws.id, "new.tif", b"new", staging=True)
    assert [p.name for p in s.files_dir(ws.id).iterdir()] == ["old.tif"]
    s.commit_staging(ws.id)
    assert [p.name for p in s.files_dir(ws.id).iterdir()] == ["new.tif"]
    assert not s.staging_dir(ws.id).exists()


def test_failed_transaction_keeps_previous_state(tmp_path):
    s = Store(tmp_path)
    ws = s.create_workspace()
    s.update_workspace(ws.id, prompts=[{"a": 1}])
    with pytest.raises(RuntimeError):
        with s._tx() as c:
            c.execute("UPDATE workspaces SET prompts = '[]' WHERE id = ?", (ws.id,))
            raise RuntimeError("crash in the middle")
    assert s.get_workspace(ws.id).prompts == [{"a": 1}]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out" / "a.json"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path / "d"))
    assert store_mod.data_root() == (tmp_path / "d").resolve()
    s = store_mod.get_store()
    assert s.root == (tmp_path / "d").resolve() and (tmp_path / "d" / "sam2web.db").exists()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as hst


@settings(max_examples=300, deadline=None)
@given(hst.text(max_size=300))
def test_any_upload_name_lands_inside_the_files_folder(tmp_path_factory, name):
    clean = sanitize_filename(name)
    assert clean and "/" not in clean and "\\" not in clean and not clean.startswith(".")
    assert len(clean) <= 120
    root = tmp_path_factory.getbasetemp()
    assert root in safe_join(root, clean).parents


def test_unique_names_for_workspaces(tmp_path):
    s = Store(tmp_path)
    a = s.create_workspace(s.unique_name("Sample time-lapse"))
    b = s.create_workspace(s.unique_name("Sample time-lapse"))
    c = s.create_workspace(s.unique_name("Sample time-lapse"))
    assert [a.name, b.name, c.name] == ["Sample time-lapse", "Sample time-lapse 2", "Sample time-lapse 3"]
    assert s.unique_name("Sample time-lapse 2", exclude_id=b.id) == "Sample time-lapse 2"  # its own name is free
    assert s.unique_name("  ") == "Workspace"
    s.close()


# -- owners and concurrent prompt saves ----------------------------------------------------------
def _box(obj: int, x: float) -> dict:
    return {
        "obj_id": obj,
        "loc": {"XY": 0, "Time": 0, "Z": 0},
        "box": [x, x, x + 5, x + 5],
        "points": [],
        "mask": None,
        "tags": [],
        "name": "",
    }


def test_workspaces_are_listed_per_owner_with_unguessable_ids(tmp_path):
    import uuid

    s = Store(tmp_path)
    a = s.create_workspace("Mine", owner="browser:a")
    s.create_workspace("Theirs", owner="browser:b")
    assert uuid.UUID(a.id).version == 4
    assert [w.name for w in s.list_workspaces(owner="browser:a")] == ["Mine"]
    assert {w.name for w in s.list_workspaces()} == {"Mine", "Theirs"}
    # names are told apart within one owner's list only (they say nothing about anyone else's)
    assert s.unique_name("Theirs", owner="browser:a") == "Theirs"
    assert s.unique_name("Mine", owner="browser:a") == "Mine 2"
    s.close()


def test_owner_column_is_added_to_an_older_database(tmp_path):
    con = sqlite3.connect(tmp_path / "sam2web.db")
    con.execute(
        "CREATE TABLE workspaces (id TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL, "
        "updated REAL NOT NULL, dataset TEXT NOT NULL DEFAULT '{}', display TEXT NOT NULL DEFAULT '{}', "
        "prompts TEXT NOT NULL DEFAULT '[]', view TEXT NOT NULL DEFAULT '{}')"
    )
    con.execute("INSERT INTO workspaces (id, name, created, updated) VALUES ('abc123', 'Old', 0, 0)")
    con.commit()
    con.close()
    s = Store(tmp_path)
    assert s.get_workspace("abc123").owner == ""
    s.close()


def test_two_sessions_saving_from_the_same_base_keep_both_boxes(tmp_path):
    s = Store(tmp_path)
    ws = s.create_workspace("Shared", owner="browser:a")
    s.save_prompts(ws.id, [], [_box(0, 1)])
    base = s.get_workspace(ws.id).prompts  # both tabs loaded this
    s.save_prompts(ws.id, base, base + [_box(1, 10)])  # tab A adds object 1
    merged = s.save_prompts(ws.id, base, base + [_box(1, 20)])  # tab B, unaware, also picks id 1
    boxes = {(p["obj_id"], p["box"][0]) for p in merged}
    assert boxes == {(0, 1), (1, 10), (2, 20)}, boxes  # B's object moved to a free id
    # B deletes object 0 from its stale view: A's object 1 survives
    after = s.save_prompts(ws.id, base + [_box(1, 20)], [_box(1, 20)])
    assert {(p["obj_id"], p["box"][0]) for p in after} == {(1, 10), (2, 20)}
    s.close()
