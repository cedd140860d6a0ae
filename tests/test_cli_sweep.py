"""`python -m sam2web sweep`: several settings over the same prompts, scored in one table.

The stand-in tracker returns the sample's true masks, so the scores are known: exact outlines
score IoU ~1, and growing every polygon by 2 px must score lower.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam2web import cli
from sam2web.stack import sample
from sam2web.tracking import factory
from sam2web.tracking.track import StandInTracker

N = 6


@pytest.fixture()
def sweep_data(tmp_path, monkeypatch):
    stack = sample.write_sample(tmp_path / "sample.tif", n_frames=N)
    gt = sample.write_sample_ground_truth(tmp_path / "TRA", n_frames=N)
    labels = sample.sample_labels(n_frames=N)
    ids = [int(v) for v in np.unique(labels[0]) if v]
    features = []
    for label in ids:
        rows, cols = np.nonzero(labels[0] == label)
        x0, y0, x1, y1 = int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1
        features.append(
            {
                "type": "Feature",
                "properties": {"XY": 0, "Time": 0, "Z": 0},
                "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
            }
        )
    prompts = tmp_path / "prompts.geojson"
    prompts.write_text(json.dumps({"type": "FeatureCollection", "features": features}))

    def truth(obj_id, loc):  # obj ids follow the feature order
        return labels[loc.time] == ids[obj_id]

    built = []

    def fake_build(params, download, progress, phase=None):
        built.append(params.model)
        return StandInTracker(masks=truth)

    factory.clear()
    monkeypatch.setenv("SAM2WEB_RANDOM_WEIGHTS", "1")  # no checkpoint is looked for: the tracker is the fake
    monkeypatch.setattr(factory, "_build", fake_build)  # the sweep's runs (inline executor) build their tracker here
    return tmp_path, stack, gt, prompts, built


def test_sweep_scores_each_setting_and_exports_each(sweep_data, capsys):
    root, stack, gt, prompts, built = sweep_data
    out = root / "sweep"
    rc = cli.main(
        [
            "sweep",
            str(stack),
            "--prompts",
            str(prompts),
            "--gt",
            str(gt),
            "--out",
            str(out),
            "--models",
            "tiny,small",
            "--paddings",
            "0,2",
            "--smoothings",
            "0",
            "--quiet",
        ]
    )
    assert rc == 0
    assert built == ["tiny", "small"]  # one model load per size, not per padding
    rows = json.loads((out / "sweep.json").read_text())
    assert len(rows) == 4
    by = {(r["settings"]["model"], r["settings"]["padding"]): r["scores"] for r in rows}
    for size in ("tiny", "small"):
        assert by[(size, 0.0)]["mean_iou"] > 0.97
        assert by[(size, 2.0)]["mean_iou"] < by[(size, 0.0)]["mean_iou"] - 0.05
        assert (out / f"{size}-forward-pad0-smooth0" / "annotations.geojson").is_file()
    table = capsys.readouterr().out
    assert "mean_iou" in table and table.count("forward") == 4


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--models", "tiny,huge"], "--models"),
        (["--paddings", "0,a"], "--paddings"),
        (["--paddings", "0,30"], "padding"),
    ],
)
def test_sweep_user_errors(sweep_data, capsys, extra, needle):
    root, stack, gt, prompts, _ = sweep_data
    rc = cli.main(
        ["sweep", str(stack), "--prompts", str(prompts), "--gt", str(gt), "--out", str(root / "s"), "--quiet", *extra]
    )
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err
    assert not (root / "s").exists()
