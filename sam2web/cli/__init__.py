"""`python -m sam2web COMMAND ...`: the same jobs as the app, without a browser.

Each command lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``.
A UserError becomes one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from sam2web.errors import UserError

COMMANDS = {
    "convert": ("sam2web.cli.convert", "turn per-frame label images into annotations and links"),
    "track": ("sam2web.cli.track", "track prompted objects through a stack with SAM2"),
    "evaluate": ("sam2web.cli.evaluate", "score exported tracks against ground-truth labels"),
    "sweep": ("sam2web.cli.sweep", "compare tracking settings against ground truth in one table"),
    "admin": ("sam2web.cli.admin", "housekeeping of a shared data folder (prune unused workspaces)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sam2web",
        description="sam2web: track cells through microscopy stacks with SAM2's video predictor.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name, help=help_text, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # SIGTERM ends a command like Ctrl-C does: its half-written output beside --out is removed
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        parser = build_parser()  # defaults read the settings: a bad SAM2WEB_* value is a sentence too
        args = parser.parse_args(argv)
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; nothing half-written was left in the output folder.", file=sys.stderr)
        return 130
