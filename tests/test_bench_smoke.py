"""Smoke test of the benchmark harness: it runs, and its last line is the promised JSON.

No timing is asserted (timings on a shared CI machine mean nothing); what is asserted is that the
cheapest measurements run end to end on tiny inputs and that every key other tools read is there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = {
    "overhead_ratio",
    "vs_plain_recipe",
    "peak_rss_mb",
    "plain_peak_rss_mb",
    "repolygonize_ms",
    "frame_view_ms",
    "results_rerun_ms",
    "s_per_frame",
    "auto_precision_speedup",
    "batched_objects_speedup",
    "pool_speedup",
    "cpu",
    "box_to_mask_ms",
    "start_to_first_frame_s",
}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, SAM2WEB_RANDOM_WEIGHTS="1")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_run_prints_table_and_json_last_line():
    proc = _run(["-m", "bench.run", "--quick", "--smoke"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert KEYS <= set(summary)
    assert summary["repolygonize_ms"] > 0 and summary["frame_view_ms"] > 0 and summary["results_rerun_ms"] > 0
    assert any("frame view" in line for line in lines[:-1])  # the table came first
    assert any(line.startswith("CPU: ") and "native bf16 flags" in line for line in lines[:-1])
    assert summary["cpu"]["flags_checked"] == ["avx512_bf16", "amx_bf16"]


def test_post_measurements_on_tiny_inputs():
    from bench import post

    rp = post.repolygonize(3, 4, repeats=1)
    # 3 frames x 4 cells: every mask gives a polygon, each cell a chain of 2 links
    assert rp["masks"] == 12 and rp["polygons"] == 12 and rp["links"] == 8
    assert rp["export_bytes"] > 0
    fv = post.frame_view(side=128, repeats=1)
    assert fv["shape"] == [128, 128, 3]


def test_synthetic_masks_have_the_bacteria_frame_shape():
    from bench.post import synthetic_result

    result = synthetic_result(2, 3)
    masks = list(result.masks.values())
    assert len(masks) == 6
    assert {m.shape for m in masks} == {(1305, 1009)}  # rows x columns of bacteria_ctc
    assert all(m.crop().sum() > 100 for m in masks)


@pytest.mark.parametrize("kind", ["pair", "plain", "variants"])
def test_worker_runs_each_recipe_on_a_tiny_stack(tmp_path, kind, monkeypatch, capsys):
    """In-process (a subprocess per recipe would double the test's time for a torch import)."""
    from bench import data, worker

    monkeypatch.setenv("SAM2WEB_RANDOM_WEIGHTS", "1")  # restored (unset) after the test
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the precision check's cache
    tiff = data.write_tiff(tmp_path / "f.tif", data.make_frames(2, 2, side=96))
    assert (
        worker.main(
            [kind, "--tiff", str(tiff), "--frames", "2", "--objects", "2", "--image-size", "128", "--threads", "1"]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["peak_rss_mb"] >= out["rss_before_mb"] > 0
    if kind == "variants":
        assert sorted(out["runs"]) == ["auto", "fp32_batched", "fp32_per_object"]
        assert out["auto_precision"] in ("fp32", "bf16") and out["auto_reason"]
        batched = out["agreement"]["fp32_batched"]
        assert batched["max_abs"] <= 1e-5 and batched["mask_iou"] == 1.0
        assert set(out["agreement"]["auto"]) == {"cosine", "max_abs", "mask_iou"}
        return
    recipes = ["pure", "sam2web"] if kind == "pair" else ["plain"]
    assert sorted(out["runs"]) == recipes
    if kind == "pair":
        run = out["runs"]["sam2web"][0]
        assert run["n_masks"] == 4  # 2 objects x 2 frames
        assert run["export_bytes"] > 0
        assert out["runs"]["pure"][0]["frames"] == 2
    else:
        assert out["runs"]["plain"][0]["frames"] == 2
    assert np.isfinite(
        [r[clock] for rs in out["runs"].values() for r in rs for clock in ("seconds", "cpu_seconds")]
    ).all()


def test_results_rerun_measures_every_polygon_of_the_run():
    from bench import results_page

    rr = results_page.results_rerun(3, 2, side=256, repeats=1)
    assert rr["polygons"] == 6  # 3 frames x 2 cells, the page's own object table counts them
    assert rr["rerun_ms"] >= max(rr["steady_ms"], rr["playback_ms"], rr["live_ms"]) > 0
