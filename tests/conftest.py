"""Shared test plumbing: stacks a test opened are closed when it ends; the CPU lever check is off.

Why: the suite runs with ResourceWarnings as errors (a file left open is a bug). Many tests open a
stack only to assert on its sizes; closing it here keeps those tests short without hiding a leak
in sam2web itself (the app and the CLI close what they open; their tests check that).
"""

from __future__ import annotations

import os

import pytest

# The CPU lever check (sam2web.tracking.accel) measures the model once per machine and model
# (seconds to a minute on a small CPU); only tests/test_accel.py turns it on, so that no other
# test pays for it or depends on what it picks on the machine at hand. Subprocesses inherit it.
os.environ.setdefault("SAM2WEB_LEVERS", "off")


@pytest.fixture(autouse=True)
def _close_opened_stacks(request, monkeypatch):
    real = getattr(request.module, "open_stack", None)
    if real is None:
        yield
        return
    opened = []

    def tracking(*args, **kwargs):
        stack = real(*args, **kwargs)
        opened.append(stack)
        return stack

    monkeypatch.setattr(request.module, "open_stack", tracking)
    yield
    for stack in opened:
        stack.close()
