"""Shared test plumbing: stacks a test opened are closed when it ends.

Why: the suite runs with ResourceWarnings as errors (a file left open is a bug). Many tests open a
stack only to assert on its sizes; closing it here keeps those tests short without hiding a leak
in sam2web itself (the app and the CLI close what they open; their tests check that).
"""

from __future__ import annotations

import pytest


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
