"""Score exported tracks against ground-truth label images ("quick QA of tracking settings").

The ONE scoring function the CLI (`evaluate`, `sweep`) and the app's QA call. Public functions:

    evaluate(gt_frames, predictions, prompt_frames=None, lineage=None, pred_lineage=None, ctc=True) -> Scores
    evaluate_paths(gt, pred, across="time", xy=0, prompt_frames=None) -> Scores
    ctc_measures(gt_frames, lineage, predictions, pred_lineage) -> {TRA, DET, LNK, division_*, CHOTA}
    read_predictions(pred, shape, across="time", xy=0) -> dict[(obj_id, frame), geometry]
    read_prediction_lineage(pred) -> {obj_id: parent obj_id}   from GeoJSON parent_object_id
    predictions_from_annotations(annotations, across="time", xy=0) -> the same, from memory (the app)
    read_truth(gt, across="time", xy=0) -> ({frame: labels}, lineage)
    scores_table(scores) -> str;  Scores.to_dict() -> JSON-safe dict
    sweep_table(rows: list[(settings dict, scores dict)]) -> str   compare settings in one table

Definitions (all per predicted object; a "frame" is an index along the tracking axis):

- Matching: each predicted object is assigned the true object (GT label) with the highest IoU at
  its prompt frame: ``prompt_frames[obj]`` if given, else the object's first predicted frame.
  An object overlapping no true object there is "unmatched" and scores 0 everywhere it is scored.
- Scored frames: frames inside the run's span (first to last frame that has any prediction) where
  the assigned true object exists in the ground truth.
- IoU per scored frame: |pred ∩ true| / |pred ∪ true|, 0 when the object has no polygon there.
- mean_iou: the mean over scored frames; tracked_fraction: the share of scored frames with
  IoU >= 0.5; lost_frames: scored frames with IoU < 0.5 (no polygon, or one on the wrong spot).
- Followed object: at each frame where the object has a polygon, the true object it overlaps with
  IoU >= 0.5, if any. id_switches: how many times the followed object changes from one followed
  frame to the next (starting from the assigned one), not counting a change to a daughter of the
  previous one (a division in the lineage file is the same track, not a switch), counted walking
  from the prompt frame forward and from it backward. wrong_id_frames: frames whose followed object
  is neither the assigned one nor one of its ancestors or descendants.
- Overall: the same over all object-frames pooled (mean_iou, tracked_fraction), sums of
  lost_frames and id_switches, and the mean of the per-object mean IoUs.
- The field's measures, computed by traccuracy (not re-implemented here) on both sides written as
  CTC results over every ground-truth frame: TRA, DET, LNK (CTC AOGM-based), division_precision /
  division_recall / division_f1 (a division must be at the right frame: frame buffer 0; matched
  one-to-one at IoU >= 0.5, as traccuracy's division metrics require) and CHOTA (CTC matching).
  Predicted lineage (``pred_lineage``: daughter obj_id -> mother obj_id) makes divisions; without
  it a tracker that follows a cell into one daughter scores LNK/division errors, as it should.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sam2web.errors import DECODE_ERRORS, UserError
from sam2web.geometry import rasterize

IOU_OK = 0.5


@dataclass
class ObjectScore:
    obj_id: int
    true_label: int | None
    prompt_frame: int
    scored_frames: int
    mean_iou: float
    tracked_fraction: float
    lost_frames: int
    id_switches: int
    wrong_id_frames: int
    ious: dict[int, float] = field(default_factory=dict)


@dataclass
class Scores:
    objects: list[ObjectScore]
    overall: dict

    def to_dict(self) -> dict:
        return {
            "overall": self.overall,
            "objects": [{**asdict(o), "ious": {str(k): v for k, v in o.ious.items()}} for o in self.objects],
        }


class _Truth:
    """Per-frame GT labels with each label's area, for IoU against every label in one bincount."""

    def __init__(self, frames: dict[int, np.ndarray]) -> None:
        self.back: np.ndarray | None = None
        if frames and max(int(a.max()) for a in frames.values()) > 1_000_000:
            # Sparse huge label values (hashes, random ids): number them 1..n first, so the
            # per-label counts stay small arrays.
            values = np.unique(np.concatenate([np.unique(a) for a in frames.values()] + [np.zeros(1, np.int64)]))
            frames = {f: np.searchsorted(values, a).astype(np.int64) for f, a in frames.items()}
            self.back = values
        self.frames = frames
        self.areas: dict[int, np.ndarray] = {f: np.bincount(a.ravel().astype(np.int64)) for f, a in frames.items()}

    def label(self, index: int) -> int:
        """The label as the user's files have it."""
        return int(self.back[index]) if self.back is not None else int(index)

    def has(self, frame: int, label: int) -> bool:
        areas = self.areas.get(frame)
        return areas is not None and 0 < label < len(areas) and areas[label] > 0

    def ious(self, frame: int, crop: np.ndarray, r0: int, c0: int) -> dict[int, float]:
        """IoU of a predicted crop with every true label it overlaps at this frame."""
        labels = self.frames.get(frame)
        if labels is None or crop.size == 0:
            return {}
        under = labels[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]][crop].astype(np.int64)
        inter = np.bincount(under)
        area_p = int(crop.sum())
        areas = self.areas[frame]
        return {int(l): float(inter[l]) / float(area_p + areas[l] - inter[l]) for l in np.flatnonzero(inter) if l != 0}


def _descendants(lineage: dict[int, int]) -> dict[int, set[int]]:
    children: dict[int, list[int]] = {}
    for child, parent in lineage.items():
        if parent:
            children.setdefault(parent, []).append(child)
    out: dict[int, set[int]] = {}
    for label in set(lineage) | set(children):
        seen: set[int] = set()
        todo = list(children.get(label, []))
        while todo:
            c = todo.pop()
            if c not in seen:
                seen.add(c)
                todo.extend(children.get(c, []))
        out[label] = seen
    return out


CTC_KEYS = ("TRA", "DET", "LNK", "division_precision", "division_recall", "division_f1", "CHOTA")


def ctc_measures(
    gt_frames: dict[int, np.ndarray],
    lineage: dict[int, int] | None,
    predictions: dict[tuple[int, int], object],
    pred_lineage: dict[int, int] | None = None,
) -> dict[str, float | int | None]:
    """TRA, DET, LNK, division precision/recall/F1 and CHOTA from traccuracy (None where undefined).

    Both sides go through sam2web's CTC writer (so any label stack works as ground truth, and
    gaps/overlaps become valid CTC segments), then traccuracy's own loader, CTC matcher and metrics.
    """
    import contextlib
    import io
    import logging
    import tempfile
    import warnings

    from traccuracy import run_metrics
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher, IOUMatcher
    from traccuracy.metrics import CHOTAMetric, CTCMetrics, DivisionMetrics

    from sam2web.ctc import masks_from_labels, paint_geometry, paint_mask, write_ctc_objects
    from sam2web.types import Location

    shape = next(iter(gt_frames.values())).shape
    n_frames = max(max(gt_frames), max((f for _, f in predictions), default=0)) + 1
    truth: dict[int, dict[int, object]] = {}
    for f, labels in gt_frames.items():
        for (label, _), cm in masks_from_labels(np.asarray(labels), Location(0, f, 0)).items():
            truth.setdefault(label, {})[f] = cm
    pred: dict[int, dict[int, object]] = {}
    for (obj, f), geom in predictions.items():
        pred.setdefault(obj, {})[f] = geom
    gt_parents = {c: p for c, p in (lineage or {}).items() if p}
    logging.getLogger("traccuracy").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="sam2web-ctc-") as tmp:
        write_ctc_objects(Path(tmp) / "gt", truth, shape, n_frames, paint_mask, gt_parents)
        write_ctc_objects(Path(tmp) / "pred", pred, shape, n_frames, paint_geometry, pred_lineage or {})
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # traccuracy's progress bars and "already calculated" notes
            gt = load_ctc_data(str(Path(tmp) / "gt"), str(Path(tmp) / "gt" / "res_track.txt"))
            pr = load_ctc_data(str(Path(tmp) / "pred"), str(Path(tmp) / "pred" / "res_track.txt"))
            results, _ = run_metrics(gt, pr, CTCMatcher(), [CTCMetrics(), CHOTAMetric()])
            # Division metrics need a one-to-one matching (traccuracy refuses CTC's many-to-one).
            divisions, _ = run_metrics(gt, pr, IOUMatcher(iou_threshold=0.5, one_to_one=True), [DivisionMetrics()])
            results = [*results, *divisions]
    found: dict[str, float] = {}
    for r in results:
        found.update(r["results"])
        found.update(r["results"].get("Frame Buffer 0", {}))
    names = {
        "TRA": "TRA",
        "DET": "DET",
        "LNK": "LNK",
        "division_precision": "Division Precision",
        "division_recall": "Division Recall",
        "division_f1": "Division F1",
        "CHOTA": "CHOTA",
    }
    out: dict = {}
    for k, v in names.items():  # undefined (e.g. precision with no predicted division) -> None, valid JSON
        value = found.get(v)
        out[k] = None if value is None or math.isnan(float(value)) else float(value)
    out["divisions_true"] = int(found.get("Total GT Divisions", 0))
    out["divisions_found"] = int(found.get("Total Predicted Divisions", 0))
    return out


def evaluate(
    gt_frames: dict[int, np.ndarray],
    predictions: dict[tuple[int, int], object],
    prompt_frames: dict[int, int] | None = None,
    lineage: dict[int, int] | None = None,
    pred_lineage: dict[int, int] | None = None,
    ctc: bool = True,
) -> Scores:
    """Score predictions ``{(obj_id, frame): polygon}`` against ``{frame: label image}`` (see module doc).

    ``ctc=False`` skips traccuracy's measures (the per-object IoU figures only).
    """
    if not gt_frames:
        raise UserError("The ground truth has no frames; give label images.")
    original_lineage = lineage
    shape = next(iter(gt_frames.values())).shape
    truth = _Truth(gt_frames)
    lineage = lineage or {}
    if truth.back is not None:  # lineage in the compacted label numbering
        present = {int(v): i for i, v in enumerate(truth.back)}
        lineage = {present[c]: present.get(p, 0) for c, p in lineage.items() if c in present}
    desc = _descendants(lineage)
    crops = {}
    for key, geom in predictions.items():
        crops[key] = rasterize(geom, shape)
    if not crops:
        raise UserError("The predictions have no polygons; export a run first.")
    span_lo = min(f for _, f in crops)
    span_hi = max(f for _, f in crops)
    gt_in_span = sorted(f for f in gt_frames if span_lo <= f <= span_hi)
    objects = sorted({o for o, _ in crops})
    results: list[ObjectScore] = []
    for obj in objects:
        frames = sorted(f for o, f in crops if o == obj)
        pf = (prompt_frames or {}).get(obj, frames[0])
        match = truth.ious(pf, *crops[(obj, pf)]) if (obj, pf) in crops else {}
        assigned = max(match, key=match.get) if match else None
        assigned_label = truth.label(assigned) if assigned is not None else None
        ok_ids = ({assigned} | desc.get(assigned, set())) if assigned is not None else set()
        ious: dict[int, float] = {}
        if assigned is not None:
            for f in gt_in_span:
                if truth.has(f, assigned):
                    ious[f] = truth.ious(f, *crops[(obj, f)]).get(assigned, 0.0) if (obj, f) in crops else 0.0
        switches = wrong = 0
        # Walk away from the prompt frame both ways, so a backward track is judged like a forward one.
        for walk in ([f for f in frames if f >= pf], [f for f in reversed(frames) if f < pf]):
            followed_prev = assigned
            for f in walk:
                if f not in gt_frames:
                    continue
                overl = truth.ious(f, *crops[(obj, f)])
                best = max(overl, key=overl.get) if overl else None
                if best is None or overl[best] < IOU_OK:
                    continue
                if best not in ok_ids and assigned not in desc.get(best, set()):
                    wrong += 1
                if (
                    followed_prev is not None
                    and best != followed_prev
                    and best not in desc.get(followed_prev, set())
                    and followed_prev not in desc.get(best, set())
                ):
                    switches += 1
                followed_prev = best
        n = len(ious)
        good = sum(1 for v in ious.values() if v >= IOU_OK)
        results.append(
            ObjectScore(
                obj_id=int(obj),
                true_label=assigned_label,
                prompt_frame=int(pf),
                scored_frames=n,
                mean_iou=float(np.mean(list(ious.values()))) if n else 0.0,
                tracked_fraction=good / n if n else 0.0,
                lost_frames=n - good,
                id_switches=switches,
                wrong_id_frames=wrong,
                ious=ious,
            )
        )
    pooled = [v for o in results for v in o.ious.values()]
    overall = {
        "objects": len(results),
        "matched": sum(1 for o in results if o.true_label is not None),
        "scored_frames": len(pooled),
        "mean_iou": float(np.mean(pooled)) if pooled else 0.0,
        "mean_object_iou": float(np.mean([o.mean_iou for o in results])) if results else 0.0,
        "tracked_fraction": float(np.mean([v >= IOU_OK for v in pooled])) if pooled else 0.0,
        "lost_frames": int(sum(o.lost_frames for o in results)),
        "id_switches": int(sum(o.id_switches for o in results)),
        "wrong_id_frames": int(sum(o.wrong_id_frames for o in results)),
        "span": [int(span_lo), int(span_hi)],
    }
    if ctc:
        overall.update(ctc_measures(gt_frames, original_lineage, predictions, pred_lineage))
    return Scores(results, overall)


# ---------------------------------------------------------------------------------------- files
def read_predictions(
    pred: str | Path, shape: tuple[int, int], across: str = "time", xy: int = 0
) -> dict[tuple[int, int], object]:
    """Polygons of an export folder (its annotations.geojson) as {(object_id, frame): geometry}."""
    from shapely.geometry import shape as to_shape

    path = Path(pred)
    if path.is_dir():
        path = path / "annotations.geojson"
    if not path.is_file():
        raise UserError(f"{path} does not exist; give an export folder with annotations.geojson in it.")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        features = doc["features"]
        if not isinstance(features, list):
            raise TypeError("features is not a list")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise UserError(
            f"{path.name} is not a GeoJSON FeatureCollection ({str(err)[:60]}); export the run again."
        ) from None
    out: dict[tuple[int, int], object] = {}
    for i, feat in enumerate(features):
        try:
            props = feat["properties"]
            loc_xy = int(props.get("XY", 0))
            frame = int(props["Time"] if across == "time" else props["Z"])
            obj = int(props["object_id"])
            geom = to_shape(feat["geometry"])
        except (*DECODE_ERRORS, TypeError, AttributeError) as err:  # a malformed feature: edited or damaged
            raise UserError(
                f"Feature {i + 1} of {path.name} lacks object_id/XY/Time/Z or a polygon "
                f"({str(err)[:50]}); export the run again."
            ) from None
        if loc_xy != xy or geom.is_empty:
            continue
        if (obj, frame) in out:
            out[(obj, frame)] = out[(obj, frame)].union(geom)
        else:
            out[(obj, frame)] = geom
    return out


def read_prediction_lineage(pred: str | Path) -> dict[int, int]:
    """Daughter object_id -> mother object_id from an export's GeoJSON ``parent_object_id``."""
    path = Path(pred)
    if path.is_dir():
        path = path / "annotations.geojson"
    try:
        features = json.loads(path.read_text(encoding="utf-8"))["features"]
        return {
            int(f["properties"]["object_id"]): int(f["properties"]["parent_object_id"])
            for f in features
            if f.get("properties", {}).get("parent_object_id") is not None
        }
    except (OSError, ValueError, KeyError, TypeError):  # read_predictions has already said what is wrong
        return {}


def predictions_from_annotations(annotations, across: str = "time", xy: int = 0) -> dict[tuple[int, int], object]:
    """In-memory Annotations (e.g. the Results page's current polygons) as evaluate()'s predictions."""
    out: dict[tuple[int, int], object] = {}
    for a in annotations:
        if a.loc.xy != xy or a.geometry is None or a.geometry.is_empty:
            continue
        key = (int(a.obj_id), int(a.loc.time if across == "time" else a.loc.z))
        out[key] = out[key].union(a.geometry) if key in out else a.geometry
    return out


def read_truth(
    gt: str | Path | list, across: str = "time", xy: int = 0
) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    """Ground-truth label frames {frame: labels} (CTC TRA/SEG folder, files or a stack) + lineage."""
    from sam2web.ctc import label_frame, open_labels, read_lineage

    stack, locs = open_labels(gt, across)
    frames: dict[int, np.ndarray] = {}
    with stack:  # the label file is closed once read
        for loc in locs:
            if loc.xy != xy:
                continue
            f = loc.time if across == "time" else loc.z
            frames[f] = np.asarray(label_frame(stack, loc))
    first = gt[0] if isinstance(gt, (list, tuple)) else gt
    lineage = read_lineage(first) if Path(first).exists() else {}
    return frames, lineage


def evaluate_paths(gt, pred, across: str = "time", xy: int = 0, prompt_frames: dict[int, int] | None = None) -> Scores:
    """`python -m sam2web evaluate`: read both sides from disk and score them."""
    frames, lineage = read_truth(gt, across, xy)
    shape = next(iter(frames.values())).shape
    preds = read_predictions(pred, shape, across, xy)
    return evaluate(frames, preds, prompt_frames, lineage, read_prediction_lineage(pred))


# --------------------------------------------------------------------------------------- tables
def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    if isinstance(v, (list, tuple)):
        return "-".join(str(x) for x in v)
    return str(v)


def _table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def scores_table(scores: Scores) -> str:
    """Per-object rows then an overall row, as plain text (the CLI's output)."""
    header = ["object", "true", "prompt", "frames", "mean_iou", "tracked", "lost", "switches"]
    rows = [
        [
            o.obj_id,
            o.true_label,
            o.prompt_frame,
            o.scored_frames,
            o.mean_iou,
            o.tracked_fraction,
            o.lost_frames,
            o.id_switches,
        ]
        for o in scores.objects
    ]
    ov = scores.overall
    rows.append(
        [
            "all",
            f"{ov['matched']}/{ov['objects']}",
            "",
            ov["scored_frames"],
            ov["mean_iou"],
            ov["tracked_fraction"],
            ov["lost_frames"],
            ov["id_switches"],
        ]
    )
    table = _table(header, rows)
    if "TRA" in ov:
        ctc_keys = [k for k in CTC_KEYS if k in ov] + ["divisions_found", "divisions_true"]
        table += "\n\n" + _table(ctc_keys, [[ov.get(k) for k in ctc_keys]])
    return table


def sweep_table(rows: list[tuple[dict, dict]]) -> str:
    """One line per run: its settings, then its overall scores (no pandas needed).

    Columns are the union of the keys, settings first, in order of first appearance.
    """
    if not rows:
        return "(no runs)"
    s_keys: list[str] = []
    m_keys: list[str] = []
    for settings, scores in rows:
        s_keys += [k for k in settings if k not in s_keys]
        m_keys += [k for k in scores if k not in m_keys and k not in s_keys]
    body = [[settings.get(k) for k in s_keys] + [scores.get(k) for k in m_keys] for settings, scores in rows]
    return _table(s_keys + m_keys, body)
