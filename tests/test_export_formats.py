"""QuPath GeoJSON and the NimbusImage JSON import shape, checked field by field.

QuPath (v0.4+, its GeoJSON reader in qupath-core): a Feature's ``id`` must be a UUID, the image
plane is ``geometry.plane {c, z, t}``, and ``properties`` carry ``objectType``, ``name``,
``classification {name, color: [r, g, b]}`` and ``measurements {name: number}``.

NimbusImage: the fixture below reproduces the platform's checks: the web client's import dialog
reads the four ``ISerializedData`` keys (src/store/model.ts), the server's import
(helpers/dataImport.py) remaps ``_id``/``parentId``/``childId`` and refuses unknown references,
and its models validate records against ``AnnotationSchema``/``ConnectionSchema`` (draft-04 JSON
schema with an ``objectId`` type) once ``datasetId`` is set.
"""

from __future__ import annotations

import json
import re
import uuid

import geopandas
import jsonschema
import numpy as np
import pytest
from shapely.geometry import MultiPolygon, Polygon, box, shape

from sam2web.errors import UserError
from sam2web.export import class_color, export_bytes, mean_intensities, object_names, platform_id
from sam2web.links import connect
from sam2web.prompts import from_platform_json
from sam2web.types import Annotation, Connection, Location, ObjectInfo

DATASET = "65a1b2c3d4e5f60718293a4b"
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")

# --- the platform's schemas (upenncontrast_annotation/server/models/annotation.py, connections.py)
COORD = {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}, "z": {"type": "number"}},
         "required": ["x", "y"]}  # fmt: skip
ANNOTATION_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "coordinates": {"type": "array", "items": COORD, "minItems": 1},
        "tags": {"type": "array", "items": {"type": "string"}},
        "channel": {"type": "integer"},
        "location": {
            "type": "object",
            "properties": {"XY": {"type": "integer"}, "Z": {"type": "integer"}, "Time": {"type": "integer"}},
        },
        "shape": {"type": "string", "enum": ["point", "line", "polygon", "rectangle"]},
        "datasetId": {"type": "objectId"},
        "color": {"type": ["string", "null"]},
    },
    "required": ["coordinates", "tags", "channel", "location", "shape", "datasetId"],
}
CONNECTION_SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string"},
        "parentId": {"type": "objectId"},
        "childId": {"type": "objectId"},
        "datasetId": {"type": "objectId"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["parentId", "childId", "datasetId", "tags"],
}
_CHECKER = jsonschema.Draft4Validator.TYPE_CHECKER.redefine(
    "objectId", lambda _, v: isinstance(v, str) and bool(_OBJECT_ID.match(v))
)
_Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, type_checker=_CHECKER)


def platform_import(doc: dict, dataset_id: str) -> dict:
    """What the web client + server import do with a file, raising where they would."""
    # Client (AnnotationImport.vue): reads the four keys and shows their lengths.
    annotations, connections = doc["annotations"], doc["annotationConnections"]
    properties, values = doc["annotationProperties"], doc["annotationPropertyValues"]
    assert isinstance(annotations, list) and isinstance(connections, list)
    assert isinstance(properties, list) and isinstance(values, dict)
    # Server (helpers/dataImport.py): copy the allowed fields, drop nulls, set datasetId, remap ids.
    fields = ("name", "coordinates", "tags", "channel", "location", "shape", "color")
    old_to_new, created = {}, []
    for i, ann in enumerate(annotations):
        assert isinstance(ann, dict)
        new = {k: ann[k] for k in fields if ann.get(k) is not None}
        new["datasetId"] = dataset_id
        _Validator(ANNOTATION_SCHEMA).validate(new)
        new_id = f"{i:024x}"
        old = ann.get("_id", ann.get("id"))
        if old is not None:
            old_to_new[str(old)] = new_id
        created.append(new)
    links = []
    for c in connections:
        if str(c.get("parentId")) not in old_to_new or str(c.get("childId")) not in old_to_new:
            raise ValueError(f"Import references unknown annotation id: {c}")
        new = {
            "tags": c.get("tags") or [],
            "parentId": old_to_new[str(c["parentId"])],
            "childId": old_to_new[str(c["childId"])],
            "datasetId": dataset_id,
        }
        if "label" in c:
            new["label"] = c["label"]
        _Validator(CONNECTION_SCHEMA).validate(new)
        links.append(new)
    for ann_id in values:
        assert ann_id in old_to_new
    return {"annotations": created, "connections": links}


@pytest.fixture()
def sample():
    donut = Polygon([(10, 10), (30, 10), (30, 25), (10, 25)], [[(15, 15), (15, 20), (20, 20), (20, 15)]])
    two = MultiPolygon([box(0, 0, 3, 3), box(40, 40, 50, 44)])
    anns = [
        Annotation("0-0-0-1", 0, Location(0, 0, 1), donut, 1, ["cell", "mitotic"]),
        Annotation("0-0-1-1", 0, Location(0, 1, 1), two, 1, ["cell"]),
        Annotation("4-2-3-0", 4, Location(2, 3, 0), box(5.5, 6.25, 8, 9), 0, []),
    ]
    names = object_names({0: ObjectInfo(0, name="mother cell"), 4: ObjectInfo(4, name="")})
    return anns, connect(anns), names


# ------------------------------------------------------------------------------------------ QuPath
def test_qupath_feature_fields(sample):
    anns, links, names = sample
    doc = json.loads(export_bytes(anns, links, names=names)["annotations.geojson"])
    f0, f1, f2 = doc["features"]
    assert uuid.UUID(f0["id"]).version == 5 and len({f["id"] for f in doc["features"]}) == 3
    assert f0["geometry"]["type"] == "Polygon" and f0["geometry"]["plane"] == {"c": -1, "z": 1, "t": 0}
    assert f1["geometry"]["plane"] == {"c": -1, "z": 1, "t": 1} and f2["geometry"]["plane"] == {"c": -1, "z": 0, "t": 3}
    p0 = f0["properties"]
    assert p0["objectType"] == "detection"
    assert p0["name"] == "mother cell" and f2["properties"]["name"] == "object 4"  # unnamed -> "object N"
    assert p0["classification"] == {"name": "cell", "color": class_color("cell")}  # first tag
    assert all(isinstance(v, int) and 0 <= v <= 255 for v in p0["classification"]["color"])
    assert "classification" not in f2["properties"]  # no tags: unclassified
    assert p0["measurements"]["Area px^2"] == pytest.approx(anns[0].geometry.area)
    assert p0["measurements"]["Perimeter px"] == pytest.approx(anns[0].geometry.length)
    assert "Mean intensity" not in p0["measurements"]
    # sam2web's own keys stay
    assert (p0["id"], p0["object_id"], p0["XY"], p0["Time"], p0["Z"], p0["channel"]) == ("0-0-0-1", 0, 0, 0, 1, 1)
    assert p0["tags"] == ["cell", "mitotic"] and p0["area"] == pytest.approx(275.0)


def test_qupath_ids_and_colours_are_stable(sample):
    anns, links, names = sample
    a = export_bytes(anns, links, names=names)["annotations.geojson"]
    assert a == export_bytes(anns, links, names=names)["annotations.geojson"]
    assert class_color("cell") == class_color("cell") and class_color("cell") != class_color("mitotic")


def test_qupath_annotation_type_and_intensity(sample):
    anns, links, names = sample
    frame = np.arange(60 * 60, dtype=np.uint16).reshape(60, 60)
    means = mean_intensities(anns, lambda loc, c: frame)
    # The box 5.5..8 x 6.25..9: pixel centres inside are columns 6, 7 and rows 6, 7, 8.
    assert means["4-2-3-0"] == pytest.approx(frame[6:9, 6:8].mean())
    donut = np.zeros((60, 60), bool)
    donut[10:25, 10:30] = True
    donut[15:20, 15:20] = False
    assert means["0-0-0-1"] == pytest.approx(frame[donut].mean())
    doc = json.loads(
        export_bytes(anns, links, names=names, object_type="annotation", intensities=means)["annotations.geojson"]
    )
    assert {f["properties"]["objectType"] for f in doc["features"]} == {"annotation"}
    assert doc["features"][2]["properties"]["measurements"]["Mean intensity"] == pytest.approx(means["4-2-3-0"])
    with pytest.raises(UserError, match="detection or annotation"):
        export_bytes(anns, links, object_type="cell")


def test_qupath_geojson_still_loads_in_geopandas(sample, tmp_path):
    anns, links, names = sample
    path = tmp_path / "a.geojson"
    path.write_bytes(export_bytes(anns, links, names=names)["annotations.geojson"])
    gdf = geopandas.read_file(path)
    assert len(gdf) == 3 and list(gdf["object_id"]) == [0, 0, 4] and list(gdf["Time"]) == [0, 1, 3]
    assert gdf.geometry.iloc[0].equals(anns[0].geometry) and gdf.geometry.iloc[1].geom_type == "MultiPolygon"
    assert list(gdf["objectType"]) == ["detection"] * 3
    doc = json.loads(path.read_text())
    assert shape(doc["features"][0]["geometry"]).equals(anns[0].geometry)  # the plane member is ignored


# -------------------------------------------------------------------------------------- NimbusImage
def test_nimbus_has_the_platform_export_shape(sample):
    anns, links, names = sample
    doc = json.loads(export_bytes(anns, links, names=names, dataset_id=DATASET)["nimbus.json"])
    assert set(doc) == {"annotations", "annotationConnections", "annotationProperties", "annotationPropertyValues"}
    assert doc["annotationProperties"] == [] and doc["annotationPropertyValues"] == {}
    rec = doc["annotations"][0]
    assert rec["_id"] == platform_id("0-0-0-1") and rec["name"] == "mother cell" and rec["datasetId"] == DATASET
    assert rec["shape"] == "polygon" and rec["location"] == {"XY": 0, "Z": 1, "Time": 0} and rec["channel"] == 1
    assert rec["color"] is None and rec["tags"] == ["cell", "mitotic"]
    ids = {r["_id"] for r in doc["annotations"]}
    for c in doc["annotationConnections"]:
        assert c["parentId"] in ids and c["childId"] in ids and c["datasetId"] == DATASET
        _Validator(CONNECTION_SCHEMA).validate(c)  # with a real dataset id, the direct-create schema passes
    for r in doc["annotations"]:
        _Validator(ANNOTATION_SCHEMA).validate({k: v for k, v in r.items() if k != "_id"})
    imported = platform_import(doc, DATASET)
    assert len(imported["annotations"]) == 3 and len(imported["connections"]) == 1
    assert imported["connections"][0]["label"] == "SAM2_VIDEO"


def test_nimbus_without_dataset_id_still_imports(sample):
    anns, links, names = sample
    doc = json.loads(export_bytes(anns, links, names=names)["nimbus.json"])
    assert {r["datasetId"] for r in doc["annotations"]} == {None}
    assert len(platform_import(doc, DATASET)["annotations"]) == 3  # the server sets datasetId itself


def test_nimbus_carries_every_connection_given(sample):
    anns, links, names = sample
    division = Connection("0-0-1-1", "4-2-3-0", 0, ["SAM2_VIDEO", "division"])
    doc = json.loads(export_bytes(anns, links + [division], dataset_id=DATASET)["nimbus.json"])
    assert [c["tags"] for c in doc["annotationConnections"]] == [["SAM2_VIDEO"], ["SAM2_VIDEO", "division"]]
    assert len(platform_import(doc, DATASET)["connections"]) == 2
    broken = Connection("0-0-1-1", "nowhere", 0)
    with pytest.raises(ValueError, match="unknown annotation"):
        platform_import(json.loads(export_bytes(anns, [broken])["nimbus.json"]), DATASET)


def test_empty_export_has_empty_lists():
    doc = json.loads(export_bytes([], [])["nimbus.json"])
    assert doc == {
        "annotations": [],
        "annotationConnections": [],
        "annotationProperties": [],
        "annotationPropertyValues": {},
    }


@pytest.mark.parametrize("bad", ["abc", "65a1b2c3d4e5f60718293a4", "65a1b2c3d4e5f60718293a4g", "../x"])
def test_bad_dataset_id_is_refused(sample, bad):
    anns, links, _ = sample
    with pytest.raises(UserError, match="24-character id"):
        export_bytes(anns, links, dataset_id=bad)


def test_prompt_importer_reads_old_and_new_shapes(sample):
    anns, links, names = sample
    new = export_bytes(anns, links, names=names)["nimbus.json"]
    got = from_platform_json(new, 60, 60)
    assert len(got) == 3 and got[0].name == "mother cell" and got[0].loc == Location(0, 0, 1)
    old = {
        "annotations": [
            {"id": "a", "shape": "polygon", "coordinates": [{"x": 1, "y": 1}, {"x": 9, "y": 1}, {"x": 9, "y": 5}],
             "location": {"XY": 0, "Z": 0, "Time": 2}, "channel": 0, "tags": ["cell"]}
        ],
        "connections": [],
    }  # fmt: skip
    (p,) = from_platform_json(old, 60, 60)
    assert p.box == (1.0, 1.0, 9.0, 5.0) and p.loc == Location(0, 2, 0)


# ------------------------------------------------------------------------------------------ CLI
def test_convert_fills_dataset_id_and_names(tmp_path, capsys):
    import tifffile

    from sam2web.cli import main

    labels = np.zeros((3, 40, 50), np.uint16)
    for t in range(3):
        labels[t, 5 + t : 15 + t, 10:20] = 7
    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, labels, photometric="minisblack")
    out = tmp_path / "out"
    assert main(["convert", str(path), "--out", str(out), "--dataset-id", DATASET.upper()]) == 0
    doc = json.loads((out / "nimbus.json").read_text())
    assert {r["datasetId"] for r in doc["annotations"]} == {DATASET} and len(doc["annotationConnections"]) == 2
    assert doc["annotations"][0]["name"] == "label 7"
    platform_import(doc, DATASET)
    geo = json.loads((out / "annotations.geojson").read_text())
    assert [f["geometry"]["plane"]["t"] for f in geo["features"]] == [0, 1, 2]
    assert main(["convert", str(path), "--out", str(tmp_path / "bad"), "--dataset-id", "nope"]) == 2
    assert "24-character id" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_real_bacteria_labels_land_on_their_planes_and_import(tmp_path):
    """The issue's file: 328 bacteria polygons on 30 time points (not all on t = 0)."""
    from geom_synthetic import TRA

    from sam2web.cli import main

    if not TRA.is_dir():
        pytest.skip("shared bacteria data not present")
    out = tmp_path / "bact"
    assert main(["convert", str(TRA), "--out", str(out), "--dataset-id", DATASET]) == 0
    feats = json.loads((out / "annotations.geojson").read_text())["features"]
    assert len(feats) == 328 and len({f["geometry"]["plane"]["t"] for f in feats}) == 30
    assert all(f["geometry"]["plane"]["t"] == f["properties"]["Time"] for f in feats)
    assert len({f["id"] for f in feats}) == 328 and all(uuid.UUID(f["id"]) for f in feats)
    assert len(geopandas.read_file(out / "annotations.geojson")) == 328
    imported = platform_import(json.loads((out / "nimbus.json").read_text()), DATASET)
    # 266 links within tracks, plus a DIVISION link from each of the 30 mothers to each of her 2 daughters
    assert len(imported["annotations"]) == 328 and len(imported["connections"]) == 266 + 60
