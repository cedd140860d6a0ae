"""`python -m sam2web convert`: label images -> the four export files, links by label identity."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import numpy as np
import tifffile
from geom_synthetic import NUCLEI_LABELS, TRA, needs_nuclei_labels, needs_tra
from shapely.geometry import shape

from sam2web.cli import main
from sam2web.export import EXPORT_FILES
from sam2web.geometry import rasterize_full


def _features(out):
    return json.loads((out / "annotations.geojson").read_text())["features"]


@needs_tra
def test_convert_ctc_folder_gives_one_polygon_per_label_per_frame(tmp_path):
    out = tmp_path / "gt"
    assert main(["convert", str(TRA), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPORT_FILES)
    feats = _features(out)
    labels = [tifffile.imread(p) for p in sorted(TRA.glob("man_track*.tif"))]
    expected = Counter()
    for t, lab in enumerate(labels):
        for v in np.unique(lab)[1:]:
            expected[(int(v), t)] += 1
    got = Counter((f["properties"]["object_id"], f["properties"]["Time"]) for f in feats)
    assert got == expected
    # polygons rasterise back onto the true labels (padding 0, smoothing 0: exact but for specks)
    for f in feats[::7]:
        p = f["properties"]
        truth = labels[p["Time"]] == p["object_id"]
        mask = rasterize_full(shape(f["geometry"]), truth.shape)
        iou = (mask & truth).sum() / (mask | truth).sum()
        assert iou >= 0.97
    # links by label identity: n-1 per label, parent earlier than child; plus one DIVISION link per
    # daughter in man_track.txt (mother's last polygon -> daughter's first)
    links = list(csv.DictReader(io.StringIO((out / "connections.csv").read_text())))
    per_label = Counter(k[0] for k in expected)
    same = [link for link in links if link["tags"] == "SAM2_VIDEO"]
    assert len(same) == sum(n - 1 for n in per_label.values())
    platform = json.loads((out / "nimbus.json").read_text())["annotationConnections"]
    assert len(platform) == len(links)
    assert sum(1 for c in platform if c["tags"] == ["DIVISION"]) == len(links) - len(same)
    for link in same:
        pa, ch = link["parent_id"].split("-"), link["child_id"].split("-")
        assert pa[0] == ch[0] and int(pa[2]) < int(ch[2])
    rows = [tuple(map(int, line.split())) for line in (TRA / "man_track.txt").read_text().splitlines() if line.strip()]
    daughters = {(label, parent, begin) for label, begin, _end, parent in rows if parent}
    division = [link for link in links if link["tags"] == "DIVISION"]
    assert len(division) == len(daughters) == len(links) - len(same)
    ends = {label: end for label, _b, end, _p in rows}
    got_div = set()
    for link in division:
        pa, ch = link["parent_id"].split("-"), link["child_id"].split("-")
        assert int(pa[2]) == ends[int(pa[0])] and int(ch[2]) == int(pa[2]) + 1
        got_div.add((int(ch[0]), int(pa[0]), int(ch[2])))
    assert got_div == daughters
    parent_prop = {f["properties"]["object_id"]: f["properties"].get("parent_object_id") for f in feats}
    assert all(parent_prop[label] == parent for label, parent, _ in daughters)


@needs_tra
def test_convert_options_no_connect_keep_all_and_smoothing(tmp_path):
    files = sorted(TRA.glob("man_track*.tif"))[:3]
    out = tmp_path / "o"
    assert (
        main(
            [
                "convert",
                *map(str, files),
                "--out",
                str(out),
                "--no-connect",
                "--keep",
                "all",
                "--smoothing",
                "1",
                "--padding",
                "1",
            ]
        )
        == 0
    )
    assert (out / "connections.csv").read_text().strip() == "parent_id,child_id,object_id,tags"
    assert {f["properties"]["Time"] for f in _features(out)} == {0, 1, 2}


@needs_nuclei_labels
def test_convert_label_stack_across_z(tmp_path):
    out = tmp_path / "z"
    assert main(["convert", str(NUCLEI_LABELS), "--across", "z", "--out", str(out)]) == 0
    feats = _features(out)
    assert {f["properties"]["Time"] for f in feats} == {0}
    assert len({f["properties"]["Z"] for f in feats}) > 30
    assert len({f["properties"]["object_id"] for f in feats}) == len(np.unique(tifffile.imread(NUCLEI_LABELS))) - 1


def test_convert_errors_exit_2_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    frac = tmp_path / "float.tif"
    tifffile.imwrite(frac, np.full((16, 20), 0.5, np.float32))
    blank = tmp_path / "blank.tif"
    tifffile.imwrite(blank, np.zeros((16, 20), np.uint16))
    text = tmp_path / "notes.tif"
    text.write_text("not an image")
    cases = [
        ([str(tmp_path / "missing.tif")], "does not exist"),
        ([str(frac)], "not a label image"),
        ([str(blank)], "no labels"),
        ([str(text)], ""),
        ([str(blank), "--padding", "30"], "outside -20..20"),
        ([str(blank), "--smoothing", "-1"], "outside 0..3"),
    ]
    for argv, words in cases:
        assert main(["convert", *argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and "Traceback" not in err
        assert not out.exists()
    afile = tmp_path / "afile"
    afile.write_text("x")
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.ones((16, 20), np.uint16))
    assert main(["convert", str(good), "--out", str(afile)]) == 2
