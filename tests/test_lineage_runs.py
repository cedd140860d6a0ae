"""Lineage through the run service on several workers: the CPU pool keeps every daughter and her parent."""

from __future__ import annotations

import pytest

from sam2web.service import executor as executor_mod
from sam2web.store import get_store
from sam2web.tracking import factory

try:  # tests/ may be a package; the fallback keeps a plain rootdir run working
    from tests import lineage_runs
except ImportError:  # pragma: no cover
    import lineage_runs


@pytest.fixture
def oracle_env(tmp_path, monkeypatch):
    tra, stack = lineage_runs.write_inputs(tmp_path / "in")
    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SAM2WEB_STANDIN", f"oracle:{tra}")
    monkeypatch.delenv("SAM2WEB_RANDOM_WEIGHTS", raising=False)
    factory.clear()
    store = get_store(str(tmp_path / "data"))
    yield store, lineage_runs.add_workspace(store, stack)
    executor_mod.get_executor().shutdown()
    factory.clear()


def _run(store, ws, monkeypatch, executor: str, workers: str = "1") -> bytes:
    monkeypatch.setenv("SAM2WEB_EXECUTOR", executor)
    monkeypatch.setenv("SAM2WEB_CPU_WORKERS", workers)
    run_id = lineage_runs.submit(store, ws)
    assert executor_mod.get_executor().wait(run_id, 180), "the run did not finish"
    return lineage_runs.check_lineage(store, run_id)


def test_two_positions_divide_with_distinct_daughters_in_the_pool_and_inline(oracle_env, monkeypatch):
    store, ws = oracle_env
    inline = _run(store, ws, monkeypatch, "inline")
    pool = _run(store, ws, monkeypatch, "local", workers="2")  # each position in its own worker process
    assert pool == inline
