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
import sys
from pathlib import Path

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
    parser.add_argument(
        "--ctc",
        action="store_true",
        help="also write the Cell Tracking Challenge result format (mask000.tif... + res_track.txt "
        "with parents) into DIR/ctc/, as track --ctc does",
    )
    from sam2web import exporters

    exporters.add_flags(parser, skip=("ctc",))


def check_settings(padding: float, smoothing: float) -> None:
    """The worker's ranges (SPEC.md): padding -20..20, smoothing 0..3."""
    if not -20 <= padding <= 20:
        raise UserError(f"--padding {padding:g} is outside -20..20; choose a padding in that range.")
    if not 0 <= smoothing <= 3:
        raise UserError(f"--smoothing {smoothing:g} is outside 0..3; choose a smoothing in that range.")


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
    # all in memory: an error writes nothing
    files = export.export_bytes(
        annotations, connections, names=export.object_names(result.objects), dataset_id=args.dataset_id
    )
    chosen = exporters.flagged(args, skip=("ctc",))
    if chosen:
        files.update(exporters.export_files(_context(result, annotations, connections, args, paths), chosen))
    try:
        exporters.write_out(out, files)
        if getattr(args, "ctc", False):
            _write_ctc(out / "ctc", result, annotations, args.across)
    except OSError as err:
        raise UserError(f"Cannot write into {out} ({err.strerror}); choose a folder you can write to.") from None
    print(
        f"Converted {len(result.objects)} label(s): {len(annotations)} polygons, {len(connections)} links -> {out}",
        file=sys.stderr,
    )
    return 0


def _context(result, annotations, connections, args, paths):
    """What the registry's exporters need: label images carry no calibration, so units stay pixels."""
    from sam2web import export
    from sam2web.exporters import ExportContext

    key = next(iter(result.masks))
    frames = [loc.time if args.across == "time" else loc.z for _, loc in result.masks]
    return ExportContext(
        annotations,
        connections,
        names=export.object_names(result.objects),
        dataset_id=args.dataset_id,
        across=args.across,
        frame_shape=tuple(result.masks[key].shape),
        n_frames=max(frames) + 1,
        positions=(key[1].xy,),
        source=paths[0].name,
    )


def _write_ctc(folder: Path, result, annotations, across: str) -> None:
    """The converted polygons as CTC results (the same writer as `track --ctc`), position 1 only."""
    from sam2web import ctc

    key = next(iter(result.masks))
    frames = [loc.time if across == "time" else loc.z for _, loc in result.masks]
    ctc.write_ctc_annotations(folder, annotations, tuple(result.masks[key].shape), across, key[1].xy, max(frames) + 1)
