"""Track prompted objects through a stack with SAM2's video predictor, without a browser.

Reads a stack (TIFF / OME-TIFF / ImageJ hyperstack, a folder or list of per-frame images),
prompts (our GeoJSON, the platform's annotation JSON, or a label image with --prompt-loc), tracks
every prompted object across Time or Z, and writes the four export files into DIR:
annotations.geojson, annotations.csv, connections.csv, nimbus.json. Nothing half-written is ever
left in DIR: the files are written next to it first and moved in only when all are complete.

Ranges are 1-based, as in the app: "1-3, 5-8" or "all". Locations in the output are 0-based.
The checkpoint sam2.1_hiera_<model>.pt is looked up in --checkpoint, then in the folder named by
SAM2WEB_CHECKPOINTS, then in ~/.cache/sam2web/checkpoints (downloaded there when missing).

examples:
  python -m sam2web track movie.tif --prompts boxes.geojson --out results/
  python -m sam2web track frames/ --prompts nimbus.json --tags cell --time 1-30 \\
      --direction both --model tiny --image-size 512 --out results/
  python -m sam2web track stack.ome.tif --prompts labels.tif --prompt-loc 1,1,20 \\
      --across z --direction both --padding 1 --smoothing 0.5 --out results/
  SAM2WEB_RANDOM_WEIGHTS=1 python -m sam2web track movie.tif --prompts boxes.geojson \\
      --model tiny --out /tmp/plumbing-only   # no checkpoint: masks are meaningless

exit status: 0 done, 2 a problem with the input (one sentence on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from sam2web import exporters
from sam2web.cli import runner
from sam2web.errors import UserError
from sam2web.params import TrackParams
from sam2web.service import runs
from sam2web.types import Location


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stack", nargs="+", metavar="STACK", help="image file(s) or one folder of per-frame images")
    parser.add_argument(
        "--prompts",
        required=True,
        metavar="FILE",
        help="GeoJSON, platform annotation JSON, or a label image (with --prompt-loc)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the four export files")
    where = parser.add_argument_group("where the prompts and frames are")
    where.add_argument(
        "--prompt-loc",
        metavar="XY,T,Z",
        default=None,
        help="1-based location of a label-image prompt (and of GeoJSON features without one), e.g. 1,1,1",
    )
    where.add_argument(
        "--pages-as",
        choices=("time", "z"),
        default="time",
        help="what the pages of a plain multi-page TIFF or the files of a folder are (default: time)",
    )
    look = parser.add_argument_group("frames given to the model")
    look.add_argument(
        "--channel",
        type=int,
        default=None,
        metavar="C",
        help="1-based channel to track on, shown in gray (default: the composite of all channels)",
    )
    look.add_argument(
        "--contrast",
        choices=("percentile", "absolute"),
        default="percentile",
        help="how --low/--high are read (default: percentile)",
    )
    look.add_argument("--low", type=float, default=None, help="low contrast limit (default 1.0 percentile)")
    look.add_argument("--high", type=float, default=None, help="high contrast limit (default 99.8 percentile)")
    TrackParams.add_arguments(parser.add_argument_group("tracking (the same parameters as the app's Track page)"))
    exporters.add_cli_flags(parser.add_argument_group("outputs (the four tables are always written)"))
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    runner.add_arguments(parser)


def parse_location(text: str, stack) -> Location:
    """ "XY,T,Z" 1-based -> a 0-based Location inside the stack."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",")]
    try:
        xy, t, z = (int(p) for p in parts)
    except ValueError:
        raise UserError(f'--prompt-loc "{text}" is not three 1-based numbers XY,T,Z; write it like 1,1,1.') from None
    loc = Location(xy - 1, t - 1, z - 1)
    for value, key, label in ((xy, "XY", "XY"), (t, "T", "Time"), (z, "Z", "Z")):
        if not 1 <= value <= stack.sizes[key]:
            raise UserError(
                f"--prompt-loc {label} {value} is outside the stack: choose {label} from 1 to {stack.sizes[key]}."
            )
    return loc


def _display(stack, args):
    from sam2web.stack.display import ChannelDisplay, DisplaySettings

    if args.channel is None:
        settings = DisplaySettings.default(stack)
        if args.low is None and args.high is None and args.contrast == "percentile":
            return settings
        for ch in settings.channels:
            ch.mode = args.contrast
            ch.low = args.low if args.low is not None else ch.low
            ch.high = args.high if args.high is not None else ch.high
        return settings
    n_c = stack.sizes["C"]
    if not 1 <= args.channel <= n_c:
        raise UserError(f"--channel {args.channel} does not exist: choose a channel from 1 to {n_c}.")
    ch = ChannelDisplay(
        args.channel - 1,
        "#ffffff",
        True,
        args.contrast,
        1.0 if args.low is None else args.low,
        99.8 if args.high is None else args.high,
    )
    return DisplaySettings([ch])


def _prepare_out(out: Path) -> Path:
    """A hidden temporary folder beside DIR (same file system, so moving it in is atomic).

    Its name carries this process's id: folders left by a track that was killed (SIGKILL cannot
    clean up) are removed by the next track writing beside the same DIR.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose a folder.")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".{out.name}.*.tmp"):
            pid = stale.name[len(out.name) + 2 :].split(".", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=parent))
    except OSError as err:
        raise UserError(f"Cannot write next to {out} ({err.strerror}); choose a writable --out folder.") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _move_into(tmp: Path, out: Path) -> list[Path]:
    """The finished exports into DIR: one rename of the whole folder when DIR is new or empty (a
    reader never sees half of them); into a DIR holding other files, file by file (each a rename)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
        return sorted(out.iterdir())
    out.mkdir(parents=True, exist_ok=True)
    moved = []
    for item in sorted(tmp.iterdir()):
        target = out / item.name
        os.replace(item, target)
        moved.append(target)
    return moved


def load_inputs(args: argparse.Namespace, params: TrackParams):
    """Stack, display settings and prompts of a `track`-style command line.

    Everything a user can get wrong is checked here (by the run service's own resolver), before
    any checkpoint is downloaded or model loaded.
    """
    from sam2web.stack import open_stack

    stack = open_stack(args.stack if len(args.stack) > 1 else args.stack[0], pages_as=args.pages_as)
    try:
        display, prompts = _checked_inputs(args, stack)
        runs.resolve(stack, params, prompts, Location(0, 0, 0))
        return stack, display, prompts
    except BaseException:
        stack.close()  # a refused input must not leave the file open
        raise


def _checked_inputs(args: argparse.Namespace, stack):
    from sam2web import prompts as prompts_mod

    display = _display(stack, args)
    tags = [t.strip() for t in args.tags.split(",") if t.strip()] or None
    loc = parse_location(args.prompt_loc, stack) if args.prompt_loc else None
    prompt_path = Path(args.prompts)
    if not prompt_path.is_file():
        raise UserError(f"--prompts {prompt_path} is not a file; give a GeoJSON, platform JSON or label image.")
    prompts = prompts_mod.load_prompts(prompt_path, stack.sizes["X"], stack.sizes["Y"], tags=tags, loc=loc)
    prompts = prompts_mod.renumber(prompts)
    if not prompts:
        raise UserError(
            f"{prompt_path} holds no prompts"
            + (" with the tags " + ", ".join(tags) if tags else "")
            + "; check the file and --tags."
        )
    return display, prompts


def print_model(info: dict) -> None:
    from sam2web.tracking import model

    if info["random_weights"]:
        print(model.RANDOM_WEIGHTS_WARNING, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from sam2web import export, geometry, links

    out = Path(args.out)
    params = TrackParams.from_args(args)  # every range and choice, with one sentence each
    stack, display, prompts = load_inputs(args, params)
    try:
        tmp = _prepare_out(out)
    except BaseException:
        stack.close()
        raise
    try:
        ((result, info, run_id),) = runner.track_runs(args, stack, {0: params}, prompts, display).values()
        annotations = geometry.annotations_from_result(
            result, padding=args.padding, smoothing=args.smoothing, keep=args.keep
        )
        connections = links.connect(annotations, enabled=args.connect)
        sequences = runs.resolve(stack, params, prompts, Location(0, 0, 0)).sequences
        ctx = exporters.context_of(
            annotations,
            connections,
            objects=result.objects,
            random_weights=result.random_weights,
            stack=stack,
            across=args.across,
            dataset_id=params.dataset_id or None,
            positions=tuple(sorted({s.frames[0].xy for s in sequences})),
            intensities=export.mean_intensities(annotations, stack.frame),
        )
        exporters.write_all(tmp, exporters.export_files(ctx, exporters.chosen_on_cli(args)))
        _move_into(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        stack.close()  # a file left open is a bug (ResourceWarning)
    n_obj = len({a.obj_id for a in annotations})
    kept = f", run {run_id} kept in {args.data}" if args.data else ""
    print(
        f"Tracked {n_obj} object(s): {len(annotations)} polygons, {len(connections)} links "
        f"({info['model']}, {info['device']}, {info['precision']}, image size "
        f"{info['image_size']}) -> {out}{kept}",
        file=sys.stderr,
    )
    print_model(info)
    return 0
