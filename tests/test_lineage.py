"""Lineage end to end: divisions kept by convert/exports, valid CTC output, detection, the oracle, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from geom_synthetic import TRA, needs_tra

from sam2web import ctc, evaluate, geometry, links
from sam2web.cli import main
from sam2web.lineage import split_mask, track_lineage
from sam2web.tracking.standin import OracleTracker
from sam2web.tracking.track import StandInTracker
from sam2web.types import CompactMask, Location, ObjectInfo, Prompt, Sequence, TrackResult

DATA = TRA.parent
needs_bacteria = needs_tra


def _traccuracy(gt_dir: Path, pred_dir: Path) -> dict:
    """Scores straight from traccuracy's own loader (no sam2web code on the scoring side)."""
    from traccuracy import run_metrics
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher, IOUMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    gt = load_ctc_data(str(gt_dir), str(gt_dir / "man_track.txt"))
    pred = load_ctc_data(str(pred_dir), str(pred_dir / "res_track.txt"))
    ctc_res, _ = run_metrics(gt, pred, CTCMatcher(), [CTCMetrics()])
    div_res, _ = run_metrics(gt, pred, IOUMatcher(iou_threshold=0.5, one_to_one=True), [DivisionMetrics()])
    return {**ctc_res[0]["results"], **div_res[0]["results"]["Frame Buffer 0"]}


def _box(mask: np.ndarray) -> CompactMask:
    return CompactMask.from_mask(mask)


def _rect(shape, r0, c0, r1, c1) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


# ------------------------------------------------------------------------------- round trip
@needs_bacteria
def test_round_trip_ground_truth_convert_ctc_scores_one(tmp_path):
    out = tmp_path / "gt"
    assert main(["convert", str(DATA / "TRA"), "--ctc", "--out", str(out)]) == 0
    scores = _traccuracy(DATA / "TRA", out / "ctc")
    assert scores["TRA"] == 1.0 and scores["DET"] == 1.0 and scores["LNK"] == 1.0
    assert scores["Division F1"] == 1.0 and scores["Total GT Divisions"] == 30
    rows = [line.split() for line in (out / "ctc" / "res_track.txt").read_text().splitlines()]
    assert sum(1 for r in rows if r[3] != "0") == 60  # two daughters per division carry a parent
    conns = (out / "connections.csv").read_text().splitlines()
    assert sum(1 for c in conns if c.endswith(",DIVISION")) == 60


# ------------------------------------------------------------------------- valid CTC always
def test_ctc_export_is_valid_for_covered_vanishing_and_gapped_objects(tmp_path):
    """Object 1 is covered by object 2 at frame 2, object 3 vanishes (empty mask) at frame 1 and
    has a gap at 3, object 5 is a daughter of 4 while 4 still has a mask that overlaps hers."""
    from traccuracy.loaders import load_ctc_data

    shape = (40, 60)
    res = TrackResult()
    for t in range(5):
        loc = Location(0, t, 0)
        res.masks[(1, loc)] = _box(_rect(shape, 2, 2, 8, 8))
        res.masks[(2, loc)] = _box(_rect(shape, 0, 0, 12, 12) if t == 2 else _rect(shape, 20, 2, 26, 8))
        if t != 3:
            res.masks[(3, loc)] = _box(_rect(shape, 2, 20, 8, 28) if t != 1 else np.zeros(shape, bool))
        res.masks[(4, loc)] = _box(_rect(shape, 30, 30, 36, 40))
        if t >= 2:
            res.masks[(5, loc)] = _box(_rect(shape, 31, 31, 35, 38))
    res.objects = {i: ObjectInfo(i) for i in range(1, 6)}
    res.objects[5].parent = 4
    ctc.write_ctc(tmp_path / "ctc", res, n_frames=5)
    load_ctc_data(str(tmp_path / "ctc"), str(tmp_path / "ctc" / "res_track.txt"))  # raises on any CTC rule
    frames, tracks = ctc.read_ctc(tmp_path / "ctc")
    for label, begin, end, _parent in tracks:
        for t in range(begin, end + 1):
            assert (frames[t] == label).any()
    by_start = {(b, e): (label, p) for label, b, e, p in tracks}
    # object 1: frames 0-1, then 3-4 as a child of its first segment
    first, second = by_start[(0, 1)], by_start[(3, 4)]
    assert second[1] in {lab for lab, _ in by_start.values()}
    # a gap always continues under a new label whose parent is the previous segment
    labels = {label: (b, e, p) for label, b, e, p in tracks}
    for _label, (b, _e, p) in labels.items():
        if p:
            assert labels[p][1] < b
    assert first[1] == 0


def test_ctc_daughter_links_to_mother_that_ended(tmp_path):
    shape = (30, 30)
    res = TrackResult()
    for t in range(3):
        res.masks[(7, Location(0, t, 0))] = _box(_rect(shape, 5, 5, 15, 25))
    for t in range(3, 6):
        res.masks[(8, Location(0, t, 0))] = _box(_rect(shape, 5, 5, 15, 14))
        res.masks[(9, Location(0, t, 0))] = _box(_rect(shape, 5, 16, 15, 25))
    res.objects = {7: ObjectInfo(7), 8: ObjectInfo(8, parent=7), 9: ObjectInfo(9, parent=7)}
    ctc.write_ctc(tmp_path / "c", res)
    _, tracks = ctc.read_ctc(tmp_path / "c")
    mother = next(label for label, b, e, p in tracks if b == 0)
    assert sorted(p for _l, b, _e, p in tracks if b == 3) == [mother, mother]


# ------------------------------------------------------------------------------ links/exports
def test_division_links_and_geojson_parent():
    shape = (30, 30)
    res = TrackResult()
    for t in range(2):
        res.masks[(0, Location(0, t, 0))] = _box(_rect(shape, 5, 5, 15, 25))
    for t in range(2, 4):
        res.masks[(1, Location(0, t, 0))] = _box(_rect(shape, 5, 5, 15, 14))
        res.masks[(2, Location(0, t, 0))] = _box(_rect(shape, 5, 16, 15, 25))
    res.objects = {0: ObjectInfo(0), 1: ObjectInfo(1, parent=0), 2: ObjectInfo(2, parent=0)}
    anns = geometry.annotations_from_result(res, smoothing=0)
    conns = links.connect(anns)
    div = [c for c in conns if c.tags == [links.DIVISION_TAG]]
    assert {(c.parent_id, c.child_id, c.obj_id) for c in div} == {
        (geometry.annotation_id(0, Location(0, 1, 0)), geometry.annotation_id(d, Location(0, 2, 0)), d) for d in (1, 2)
    }
    assert len(conns) == 3 + 2
    from sam2web.export import export_bytes

    files = export_bytes(anns, conns)
    feats = json.loads(files["annotations.geojson"])["features"]
    assert {f["properties"]["object_id"]: f["properties"].get("parent_object_id") for f in feats} == {
        0: None,
        1: 0,
        2: 0,
    }
    nimbus = json.loads(files["nimbus.json"])
    assert sum(1 for c in nimbus["annotationConnections"] if c["tags"] == ["DIVISION"]) == 2
    assert links.connect(anns, enabled=False) == []


# ---------------------------------------------------------------------------------- splitting
def test_split_mask_components_neck_and_refusals():
    shape = (40, 80)
    two = _rect(shape, 10, 5, 30, 30) | _rect(shape, 10, 40, 30, 70)
    a, b = split_mask(two)
    assert sorted([a.sum(), b.sum()]) == [500, 600] and not (a & b).any()
    dumbbell = _rect(shape, 5, 5, 35, 35) | _rect(shape, 5, 45, 35, 75) | _rect(shape, 18, 35, 22, 45)
    parts = split_mask(dumbbell)
    assert parts is not None and min(p.sum() for p in parts) >= 0.25 * dumbbell.sum()
    assert split_mask(dumbbell, max_neck=0) is None  # separate parts only
    yy, xx = np.mgrid[:40, :80]
    rod = ((yy - 20) / 8.0) ** 2 + ((xx - 40) / 30.0) ** 2 <= 1
    assert split_mask(rod) is None
    speck = _rect(shape, 10, 5, 30, 30) | _rect(shape, 10, 40, 13, 43)
    assert split_mask(speck) is None  # a fragment is not a daughter
    assert split_mask(np.zeros(shape, bool)) is None


# --------------------------------------------------------------------------- synthetic oracle
def _write_labels(folder: Path, frames: list[np.ndarray], rows: list[tuple[int, int, int, int]]) -> None:
    folder.mkdir(parents=True)
    for t, lab in enumerate(frames):
        tifffile.imwrite(folder / f"man_track{t:03d}.tif", lab.astype(np.uint16))
    (folder / "man_track.txt").write_text("".join(f"{a} {b} {c} {d}\n" for a, b, c, d in rows))


class _Stack:
    def __init__(self, t, h, w):
        self.sizes = {"T": t, "Y": h, "X": w}
        self.name = "synthetic"


def _division_labels(n=8, split_at=3, touching=True):
    """Cell 1 (frames 0..split_at-1) divides into 2 and 3; they touch (a neck) or lie apart."""
    frames = []
    for t in range(n):
        lab = np.zeros((40, 80), np.uint16)
        if t < split_at:
            lab[12:28, 10 + t : 60 + t] = 1
        else:
            gap = 0 if touching else 2 * (t - split_at) + 2
            lab[12:28, 8:36] = 2
            lab[12:28, 36 + gap : 64 + gap] = 3
            if touching:  # a pinched waist where the daughters meet
                lab[12:18, 33:39] = 0
                lab[22:28, 33:39] = 0
        frames.append(lab)
    rows = [(1, 0, split_at - 1, 0), (2, split_at, n - 1, 1), (3, split_at, n - 1, 1)]
    return frames, rows


@pytest.mark.parametrize("touching", [True, False])
def test_oracle_detection_finds_the_division_at_its_frame(tmp_path, touching):
    frames, rows = _division_labels(touching=touching)
    _write_labels(tmp_path / "TRA", frames, rows)
    oracle = OracleTracker(tmp_path / "TRA")
    seq = Sequence(tuple(Location(0, t, 0) for t in range(8)), "time")
    prompt = Prompt(0, Location(0, 0, 0), box=(10, 12, 60, 28))
    seen: dict = {}

    def on_frame(loc, masks):
        for o, m in masks.items():
            seen[(o, loc)] = m

    blank = lambda loc: np.zeros((40, 80, 3), np.uint8)  # noqa: E731
    off = track_lineage(_Stack(8, 40, 80), [seq], [prompt], oracle, blank, detect=False)
    assert len(off.objects) == 1 and len([k for k in off.masks if k[0] == 0]) == 8
    phases: list[str] = []
    res = track_lineage(
        _Stack(8, 40, 80), [seq], [prompt], OracleTracker(tmp_path / "TRA"), blank, on_frame=on_frame,
        on_phase=phases.append,
    )  # fmt: skip
    assert phases[:2] == ["divisions", "daughters"]  # the progress bar says "Tracking daughters…" meanwhile
    daughters = sorted(o for o, info in res.objects.items() if info.parent == 0)
    assert len(daughters) == 2
    assert [res.objects[d].name for d in daughters] == ["Object 1.1", "Object 1.2"]  # an unnamed mother, from 1
    assert max(loc.time for o, loc in res.masks if o == 0) == 2  # the mother ends at split_at - 1
    for d in daughters:
        assert min(loc.time for o, loc in res.masks if o == d) == 3
    # what on_frame last said agrees with the result (the store sees the mother end)
    assert all(seen[(0, Location(0, t, 0))].empty for t in range(3, 8))
    preds = evaluate.predictions_from_annotations(geometry.annotations_from_result(res, smoothing=0))
    lineage = {label: parent for label, _b, _e, parent in rows if parent}
    scores = evaluate.evaluate(dict(enumerate(frames)), preds, None, lineage, {d: 0 for d in daughters})
    assert scores.overall["division_f1"] == 1.0 and scores.overall["TRA"] == 1.0


def test_oracle_rejects_a_split_the_backward_check_does_not_confirm(tmp_path):
    """One dumbbell-shaped cell that never divides: a candidate split, refuted by tracking back."""
    frames = []
    for _t in range(5):
        lab = np.zeros((40, 80), np.uint16)
        lab[5:35, 5:35] = 1
        lab[5:35, 45:75] = 1
        lab[18:22, 35:45] = 1
        frames.append(lab)
    _write_labels(tmp_path / "TRA", frames, [(1, 0, 4, 0)])
    seq = Sequence(tuple(Location(0, t, 0) for t in range(5)), "time")
    res = track_lineage(
        _Stack(5, 40, 80),
        [seq],
        [Prompt(0, Location(0, 0, 0), box=(5, 5, 75, 35))],
        OracleTracker(tmp_path / "TRA"),
        lambda loc: np.zeros((40, 80, 3), np.uint8),
    )
    assert list(res.objects) == [0] and len(res.masks) == 5


def test_manual_division_ends_mother_and_links_daughters(tmp_path):
    seq = Sequence(tuple(Location(0, t, 0) for t in range(6)), "time")
    prompts = [
        Prompt(0, Location(0, 0, 0), box=(5, 5, 30, 20)),
        Prompt(1, Location(0, 3, 0), box=(5, 5, 16, 20), parent=0),
        Prompt(2, Location(0, 3, 0), box=(18, 5, 30, 20), parent=0),
    ]
    blank = lambda loc: np.zeros((40, 60, 3), np.uint8)  # noqa: E731
    res = track_lineage(_Stack(6, 40, 60), [seq], prompts, StandInTracker(drift=(0, 0)), blank, detect=False)
    assert {o: i.parent for o, i in res.objects.items()} == {0: None, 1: 0, 2: 0}
    assert sorted(loc.time for o, loc in res.masks if o == 0) == [0, 1, 2]
    ctc.write_ctc(tmp_path / "c", res)
    _, tracks = ctc.read_ctc(tmp_path / "c")
    assert sorted(p for _l, b, _e, p in tracks) == [0, 1, 1]


def test_prompt_files_and_saved_prompts_keep_the_parent():
    from sam2web import prompts as pm

    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[[1, 1], [9, 1], [9, 9], [1, 9], [1, 1]]]},
                "properties": {"object_id": 40, "Time": 0},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[[1, 1], [4, 1], [4, 9], [1, 9], [1, 1]]]},
                "properties": {"object_id": 41, "Time": 3, "parent_object_id": 40},
            },
        ],
    }
    got = pm.from_geojson(doc, 20, 20)
    assert [(p.obj_id, p.parent) for p in got] == [(0, None), (1, 0)]
    assert pm.prompt_from_dict(pm.prompt_to_dict(got[1])).parent == 0
    doc["features"][1]["properties"]["parent_object_id"] = 99
    with pytest.raises(Exception, match="parent_object_id"):
        pm.from_geojson(doc, 20, 20)


def test_store_keeps_lineage_across_restart(tmp_path):
    from sam2web.store import Store, objects_to_dict

    store = Store(tmp_path)
    objects = {0: ObjectInfo(0, "m"), 1: ObjectInfo(1, "d", parent=0)}
    ws = store.create_workspace("lineage")
    run_id = store.create_run(ws.id, {"across": "time"}, objects=objects_to_dict(objects))
    reopened = Store(tmp_path).load_result(run_id)
    assert reopened.objects[1].parent == 0 and reopened.objects[0].parent is None


def test_cli_track_with_the_oracle_writes_the_division_everywhere(tmp_path):
    """SAM2WEB_STANDIN=oracle:LABELS through `sam2web track --ctc` (the factory, TrackParams, lineage)."""
    import os
    import subprocess
    import sys

    frames, rows = _division_labels(touching=False)
    _write_labels(tmp_path / "TRA", frames, rows)
    img = tmp_path / "img"
    img.mkdir()
    for t, lab in enumerate(frames):
        tifffile.imwrite(img / f"t{t:03d}.tif", (lab > 0).astype(np.uint8) * 200)
    prompt = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[[10, 12], [60, 12], [60, 28], [10, 28], [10, 12]]]},
                "properties": {"object_id": 1, "Time": 0},
            }
        ],
    }
    (tmp_path / "p.geojson").write_text(json.dumps(prompt))
    env = {**os.environ, "SAM2WEB_STANDIN": f"oracle:{tmp_path / 'TRA'}"}
    base = [sys.executable, "-m", "sam2web", "track", str(img), "--prompts", str(tmp_path / "p.geojson"), "--quiet"]
    root = Path(__file__).resolve().parents[1]
    cmd = [*base, "--out", str(tmp_path / "out"), "--ctc", "--smoothing", "0"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out" / "ctc" / "res_track.txt").read_text()
    tracks = [tuple(map(int, line.split())) for line in text.splitlines()]
    assert sorted((b, e, p != 0) for _l, b, e, p in tracks) == [(0, 2, False), (3, 7, True), (3, 7, True)]
    conns = (tmp_path / "out" / "connections.csv").read_text()
    assert conns.count(",DIVISION") == 2
    off = subprocess.run([*base, "--out", str(tmp_path / "off"), "--no-divisions"], env=env, cwd=root)
    assert off.returncode == 0
    assert "DIVISION" not in (tmp_path / "off" / "connections.csv").read_text()


# ------------------------------------------------------------------------- the bacteria figures
@needs_bacteria
@pytest.mark.parametrize("detect", [True, False])
def test_oracle_on_bacteria_detection_figures(detect):
    """Prompted at frame 0 and at the first frame of cells nobody's daughter; scored by traccuracy."""
    gt = ctc.labels_to_result(DATA / "TRA")
    prompts = []
    for lab, info in gt.objects.items():
        first = min(loc.time for o, loc in gt.masks if o == lab)
        if first == 0 or info.parent is None:
            r0, c0, r1, c1 = gt.masks[(lab, Location(0, first, 0))].bbox
            prompts.append(Prompt(lab, Location(0, first, 0), box=(c0, r0, c1, r1)))
    seq = Sequence(tuple(Location(0, t, 0) for t in range(30)), "time")
    res = track_lineage(
        _Stack(30, 1305, 1009),
        [seq],
        prompts,
        OracleTracker(DATA / "TRA"),
        lambda loc: np.zeros((1305, 1009, 3), np.uint8),
        detect=detect,
    )
    anns = geometry.annotations_from_result(res, smoothing=0)
    frames, lineage = evaluate.read_truth(DATA / "TRA")
    ov = evaluate.evaluate(
        frames, evaluate.predictions_from_annotations(anns), None, lineage, links.parents_of(anns)
    ).overall
    if detect:
        assert ov["division_recall"] >= 0.9 and ov["division_precision"] >= 0.9 and ov["TRA"] >= 0.95
    else:
        assert ov["divisions_found"] == 0 and ov["TRA"] < 0.5


def test_daughters_that_the_tracker_merges_again_undo_the_division():
    """The mother's mask splits for two frames, the parts are distinct going back, but once tracked
    on their own both daughters fall onto the same cell: the division is undone."""
    shape = (40, 80)
    blob_a, blob_b = _rect(shape, 10, 5, 30, 30), _rect(shape, 10, 45, 30, 70)
    calls = []

    def masks(obj_id, loc):
        calls.append(obj_id)
        if obj_id == 0:
            return blob_a | blob_b if loc.time in (3, 4) else _rect(shape, 10, 5, 30, 70)
        if obj_id >= 10**9:  # the backward check's temporary objects: two distinct cells
            return (blob_a if obj_id % 2 == 0 else blob_b) if loc.time >= 2 else _rect(shape, 10, 5, 30, 70)
        return blob_a if loc.time > 3 or obj_id % 2 else blob_b  # daughters: one cell after frame 3

    seq = Sequence(tuple(Location(0, t, 0) for t in range(6)), "time")
    res = track_lineage(
        _Stack(6, 40, 80),
        [seq],
        [Prompt(0, Location(0, 0, 0), box=(5, 10, 70, 30))],
        StandInTracker(masks=masks),
        lambda loc: np.zeros((40, 80, 3), np.uint8),
    )
    assert any(o >= 10**9 for o in calls)  # the backward check ran
    assert list(res.objects) == [0] and all(o == 0 for o, _ in res.masks)
    assert sorted(loc.time for o, loc in res.masks) == list(range(6))
