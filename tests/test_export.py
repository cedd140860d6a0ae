"""The four export files: content, GeoJSON that geopandas loads, atomic writes, the zip."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile

import geopandas
import numpy as np
import pytest
import shapely
from geom_synthetic import synthetic_result
from shapely import wkt
from shapely.geometry import MultiPolygon, Polygon, box, shape

from sam2web import export
from sam2web.export import EXPORT_FILES, export_bytes, write_exports, zip_bytes
from sam2web.geometry import annotations_from_result
from sam2web.links import connect
from sam2web.types import Annotation, Location


@pytest.fixture()
def sample():
    donut = Polygon([(10, 10), (30, 10), (30, 25), (10, 25)], [[(15, 15), (15, 20), (20, 20), (20, 15)]])
    two = MultiPolygon([box(0, 0, 3, 3), box(40, 40, 50, 44)])
    anns = [
        Annotation("0-0-0-1", 0, Location(0, 0, 1), donut, 1, ["cell", 'odd, "tag"']),
        Annotation("0-0-1-1", 0, Location(0, 1, 1), two, 1, ["cell", 'odd, "tag"']),
        Annotation("4-2-3-0", 4, Location(2, 3, 0), box(5.5, 6.25, 8, 9), 0, []),
    ]
    return anns, connect(anns)


def test_fixed_names_and_bytes(sample):
    files = export_bytes(*sample)
    assert tuple(files) == EXPORT_FILES
    assert all(isinstance(v, bytes) and v for v in files.values())


def test_geojson_is_rfc7946_and_loads_in_geopandas(sample, tmp_path):
    anns, links = sample
    write_exports(tmp_path, anns, links)
    doc = json.loads((tmp_path / "annotations.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and "sam2web_warning" not in doc
    f0 = doc["features"][0]
    own = {
        k: v for k, v in f0["properties"].items() if k not in ("objectType", "name", "classification", "measurements")
    }
    assert own == {
        "id": "0-0-0-1",
        "object_id": 0,
        "XY": 0,
        "Time": 0,
        "Z": 1,
        "channel": 1,
        "tags": ["cell", 'odd, "tag"'],
        "area": 275.0,
    }
    for feat, a in zip(doc["features"], anns):
        g = shape(feat["geometry"])
        assert g.equals(a.geometry)
        # RFC 7946: exterior rings counter-clockwise, holes clockwise
        polys = g.geoms if isinstance(g, MultiPolygon) else [g]
        assert all(p.exterior.is_ccw and all(not r.is_ccw for r in p.interiors) for p in polys)
    gdf = geopandas.read_file(tmp_path / "annotations.geojson")
    assert len(gdf) == 3
    assert list(gdf["object_id"]) == [0, 0, 4] and list(gdf["Time"]) == [0, 1, 3]
    assert gdf.geometry.iloc[0].equals(anns[0].geometry)
    assert gdf.geometry.iloc[1].geom_type == "MultiPolygon"


def test_csv_rows_match_the_polygons(sample):
    anns, links = sample
    files = export_bytes(anns, links)
    rows = list(csv.DictReader(io.StringIO(files["annotations.csv"].decode())))
    assert len(rows) == 3
    assert rows[0]["tags"] == 'cell;odd, "tag"'
    for row, a in zip(rows, anns):
        assert wkt.loads(row["wkt"]).equals(a.geometry)
        assert float(row["area"]) == pytest.approx(a.area)
        assert (row["id"], int(row["object_id"]), int(row["XY"]), int(row["Time"]), int(row["Z"])) == (
            a.id,
            a.obj_id,
            *a.loc,
        )
    links_rows = list(csv.DictReader(io.StringIO(files["connections.csv"].decode())))
    assert links_rows == [{"parent_id": "0-0-0-1", "child_id": "0-0-1-1", "object_id": "0", "tags": "SAM2_VIDEO"}]


def test_nimbus_json_has_platform_records(sample):
    anns, links = sample
    doc = json.loads(export_bytes(anns, links)["nimbus.json"])
    rec = doc["annotations"][0]
    assert rec["shape"] == "polygon" and rec["_id"] == export.platform_id("0-0-0-1")
    assert rec["location"] == {"XY": 0, "Z": 1, "Time": 0} and rec["channel"] == 1
    ring = [(c["x"], c["y"]) for c in rec["coordinates"]]
    assert len(ring) == 4 and Polygon(ring).equals(Polygon(anns[0].geometry.exterior))  # no closing vertex
    assert Polygon([(c["x"], c["y"]) for c in doc["annotations"][1]["coordinates"]]).equals(box(40, 40, 50, 44))
    assert doc["annotations"][2]["coordinates"][0] in (
        {"x": 8.0, "y": 6.25},
        {"x": 8.0, "y": 9.0},
        {"x": 5.5, "y": 9.0},
        {"x": 5.5, "y": 6.25},
    )
    (link,) = doc["annotationConnections"]
    assert (link["parentId"], link["childId"], link["tags"]) == (
        export.platform_id("0-0-0-1"),
        export.platform_id("0-0-1-1"),
        ["SAM2_VIDEO"],
    )


def test_random_weights_are_announced_everywhere(sample):
    files = export_bytes(*sample, random_weights=True)
    doc = json.loads(files["annotations.geojson"])
    assert "RANDOM" in doc["sam2web_warning"]
    assert all("meaningless" in f["properties"]["warning"] for f in doc["features"])
    assert "RANDOM" in json.loads(files["nimbus.json"])["sam2web_warning"]
    assert "warning" in files["annotations.csv"].decode().splitlines()[0]


def test_empty_run_exports_valid_empty_files(tmp_path):
    write_exports(tmp_path, [], [])
    assert json.loads((tmp_path / "annotations.geojson").read_text())["features"] == []
    assert json.loads((tmp_path / "nimbus.json").read_text()) == {
        "annotations": [],
        "annotationConnections": [],
        "annotationProperties": [],
        "annotationPropertyValues": {},
    }
    assert (tmp_path / "annotations.csv").read_text().startswith("id,object_id")


def test_write_is_atomic_old_file_survives_a_failed_write(sample, tmp_path, monkeypatch):
    anns, links = sample
    write_exports(tmp_path, anns, links)
    before = (tmp_path / "annotations.geojson").read_bytes()

    real_temp = export._temp_copy
    written = []

    def disk_full_at_the_third_file(path, data):
        if len(written) == 2:
            raise OSError("disk full")
        written.append(path)
        return real_temp(path, data)

    monkeypatch.setattr(export, "_temp_copy", disk_full_at_the_third_file)
    with pytest.raises(OSError):
        write_exports(tmp_path, anns[:1], [])
    assert (tmp_path / "annotations.geojson").read_bytes() == before  # all or nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EXPORT_FILES)  # no temp files left
    assert oct(os.stat(tmp_path / "nimbus.json").st_mode & 0o777) == oct(0o644)


def test_zip_holds_every_file(sample):
    files = export_bytes(*sample)
    with zipfile.ZipFile(io.BytesIO(zip_bytes(files))) as zf:
        assert zf.namelist() == list(EXPORT_FILES)
        assert zf.read("nimbus.json") == files["nimbus.json"]


def test_a_whole_run_round_trips_through_geojson():
    res = synthetic_result(n_frames=4, n_objects=3, shape=(200, 300))
    anns = annotations_from_result(res, padding=1, smoothing=0.5)
    doc = json.loads(export_bytes(anns, connect(anns))["annotations.geojson"])
    got = np.array([shape(f["geometry"]) for f in doc["features"]], dtype=object)
    assert bool(np.all(shapely.equals(got, np.array([a.geometry for a in anns], dtype=object))))
