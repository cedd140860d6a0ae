"""Writers for the fixed-name export files.

The surface other modules use:
    EXPORT_FILES = ("annotations.geojson", "annotations.csv", "connections.csv", "nimbus.json")
    export_bytes(annotations, connections, random_weights=False, *, names=None, object_type="detection",
                 dataset_id=None, intensities=None) -> dict[str, bytes]
    write_exports(out_dir, annotations, connections, random_weights=False, **same options) -> list[Path]   atomic
    zip_bytes(files: dict[str, bytes]) -> bytes

Added: ``write_files(out_dir, files)`` (prepared bytes, all or nothing), ``atomic_write(path, data)``,
and one builder per file (``geojson_bytes``, ``annotations_csv_bytes``, ``connections_csv_bytes``,
``nimbus_bytes``).

File names never change, so scripts can rely on them. Locations are 0-based everywhere (like the
platform). Files are built in memory first, written in full to temporary files in the same folder,
and only then renamed over the old ones: a crash leaves the previous export or the new one.

Speed matters here (re-exporting 2000 polygons after a smoothing change must feel instant): vertex
text for whole-pixel polygons is produced by numpy in fixed-width records (``_geometry_texts``),
WKT by GEOS's vectorised writer, and the JSON around them is assembled as strings.
"""

from __future__ import annotations

import colorsys
import csv
import hashlib
import io
import json
import os
import re
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import MultiPolygon

from sam2web.errors import UserError
from sam2web.types import Annotation, Connection, Location

EXPORT_FILES = ("annotations.geojson", "annotations.csv", "connections.csv", "nimbus.json")
RANDOM_WEIGHTS_WARNING = (
    "These masks were made with RANDOM model weights (SAM2WEB_RANDOM_WEIGHTS=1): "
    "they are meaningless and only show that the plumbing works."
)
CSV_FIELDS = ("id", "object_id", "XY", "Time", "Z", "channel", "tags", "name", "area", "wkt")
CONNECTION_FIELDS = ("parent_id", "child_id", "object_id", "tags")


def _oriented(annotations: list[Annotation]) -> np.ndarray:
    """Geometries with RFC 7946 ring order (exterior counter-clockwise, holes clockwise)."""
    geoms = np.array([a.geometry for a in annotations] + [None], dtype=object)[:-1]
    return shapely.orient_polygons(geoms, exterior_cw=False) if len(geoms) else geoms


class _Json:
    """Small JSON pieces, with each distinct tag list encoded once (2000 features share a few)."""

    def __init__(self) -> None:
        self.encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        self._tags: dict[tuple, str] = {}

    def tags(self, tags) -> str:
        key = tuple(tags)
        text = self._tags.get(key)
        if text is None:
            text = self._tags[key] = self.encode(list(key))
        return text


OBJECT_TYPES = ("detection", "annotation")
# A fixed namespace: the same sam2web annotation id always gets the same UUID, so exporting a run
# twice gives identical files (QuPath keeps objects apart by this id).
_UUID_NAMESPACE = uuid.UUID("5a3b2c1d-7e6f-4a5b-9c8d-0e1f2a3b4c5d")
_DATASET_ID = re.compile(r"[0-9a-fA-F]{24}")


def object_names(objects: Mapping | None) -> dict[int, str]:
    """{object id: name} from a run's objects (``ObjectInfo`` values or the store's JSON dicts)."""
    names: dict[int, str] = {}
    for key, info in (objects or {}).items():
        name = info.get("name", "") if isinstance(info, Mapping) else getattr(info, "name", "")
        if name:
            names[int(key)] = str(name)
    return names


def display_name(obj_id: int, names: Mapping[int, str] | None) -> str:
    """The object's name as typed on Annotate, else "object N" (what the GeoJSON importer also uses)."""
    return (names or {}).get(int(obj_id)) or f"object {int(obj_id)}"


def class_color(name: str) -> list[int]:
    """A stable, fairly saturated RGB colour for a class name (same name -> same colour, everywhere)."""
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return [round(r * 255), round(g * 255), round(b * 255)]


def qupath_uuid(annotation_id: str) -> str:
    """The feature's UUID (QuPath drops ids that are not UUIDs); derived from sam2web's own id.

    Equal to ``str(uuid.uuid5(_UUID_NAMESPACE, annotation_id))``, built from the SHA-1 directly:
    the uuid module's objects cost more than the rest of a feature's QuPath fields.
    """
    h = bytearray(hashlib.sha1(_UUID_NAMESPACE.bytes + annotation_id.encode("utf-8")).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def platform_id(annotation_id: str) -> str:
    """A Mongo-ObjectId-shaped id (24 hex digits) for the platform: the first 24 hex digits of the
    SHA-1 of sam2web's id, so the same polygon always gets the same id and records pass the
    platform's ``objectId`` schema checks wherever they are used."""
    return hashlib.sha1(annotation_id.encode("utf-8")).hexdigest()[:24]


def check_dataset_id(dataset_id: str | None) -> str | None:
    """A NimbusImage dataset id is a 24-hex-digit Mongo ObjectId; anything else is refused early."""
    if dataset_id is None or str(dataset_id).strip() == "":
        return None
    text = str(dataset_id).strip()
    if not _DATASET_ID.fullmatch(text):
        raise UserError(
            f"The dataset id {text[:40]!r} is not a NimbusImage dataset id; copy the 24-character id "
            "from the dataset's address in NimbusImage."
        )
    return text.lower()


def check_object_type(object_type: str) -> str:
    if object_type not in OBJECT_TYPES:
        raise UserError(f"The object type {object_type!r} is not known; choose detection or annotation.")
    return object_type


def mean_intensities(
    annotations: list[Annotation], frame_of: Callable[[Location, int], np.ndarray]
) -> dict[str, float]:
    """{annotation id: mean pixel value inside its polygon} on the tracked channel's frames.

    ``frame_of(loc, channel)`` returns the raw 2D frame (``Stack.frame``). A pixel (row r, column c)
    counts when its centre (c + 0.5, r + 0.5) lies inside the polygon, tested only inside the
    polygon's bounding box, so the cost is the frame reads (cached) plus the cells' own pixels.
    """
    out: dict[str, float] = {}
    for a in annotations:
        frame = np.asarray(frame_of(a.loc, a.channel))
        x0, y0, x1, y1 = a.geometry.bounds
        c0, r0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        c1, r1 = min(int(np.ceil(x1)), frame.shape[1]), min(int(np.ceil(y1)), frame.shape[0])
        if c1 <= c0 or r1 <= r0:
            continue
        cols, rows = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
        inside = shapely.contains_xy(a.geometry, cols, rows)
        values = frame[r0:r1, c0:c1][inside]
        if values.size:
            out[a.id] = float(values.mean())
    return out


class Physical:
    """Centroids (px, in the polygons' pixel-corner coordinates) and calibrated measures, per polygon.

    Built once per export from the stack's pixel size (``units.pixel_size`` (x, y) in
    ``units.unit`` per pixel); ``None`` when the size is not known, and then no physical key is
    written at all (a number with a made-up unit is worse than none). Anisotropic pixels are
    handled exactly: the perimeter is measured on the outline scaled to physical units.
    """

    def __init__(self, geoms: np.ndarray, areas: np.ndarray, units) -> None:
        px, py = (float(v) for v in units.pixel_size)
        self.unit = "µm" if units.unit in ("um", "µm", "micron") else str(units.unit)
        self.key = "um" if self.unit == "µm" else re.sub(r"[^A-Za-z0-9]", "", self.unit) or "unit"
        cent = shapely.get_coordinates(shapely.centroid(geoms)) if len(geoms) else np.empty((0, 2))
        self.cx, self.cy = cent[:, 0], cent[:, 1]
        self.area = np.asarray(areas, dtype=np.float64) * px * py
        self.cx_phys, self.cy_phys = self.cx * px, self.cy * py
        scaled = shapely.transform(geoms, lambda c: c * np.array([px, py])) if len(geoms) else geoms
        self.perimeter = shapely.length(scaled) if len(geoms) else np.empty(0)

    @classmethod
    def of(cls, geoms: np.ndarray, areas: np.ndarray, units) -> Physical | None:
        return None if units is None or getattr(units, "pixel_size", None) is None else cls(geoms, areas, units)

    def fields(self) -> tuple[str, ...]:
        k = self.key
        return (f"area_{k}2", "centroid_x", "centroid_y", f"centroid_x_{k}", f"centroid_y_{k}")

    def values(self, i: int) -> tuple[float, ...]:
        return (
            float(self.area[i]),
            float(self.cx[i]),
            float(self.cy[i]),
            float(self.cx_phys[i]),
            float(self.cy_phys[i]),
        )

    def properties_json(self, i: int) -> str:
        return "".join(f',"{k}":{v!r}' for k, v in zip(self.fields(), self.values(i)))

    def measurements_json(self, i: int, js: _Json) -> str:
        u = self.unit
        pairs = (
            (f"Area {u}^2", self.area[i]),
            (f"Perimeter {u}", self.perimeter[i]),
            ("Centroid X px", self.cx[i]),
            ("Centroid Y px", self.cy[i]),
            (f"Centroid X {u}", self.cx_phys[i]),
            (f"Centroid Y {u}", self.cy_phys[i]),
        )
        return "".join(f",{js.encode(k)}:{float(v)!r}" for k, v in pairs)


def _properties_json(
    ann: Annotation,
    area: float,
    random_weights: bool,
    js: _Json,
    qupath: str = "",
    physical: str = "",
) -> str:
    """The feature's properties as JSON text; numbers are formatted directly (they need no escaping)."""
    text = (
        f'{{{qupath}"id":{js.encode(ann.id)},"object_id":{int(ann.obj_id)},"XY":{int(ann.loc.xy)},'
        f'"Time":{int(ann.loc.time)},"Z":{int(ann.loc.z)},"channel":{int(ann.channel)},'
        f'"tags":{js.tags(ann.tags)},"area":{float(area)!r}{physical}'
    )
    if ann.parent is not None:  # lineage hook: the mother's object_id (a division), see links.py
        text += f',"parent_object_id":{int(ann.parent)}'
    if random_weights:
        text += ',"warning":"random weights: this mask is meaningless"'
    return text + "}"


def _qupath_json(
    ann: Annotation,
    name: str,
    object_type: str,
    area: float,
    perimeter: float,
    intensity: float | None,
    js: _Json,
    classes: dict[str, str],
    physical: str = "",
) -> str:
    """QuPath's own properties (objectType, name, classification, measurements), as JSON text."""
    text = f'"objectType":"{object_type}","name":{js.encode(name)},'
    if ann.tags:
        tag = str(ann.tags[0])
        cls = classes.get(tag)
        if cls is None:
            cls = classes[tag] = js.encode({"name": tag, "color": class_color(tag)})
        text += f'"classification":{cls},'
    text += f'"measurements":{{"Area px^2":{float(area)!r},"Perimeter px":{float(perimeter)!r}'
    if intensity is not None:
        text += f',"Mean intensity":{float(intensity)!r}'
    return text + physical + "},"


def _with_plane(geometry: str, loc: Location) -> str:
    """QuPath reads an object's image plane from ``geometry.plane`` (c = -1: all channels)."""
    return geometry[:-1] + f',"plane":{{"c":-1,"z":{int(loc.z)},"t":{int(loc.time)}}}}}'


def geojson_bytes(
    annotations: list[Annotation],
    random_weights: bool = False,
    geoms: np.ndarray | None = None,
    areas: np.ndarray | None = None,
    texts: list[str] | None = None,
    names: Mapping[int, str] | None = None,
    object_type: str = "detection",
    intensities: Mapping[str, float] | None = None,
    units=None,
) -> bytes:
    """RFC 7946 FeatureCollection of Polygon/MultiPolygon features that QuPath reads as its own.

    Besides sam2web's keys, each feature carries what QuPath's GeoJSON reader (v0.4+) takes: a UUID
    ``id``, ``geometry.plane {c, z, t}`` (the object's Z slice and time point; without it every
    object lands on t = 0, z = 0), and in ``properties`` the ``objectType`` (detection by default,
    or annotation), the object's ``name``, a ``classification {name, color}`` from its first tag,
    and ``measurements`` (area and perimeter in pixels, mean intensity when given). GeoJSON readers
    that do not know these members ignore them (RFC 7946 section 6.1, foreign members).

    With a known pixel size (``units``, see ``Physical``) both the properties and the measurements
    also carry the area in unit², the perimeter and the centroid in the unit, next to the
    centroid in pixels.
    """
    check_object_type(object_type)
    geoms = _oriented(annotations) if geoms is None else geoms
    areas = shapely.area(geoms) if areas is None else areas
    perimeters = shapely.length(geoms) if len(geoms) else np.empty(0)
    geo_text = _geojson_texts(geoms) if texts is None else texts
    js = _Json()
    classes: dict[str, str] = {}
    intensities = intensities or {}
    phys = Physical.of(geoms, areas, units)
    own = [phys.properties_json(i) for i in range(len(annotations))] if phys else [""] * len(annotations)
    measured = [phys.measurements_json(i, js) for i in range(len(annotations))] if phys else own
    name_of: dict[int, str] = {}
    for a in annotations:
        if a.obj_id not in name_of:
            name_of[a.obj_id] = display_name(a.obj_id, names)
    features = [
        '{"type":"Feature","id":"'
        + qupath_uuid(a.id)
        + '","geometry":'
        + _with_plane(g, a.loc)
        + ',"properties":'
        + _properties_json(
            a,
            area,
            random_weights,
            js,
            _qupath_json(a, name_of[a.obj_id], object_type, area, perim, intensities.get(a.id), js, classes, m),
            o,
        )
        + "}"
        for a, g, area, perim, o, m in zip(annotations, geo_text, areas, perimeters, own, measured)
    ]
    head = '{"type":"FeatureCollection",'
    if random_weights:
        head += '"sam2web_warning":' + js.encode(RANDOM_WEIGHTS_WARNING) + ","
    return (head + '"features":[' + ",\n".join(features) + "]}\n").encode("utf-8")


def _geojson_texts(geoms: np.ndarray) -> list[str]:
    return _geometry_texts(geoms)[0]


def _table(maxv: int, width: int, prefix: bytes, suffix: bytes) -> np.ndarray:
    """Row v = prefix + v right-aligned in ``width`` (leading spaces) + suffix, as uint8 ASCII."""
    values = np.arange(maxv + 1)
    out = np.empty((maxv + 1, len(prefix) + width + len(suffix)), dtype=np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    out[:, len(prefix) + width :] = np.frombuffer(suffix, dtype=np.uint8)
    for k in range(width):
        power = 10 ** (width - 1 - k)
        col = (values // power) % 10 + 48
        if k < width - 1:
            col[values < power] = 32
        out[:, len(prefix) + k] = col
    return out


def _records(xs: np.ndarray, ys: np.ndarray, maxv: int, width: int, parts: tuple[bytes, bytes, bytes]) -> str:
    """One fixed-width record per vertex, parts[0] + x + parts[1] + y + parts[2], as one string."""
    left = _table(maxv, width, parts[0], parts[1])[xs]
    right = _table(maxv, width, b"", parts[2])[ys]
    return np.concatenate([left, right], axis=1).tobytes().decode("ascii")


def _geometry_texts(geoms: np.ndarray) -> tuple[list[str], list[str] | None]:
    """(GeoJSON geometry text, platform coordinate text or None) per geometry.

    Fast path for what sam2web makes, Polygons on whole-pixel corners: every vertex is written by
    numpy as a fixed-width record, rings are sliced out of one string and the padding spaces are
    dropped in one pass. That is 3-4x faster than GEOS's writer, which formats each of the ~200k
    doubles of a big run one by one. Anything else (fractions, MultiPolygons) goes through GEOS.
    """
    if not len(geoms):
        return [], []
    if not bool(np.all(shapely.get_type_id(geoms) == 3)):
        return list(shapely.to_geojson(geoms)), None
    _, coords, (ring_off, geom_off) = shapely.to_ragged_array(geoms)
    ints = coords.astype(np.int64)
    if not len(ints) or not np.array_equal(ints, coords) or ints.min() < 0 or ints.max() >= 10**7:
        return list(shapely.to_geojson(geoms)), None
    maxv = int(ints.max())
    width = len(str(maxv))
    xs, ys = ints[:, 0], ints[:, 1]
    vert = _records(xs, ys, maxv, width, (b"[", b",", b"],"))
    plat = _records(xs, ys, maxv, width, (b'{"x":', b',"y":', b"},"))
    lv, lp = 2 * width + 4, 2 * width + 12
    rings = ["[" + vert[s * lv : e * lv - 1] + "]" for s, e in zip(ring_off[:-1].tolist(), ring_off[1:].tolist())]
    geo = [
        '{"type":"Polygon","coordinates":[' + ",".join(rings[a:b]) + "]}"
        for a, b in zip(geom_off[:-1].tolist(), geom_off[1:].tolist())
    ]
    starts = ring_off[geom_off[:-1]].tolist()
    ends = ring_off[geom_off[:-1] + 1].tolist()
    platform = ["[" + plat[s * lp : (e - 1) * lp - 1] + "]" for s, e in zip(starts, ends)]  # no closing vertex
    geo = "\n".join(geo).replace(" ", "").split("\n")
    platform = "\n".join(platform).replace(" ", "").split("\n")
    return geo, platform


def annotations_csv_bytes(
    annotations: list[Annotation],
    random_weights: bool = False,
    geoms: np.ndarray | None = None,
    areas: np.ndarray | None = None,
    names: Mapping[int, str] | None = None,
    units=None,
) -> bytes:
    """One row per polygon: the GeoJSON properties plus the outline as WKT (tags joined by ';').

    ``name`` is the object's name from ``names`` (empty when it has none). With a known pixel
    size (``units``) the calibrated area and the centroid (px and unit) follow ``area``.
    """
    geoms = _oriented(annotations) if geoms is None else geoms
    areas = shapely.area(geoms) if areas is None else areas
    wkts = shapely.to_wkt(geoms, rounding_precision=-1, trim=True) if len(geoms) else []
    phys = Physical.of(geoms, areas, units)
    fields = CSV_FIELDS if phys is None else CSV_FIELDS[:-1] + phys.fields() + CSV_FIELDS[-1:]
    head = io.StringIO()
    csv.writer(head, lineterminator="\n").writerow(fields + (("warning",) if random_weights else ()))
    extra_cols = (
        ["," + ",".join(repr(v) for v in phys.values(i)) for i in range(len(annotations))]
        if phys
        else [""] * len(annotations)
    )
    extra = ",random weights: this mask is meaningless" if random_weights else ""
    # WKT never holds a quote or newline, so it is quoted by hand: the csv module's per-character
    # scan of 2000 long WKT strings costs more than building them.
    lines = [
        f"{_csv_field(a.id)},{int(a.obj_id)},{int(a.loc.xy)},{int(a.loc.time)},{int(a.loc.z)},"
        f"{int(a.channel)},{_csv_field(';'.join(a.tags))},{_csv_field((names or {}).get(int(a.obj_id), ''))},"
        f'{float(area)!r}{cols},"{w}"{extra}\n'
        for a, area, w, cols in zip(annotations, areas, wkts, extra_cols)
    ]
    return (head.getvalue() + "".join(lines)).encode("utf-8")


def _csv_field(text: str) -> str:
    """One CSV field, quoted only when it must be (user-chosen tags may hold commas or quotes)."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def connections_csv_bytes(connections: list[Connection]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CONNECTION_FIELDS)
    writer.writerows([c.parent_id, c.child_id, c.obj_id, ";".join(c.tags)] for c in connections)
    return buf.getvalue().encode("utf-8")


def _platform_coordinates(geoms: np.ndarray, texts: list[str]) -> list[str]:
    """Each annotation's exterior ring as the platform's [{"x":..,"y":..}, ...], closing vertex dropped.

    Platform polygons have one ring and no holes, so a MultiPolygon contributes its largest part.
    Built from GEOS's GeoJSON text by string replacement: formatting 200k vertices one by one in
    Python would take longer than everything else in an export.
    """
    rings = []
    for g, t in zip(geoms, texts):
        if isinstance(g, MultiPolygon):
            t = shapely.to_geojson(max(g.geoms, key=lambda p: p.area))
        body = t[t.index('"coordinates":') + 17 :]  # after '[[[' of the exterior
        body = body[: body.index("]]")]  # the exterior ring: 'x,y],[x,y],...,[x,y'
        rings.append(body[: body.rindex("],[")])  # without the closing vertex
    joined = "\n".join(rings).replace("],[", "\0").replace(",", ',"y":').replace("\0", '},{"x":')
    return ['[{"x":' + r + "}]" for r in joined.split("\n")]


def nimbus_bytes(
    annotations: list[Annotation],
    connections: list[Connection],
    random_weights: bool = False,
    geoms: np.ndarray | None = None,
    texts: list[str] | None = None,
    platform: list[str] | None = None,
    names: Mapping[int, str] | None = None,
    dataset_id: str | None = None,
) -> bytes:
    """The platform's own JSON export shape, which its "Import from JSON" dialog reads.

    NimbusImage's ``GET /export/json`` (``ISerializedData`` in its ``src/store/model.ts``) writes
    ``annotations``, ``annotationConnections``, ``annotationProperties`` and
    ``annotationPropertyValues``; records are keyed by ``_id`` (``platform_id``: ObjectId-shaped,
    derived from sam2web's id) and connections refer to them by ``parentId``/``childId``. The
    server's import (``helpers/dataImport.py``) remaps those ids and sets ``datasetId`` itself; its
    direct-create endpoints need ``datasetId`` in each record, which ``dataset_id`` fills (null when
    not given). Every connection given is written, whatever its tags
    (consecutive-frame links, divisions).
    """
    dataset = check_dataset_id(dataset_id)
    geoms = _oriented(annotations) if geoms is None else geoms
    if texts is None:
        texts, platform = _geometry_texts(geoms)
    coords = platform if platform is not None else (_platform_coordinates(geoms, texts) if len(geoms) else [])
    js = _Json()
    dumps = js.encode
    ds = dumps(dataset)
    ids = {a.id: platform_id(a.id) for a in annotations}
    name_json: dict[int, str] = {}
    for a in annotations:
        if a.obj_id not in name_json:
            name_json[a.obj_id] = dumps(display_name(a.obj_id, names))
    records = [
        '{"_id":"'
        + ids[a.id]
        + '","name":'
        + name_json[a.obj_id]
        + ',"tags":'
        + js.tags(a.tags)
        + ',"shape":"polygon","channel":'
        + str(int(a.channel))
        + ',"location":'
        + f'{{"XY":{int(a.loc.xy)},"Z":{int(a.loc.z)},"Time":{int(a.loc.time)}}}'
        + ',"coordinates":'
        + pts
        + ',"datasetId":'
        + ds
        + ',"color":null}'
        for a, pts in zip(annotations, coords)
    ]
    links = [
        f'{{"_id":"{platform_id(c.parent_id + ">" + c.child_id)}",'
        f'"label":{dumps(str(c.tags[0]) if c.tags else "SAM2_VIDEO")},'
        f'"tags":{js.tags(str(t) for t in c.tags)},"parentId":"{ids.get(c.parent_id) or platform_id(c.parent_id)}",'
        f'"childId":"{ids.get(c.child_id) or platform_id(c.child_id)}","datasetId":{ds}}}'
        for c in connections
    ]
    head = "{"
    if random_weights:
        head += '"sam2web_warning":' + dumps(RANDOM_WEIGHTS_WARNING) + ","
    return (
        head
        + '"annotations":['
        + ",\n".join(records)
        + '],\n"annotationConnections":['
        + ",\n".join(links)
        + '],\n"annotationProperties":[],"annotationPropertyValues":{}}\n'
    ).encode("utf-8")


def export_bytes(
    annotations: list[Annotation],
    connections: list[Connection],
    random_weights: bool = False,
    *,
    names: Mapping[int, str] | None = None,
    object_type: str = "detection",
    dataset_id: str | None = None,
    intensities: Mapping[str, float] | None = None,
    units=None,
) -> dict[str, bytes]:
    """All four export files, by fixed name, as bytes (for downloads, zips and atomic writes).

    ``names`` ({object id: name}, see ``object_names``) name the objects in QuPath and NimbusImage;
    ``object_type`` is QuPath's (detection or annotation); ``dataset_id`` fills NimbusImage's
    ``datasetId``; ``intensities`` ({annotation id: mean}, see ``mean_intensities``) adds QuPath's
    "Mean intensity" measurement; ``units`` (``exporters.Units``: the pixel size) adds calibrated
    area and centroid measurements.
    """
    check_object_type(object_type)
    check_dataset_id(dataset_id)
    geoms = _oriented(annotations)
    areas = shapely.area(geoms) if len(geoms) else np.empty(0)
    texts, platform = _geometry_texts(geoms)
    return {
        "annotations.geojson": geojson_bytes(
            annotations, random_weights, geoms, areas, texts, names, object_type, intensities, units
        ),
        "annotations.csv": annotations_csv_bytes(annotations, random_weights, geoms, areas, names, units),
        "connections.csv": connections_csv_bytes(connections),
        "nimbus.json": nimbus_bytes(
            annotations, connections, random_weights, geoms, texts, platform, names, dataset_id
        ),
    }


def _temp_copy(path: Path, data: bytes) -> str:
    """``data`` in a synced temporary file beside ``path`` (same file system, so renaming is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); exports are ordinary files, readable like any other.
        os.chmod(tmp, (path.stat().st_mode & 0o777) if path.exists() else 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write bytes so readers see the old file or the new one, never a half-written one."""
    return write_files(Path(path).parent, {Path(path).name: data})[0]


def write_files(out_dir: str | Path, files: dict[str, bytes]) -> list[Path]:
    """Write prepared export bytes into out_dir (created if needed), all or nothing.

    Every file is first written in full to a temporary file in the folder; only when all are on
    disk are they renamed over the old ones. A failure on the way (disk full, a crash) leaves the
    previous files untouched and no temporary files behind.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[str, Path]] = []
    try:
        for name, data in files.items():
            temps.append((_temp_copy(out / name, data), out / name))
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            _unlink(tmp)
        raise
    return [path for _, path in temps]


def write_exports(
    out_dir: str | Path,
    annotations: list[Annotation],
    connections: list[Connection],
    random_weights: bool = False,
    **options,
) -> list[Path]:
    """Build every export in memory first (so an error writes nothing), then write each atomically.

    ``options`` are ``export_bytes``'s (names, object_type, dataset_id, intensities).
    """
    return write_files(out_dir, export_bytes(annotations, connections, random_weights, **options))


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """All files in one deflated zip (the app's "download everything" button)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def context_files(ctx) -> dict[str, bytes]:
    """The four table files of an ``exporters.ExportContext`` (the registry's "tables" entry)."""
    return export_bytes(
        ctx.annotations,
        ctx.connections,
        ctx.random_weights,
        names=ctx.names,
        object_type=ctx.object_type,
        dataset_id=ctx.dataset_id,
        intensities=ctx.intensities,
        units=ctx.units,
    )
