"""The saved workspace: embedded SQLite plus files, all under ONE data folder.

Why: the user's work (dataset, display settings, prompts, runs and their masks) must survive a
refresh, a closed tab, a cancel or a server restart. Everything lives under the data folder
(``$SAM2WEB_DATA``, default ``~/.sam2web``): ``sam2web.db`` and ``workspaces/<id>/files/``.

Every write is one SQLite transaction (WAL journal), so a crash leaves the previous good state;
files are written to a temporary name and renamed. Masks of a run are inserted frame by frame
as the tracker produces them, so an interrupted run keeps what it finished.

No streamlit here: the app, the job runner and tests all use the same Store.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sam2web.errors import UserError
from sam2web.types import CompactMask, Location, ObjectInfo, TrackResult


class DataFolderError(UserError):
    """The data folder or its database cannot be used (read-only, damaged, lost): the app says so and stops."""


class DiskFullError(DataFolderError):
    """The disk holding the data folder is full (SQLite's SQLITE_FULL, or ENOSPC / EDQUOT on a file)."""


def disk_full_sentence(root: Path | str) -> str:
    return f"The disk holding the data folder {root} is full; free some space there, then try again."


def is_disk_full(err: BaseException) -> bool:
    import errno

    if isinstance(err, DiskFullError):
        return True
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(err, sqlite3.OperationalError) and "full" in str(err).lower()


# Statuses a run goes through; "queued"/"running" left behind by a dead process become "interrupted".
RUN_STATUSES = ("queued", "running", "done", "cancelled", "interrupted", "failed")
ACTIVE_STATUSES = ("queued", "running")

# A process token: runs record which process owns them, so a new process can tell orphans apart.
PROCESS_TOKEN = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    dataset TEXT NOT NULL DEFAULT '{}',
    display TEXT NOT NULL DEFAULT '{}',
    prompts TEXT NOT NULL DEFAULT '[]',
    view TEXT NOT NULL DEFAULT '{}',
    owner TEXT NOT NULL DEFAULT '',
    opened REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ws_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    objects TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'queued',
    done_frames INTEGER NOT NULL DEFAULT 0,
    total_frames INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    random_weights INTEGER NOT NULL DEFAULT 0,
    info TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_ws ON runs(ws_id);
CREATE TABLE IF NOT EXISTS masks (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    obj_id INTEGER NOT NULL,
    xy INTEGER NOT NULL, t INTEGER NOT NULL, z INTEGER NOT NULL,
    height INTEGER NOT NULL, width INTEGER NOT NULL,
    r0 INTEGER NOT NULL, c0 INTEGER NOT NULL, r1 INTEGER NOT NULL, c1 INTEGER NOT NULL,
    bits BLOB NOT NULL,
    PRIMARY KEY (run_id, obj_id, xy, t, z)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The one folder holding everything sam2web saves: ``root``, else $SAM2WEB_DATA, else ~/.sam2web."""
    from sam2web.config import settings

    chosen = root or settings().data_dir
    return Path(chosen).expanduser().resolve()


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_filename(name: str, default: str = "file") -> str:
    """A plain file name from whatever a browser sent: no folders, no '..', no odd characters.

    Why: upload names come from the user; they must never steer a write outside the workspace.
    """
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = _SAFE.sub("_", base).lstrip("-._ ").rstrip("._ ")  # no hidden files, no option-like names
    if not base:
        base = default
    if len(base) > 120:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 120 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 10 else base[:120]
    return base


def safe_join(root: Path, *parts: str) -> Path:
    """``root/parts`` resolved, refusing anything that would land outside ``root``."""
    root = Path(root).resolve()
    target = root.joinpath(*parts).resolve()
    if target != root and root not in target.parents:
        raise UserError(f"The path {'/'.join(parts)!r} points outside the data folder; use a plain file name.")
    return target


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


@dataclass
class Workspace:
    """One user's project: a dataset reference plus everything made on it."""

    id: str
    name: str
    created: float
    updated: float
    dataset: dict = field(
        default_factory=dict
    )  # {"kind": "sample"} | {"kind": "files", "files": [...], "pages_as": ...}
    display: dict = field(default_factory=dict)  # DisplaySettings.to_dict()
    prompts: list = field(default_factory=list)  # [prompt_to_dict(p), ...] plus UI fields (colour)
    view: dict = field(default_factory=dict)  # current location, page choices
    owner: str = ""  # who may list/open/delete it: "user:<OIDC sub>" or "browser:<token>"; "" = nobody yet


@dataclass
class Run:
    """One tracking run's record (its masks are in the masks table)."""

    id: int
    ws_id: str
    created: float
    updated: float
    settings: dict
    objects: dict
    status: str
    done_frames: int
    total_frames: int
    error: str
    owner: str
    random_weights: bool
    info: dict

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE_STATUSES


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class Store:
    """Workspaces, runs and masks in SQLite under the data folder; safe to share between threads.

    One connection guarded by a lock (``check_same_thread=False``): writes from the job runner's
    threads and reads from page reruns are serialised, and each write is one transaction.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = data_root(root)
        self.db_path = self.root / "sam2web.db"
        self._lock = threading.RLock()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "workspaces").mkdir(exist_ok=True)
        except OSError as err:
            raise DataFolderError(
                f"The data folder {self.root} cannot be created or written ({err.strerror}); give the server's "
                "user write access to it (or set SAM2WEB_DATA to another folder), then reload the page."
            ) from None
        self._refuse_lost_database()
        try:
            self._conn = sqlite3.connect(self.db_path, check_same_thread=False, timeout=30.0, isolation_level=None)
        except sqlite3.Error as err:
            raise self._database_error(err) from None
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            with self._lock:
                self._conn.executescript(_SCHEMA)
                columns = {r["name"] for r in self._conn.execute("PRAGMA table_info(workspaces)")}
                if "owner" not in columns:  # a data folder made before workspaces had owners
                    self._conn.execute("ALTER TABLE workspaces ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
                if "opened" not in columns:
                    self._conn.execute("ALTER TABLE workspaces ADD COLUMN opened REAL NOT NULL DEFAULT 0")
        except sqlite3.Error as err:
            self._conn.close()
            raise self._database_error(err) from None

    def _refuse_lost_database(self) -> None:
        """Never create a new database next to workspace folders of an old one that is gone or empty.

        Why: SQLite turns a missing or zero-byte file into a fresh, empty database without a word;
        every workspace folder beside it would then belong to nobody, and the next delete or prune
        would not even see them.
        """
        missing = not self.db_path.exists() or self.db_path.stat().st_size == 0
        if not missing:
            return
        try:
            folders = [p for p in (self.root / "workspaces").iterdir() if p.is_dir()]
        except OSError:
            folders = []
        if folders:
            state = "is missing" if not self.db_path.exists() else "is empty"
            raise DataFolderError(
                f"The database {self.db_path} {state}, but the data folder holds {len(folders)} workspace "
                f"folder(s): restore sam2web.db from a backup, or move {self.root / 'workspaces'} away to start "
                "afresh, then reload the page."
            )

    def _database_error(self, err: sqlite3.Error) -> DataFolderError:
        text = str(err).lower()
        if "full" in text:
            return DiskFullError(disk_full_sentence(self.root))
        if "readonly" in text or "read-only" in text or "unable to open" in text or isinstance(err, PermissionError):
            return DataFolderError(
                f"The database {self.db_path} cannot be written (it or the data folder is read-only); give the "
                "server's user write access to the data folder, then reload the page."
            )
        return DataFolderError(
            f"The database {self.db_path} is damaged ({str(err)[:80]}); stop the server, restore sam2web.db from "
            "a backup (or move it away to start with an empty one), then reload the page."
        )

    # -- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it lands, or none of it (a crash keeps the previous state)."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                else:
                    self._conn.execute("COMMIT")
            except sqlite3.IntegrityError:
                raise  # our own bug, not the data folder's
            except sqlite3.DatabaseError as err:  # read-only, damaged or full: a sentence naming the folder
                if self._conn.in_transaction:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if "locked" in str(err).lower():
                    raise
                raise self._database_error(err) from None

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, tuple(args)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- workspaces -----------------------------------------------------------------------------
    def create_workspace(self, name: str = "", owner: str = "") -> Workspace:
        """A new workspace of ``owner``; its id is a whole uuid4 (122 random bits), so it cannot be guessed."""
        now = time.time()
        ws_id = uuid.uuid4().hex
        name = (name or "").strip() or self.unique_name(
            time.strftime("Workspace %Y-%m-%d %H:%M", time.localtime(now)), owner=owner
        )
        with self._tx() as c:
            c.execute(
                "INSERT INTO workspaces (id, name, created, updated, owner) VALUES (?,?,?,?,?)",
                (ws_id, name[:200], now, now, owner),
            )
        self.files_dir(ws_id).mkdir(parents=True, exist_ok=True)
        return self.get_workspace(ws_id)  # type: ignore[return-value]

    def get_workspace(self, ws_id: str | None) -> Workspace | None:
        if not ws_id:
            return None
        rows = self._query("SELECT * FROM workspaces WHERE id = ?", (ws_id,))
        if not rows:
            return None
        r = rows[0]
        return Workspace(
            r["id"],
            r["name"],
            r["created"],
            r["updated"],
            json.loads(r["dataset"]),
            json.loads(r["display"]),
            json.loads(r["prompts"]),
            json.loads(r["view"]),
            r["owner"],
        )

    def list_workspaces(self, limit: int = 50, owner: str | None = None) -> list[Workspace]:
        """The newest workspaces: of ``owner`` only, or of everyone when ``owner`` is None (admins, the CLI)."""
        if owner is None:
            rows = self._query("SELECT id FROM workspaces ORDER BY updated DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT id FROM workspaces WHERE owner = ? ORDER BY updated DESC LIMIT ?", (owner, limit)
            )
        return [w for w in (self.get_workspace(r["id"]) for r in rows) if w is not None]

    def touch_workspace(self, ws_id: str) -> None:
        """Record that someone opened the workspace (``admin prune`` removes those nobody opened for long)."""
        with self._tx() as c:
            c.execute("UPDATE workspaces SET opened = ? WHERE id = ?", (time.time(), ws_id))

    def last_used(self, ws_id: str) -> float:
        rows = self._query("SELECT MAX(updated, opened) AS t FROM workspaces WHERE id = ?", (ws_id,))
        return float(rows[0]["t"]) if rows else 0.0

    # -- sizes ----------------------------------------------------------------------------------
    def workspace_bytes(self, ws_id: str) -> int:
        """A workspace's files on disk plus its runs' masks in the database."""
        rows = self._query(
            "SELECT COALESCE(SUM(LENGTH(bits)) + COUNT(*) * 48, 0) AS n FROM masks "
            "WHERE run_id IN (SELECT id FROM runs WHERE ws_id = ?)",
            (ws_id,),
        )
        return _folder_bytes(self.workspace_dir(ws_id)) + int(rows[0]["n"])

    def data_bytes(self) -> int:
        return _folder_bytes(self.root)

    def check_room(self, ws_id: str | None, adding: int = 0) -> None:
        """Refuse with a sentence when the data folder, or this workspace, is at its size limit.

        Checked before anything new is written (an upload, a run, the sample); a run under way may
        finish past the limit, so nobody loses frames that were already being tracked.
        """
        from sam2web.config import settings

        cfg = settings()
        gb = 1e9
        if cfg.max_data_gb:
            used = self.data_bytes()
            if used + adding > cfg.max_data_gb * gb:
                raise UserError(
                    f"The data folder {self.root} holds {used / gb:.2f} GB and its limit is {cfg.max_data_gb:g} GB "
                    "(SAM2WEB_MAX_DATA_GB); delete workspaces you no longer need (or ask the server's admin to run "
                    "`sam2web admin prune`), then try again."
                )
        if cfg.max_workspace_gb and ws_id:
            used = self.workspace_bytes(ws_id)
            if used + adding > cfg.max_workspace_gb * gb:
                raise UserError(
                    f"This workspace holds {used / gb:.2f} GB and one workspace may hold {cfg.max_workspace_gb:g} GB "
                    "(SAM2WEB_MAX_WORKSPACE_GB); delete runs you no longer need or start a New workspace."
                )

    def set_owner(self, ws_id: str, owner: str) -> None:
        with self._tx() as c:
            c.execute("UPDATE workspaces SET owner = ? WHERE id = ?", (owner, ws_id))

    def update_workspace(self, ws_id: str, **fields: Any) -> None:
        """Save some of name/dataset/display/prompts/view in one transaction."""
        allowed = {"name", "dataset", "display", "prompts", "view"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown workspace fields {sorted(bad)}")
        sets, args = [], []
        for key, value in fields.items():
            sets.append(f"{key} = ?")
            args.append(value if key == "name" else json.dumps(value))
        sets.append("updated = ?")
        args.append(time.time())
        with self._tx() as c:
            c.execute(f"UPDATE workspaces SET {', '.join(sets)} WHERE id = ?", (*args, ws_id))

    def save_prompts(self, ws_id: str, base: list, mine: list) -> list:
        """Save one session's prompts without losing another session's: a three-way merge, one transaction.

        Why: two tabs (or two people) on one workspace each hold the list they loaded (``base``) and
        save the list they made of it (``mine``). Writing ``mine`` over the stored list would drop a
        box the other tab saved meanwhile. Instead the changes ``mine`` makes to ``base`` (prompts
        added, prompts removed; an edit is both) are applied to the list stored now. A new object of
        this session whose id the other session took meanwhile gets the next free id, so two
        people's new boxes never merge into one object. Returns the stored list.
        """
        with self._tx() as c:
            row = c.execute("SELECT prompts FROM workspaces WHERE id = ?", (ws_id,)).fetchone()
            if row is None:
                return list(mine)
            merged = merge_prompts(base, mine, json.loads(row["prompts"]))
            c.execute(
                "UPDATE workspaces SET prompts = ?, updated = ? WHERE id = ?", (json.dumps(merged), time.time(), ws_id)
            )
        return merged

    def rename_workspace(self, ws_id: str, name: str) -> None:
        name = (name or "").strip()
        if not name:
            raise UserError("A workspace name cannot be empty; type a name.")
        self.update_workspace(ws_id, name=name[:200])

    def unique_name(self, base: str, exclude_id: str | None = None, owner: str | None = None) -> str:
        """``base``, or ``base 2``, ``base 3``… : the first name no other workspace (of ``owner``) has.

        Why: someone who opens the sample (or files with the same name) twice must be able to
        tell the workspaces apart in the sidebar; names are compared within one owner's list, so
        they say nothing about anybody else's workspaces.
        """
        base = (base or "").strip()[:190] or "Workspace"
        rows = self._query("SELECT id, name, owner FROM workspaces")
        if owner is None and exclude_id is not None:  # renaming a workspace: compare within its owner's
            owner = next((r["owner"] for r in rows if r["id"] == exclude_id), None)
        taken = {r["name"] for r in rows if r["id"] != exclude_id and (owner is None or r["owner"] == owner)}
        if base not in taken:
            return base
        n = 2
        while f"{base} {n}" in taken:
            n += 1
        return f"{base} {n}"

    def delete_workspace(self, ws_id: str) -> None:
        """Remove the workspace, its runs, masks and its files folder."""
        with self._tx() as c:
            c.execute("DELETE FROM masks WHERE run_id IN (SELECT id FROM runs WHERE ws_id = ?)", (ws_id,))
            c.execute("DELETE FROM runs WHERE ws_id = ?", (ws_id,))
            c.execute("DELETE FROM workspaces WHERE id = ?", (ws_id,))
            c.execute("DELETE FROM meta WHERE key = 'last_opened' AND value = ?", (ws_id,))
        folder = self.workspace_dir(ws_id)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)

    def workspace_dir(self, ws_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{1,64}", ws_id or ""):
            raise UserError("That workspace id is not valid; pick a workspace from the sidebar.")
        return safe_join(self.root, "workspaces", ws_id)

    def files_dir(self, ws_id: str) -> Path:
        return self.workspace_dir(ws_id) / "files"

    def staging_dir(self, ws_id: str) -> Path:
        return self.workspace_dir(ws_id) / "staging"

    def save_upload(self, ws_id: str, name: str, data: bytes, staging: bool = False) -> Path:
        """Copy an uploaded file into the workspace under a sanitised, unique name; returns its path.

        With ``staging`` the file goes to a side folder first, so a dataset that turns out to be
        unreadable never replaces the good one (see ``commit_staging``).
        """
        if "\x00" in str(name):
            raise UserError(
                "A file name holds a NUL character, which no file may have; rename the file and upload it again."
            )
        self.check_room(ws_id, len(data))
        folder = self.staging_dir(ws_id) if staging else self.files_dir(ws_id)
        folder.mkdir(parents=True, exist_ok=True)
        clean = sanitize_filename(name)
        target = safe_join(folder, clean)
        stem, dot, ext = clean.rpartition(".")
        n = 1
        while target.exists():
            target = safe_join(folder, f"{stem}_{n}.{ext}" if dot else f"{clean}_{n}")
            n += 1
        return atomic_write_bytes(target, data)

    def discard_staging(self, ws_id: str) -> None:
        shutil.rmtree(self.staging_dir(ws_id), ignore_errors=True)

    def commit_staging(self, ws_id: str) -> None:
        """Make the staged uploads the workspace's files (rename, then drop the old ones)."""
        staging, files = self.staging_dir(ws_id), self.files_dir(ws_id)
        old = self.workspace_dir(ws_id) / f"old-{uuid.uuid4().hex[:8]}"
        if files.exists():
            os.replace(files, old)
        os.replace(staging, files)
        shutil.rmtree(old, ignore_errors=True)

    def clear_files(self, ws_id: str) -> None:
        """Forget the uploaded files (a new dataset replaces the old one)."""
        folder = self.files_dir(ws_id)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)

    def dataset_paths(self, ws: Workspace) -> list[Path]:
        """The dataset's files, each checked to lie inside this workspace's files folder."""
        if (ws.dataset or {}).get("kind") == "server":  # a file opened in place (sam2web.server_files)
            from sam2web.server_files import dataset_paths

            return dataset_paths(ws.dataset)
        folder = self.files_dir(ws.id)
        return [safe_join(folder, sanitize_filename(n)) for n in ws.dataset.get("files", [])]

    # -- last opened ----------------------------------------------------------------------------
    def set_last_opened(self, ws_id: str) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('last_opened', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (ws_id,),
            )

    def last_opened(self) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = 'last_opened'")
        ws_id = rows[0]["value"] if rows else None
        return ws_id if ws_id and self.get_workspace(ws_id) else None

    # -- a user's preferences (across workspaces) ------------------------------------------------
    def preferences(self, user: str) -> dict:
        """What ``user`` chose last for choices that belong to the person, not the workspace (model, image size)."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (f"prefs:{user}",))
        try:
            value = json.loads(rows[0]["value"]) if rows else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def set_preferences(self, user: str, **values: Any) -> None:
        merged = {**self.preferences(user), **values}
        with self._tx() as c:
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (f"prefs:{user}", json.dumps(merged)),
            )

    # -- runs -----------------------------------------------------------------------------------
    def create_run(
        self,
        ws_id: str,
        settings: dict,
        objects: dict | None = None,
        total_frames: int = 0,
        random_weights: bool = False,
        info: dict | None = None,
    ) -> int:
        now = time.time()
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO runs (ws_id, created, updated, settings, objects, status, total_frames,"
                " owner, random_weights, info) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    ws_id,
                    now,
                    now,
                    json.dumps(settings),
                    json.dumps(objects or {}),
                    "queued",
                    int(total_frames),
                    PROCESS_TOKEN,
                    int(bool(random_weights)),
                    json.dumps(info or {}),
                ),
            )
            return int(cur.lastrowid)

    def get_run(self, run_id: int) -> Run | None:
        rows = self._query("SELECT * FROM runs WHERE id = ?", (int(run_id),))
        return self._run(rows[0]) if rows else None

    @staticmethod
    def _run(r: sqlite3.Row) -> Run:
        return Run(
            r["id"],
            r["ws_id"],
            r["created"],
            r["updated"],
            json.loads(r["settings"]),
            json.loads(r["objects"]),
            r["status"],
            r["done_frames"],
            r["total_frames"],
            r["error"],
            r["owner"],
            bool(r["random_weights"]),
            json.loads(r["info"]),
        )

    def list_runs(self, ws_id: str) -> list[Run]:
        rows = self._query("SELECT * FROM runs WHERE ws_id = ? ORDER BY id DESC", (ws_id,))
        return [self._run(r) for r in rows]

    def update_run(
        self,
        run_id: int,
        *,
        status: str | None = None,
        done_frames: int | None = None,
        total_frames: int | None = None,
        error: str | None = None,
        objects: dict | None = None,
        info: dict | None = None,
    ) -> None:
        if status is not None and status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        sets, args = ["updated = ?"], [time.time()]
        for key, value in (
            ("status", status),
            ("done_frames", done_frames),
            ("total_frames", total_frames),
            ("error", error),
        ):
            if value is not None:
                sets.append(f"{key} = ?")
                args.append(value)
        for key, value in (("objects", objects), ("info", info)):
            if value is not None:
                sets.append(f"{key} = ?")
                args.append(json.dumps(value))
        with self._tx() as c:
            c.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*args, int(run_id)))

    def update_run_info(self, run_id: int, change: Callable[[dict], dict]) -> dict:
        """Apply ``change`` to a run's info atomically, also across processes (parts of one run in
        several workers record their finished sequences at once); returns the new info."""
        with self._tx() as c:
            row = c.execute("SELECT info FROM runs WHERE id = ?", (int(run_id),)).fetchone()
            if row is None:
                return {}
            info = change(json.loads(row["info"]))
            c.execute(
                "UPDATE runs SET info = ?, updated = ? WHERE id = ?", (json.dumps(info), time.time(), int(run_id))
            )
        return info

    def merge_objects(self, run_id: int, objects: dict) -> dict:
        """Add or update a run's objects (``objects_to_dict`` JSON) atomically, also across processes.

        Why: the sequences of one run are tracked by several workers at once, each adding the
        daughters it found; a read-change-write outside one transaction would drop another's.
        """
        with self._tx() as c:
            row = c.execute("SELECT objects FROM runs WHERE id = ?", (int(run_id),)).fetchone()
            if row is None:
                return {}
            merged = {**json.loads(row["objects"]), **objects}
            c.execute(
                "UPDATE runs SET objects = ?, updated = ? WHERE id = ?", (json.dumps(merged), time.time(), int(run_id))
            )
        return merged

    def delete_run(self, run_id: int) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM masks WHERE run_id = ?", (int(run_id),))
            c.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))

    def recover_interrupted(self) -> list[int]:
        """Mark runs left queued/running by a process that is gone as "interrupted" (frames kept).

        Why: after a server restart nobody will ever finish those runs; the user must see them as
        interrupted and be offered Resume / Re-run, not a progress bar stuck forever.
        """
        rows = self._query("SELECT id, owner FROM runs WHERE status IN ('queued', 'running')")
        orphans = []
        for r in rows:
            owner = r["owner"]
            if owner == PROCESS_TOKEN:
                continue
            pid_text = owner.split(":", 1)[0]
            pid = int(pid_text) if pid_text.isdigit() else -1
            if pid == os.getpid() or pid <= 0 or not _process_alive(pid):
                orphans.append(int(r["id"]))
        if orphans:
            with self._tx() as c:
                c.executemany(
                    "UPDATE runs SET status = 'interrupted', updated = ?, error = ? WHERE id = ?",
                    [
                        (time.time(), "The server stopped during this run; its finished frames are kept.", i)
                        for i in orphans
                    ],
                )
        return orphans

    # -- masks ----------------------------------------------------------------------------------
    def add_masks(
        self, run_id: int, items: Iterable[tuple[int, Location, CompactMask]], done_frames: int | None = None
    ) -> None:
        """Insert (or replace) masks of finished frames, and the progress, in one transaction."""
        rows = self._mask_rows(run_id, items)
        with self._tx() as c:
            c.executemany("INSERT OR REPLACE INTO masks VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            if done_frames is not None:
                c.execute(
                    "UPDATE runs SET done_frames = ?, updated = ? WHERE id = ?",
                    (int(done_frames), time.time(), int(run_id)),
                )

    def replace_masks(
        self, run_id: int, locs: Iterable[Location], items: Iterable[tuple[int, Location, CompactMask]]
    ) -> None:
        """Make the run's masks at ``locs`` exactly ``items`` (one transaction).

        Deleting rows lets SQLite reuse their row ids, which ``load_masks_since`` cannot see, so the
        run's mask epoch (``mask_epoch``) is bumped: a reader holding masks reloads them all.
        """
        locs = [tuple(int(v) for v in loc) for loc in locs]
        rows = self._mask_rows(run_id, items)
        with self._tx() as c:
            c.executemany(
                "DELETE FROM masks WHERE run_id = ? AND xy = ? AND t = ? AND z = ?",
                [(int(run_id), *loc) for loc in locs],
            )
            c.executemany("INSERT OR REPLACE INTO masks VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, '1') "
                "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                (f"mask_epoch:{int(run_id)}",),
            )

    def mask_epoch(self, run_id: int) -> int:
        """How many times masks of this run were deleted or rewritten in place (0: only ever added)."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (f"mask_epoch:{int(run_id)}",))
        return int(rows[0]["value"]) if rows else 0

    @staticmethod
    def _mask_rows(run_id: int, items: Iterable[tuple[int, Location, CompactMask]]) -> list[tuple]:
        rows = []
        for obj_id, loc, cm in items:
            h, w = cm.shape
            r0, c0, r1, c1 = cm.bbox
            rows.append(
                (
                    int(run_id),
                    int(obj_id),
                    int(loc[0]),
                    int(loc[1]),
                    int(loc[2]),
                    int(h),
                    int(w),
                    int(r0),
                    int(c0),
                    int(r1),
                    int(c1),
                    sqlite3.Binary(cm.bits),
                )
            )
        return rows

    def count_masks(self, run_id: int) -> int:
        return int(self._query("SELECT COUNT(*) AS n FROM masks WHERE run_id = ?", (int(run_id),))[0]["n"])

    def load_masks(self, run_id: int) -> dict[tuple[int, Location], CompactMask]:
        rows = self._query("SELECT * FROM masks WHERE run_id = ?", (int(run_id),))
        return {
            (r["obj_id"], Location(r["xy"], r["t"], r["z"])): CompactMask(
                (r["height"], r["width"]), (r["r0"], r["c0"], r["r1"], r["c1"]), bytes(r["bits"])
            )
            for r in rows
        }

    def load_masks_since(
        self, run_id: int, after_rowid: int = 0
    ) -> tuple[dict[tuple[int, Location], CompactMask], int]:
        """The masks written after row ``after_rowid`` and the newest row id (a live page's one-tick delta).

        Why: a page refreshing every 0.7 s during a run needs only the frames finished since its last
        look, not every mask again. Every insert (``INSERT OR REPLACE`` too) gets a row id above all
        existing ones, so rows newer than the last seen id are exactly the new or rewritten masks;
        deletions are not seen here (the caller compares counts with ``count_masks``).
        """
        rows = self._query(
            "SELECT rowid AS rid, * FROM masks WHERE run_id = ? AND rowid > ? ORDER BY rowid",
            (int(run_id), int(after_rowid)),
        )
        masks = {
            (r["obj_id"], Location(r["xy"], r["t"], r["z"])): CompactMask(
                (r["height"], r["width"]), (r["r0"], r["c0"], r["r1"], r["c1"]), bytes(r["bits"])
            )
            for r in rows
        }
        return masks, int(rows[-1]["rid"]) if rows else int(after_rowid)

    def load_result(self, run_id: int) -> TrackResult:
        """The run as a TrackResult (masks + objects), ready for geometry; partial unless done."""
        run = self.get_run(run_id)
        if run is None:
            raise UserError("That run no longer exists; pick another run or track again.")
        objects = objects_from_dict(run.objects)
        masks = self.load_masks(run_id)
        for obj_id in {k[0] for k in masks} - set(objects):  # e.g. daughters a run added
            objects[obj_id] = ObjectInfo(obj_id)
        return TrackResult(
            masks=masks,
            objects=objects,
            channel=int(run.settings.get("channel", 0) or 0),
            partial=run.status != "done",
            random_weights=run.random_weights,
            settings=dict(run.settings),
        )

    def copy_masks(self, src_run: int, dst_run: int) -> int:
        """Copy finished masks from one run into another (Resume keeps what was already done)."""
        with self._tx() as c:
            cur = c.execute(
                "INSERT OR REPLACE INTO masks SELECT ?, obj_id, xy, t, z, height, width, r0, c0, r1, c1, bits "
                "FROM masks WHERE run_id = ?",
                (int(dst_run), int(src_run)),
            )
            return cur.rowcount


def _folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


def _key(prompt: dict) -> str:
    return json.dumps(prompt, sort_keys=True)


def merge_prompts(base: list[dict], mine: list[dict], current: list[dict]) -> list[dict]:
    """``current`` with the changes ``mine`` made to ``base`` (see ``Store.save_prompts``); order kept."""
    base_keys = {_key(p) for p in base}
    mine_keys = {_key(p) for p in mine}
    removed = base_keys - mine_keys
    added = [p for p in mine if _key(p) not in base_keys]

    def spot(p: dict) -> str:  # an edited prompt (renamed, re-tagged, moved box) keeps its place
        return json.dumps([p.get("obj_id"), p.get("loc")], sort_keys=True)

    edits = {}
    for p in added:
        edits.setdefault(spot(p), p)
    out = []
    for p in current:
        if _key(p) not in removed:
            out.append(p)
        elif spot(p) in edits:
            out.append(edits.pop(spot(p)))
    placed = {id(p) for p in out}
    added = [p for p in added if id(p) not in placed]
    have = {_key(p) for p in out}
    base_ids = {int(p.get("obj_id", -1)) for p in base}
    theirs = {int(p.get("obj_id", -1)) for p in out} - base_ids  # objects the other session made
    taken = {int(p.get("obj_id", -1)) for p in out} | {int(p.get("obj_id", -1)) for p in mine}
    renumber: dict[int, int] = {}
    for p in added:
        obj = int(p.get("obj_id", -1))
        if obj in theirs and obj not in base_ids:  # both sessions chose this new id: mine moves
            if obj not in renumber:
                renumber[obj] = max(taken | {-1}) + 1
                taken.add(renumber[obj])
            p = {**p, "obj_id": renumber[obj]}
        if p.get("parent") is not None and int(p["parent"]) in renumber:
            p = {**p, "parent": renumber[int(p["parent"])]}
        if _key(p) not in have:
            out.append(p)
            have.add(_key(p))
    return out


def objects_to_dict(objects: dict[int, ObjectInfo]) -> dict:
    """A run's objects as the JSON the runs table keeps (lineage included, so it survives a restart)."""
    out = {}
    for obj_id, info in objects.items():
        entry: dict = {"name": info.name, "tags": list(info.tags)}
        if info.parent is not None:
            entry["parent"] = int(info.parent)
        out[str(int(obj_id))] = entry
    return out


def objects_from_dict(data: dict) -> dict[int, ObjectInfo]:
    """Inverse of ``objects_to_dict`` (older records have no parent: founders)."""
    return {
        int(k): ObjectInfo(
            int(k),
            v.get("name", ""),
            list(v.get("tags", [])),
            parent=None if v.get("parent") is None else int(v["parent"]),
        )
        for k, v in data.items()
    }


_STORES: dict[Path, Store] = {}
_STORES_LOCK = threading.Lock()


def get_store(root: str | os.PathLike | None = None) -> Store:
    """The process-wide Store for a data folder (one connection per folder per process).

    On first use in a process, runs orphaned by a previous process are marked interrupted.
    """
    path = data_root(root)
    with _STORES_LOCK:
        store = _STORES.get(path)
        if store is None:
            store = Store(path)
            store.recover_interrupted()
            _STORES[path] = store
        return store


def forget_store(root: str | os.PathLike) -> None:
    """Close and drop the process's Store of a data folder (a command's temporary folder, before removing it)."""
    path = data_root(root)
    with _STORES_LOCK:
        store = _STORES.pop(path, None)
    if store is not None:
        store.close()
