"""The exporter registry: every export sam2web can write, in one place.

An exporter turns one ``ExportContext`` (the polygons, links and what is known of the stack) into
files: ``{relative path: bytes}``. A path with a folder part (``ctc/mask000.tif``) belongs to a
folder export; the CLI writes it as a folder and the Results page offers it as one zip. The Results
downloads, the ``track``/``convert`` flags (``cli_flag``) and the README's format table are built
by iterating ``EXPORTERS``, so a new format is one module with a writer and one entry below.
Writers are named as ``"module:function"`` strings, imported only when that export is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

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
    ],
)


def export_files(ctx: ExportContext, names: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """The files of the named exporters (default: those marked ``default``), all in memory first."""
    chosen = [EXPORTERS.get(n) for n in names] if names is not None else [e for e in EXPORTERS if e.default]
    files: dict[str, bytes] = {}
    for exporter in chosen:
        files.update(exporter.files_for(ctx))
    return files
