"""Lineage quality on the bacteria ground truth, scored by traccuracy (TRA, LNK, divisions).

    .venv/bin/python -m bench.lineage          # ~2-3 min on an idle 2-core CPU

1. Round trip: ground truth -> `convert --ctc` -> traccuracy against the ground truth.
2. Oracle tracking (tracking/standin.py: the true label under each prompt plus its descendants,
   i.e. a tracker blind to divisions) through the real `track` path, prompted at frame 0 and at
   the first frame of cells that are nobody's daughter, with division detection off and on.
Prints one table per route and a last JSON line with every figure.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bacteria_ctc"
KEYS = ("TRA", "DET", "LNK", "division_precision", "division_recall", "division_f1", "CHOTA")


def _row(name: str, ov: dict, seconds: float) -> str:
    cells = [f"{ov[k]:.3f}" if ov[k] is not None else "-" for k in KEYS]
    return f"| {name} | " + " | ".join(cells) + f" | {ov['divisions_found']} / {ov['divisions_true']} | {seconds:.0f} |"


def main() -> int:
    from sam2web import ctc, evaluate, geometry, links
    from sam2web.cli import main as cli
    from sam2web.lineage import track_lineage
    from sam2web.tracking.standin import OracleTracker
    from sam2web.types import Location, Prompt, Sequence

    if not (DATA / "TRA" / "man_track.txt").exists():
        print(f"no data at {DATA}", file=sys.stderr)
        return 2
    frames, lineage = evaluate.read_truth(DATA / "TRA")
    figures: dict[str, dict] = {}
    print("| route | " + " | ".join(KEYS) + " | divisions found | s |")
    print("|---" * (len(KEYS) + 3) + "|")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cli(["convert", str(DATA / "TRA"), "--out", tmp])
        preds = evaluate.read_predictions(tmp, next(iter(frames.values())).shape)
        ov = evaluate.evaluate(frames, preds, None, lineage, evaluate.read_prediction_lineage(tmp)).overall
        figures["round_trip"] = {k: ov[k] for k in (*KEYS, "divisions_found", "divisions_true")}
        print(_row("ground truth -> convert", ov, time.perf_counter() - t0))
    gt = ctc.labels_to_result(DATA / "TRA")
    prompts = []
    for lab, info in gt.objects.items():
        first = min(loc.time for o, loc in gt.masks if o == lab)
        if first == 0 or info.parent is None:
            r0, c0, r1, c1 = gt.masks[(lab, Location(0, first, 0))].bbox
            prompts.append(Prompt(lab, Location(0, first, 0), box=(c0, r0, c1, r1)))
    n = len(frames)
    h, w = next(iter(frames.values())).shape

    class _Stack:
        sizes = {"T": n, "Y": h, "X": w}

    seq = Sequence(tuple(Location(0, t, 0) for t in range(n)), "time")
    for detect in (False, True):
        t0 = time.perf_counter()
        res = track_lineage(
            _Stack(),
            [seq],
            prompts,
            OracleTracker(DATA / "TRA"),
            lambda loc: np.zeros((h, w, 3), np.uint8),
            detect=detect,
        )
        anns = geometry.annotations_from_result(res, smoothing=0)
        preds = evaluate.predictions_from_annotations(anns)
        ov = evaluate.evaluate(frames, preds, None, lineage, links.parents_of(anns)).overall
        name = f"oracle, detection {'on' if detect else 'off'}"
        figures[name] = {k: ov[k] for k in (*KEYS, "divisions_found", "divisions_true")}
        print(_row(name, ov, time.perf_counter() - t0))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
