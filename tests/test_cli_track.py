"""`python -m sam2web track` end to end on a small non-square stack, and its error paths.

Runs the real SAM2 (tiny, random weights, image size 128) in-process through ``cli.main``; one
subprocess run checks what a shell user sees on an error (exit 2, one line, no traceback).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import shape

from sam2web import cli
from sam2web.tracking import model
from sam2web.types import Location
from tests.engine_helpers import N_FRAMES, H, SyntheticStack, W

tifffile = pytest.importorskip("tifffile")
REPO = Path(__file__).resolve().parents[1]
FAST = ["--model", "tiny", "--image-size", "128", "--device", "cpu"]


@pytest.fixture()
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(model.ENV_CHECKPOINTS, raising=False)
    monkeypatch.delenv(model.ENV_IMAGE_SIZE, raising=False)
    monkeypatch.setenv(model.ENV_RANDOM, "1")
    monkeypatch.setattr(model, "DOWNLOAD_BASE", "http://127.0.0.1:9/")
    synth = SyntheticStack()
    frames = np.stack([synth.frame(Location(0, t, 0)) for t in range(N_FRAMES)])
    tifffile.imwrite(tmp_path / "stack.tif", frames)
    (cx0, cy0), (cx1, cy1) = synth.centres(1)
    geojson = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"XY": 0, "Time": 1, "Z": 0, "tags": ["cell"]},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[cx0 - 10, cy0 - 10], [cx0 + 10, cy0 - 10], [cx0 + 10, cy0 + 10], [cx0 - 10, cy0 - 10]]
                    ],
                },
            },
            {
                "type": "Feature",
                "properties": {"XY": 0, "Time": 3, "Z": 0, "tags": ["other"]},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[cx1 - 10, cy1 - 10], [cx1 + 10, cy1 - 10], [cx1 + 10, cy1 + 10], [cx1 - 10, cy1 - 10]]
                    ],
                },
            },
        ],
    }
    (tmp_path / "prompts.geojson").write_text(json.dumps(geojson))
    platform = [
        {
            "shape": "polygon",
            "tags": ["cell"],
            "channel": 0,
            "location": {"XY": 0, "Z": 0, "Time": 2},
            "coordinates": [{"x": cx0 - 9, "y": cy0 - 9}, {"x": cx0 + 9, "y": cy0 - 9}, {"x": cx0 + 9, "y": cy0 + 9}],
        }
    ]
    (tmp_path / "nimbus.json").write_text(json.dumps(platform))
    labels = np.zeros((H, W), np.uint16)
    labels[10:30, 10:30] = 1
    labels[40:60, 70:100] = 2
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's file")
    return tmp_path


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    rc = cli.main(["track", *[str(a) for a in args]])
    return rc, capsys.readouterr().err


def read_outputs(out: Path) -> tuple[dict, list[dict]]:
    geo = json.loads((out / "annotations.geojson").read_text())
    with open(out / "connections.csv", newline="") as fh:
        conns = list(csv.DictReader(fh))
    return geo, conns


def assert_untouched(root: Path) -> None:
    assert sorted(p.name for p in (root / "out").iterdir()) == ["keep.txt"]
    assert not [p for p in root.iterdir() if p.name.startswith(".out.")]  # no temp folder left


def test_end_to_end_geojson_forward(data, capsys):
    rc, err = run_cli([data / "stack.tif", "--prompts", data / "prompts.geojson", "--out", data / "out", *FAST], capsys)
    assert rc == 0, err
    assert "RANDOM" in err and "Tracked" in err
    names = sorted(p.name for p in (data / "out").iterdir())
    assert names == ["annotations.csv", "annotations.geojson", "connections.csv", "keep.txt", "nimbus.json"]
    geo, conns = read_outputs(data / "out")
    feats = geo["features"]
    assert feats
    frames = {(f["properties"]["object_id"], f["properties"]["Time"]) for f in feats}
    assert all(t >= 1 for o, t in frames if o == 0) and all(t >= 3 for o, t in frames if o == 1)
    for f in feats:
        x0, y0, x1, y1 = shape(f["geometry"]).bounds
        assert 0 <= x0 <= x1 <= W and 0 <= y0 <= y1 <= H
    time_of = {f["properties"]["id"]: f["properties"]["Time"] for f in feats}
    for c in conns:
        assert time_of[c["parent_id"]] < time_of[c["child_id"]]
    assert not [p for p in data.iterdir() if p.name.startswith(".out.")]


def test_platform_json_both_directions_without_links(data, capsys):
    rc, err = run_cli(
        [
            data / "stack.tif",
            "--prompts",
            data / "nimbus.json",
            "--out",
            data / "out",
            "--direction",
            "both",
            "--no-connect",
            "--tags",
            "cell",
            "--padding",
            "1",
            "--smoothing",
            "0.5",
            "--quiet",
            *FAST,
        ],
        capsys,
    )
    assert rc == 0, err
    geo, conns = read_outputs(data / "out")
    assert conns == []
    assert {f["properties"]["object_id"] for f in geo["features"]} <= {0}


def test_label_image_prompt_across_a_selection(data, capsys):
    rc, err = run_cli(
        [
            data / "stack.tif",
            "--prompts",
            data / "labels.tif",
            "--prompt-loc",
            "1,3,1",
            "--time",
            "2-5",
            "--direction",
            "backward",
            "--out",
            data / "out",
            "--quiet",
            *FAST,
        ],
        capsys,
    )
    assert rc == 0, err
    geo, _ = read_outputs(data / "out")
    times = {f["properties"]["Time"] for f in geo["features"]}
    assert times <= {1, 2}  # backward from Time 3 (0-based 2) over the chosen 2-5 (0-based 1-4)


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--time", "3-1"], "3-1"),
        (["--time", "0"], "0"),
        (["--xy", "2"], "XY"),
        (["--time", "1-99"], "99"),
        (["--padding", "50"], "--padding"),
        (["--smoothing", "-1"], "--smoothing"),
        (["--channel", "2"], "--channel 2"),
        (["--prompt-loc", "1,9,1"], "Time 9"),
        (["--prompt-loc", "a,b"], "XY,T,Z"),
        (["--image-size", "100"], "multiple of 32"),
        (["--tags", "nothing-has-this"], "nothing-has-this"),
        (["--time", "5-6"], "No prompt lies on the frames to track"),
    ],
)
def test_user_errors_exit_2_with_one_sentence_and_leave_out_untouched(data, capsys, extra, needle):
    rc, err = run_cli(
        [data / "stack.tif", "--prompts", data / "prompts.geojson", "--out", data / "out", *FAST, *extra], capsys
    )
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert_untouched(data)


def test_missing_checkpoint_is_a_user_error(data, capsys, monkeypatch):
    monkeypatch.delenv(model.ENV_RANDOM)
    rc, err = run_cli([data / "stack.tif", "--prompts", data / "prompts.geojson", "--out", data / "out", *FAST], capsys)
    assert rc == 2
    assert "sam2.1_hiera_tiny.pt" in err and str(data / "cache") in err
    assert len(err.strip().splitlines()) == 1
    assert_untouched(data)


def test_missing_stack_and_prompts(data, capsys):
    rc, err = run_cli([data / "nope.tif", "--prompts", data / "prompts.geojson", "--out", data / "out", *FAST], capsys)
    assert rc == 2 and "nope.tif" in err
    rc, err = run_cli([data / "stack.tif", "--prompts", data / "nope.geojson", "--out", data / "out", *FAST], capsys)
    assert rc == 2 and "nope.geojson" in err
    assert_untouched(data)


def test_out_is_a_file(data, capsys):
    rc, err = run_cli(
        [data / "stack.tif", "--prompts", data / "prompts.geojson", "--out", data / "out" / "keep.txt", *FAST], capsys
    )
    assert rc == 2 and "is a file" in err
    assert_untouched(data)


def test_interrupt_mid_run_leaves_nothing(data, capsys, monkeypatch):
    from sam2web.cli import runner

    def ctrl_c(seconds):  # Ctrl-C while the bar follows the run
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "pause", ctrl_c)
    rc, err = run_cli([data / "stack.tif", "--prompts", data / "prompts.geojson", "--out", data / "out", *FAST], capsys)
    assert rc == 130
    assert_untouched(data)


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["track", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for opt in (
        "--prompts",
        "--out",
        "--across",
        "--direction",
        "--xy",
        "--time",
        "--z",
        "--model",
        "--checkpoint",
        "--device",
        "--precision",
        "--image-size",
        "--padding",
        "--smoothing",
        "--no-connect",
        "--tags",
        "--channel",
        "--prompt-loc",
        "--pages-as",
        "examples:",
    ):
        assert opt in text, opt


def test_shell_user_sees_one_line_and_no_traceback(data):
    env = {**os.environ, "SAM2WEB_RANDOM_WEIGHTS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sam2web",
            "track",
            str(data / "stack.tif"),
            "--prompts",
            str(data / "prompts.geojson"),
            "--out",
            str(data / "out"),
            "--time",
            "5-2",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "5-2" in proc.stderr
    assert_untouched(data)


def test_ctc_export_round_trips(data, capsys):
    from sam2web import ctc

    rc, err = run_cli(
        [
            data / "stack.tif",
            "--prompts",
            data / "prompts.geojson",
            "--out",
            data / "out",
            "--ctc",
            "--smoothing",
            "0",
            *FAST,
        ],
        capsys,
    )
    assert rc == 0, err
    frames, tracks = ctc.read_ctc(data / "out" / "ctc")
    assert sorted(frames) == list(range(N_FRAMES)) and frames[0].shape == (H, W)
    geo, _ = read_outputs(data / "out")
    # every exported polygon is one labelled region of its frame, and every track row is a real label
    per_frame = {}
    for f in geo["features"]:
        per_frame[f["properties"]["Time"]] = per_frame.get(f["properties"]["Time"], 0) + 1
    for t, count in per_frame.items():
        assert len(set(np.unique(frames[t])) - {0}) <= count
    labels = {row[0] for row in tracks}
    assert labels and all(set(np.unique(frames[t])) - {0} <= labels for t in frames)
