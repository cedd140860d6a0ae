"""Score exported tracks against ground-truth label images (quick QA of tracking settings).

GT is a folder of per-frame label images (the Cell Tracking Challenge TRA or SEG layout; a
man_track.txt beside them marks divisions, so following a daughter is not an identity switch),
several label files, or one label stack. PRED is an export folder (its annotations.geojson).
Each predicted object is matched to the true object it overlaps most at its prompt frame (its
first frame unless --prompt-frame says otherwise), then scored over the frames the run covered:
mean IoU, the share of frames with IoU >= 0.5, frames lost, and identity switches. Below that
table, the field's measures computed by traccuracy over every ground-truth frame: TRA, DET, LNK,
division precision/recall/F1 (the export's parent_object_id makes its divisions) and CHOTA. The
tables go to stdout; --json also writes every number (per object and per frame) to a file.

examples:
  python -m sam2web evaluate --gt ../shared/data/bacteria_ctc/TRA --pred results/
  python -m sam2web evaluate --gt labels.tif --across z --pred results/ --json scores.json

exit status: 0 done, 2 a problem with the input (one sentence on stderr).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sam2web.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gt",
        required=True,
        nargs="+",
        metavar="GT",
        help="ground-truth label images: a CTC TRA/SEG folder, files, or a label stack",
    )
    parser.add_argument("--pred", required=True, metavar="DIR", help="an export folder (annotations.geojson)")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the scores as JSON")
    parser.add_argument(
        "--across",
        choices=("time", "z"),
        default="time",
        help="the tracking axis: time points or Z slices (default: time)",
    )
    parser.add_argument("--xy", type=int, default=1, help="the position to score, 1-based (default: 1)")
    parser.add_argument(
        "--prompt-frame",
        action="append",
        default=[],
        metavar="OBJ=FRAME",
        help="0-based frame where object OBJ was prompted (repeatable); default: its first frame",
    )


def _prompt_frames(items: list[str]) -> dict[int, int]:
    out: dict[int, int] = {}
    for item in items:
        obj, sep, frame = item.partition("=")
        if not sep or not obj.strip().isdigit() or not frame.strip().isdigit():
            raise UserError(f"--prompt-frame {item!r} is not OBJ=FRAME; write e.g. --prompt-frame 3=0.")
        out[int(obj)] = int(frame)
    return out


def run(args: argparse.Namespace) -> int:
    from sam2web.evaluate import evaluate_paths, scores_table

    if args.xy < 1:
        raise UserError(f"--xy {args.xy} is not a position; positions start at 1.")
    gt = [Path(p) for p in args.gt]
    scores = evaluate_paths(
        gt if len(gt) > 1 else gt[0],
        Path(args.pred),
        across=args.across,
        xy=args.xy - 1,
        prompt_frames=_prompt_frames(args.prompt_frame),
    )
    print(scores_table(scores))
    if args.json:
        from sam2web.export import atomic_write

        try:
            atomic_write(Path(args.json), json.dumps(scores.to_dict(), indent=1).encode())
        except OSError as err:
            raise UserError(f"Cannot write {args.json} ({err.strerror}); choose another path.") from None
    return 0
