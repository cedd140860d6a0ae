"""QA against ground truth: scores computed by hand, identity switches, the CTC format round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from geom_synthetic import TRA, needs_tra
from shapely.affinity import translate

from sam2web.cli import main
from sam2web.ctc import labels_to_result, read_ctc, read_lineage, write_ctc, write_ctc_annotations
from sam2web.errors import UserError
from sam2web.evaluate import (
    evaluate,
    evaluate_paths,
    predictions_from_annotations,
    read_predictions,
    scores_table,
    sweep_table,
)
from sam2web.geometry import annotations_from_result, mask_to_geometry
from sam2web.types import Annotation, CompactMask, Location, TrackResult


@pytest.fixture(scope="module")
def gt_export(tmp_path_factory):
    if not TRA.is_dir():
        pytest.skip(f"shared real data not found at {TRA}")
    out = tmp_path_factory.mktemp("gt") / "export"
    assert main(["convert", str(TRA), "--out", str(out)]) == 0
    frames = {t: tifffile.imread(p) for t, p in enumerate(sorted(TRA.glob("man_track*.tif")))}
    return out, frames


def _preds(out, frames):
    return read_predictions(out, next(iter(frames.values())).shape)


@needs_tra
def test_perfect_predictions_score_one(gt_export):
    out, _ = gt_export
    scores = evaluate_paths(TRA, out)
    ov = scores.overall
    assert ov["objects"] == ov["matched"] == 62
    assert ov["mean_iou"] >= 0.97 and ov["mean_iou"] == pytest.approx(1.0)
    assert ov["tracked_fraction"] == 1.0 and ov["lost_frames"] == 0 and ov["id_switches"] == 0
    assert all(o.true_label == o.obj_id for o in scores.objects)  # convert keeps label ids
    # traccuracy's measures: convert keeps the divisions (GeoJSON parent_object_id), so all are perfect
    assert ov["TRA"] == ov["DET"] == ov["LNK"] == ov["CHOTA"] == 1.0
    assert ov["division_f1"] == 1.0 and ov["divisions_found"] == ov["divisions_true"] == 30


def _shift(mask: np.ndarray, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    out[:, dx:] = mask[:, :-dx]
    return out


@needs_tra
def test_shifted_prediction_scores_what_is_computed_by_hand(gt_export):
    out, frames = gt_export
    dx = 3
    preds = {k: translate(g, xoff=dx) for k, g in _preds(out, frames).items()}
    scores = evaluate(frames, preds, lineage=read_lineage(TRA), ctc=False)  # the IoU figures only
    by_hand_all = []
    for o in scores.objects:
        assert o.true_label == o.obj_id
        ious = []
        for t, lab in frames.items():
            truth = lab == o.obj_id
            if truth.any():
                moved = _shift(truth, dx)
                ious.append((truth & moved).sum() / (truth | moved).sum())
        assert o.mean_iou == pytest.approx(np.mean(ious), abs=1e-12)
        assert o.lost_frames == sum(v < 0.5 for v in ious)
        by_hand_all += ious
    assert scores.overall["mean_iou"] == pytest.approx(np.mean(by_hand_all), abs=1e-12)
    assert 0.5 < scores.overall["mean_iou"] < 0.95


@needs_tra
def test_swapped_identity_counts_a_switch_and_division_does_not(gt_export):
    out, frames = gt_export
    preds = _preds(out, frames)
    # labels 3 and 4 (sisters) both live in frames 1..9; swap them from frame 5 on
    swapped = {}
    for t in range(1, 10):
        a, b = preds[(3, t)], preds[(4, t)]
        swapped[(3, t)], swapped[(4, t)] = (a, b) if t < 5 else (b, a)
    # object 1 follows its mother (label 1, frame 0) into daughter 3 (frames 1..10): no switch
    swapped[(100, 0)] = preds[(1, 0)]
    for t in range(1, 11):
        swapped[(100, t)] = preds[(3, t)]
    scores = {o.obj_id: o for o in evaluate(frames, swapped, lineage=read_lineage(TRA), ctc=False).objects}
    for obj, lives in ((3, 10), (4, 9)):  # label 3 lives in frames 1..10, label 4 in 1..9
        s = scores[obj]
        assert s.true_label == obj and s.id_switches == 1 and s.wrong_id_frames == 5
        assert s.scored_frames == lives and s.lost_frames == lives - 4 and s.mean_iou == pytest.approx(4 / lives)
    d = scores[100]
    assert d.true_label == 1 and d.id_switches == 0 and d.wrong_id_frames == 0
    without_lineage = {o.obj_id: o for o in evaluate(frames, swapped, ctc=False).objects}
    assert without_lineage[100].id_switches == 1


def test_prompt_frame_lost_frames_and_unmatched_objects():
    shape = (20, 30)
    lab = np.zeros(shape, np.uint16)
    lab[2:8, 2:8] = 1
    lab[10:16, 10:20] = 2
    frames = {t: lab for t in range(4)}
    cell1 = mask_to_geometry(lab == 1, smoothing=0)
    cell2 = mask_to_geometry(lab == 2, smoothing=0)
    empty_spot = mask_to_geometry(np.pad(np.ones((2, 2), bool), ((17, 1), (26, 2))), smoothing=0)
    preds = {
        (0, 0): cell2,
        (0, 1): cell1,
        (0, 3): cell1,  # prompted at frame 1 on cell 1; frame 2 missing
        (1, 0): empty_spot,
        (1, 1): cell2,
    }
    scores = evaluate(frames, preds, prompt_frames={0: 1})
    in_memory = [Annotation(f"{o}-0-{t}-0", o, Location(0, t, 0), g) for (o, t), g in preds.items()]
    assert predictions_from_annotations(in_memory) == preds
    s0, s1 = scores.objects
    assert s0.true_label == 1 and s0.prompt_frame == 1
    assert s0.ious == {0: 0.0, 1: 1.0, 2: 0.0, 3: 1.0} and s0.lost_frames == 2 and s0.tracked_fraction == 0.5
    assert s0.id_switches == 1  # frame 0 followed cell 2, then cell 1: a jump between true objects
    assert s1.true_label is None and s1.scored_frames == 0 and s1.mean_iou == 0.0
    assert scores.overall["matched"] == 1 and scores.overall["span"] == [0, 3]
    table = scores_table(scores)
    per_object, ctc_table = table.split("\n\n")
    assert "mean_iou" in per_object and per_object.splitlines()[-1].split()[0] == "all"
    assert ctc_table.split()[:3] == ["TRA", "DET", "LNK"]  # traccuracy's measures below the IoU table
    json.dumps(scores.to_dict())


def test_sweep_table_lines_up_settings_and_scores():
    text = sweep_table(
        [
            ({"model": "tiny", "padding": 0}, {"mean_iou": 0.91234, "id_switches": 2}),
            ({"model": "small", "smoothing": 0.5}, {"mean_iou": 0.5, "lost_frames": 3}),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["model", "padding", "smoothing", "mean_iou", "id_switches", "lost_frames"]
    assert lines[2].split() == ["tiny", "0", "-", "0.912", "2", "-"]
    assert lines[3].split() == ["small", "-", "0.500", "0.500", "-", "3"]
    assert sweep_table([]) == "(no runs)"


@needs_tra
def test_ctc_export_round_trips_the_real_labels(tmp_path):
    result = labels_to_result(TRA)
    write_ctc(tmp_path, result)
    frames, tracks = read_ctc(tmp_path)
    truth = {t: tifffile.imread(p) for t, p in enumerate(sorted(TRA.glob("man_track*.tif")))}
    assert sorted(frames) == sorted(truth)
    ctc_to_obj = {}
    for label, begin, end, _parent in tracks:
        obj = int(truth[begin][frames[begin] == label][0])
        ctc_to_obj[label] = obj
        assert all((frames[t] == label).any() for t in range(begin, end + 1))
    # ground truth tracks have no gaps: the only parents are man_track.txt's divisions
    true_parent = read_lineage(TRA)
    for label, _b, _e, parent in tracks:
        assert (ctc_to_obj[parent] if parent else 0) == true_parent[ctc_to_obj[label]]
    for t, lab in truth.items():
        lut = np.zeros(max(ctc_to_obj) + 1, dtype=lab.dtype)
        lut[list(ctc_to_obj)] = list(ctc_to_obj.values())
        assert np.array_equal(lut[frames[t]], lab)
    assert frames[0].dtype == np.uint16
    assert (tmp_path / "mask000.tif").is_file() and (tmp_path / "res_track.txt").is_file()


def test_ctc_gaps_become_child_segments_and_polygons_rasterise(tmp_path):
    shape = (12, 16)
    m = np.zeros(shape, bool)
    m[2:6, 3:9] = True
    res = TrackResult()
    for t in (0, 1, 3):
        res.masks[(5, Location(0, t, 0))] = CompactMask.from_mask(m)
    res.masks[(2, Location(0, 1, 0))] = CompactMask.from_mask(np.roll(m, 5, axis=0))
    write_ctc(tmp_path / "a", res, n_frames=5)
    frames, tracks = read_ctc(tmp_path / "a")
    assert tracks == [(1, 1, 1, 0), (2, 0, 1, 0), (3, 3, 3, 2)]
    assert len(frames) == 5 and not frames[4].any() and (frames[3] == 3).sum() == m.sum()
    anns = annotations_from_result(res, smoothing=0)
    write_ctc_annotations(tmp_path / "b", anns, shape, n_frames=5)
    frames_b, tracks_b = read_ctc(tmp_path / "b")
    assert tracks_b == tracks and all(np.array_equal(frames[t], frames_b[t]) for t in frames)
    res.masks[(5, Location(0, 0, 1))] = CompactMask.from_mask(m)
    with pytest.raises(UserError, match="several Z slices"):
        write_ctc(tmp_path / "c", res)


@needs_tra
def test_evaluate_cli_prints_a_table_and_writes_json(gt_export, tmp_path, capsys):
    out, _ = gt_export
    js = tmp_path / "scores.json"
    assert main(["evaluate", "--gt", str(TRA), "--pred", str(out), "--json", str(js)]) == 0
    printed = capsys.readouterr().out
    assert "mean_iou" in printed and "62/62" in printed
    doc = json.loads(js.read_text())
    assert doc["overall"]["mean_iou"] == pytest.approx(1.0) and len(doc["objects"]) == 62


def test_evaluate_cli_errors_exit_2(tmp_path, capsys):
    lab = tmp_path / "gt.tif"
    tifffile.imwrite(lab, np.ones((2, 16, 16), np.uint16))
    (tmp_path / "pred").mkdir()
    assert main(["evaluate", "--gt", str(lab), "--pred", str(tmp_path / "pred")]) == 2
    assert "annotations.geojson" in capsys.readouterr().err
    (tmp_path / "pred" / "annotations.geojson").write_text("{broken")
    assert main(["evaluate", "--gt", str(lab), "--pred", str(tmp_path / "pred")]) == 2
    assert "not a GeoJSON" in capsys.readouterr().err
    assert main(["evaluate", "--gt", str(tmp_path / "nope"), "--pred", str(tmp_path / "pred")]) == 2
    assert main(["evaluate", "--gt", str(lab), "--pred", str(tmp_path / "pred"), "--prompt-frame", "x"]) == 2


def test_huge_label_values_are_scored_like_small_ones():
    lab = np.zeros((20, 30), np.uint32)
    lab[2:8, 2:8] = 4_000_000_000
    lab[10:16, 10:20] = 7
    frames = {0: lab, 1: lab}
    cell = mask_to_geometry(lab == 4_000_000_000, smoothing=0)
    other = mask_to_geometry(lab == 7, smoothing=0)
    scores = evaluate(frames, {(0, 0): cell, (0, 1): other}, lineage={7: 4_000_000_000})
    s = scores.objects[0]
    assert s.true_label == 4_000_000_000 and s.ious == {0: 1.0, 1: 0.0}
    assert s.id_switches == 0  # 7 is a daughter of the huge label in this lineage
