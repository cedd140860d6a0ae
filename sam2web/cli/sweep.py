"""Compare tracking settings on the same prompts against ground truth, in one table.

Takes every option of `track`, plus --gt and comma-separated lists of the settings to compare.
Each model x direction is tracked once; padding and smoothing are then redrawn from the kept
masks without the model. Each combination is exported into its own folder under DIR
(e.g. DIR/tiny-forward-pad0-smooth0.3/) and scored like `evaluate` (IoU figures and traccuracy's TRA, DET,
LNK, division precision/recall/F1, CHOTA; divisions tracked on, see --no-divisions); the table goes to stdout and
every number to DIR/sweep.json.

examples:
  python -m sam2web sweep frames/ --prompts boxes.geojson --gt frames_GT/TRA --out sweep/ \\
      --models tiny,small --directions forward,both --paddings 0,1 --smoothings 0.3,1

exit status: 0 done, 2 a problem with the input (one sentence on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sam2web import params as params_mod
from sam2web.cli import runner
from sam2web.cli import track as cli_track
from sam2web.errors import UserError
from sam2web.params import TrackParams
from sam2web.service import runs
from sam2web.types import Location


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli_track.add_arguments(parser)
    sweep = parser.add_argument_group("what to compare (comma-separated; default: the single value above)")
    sweep.add_argument(
        "--gt",
        required=True,
        nargs="+",
        metavar="GT",
        help="ground-truth label images: a CTC TRA/SEG folder, files, or a label stack",
    )
    sweep.add_argument("--models", default=None, help="e.g. tiny,small")
    sweep.add_argument("--directions", default=None, help="e.g. forward,both")
    sweep.add_argument("--paddings", default=None, help="e.g. 0,1,-1")
    sweep.add_argument("--smoothings", default=None, help="e.g. 0.3,1")


def _choices(text: str | None, default, kind, allowed=None, flag: str = "") -> list:
    if text is None:
        return [default]
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            value = kind(part)
        except ValueError:
            raise UserError(
                f'{flag} "{part}" is not a {kind.__name__}; write a comma-separated list such as {flag} {default}.'
            ) from None
        if allowed is not None and value not in allowed:
            raise UserError(f'{flag} "{part}" is not one of {", ".join(allowed)}.')
        values.append(value)
    if not values:
        raise UserError(f"{flag} is empty; give at least one value.")
    return values


def run(args: argparse.Namespace) -> int:
    models = _choices(args.models, args.model, str, list(params_mod.all_models()), "--models")
    directions = _choices(args.directions, args.direction, str, list(params_mod.DIRECTIONS), "--directions")
    paddings = _choices(args.paddings, args.padding, float, None, "--paddings")
    smoothings = _choices(args.smoothings, args.smoothing, float, None, "--smoothings")
    base = TrackParams.from_args(args)
    for padding in paddings:
        for smoothing in smoothings:
            base.with_(padding=padding, smoothing=smoothing).validate(flags=True)
    grid = {(m, d): base.with_(model=m, direction=d) for m in models for d in directions}
    stack, display, prompts = cli_track.load_inputs(args, base)
    try:
        for params in grid.values():
            runs.resolve(stack, params, prompts, Location(0, 0, 0))  # every input error before any run
        return _sweep(args, stack, display, prompts, grid, paddings, smoothings)
    finally:
        stack.close()  # a file left open is a bug (ResourceWarning)


def _sweep(args, stack, display, prompts, grid, paddings, smoothings) -> int:
    """Each model x direction is one run of the service (all submitted at once); padding and smoothing redraw."""
    from sam2web import evaluate, export, geometry, links

    gt = [Path(p) for p in args.gt]
    first = next(iter(grid.values()))
    xy = runs.resolve(stack, first, prompts, Location(0, 0, 0)).sequences[0].frames[0].xy
    truth, lineage = evaluate.read_truth(gt if len(gt) > 1 else gt[0], args.across, xy)
    out = Path(args.out)
    rows: list[tuple[dict, dict]] = []
    axis = "time" if args.across == "time" else "z"
    prompt_frames: dict[int, int] = {}
    for p in prompts:
        frame = getattr(p.loc, axis)
        prompt_frames[p.obj_id] = min(frame, prompt_frames.get(p.obj_id, frame))
    done = runner.track_runs(args, stack, grid, prompts, display)
    for (size, direction), (result, _info, _run_id) in done.items():
        for padding in paddings:
            for smoothing in smoothings:
                settings = {"model": size, "direction": direction, "padding": padding, "smoothing": smoothing}
                anns = geometry.annotations_from_result(result, padding=padding, smoothing=smoothing, keep=args.keep)
                conns = links.connect(anns, enabled=args.connect)
                name = f"{size}-{direction}-pad{padding:g}-smooth{smoothing:g}"
                export.write_exports(out / name, anns, conns, random_weights=result.random_weights)
                preds = evaluate.predictions_from_annotations(anns, args.across, xy)
                scores = evaluate.evaluate(truth, preds, prompt_frames, lineage, links.parents_of(anns))
                rows.append((settings, scores.overall))
                print(f"scored {name}: mean IoU {scores.overall.get('mean_iou', float('nan')):.3f}", file=sys.stderr)
    print(evaluate.sweep_table(rows))
    export.atomic_write(
        out / "sweep.json", json.dumps([{"settings": s, "scores": sc} for s, sc in rows], indent=1).encode()
    )
    return 0
