"""The exporter registry: every export sam2web can write, in one place.

An exporter turns one ``ExportContext`` (the polygons, links and what is known of the stack) into
files: ``{relative path: bytes}``. A path with a folder part (``ctc/mask000.tif``) belongs to a
folder export; the CLI writes it as a folder and the Results page offers it as one zip. The Results
downloads, the ``track``/``convert`` flags (``cli_flag``) and the README's format table are built
by iterating ``EXPORTERS``, so a new format is one module with a writer and one entry below.
Writers are named as ``"module:function"`` strings, imported only when that export is asked for.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sam2web.registry import Registry, lazy
from sam2web.types import Annotation, Connection


@dataclass(frozen=True)
class Units:
    """Physical calibration of the stack, where the file says it or the user set it."""

    pixel_size: tuple[float, float] | None = None  # (x, y) in ``unit`` per pixel
    z_step: float | None = None  # in ``unit`` per slice
    time_interval: float | None = None  # seconds per time point
    unit: str = "µm"

    @property
    def pixel_area(self) -> float | None:
        return None if self.pixel_size is None else float(self.pixel_size[0]) * float(self.pixel_size[1])

    @classmethod
    def of(cls, stack=None, calibration: Mapping | None = None) -> Units:
        """The stack's own calibration, with what the user set on the Dataset page winning.

        ``calibration`` is the workspace's ``dataset["calibration"]``: ``pixel_size`` (one number,
        or [x, y]), ``unit``, ``z_step``, ``time_interval`` (seconds); a missing or empty key
        keeps the file's value. Pixel sizes in a unit other than a length (``pixel``) are none.
        """
        size = getattr(stack, "pixel_size", None)
        pixel = (float(size[0]), float(size[1])) if size and size[2] not in ("", "pixel", "pixels") else None
        unit = str(size[2]) if pixel else "µm"
        z_step = getattr(stack, "z_step", None)
        interval = getattr(stack, "time_interval", None)
        cal = dict(calibration or {})
        if cal.get("pixel_size") not in (None, "", 0):
            value = cal["pixel_size"]
            pixel = (float(value[0]), float(value[1])) if isinstance(value, (list, tuple)) else (float(value),) * 2
            unit = str(cal.get("unit") or unit)
        if cal.get("z_step") not in (None, "", 0):
            z_step = float(cal["z_step"])
        if cal.get("time_interval") not in (None, "", 0):
            interval = float(cal["time_interval"])
        return cls(pixel, z_step, interval, "µm" if unit in ("um", "micron") else unit)


@dataclass(frozen=True)
class ExportContext:
    """Everything an exporter may need; each writer reads only what it uses."""

    annotations: list[Annotation]
    connections: list[Connection]
    random_weights: bool = False
    names: Mapping[int, str] | None = None  # {object id: name}
    object_type: str = "detection"  # QuPath's object type
    dataset_id: str | None = None  # NimbusImage's datasetId
    intensities: Mapping[str, float] | None = None  # {annotation id: mean intensity}
    across: str = "time"  # the tracking axis
    frame_shape: tuple[int, int] | None = None  # (height, width), for label images
    n_frames: int | None = None  # frames along ``across``, for label images
    positions: tuple[int, ...] | None = None  # XY positions to write (None: those in ``annotations``)
    units: Units = field(default_factory=Units)
    source: str | None = None  # the image file's name, for formats that reference it
    sizes: Mapping[str, int] | None = None  # the stack's axis sizes (T, Z, Y, X, ...), where known


@dataclass(frozen=True)
class Exporter:
    name: str  # registry key, also the CLI's --formats value
    label: str  # what the Results page shows
    files: tuple[str, ...]  # what it writes (a name ending in "/" is a folder)
    write: str | Callable[[ExportContext], dict[str, bytes]]
    cli_flag: str | None = None  # None: always written by track/convert
    default: bool = False  # written without being asked for
    needs_frames: bool = False  # needs frame_shape/n_frames (label images)
    help: str = ""

    def files_for(self, ctx: ExportContext) -> dict[str, bytes]:
        return lazy(self.write)(ctx)


EXPORTERS: Registry[Exporter] = Registry(
    "export",
    [
        Exporter(
            "tables",
            "GeoJSON, CSV, connections and NimbusImage JSON",
            ("annotations.geojson", "annotations.csv", "connections.csv", "nimbus.json"),
            "sam2web.export:context_files",
            default=True,
            help="polygons (QuPath/geopandas), one row per polygon, parent->child links, NimbusImage's import",
        ),
        Exporter(
            "labels",
            "Label stack (OME-TIFF, one per position)",
            ("labels_xyN.ome.tif",),
            "sam2web.label_export:context_labels",
            cli_flag="--labels",
            needs_frames=True,
            help="one OME-TIFF label stack per position (pixel value = object id + 1)",
        ),
        Exporter(
            "ctc",
            "Cell Tracking Challenge result (mask000.tif… + res_track.txt)",
            ("ctc/",),
            "sam2web.label_export:context_ctc",
            cli_flag="--ctc",
            needs_frames=True,
            help="the CTC result format with the parent column (traccuracy, the CTC tools)",
        ),
        Exporter(
            "geff",
            "GEFF tracking graph (tracks.geff/: napari-geff, traccuracy, motile-tracker)",
            ("tracks.geff/",),
            "sam2web.geff_export:context_geff",
            cli_flag="--geff",
            needs_frames=True,
            help="the Graph Exchange File Format: one node per polygon, one edge per link, the label image beside it",
        ),
        Exporter(
            "trackmate",
            "TrackMate XML (Fiji: File > Load a TrackMate file)",
            ("trackmate.xml",),
            "sam2web.trackmate_export:context_trackmate",
            cli_flag="--trackmate",
            needs_frames=True,
            help="a TrackMate model (spots with polygon ROIs, edges, tracks with divisions, calibration) for Fiji",
        ),
    ],
)


def context_of(
    annotations: list[Annotation],
    connections: list[Connection],
    *,
    objects: Mapping | None = None,
    random_weights: bool = False,
    stack: object | None = None,
    across: str = "time",
    dataset_id: str | None = None,
    positions: tuple[int, ...] | None = None,
    intensities: Mapping[str, float] | None = None,
    calibration: Mapping | None = None,
) -> ExportContext:
    """The context every face builds the same way: names from a run's objects, sizes and units from its stack.

    ``calibration`` is what the user set on the Dataset page (the workspace's
    ``dataset["calibration"]``); it wins over the file's own values (``Units.of``).
    """
    from sam2web.export import object_names

    frame_shape = n_frames = sizes = None
    if stack is not None:
        sizes = dict(stack.sizes)
        frame_shape, n_frames = (sizes["Y"], sizes["X"]), sizes["T" if across == "time" else "Z"]
    units = Units.of(stack, calibration)
    return ExportContext(
        list(annotations),
        list(connections),
        random_weights=random_weights,
        names=object_names(objects),
        dataset_id=dataset_id,
        intensities=intensities,
        across=across,
        frame_shape=frame_shape,
        n_frames=n_frames,
        positions=positions,
        units=units,
        source=getattr(stack, "name", None),
        sizes=sizes,
    )


def export_files(ctx: ExportContext, names: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """The files of the named exporters (default: those marked ``default``), all in memory first."""
    chosen = [EXPORTERS.get(n) for n in names] if names is not None else [e for e in EXPORTERS if e.default]
    files: dict[str, bytes] = {}
    for exporter in chosen:
        files.update(exporter.files_for(ctx))
    return files


def folder_of(path: str) -> str | None:
    """The top folder of an export file ("ctc" for "ctc/mask000.tif"), None for a plain file."""
    head, sep, _ = path.partition("/")
    return head if sep else None


def zip_folders(files: Mapping[str, bytes], suffix: str = "") -> dict[str, bytes]:
    """Plain files as they are, each folder's files as one ``<folder><suffix>.zip`` (the browser's downloads).

    The zip keeps the folder as its top level (``ctc/mask000.tif``), so unpacking it gives the same
    tree the CLI writes.
    """
    from sam2web.export import zip_bytes

    out: dict[str, bytes] = {}
    folders: dict[str, dict[str, bytes]] = {}
    for name, data in files.items():
        top = folder_of(name)
        if top is None:
            out[name] = data
        else:
            folders.setdefault(top, {})[name] = data
    for top, members in folders.items():
        out[f"{top}{suffix}.zip"] = zip_bytes(members)
    return out


def write_all(out_dir: str | Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write export files into ``out_dir``: plain files all or nothing, each folder export whole.

    A folder export (``tracks.geff/…``) is written beside its final place and swapped in, so no
    file of an earlier export of that folder survives next to the new ones (a stale zarr property
    would be read as part of the new graph).
    """
    import shutil
    import tempfile

    from sam2web.export import write_files

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plain = {n: b for n, b in files.items() if folder_of(n) is None}
    folders: dict[str, dict[str, bytes]] = {}
    for name, data in files.items():
        top = folder_of(name)
        if top is not None:
            folders.setdefault(top, {})[name[len(top) + 1 :]] = data
    written = []
    for top, inner in folders.items():
        new = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=out))
        try:
            for rest, data in inner.items():
                (new / rest).parent.mkdir(parents=True, exist_ok=True)
                (new / rest).write_bytes(data)
            old = out / f".{top}.old"
            shutil.rmtree(old, ignore_errors=True)
            if (out / top).exists():
                (out / top).rename(old)
            new.rename(out / top)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        written.append(out / top)
    return written + write_files(out, plain)


def add_cli_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """One ``--flag`` per exporter that is written only when asked for (``cli_flag``)."""
    for exporter in EXPORTERS:
        if exporter.cli_flag:
            dest = "export_" + exporter.name.replace("-", "_")
            parser.add_argument(exporter.cli_flag, dest=dest, action="store_true", help=f"also write {exporter.help}")


def chosen_on_cli(args: argparse.Namespace) -> tuple[str, ...]:
    """The exporters a command line asks for: the default ones and each flagged one."""
    return tuple(
        e.name
        for e in EXPORTERS
        if (e.default and not e.cli_flag) or getattr(args, "export_" + e.name.replace("-", "_"), False)
    )
