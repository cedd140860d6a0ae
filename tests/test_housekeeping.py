"""A shared data folder stays within its limits, and `admin prune` removes only what nobody used."""

from __future__ import annotations

import time

import pytest

from sam2web import cli
from sam2web.cli.admin import stale_workspaces
from sam2web.errors import UserError
from sam2web.store import Store, get_store


def test_size_limits_refuse_an_upload_with_a_sentence(tmp_path, monkeypatch):
    s = Store(tmp_path)
    ws = s.create_workspace("w", owner="browser:a")
    s.save_upload(ws.id, "a.bin", b"x" * 600_000)
    monkeypatch.setenv("SAM2WEB_MAX_WORKSPACE_GB", "0.001")  # 1 MB
    with pytest.raises(UserError, match="This workspace holds 0.00 GB and one workspace may hold 0.001 GB"):
        s.save_upload(ws.id, "b.bin", b"x" * 600_000)
    other = s.create_workspace("other", owner="browser:b")
    s.save_upload(other.id, "b.bin", b"x" * 600_000)  # another workspace still has room
    monkeypatch.setenv("SAM2WEB_MAX_DATA_GB", "0.001")
    with pytest.raises(UserError, match=f"The data folder {tmp_path}.*SAM2WEB_MAX_DATA_GB"):
        s.save_upload(s.create_workspace("third").id, "c.bin", b"x" * 100)
    monkeypatch.setenv("SAM2WEB_MAX_DATA_GB", "-1")
    with pytest.raises(UserError, match="must be 0"):
        s.check_room(None)
    s.close()


def _aged(store, ws_id: str, days: float) -> None:
    past = time.time() - days * 86400
    with store._tx() as c:
        c.execute("UPDATE workspaces SET updated = ?, opened = ? WHERE id = ?", (past, past, ws_id))


def test_prune_is_a_dry_run_unless_told_yes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path))
    s = get_store(str(tmp_path))
    old = s.create_workspace("old one", owner="browser:a")
    s.save_upload(old.id, "movie.tif", b"x" * 1000)
    busy = s.create_workspace("old but running", owner="browser:a")
    run_id = s.create_run(busy.id, {})
    s.update_run(run_id, status="running")
    recent = s.create_workspace("recent", owner="browser:b")
    for ws in (old, busy, recent):
        _aged(s, ws.id, 100)
    s.touch_workspace(recent.id)  # someone opened it today
    assert [w.id for w in stale_workspaces(s, 30)] == [old.id]
    assert cli.main(["admin", "prune", "--older-than", "30"]) == 0
    out = capsys.readouterr().out
    assert "Would delete 1 workspace(s)" in out and "old one" in out and "--yes" in out
    assert s.get_workspace(old.id) is not None
    assert cli.main(["admin", "prune", "--older-than", "30", "--yes"]) == 0
    assert "Deleted 1 workspace(s)" in capsys.readouterr().out
    assert s.get_workspace(old.id) is None and not s.workspace_dir(old.id).exists()
    assert s.get_workspace(busy.id) is not None and s.get_workspace(recent.id) is not None
    assert cli.main(["admin", "prune", "--older-than", "-1"]) == 2
