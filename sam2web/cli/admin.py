"""Housekeeping of a shared data folder: list, and remove, workspaces nobody opened for a while.

`prune --older-than DAYS` lists the workspaces whose last change and last opening are both older
than DAYS days, with their owner and size; it deletes nothing unless --yes is given (then each one's
prompts, runs, masks and files go). A workspace with a run queued or running is always kept.
Run it on the server, e.g. daily from cron, with the same SAM2WEB_DATA as the app (or --data).

examples:
  python -m sam2web admin prune --older-than 90            # what would go
  python -m sam2web admin prune --older-than 90 --yes      # remove them

exit status: 0 done, 2 a problem with the input (one sentence on stderr).
"""

from __future__ import annotations

import argparse
import time

from sam2web.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    prune = sub.add_parser("prune", help="remove workspaces nobody opened for DAYS days (a dry run without --yes)")
    prune.add_argument("--older-than", type=float, required=True, metavar="DAYS", help="days since last use")
    prune.add_argument("--yes", action="store_true", help="really delete them (default: only list them)")
    prune.add_argument("--data", metavar="DIR", default=None, help="the data folder (default: $SAM2WEB_DATA)")


def stale_workspaces(store, older_than_days: float, now: float | None = None) -> list:
    """Workspaces last changed and last opened before the cut-off, with no queued or running run."""
    from sam2web.store import ACTIVE_STATUSES

    cutoff = (now if now is not None else time.time()) - older_than_days * 86400
    out = []
    for ws in store.list_workspaces(limit=1_000_000):
        if store.last_used(ws.id) >= cutoff:
            continue
        if any(r.status in ACTIVE_STATUSES for r in store.list_runs(ws.id)):
            continue
        out.append(ws)
    return out


def run(args: argparse.Namespace) -> int:
    from sam2web.store import get_store

    days = float(args.older_than)
    if not days >= 0:
        raise UserError("--older-than must be a number of days, 0 or more.")
    store = get_store(args.data)
    stale = stale_workspaces(store, days)
    total = 0
    for ws in stale:
        size = store.workspace_bytes(ws.id)
        total += size
        when = time.strftime("%Y-%m-%d", time.localtime(store.last_used(ws.id)))
        print(f"{ws.id}  last used {when}  {size / 1e6:9.1f} MB  {ws.owner or '(no owner)'}  {ws.name!r}")
        if args.yes:
            store.delete_workspace(ws.id)
    verb = "Deleted" if args.yes else "Would delete"
    print(
        f"{verb} {len(stale)} workspace(s) unused for more than {days:g} days ({total / 1e6:.1f} MB) in {store.root}."
        + ("" if args.yes or not stale else " Run again with --yes to delete them.")
    )
    return 0
