"""Turn per-frame label images into the four export files, with links by label identity.

LABELS is a folder of label images (e.g. a Cell Tracking Challenge TRA or SEG folder: non-image
files such as man_track.txt are skipped), a list of label files (one per frame, in natural
order), or one label stack (pages = frames). Each label of each frame becomes one polygon
(object_id = the label), and consecutive polygons of one label are linked parent -> child, just as
tracked objects are. A man_track.txt beside the labels (CTC lineage) keeps its divisions: the
mother's last polygon is linked to each daughter's first (tag DIVISION) and every daughter's
GeoJSON feature carries parent_object_id. The output is the same as `track` writes:
annotations.geojson, annotations.csv, connections.csv and nimbus.json in DIR, written completely
or not at all; --ctc also writes DIR/ctc/ (mask000.tif... + res_track.txt with the parent column),
--geff DIR/tracks.geff/ (the tracking graph for napari-geff, traccuracy, motile-tracker), --trackmate
DIR/trackmate.xml (Fiji's TrackMate) and --labels DIR/labels_xy1.ome.tif.

examples:
  python -m sam2web convert ../shared/data/bacteria_ctc/TRA --out gt_export/
  python -m sam2web convert nuclei_label.tif --across z --keep all --out nuclei_export/
  python -m sam2web convert ../shared/data/bacteria_ctc/TRA --ctc --out gt_export/   (gt_export/ctc/)
  python -m sam2web convert ../shared/data/bacteria_ctc/TRA --geff --trackmate --out gt_export/

exit status: 0 done, 2 a problem with the input (one sentence on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from sam2web import exporters
from sam2web.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "labels", nargs="+", metavar="LABELS", help="a folder of label images, several label files, or one label stack"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the four export files")
    parser.add_argument(
        "--across",
        choices=("time", "z"),
        default="time",
        help="what successive frames (files or pages) are: time points or Z slices (default: time)",
    )
    parser.add_argument(
        "--padding",
        type=float,
        default=0.0,
        help="grow (+) or shrink (-) each polygon, in pixels, -20..20 (default: 0)",
    )
    parser.add_argument(
        "--smoothing",
        type=float,
        default=0.0,
        help="polygon simplification tolerance in pixels, 0..3 (default: 0, exact outlines)",
    )
    parser.add_argument("--no-connect", action="store_true", help="write no parent -> child links")
    parser.add_argument(
        "--dataset-id",
        default=None,
        metavar="ID",
        help="NimbusImage dataset id (24 hex digits) written as datasetId in nimbus.json (default: none)",
    )
    parser.add_argument(
        "--keep",
        choices=("largest", "all"),
        default="largest",
        help="largest: each label's largest connected part; all: every part (MultiPolygon)",
    )
    exporters.add_cli_flags(parser)


def check_settings(padding: float, smoothing: float) -> None:
    """Padding and smoothing within TrackParams' ranges (the one place they are written)."""
    from sam2web.params import TrackParams

    TrackParams(padding=padding, smoothing=smoothing).validate(flags=True)


def run(args: argparse.Namespace) -> int:
    from sam2web import ctc, export, exporters, geometry, links

    check_settings(args.padding, args.smoothing)
    export.check_dataset_id(args.dataset_id)  # a typo is reported before any work
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the export files.")
    paths = [Path(p) for p in args.labels]
    result = ctc.labels_to_result(paths if len(paths) > 1 else paths[0], across=args.across)
    annotations = geometry.annotations_from_result(
        result, padding=args.padding, smoothing=args.smoothing, keep=args.keep
    )
    connections = links.connect_by_label(annotations, enabled=not args.no_connect)
    ctx = exporters.context_of(annotations, connections, objects=result.objects, dataset_id=args.dataset_id)
    if result.masks:  # the label exports need the frame size and count, from the labels themselves
        shape = tuple(next(iter(result.masks.values())).shape)
        n_frames = max(loc.time if args.across == "time" else loc.z for _, loc in result.masks) + 1
        ctx = dataclasses.replace(ctx, across=args.across, frame_shape=shape, n_frames=n_frames, source=paths[0].name)
    files = exporters.export_files(ctx, exporters.chosen_on_cli(args))  # all in memory: an error writes nothing
    try:
        exporters.write_all(out, files)
    except OSError as err:
        raise UserError(f"Cannot write into {out} ({err.strerror}); choose a folder you can write to.") from None
    print(
        f"Converted {len(result.objects)} label(s): {len(annotations)} polygons, {len(connections)} links -> {out}",
        file=sys.stderr,
    )
    return 0
