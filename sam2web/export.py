"""Writers for the fixed-name export files.

OWNER: geometry helper. Contract:
    EXPORT_FILES = ("annotations.geojson", "annotations.csv", "connections.csv", "nimbus.json")
    export_bytes(annotations, connections, random_weights=False) -> dict[str, bytes]
    write_exports(out_dir, annotations, connections, random_weights=False) -> list[Path]   atomic per file
    zip_bytes(files: dict[str, bytes]) -> bytes

File names never change, so scripts can rely on them. Locations are 0-based everywhere (like the
platform). Each file is built in memory first and written through a temporary file in the same
folder plus ``os.replace``, so a crash leaves either the previous file or the new one, never half.

Speed matters here (re-exporting 2000 polygons after a smoothing change must feel instant): the
geometry text comes from shapely's vectorised GEOS writers and the JSON is assembled as strings.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import MultiPolygon

from sam2web.types import Annotation, Connection

EXPORT_FILES = ("annotations.geojson", "annotations.csv", "connections.csv", "nimbus.json")
RANDOM_WEIGHTS_WARNING = ("These masks were made with RANDOM model weights (SAM2WEB_RANDOM_WEIGHTS=1): "
                          "they are meaningless and only show that the plumbing works.")
CSV_FIELDS = ("id", "object_id", "XY", "Time", "Z", "channel", "tags", "area", "wkt")
CONNECTION_FIELDS = ("parent_id", "child_id", "object_id", "tags")


def _oriented(annotations: list[Annotation]) -> np.ndarray:
    """Geometries with RFC 7946 ring order (exterior counter-clockwise, holes clockwise)."""
    geoms = np.array([a.geometry for a in annotations] + [None], dtype=object)[:-1]
    return shapely.orient_polygons(geoms, exterior_cw=False) if len(geoms) else geoms


def _properties(ann: Annotation, area: float, random_weights: bool) -> dict:
    props = {
        "id": ann.id, "object_id": int(ann.obj_id), "XY": int(ann.loc.xy), "Time": int(ann.loc.time),
        "Z": int(ann.loc.z), "channel": int(ann.channel), "tags": list(ann.tags), "area": float(area),
    }
    if random_weights:
        props["warning"] = "random weights: this mask is meaningless"
    return props


def geojson_bytes(annotations: list[Annotation], random_weights: bool = False,
                  geoms: np.ndarray | None = None, areas: np.ndarray | None = None,
                  texts: list[str] | None = None) -> bytes:
    """RFC 7946 FeatureCollection of Polygon/MultiPolygon features (loads as-is in geopandas)."""
    geoms = _oriented(annotations) if geoms is None else geoms
    areas = shapely.area(geoms) if areas is None else areas
    geo_text = _geojson_texts(geoms) if texts is None else texts
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    features = [
        '{"type":"Feature","id":' + dumps(a.id) + ',"geometry":' + g + ',"properties":'
        + dumps(_properties(a, area, random_weights)) + "}"
        for a, g, area in zip(annotations, geo_text, areas)
    ]
    head = '{"type":"FeatureCollection",'
    if random_weights:
        head += '"sam2web_warning":' + dumps(RANDOM_WEIGHTS_WARNING) + ","
    return (head + '"features":[' + ",\n".join(features) + "]}\n").encode("utf-8")


def _geojson_texts(geoms: np.ndarray) -> list[str]:
    return list(shapely.to_geojson(geoms)) if len(geoms) else []


def _wkt_from_geojson(texts: list[str]) -> list[str]:
    """WKT from GEOS's GeoJSON text by plain string replacement (one C-speed pass for all rows).

    '{"type":"Polygon","coordinates":[[[1.0,2.0],[3.0,4.0]]]}' -> 'POLYGON ((1.0 2.0, 3.0 4.0))'.
    """
    if not texts:
        return []
    kinds = ["MULTIPOLYGON " if t.startswith('{"type":"MultiPolygon"') else "POLYGON " for t in texts]
    coords = "\n".join(t[t.index('"coordinates":') + 15:-2] for t in texts)
    coords = (coords.replace("],[", "\0").replace(",", " ").replace("\0", ", ")
              .replace("[", "(").replace("]", ")"))
    return [k + c for k, c in zip(kinds, coords.split("\n"))]


def annotations_csv_bytes(annotations: list[Annotation], random_weights: bool = False,
                          geoms: np.ndarray | None = None, areas: np.ndarray | None = None,
                          texts: list[str] | None = None) -> bytes:
    """One row per polygon: the GeoJSON properties plus the outline as WKT (tags joined by ';')."""
    geoms = _oriented(annotations) if geoms is None else geoms
    areas = shapely.area(geoms) if areas is None else areas
    wkts = _wkt_from_geojson(_geojson_texts(geoms) if texts is None else texts)
    head = io.StringIO()
    csv.writer(head, lineterminator="\n").writerow(CSV_FIELDS + (("warning",) if random_weights else ()))
    extra = ",random weights: this mask is meaningless" if random_weights else ""
    # WKT never holds a quote or newline, so it is quoted by hand: the csv module's per-character
    # scan of 2000 long WKT strings costs more than building them.
    lines = [
        f'{_csv_field(a.id)},{int(a.obj_id)},{int(a.loc.xy)},{int(a.loc.time)},{int(a.loc.z)},'
        f'{int(a.channel)},{_csv_field(";".join(a.tags))},{float(area)!r},"{w}"{extra}\n'
        for a, area, w in zip(annotations, areas, wkts)
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
        body = t[t.index('"coordinates":') + 17:]   # after '[[[' of the exterior
        body = body[:body.index("]]")]               # the exterior ring: 'x,y],[x,y],...,[x,y'
        rings.append(body[:body.rindex("],[")])      # without the closing vertex
    joined = "\n".join(rings).replace("],[", "\0").replace(",", ',"y":').replace("\0", '},{"x":')
    return ['[{"x":' + r + "}]" for r in joined.split("\n")]


def nimbus_bytes(annotations: list[Annotation], connections: list[Connection],
                 random_weights: bool = False, geoms: np.ndarray | None = None,
                 texts: list[str] | None = None) -> bytes:
    """The platform's records (SPEC.md): annotations with ids, then parentId/childId connections."""
    geoms = _oriented(annotations) if geoms is None else geoms
    texts = _geojson_texts(geoms) if texts is None else texts
    coords = _platform_coordinates(geoms, texts) if len(geoms) else []
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    records = [
        '{"id":' + dumps(a.id) + ',"shape":"polygon","coordinates":' + pts + ',"location":'
        + f'{{"XY":{int(a.loc.xy)},"Z":{int(a.loc.z)},"Time":{int(a.loc.time)}}}'
        + f',"channel":{int(a.channel)},"tags":' + dumps(list(a.tags)) + "}"
        for a, pts in zip(annotations, coords)
    ]
    links = [dumps({"parentId": c.parent_id, "childId": c.child_id, "tags": list(c.tags)})
             for c in connections]
    head = "{"
    if random_weights:
        head += '"sam2web_warning":' + dumps(RANDOM_WEIGHTS_WARNING) + ","
    return (head + '"annotations":[' + ",\n".join(records) + '],\n"connections":['
            + ",\n".join(links) + "]}\n").encode("utf-8")


def export_bytes(annotations: list[Annotation], connections: list[Connection],
                 random_weights: bool = False) -> dict[str, bytes]:
    """All four export files, by fixed name, as bytes (for downloads, zips and atomic writes)."""
    geoms = _oriented(annotations)
    areas = shapely.area(geoms) if len(geoms) else np.empty(0)
    texts = _geojson_texts(geoms)
    return {
        "annotations.geojson": geojson_bytes(annotations, random_weights, geoms, areas, texts),
        "annotations.csv": annotations_csv_bytes(annotations, random_weights, geoms, areas, texts),
        "connections.csv": connections_csv_bytes(connections),
        "nimbus.json": nimbus_bytes(annotations, connections, random_weights, geoms, texts),
    }


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write bytes so readers see the old file or the new one, never a half-written one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); exports are ordinary files, readable like any other.
        os.chmod(tmp, (path.stat().st_mode & 0o777) if path.exists() else 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_files(out_dir: str | Path, files: dict[str, bytes]) -> list[Path]:
    """Write prepared export bytes into out_dir (created if needed), each file atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [atomic_write(out / name, data) for name, data in files.items()]


def write_exports(out_dir: str | Path, annotations: list[Annotation], connections: list[Connection],
                  random_weights: bool = False) -> list[Path]:
    """Build every export in memory first (so an error writes nothing), then write each atomically."""
    return write_files(out_dir, export_bytes(annotations, connections, random_weights))


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """All files in one deflated zip (the app's "download everything" button)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()
