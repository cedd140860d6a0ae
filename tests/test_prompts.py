"""Prompt sources and their bad inputs: every problem is one UserError sentence, never a crash."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sam2web.errors import UserError
from sam2web.export import export_bytes
from sam2web.geometry import annotations_from_result
from sam2web.links import connect
from sam2web.prompts import (
    available_tags,
    from_geojson,
    from_label_image,
    from_platform_json,
    load_prompts,
    make_box,
    prompt_from_dict,
    prompt_to_dict,
    renumber,
)
from sam2web.types import CompactMask, Location, ObjectInfo, Prompt, TrackResult

W, H = 120, 80  # non-square on purpose


def fc(*features) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


def poly_feature(x0, y0, x1, y1, **props) -> dict:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props}


def point_feature(x, y, **props) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]}, "properties": props}


# ------------------------------------------------------------------------------------ boxes
def test_make_box_clips_to_the_image():
    assert make_box(-5, 10, 50, 200, W, H) == (0.0, 10.0, 50.0, 80.0)


@pytest.mark.parametrize(
    "box, words",
    [
        ((10, 10, 10, 20), "empty or inverted"),
        ((30, 10, 20, 20), "empty or inverted"),
        ((200, 10, 260, 20), "outside"),
        ((-30, -30, -1, -1), "outside"),
        ((float("nan"), 0, 5, 5), "finite number"),
        (("a", 0, 5, 5), "finite number"),
    ],
)
def test_make_box_refuses_bad_boxes(box, words):
    with pytest.raises(UserError, match=words):
        make_box(*box, W, H)


# ---------------------------------------------------------------------------------- GeoJSON
def test_polygons_become_bounds_boxes_at_their_location():
    data = fc(poly_feature(10, 5, 30, 25, XY=0, Time=3, Z=1, tags=["cell"]), poly_feature(50, 40, 200, 60, Time=4))
    prompts = from_geojson(json.dumps(data), W, H)
    assert [p.obj_id for p in prompts] == [0, 1]
    assert prompts[0].box == (10.0, 5.0, 30.0, 25.0) and prompts[0].loc == Location(0, 3, 1)
    assert prompts[0].tags == ["cell"]
    assert prompts[1].box == (50.0, 40.0, 120.0, 60.0)  # clipped to the image
    assert prompts[1].loc == Location(0, 4, 0)


def test_points_boxes_and_object_ids_group_into_one_prompt_per_frame():
    data = fc(
        point_feature(15, 15, object_id="a", label=1, Time=0),
        point_feature(18, 16, object_id="a", label=0, Time=0),
        {"type": "Feature", "geometry": None, "bbox": [10, 10, 20, 20], "properties": {"object_id": "a", "Time": 0}},
        point_feature(60, 30, object_id="b", Time=2),
        point_feature(61, 31, object_id="a", Time=5),
    )
    prompts = from_geojson(data, W, H)
    by = {(p.obj_id, p.loc.time): p for p in prompts}
    assert set(by) == {(0, 0), (1, 2), (0, 5)}
    assert by[(0, 0)].points == [(15.0, 15.0, 1), (18.0, 16.0, 0)] and by[(0, 0)].box == (10, 10, 20, 20)
    assert by[(1, 2)].points == [(60.0, 30.0, 1)]


def test_box_typed_polygon_and_default_location():
    feat = poly_feature(1, 2, 11, 12, type="box")
    prompts = from_geojson(fc(feat), W, H, default_loc=Location(0, 7, 0))
    assert prompts[0].box == (1, 2, 11, 12) and prompts[0].loc == Location(0, 7, 0)


@pytest.mark.parametrize(
    "data, words",
    [
        ("", "empty"),
        ("{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        ('{"type": "Feature", "properties": {"Time": 0}}', "geometry type"),
        ("[1, 2]", "not a GeoJSON FeatureCollection"),
        (json.dumps(fc()), "no features"),
        (json.dumps({"type": "FeatureCollection", "features": 3}), "features"),
        (json.dumps(fc(poly_feature(1, 1, 5, 5))), "no location"),
        (json.dumps(fc(poly_feature(500, 500, 600, 600, Time=0))), "outside"),
        (json.dumps(fc(poly_feature(5, 5, 5, 9, Time=0))), "empty or inverted"),
        (json.dumps(fc(point_feature(500, 5, Time=0))), "outside"),
        (json.dumps(fc(point_feature(5, 5, Time=0, label=7))), "label"),
        (json.dumps(fc(point_feature(5, 5, Time=0, label=0))), "only negative points"),
        (json.dumps(fc(poly_feature(1, 1, 5, 5, Time=-1))), "0 or more"),
        (json.dumps(fc(poly_feature(1, 1, 5, 5, Time="two"))), "whole number"),
        (
            json.dumps(
                fc(
                    {
                        "type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": [["x"]]},
                        "properties": {"Time": 0},
                    }
                )
            ),
            "not an \\[x, y\\] pair",
        ),
        (
            json.dumps(
                fc({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": []}, "properties": {"Time": 0}})
            ),
            "no coordinates",
        ),
    ],
)
def test_bad_geojson_is_one_sentence(data, words):
    with pytest.raises(UserError, match=words) as info:
        from_geojson(data, W, H)
    msg = str(info.value)
    assert msg.endswith(".") and "\n" not in msg and "Traceback" not in msg


def test_tag_filter_keeps_matching_and_lists_tags_when_nothing_matches():
    data = fc(poly_feature(1, 1, 5, 5, Time=0, tags=["cell"]), poly_feature(6, 6, 9, 9, Time=0, tags=["debris"]))
    assert len(from_geojson(data, W, H, tags=[])) == 2  # none chosen = all
    kept = from_geojson(data, W, H, tags=["debris"])
    assert len(kept) == 1 and kept[0].obj_id == 0 and kept[0].tags == ["debris"]
    with pytest.raises(UserError, match="tags in the file: cell, debris"):
        from_geojson(data, W, H, tags=["nucleus"])


def test_our_own_export_reads_back_as_prompts():
    shape = (H, W)
    res = TrackResult(objects={0: ObjectInfo(0, tags=["cell"]), 5: ObjectInfo(5, tags=["cell"])})
    for t in range(3):
        m = np.zeros(shape, bool)
        m[10 + t : 20 + t, 30:50] = True
        res.masks[(0, Location(0, t, 0))] = CompactMask.from_mask(m)
        m2 = np.zeros(shape, bool)
        m2[50:60, 5 + t : 15 + t] = True
        res.masks[(5, Location(0, t, 0))] = CompactMask.from_mask(m2)
    anns = annotations_from_result(res, smoothing=0)
    geo = export_bytes(anns, connect(anns))["annotations.geojson"]
    every = from_geojson(geo, W, H)
    assert len(every) == 6 and {p.obj_id for p in every} == {0, 1}
    first = from_geojson(geo, W, H, first_only=True)
    assert [(p.obj_id, p.loc.time, p.box) for p in first] == [
        (0, 0, (30.0, 10.0, 50.0, 20.0)),
        (1, 0, (5.0, 50.0, 15.0, 60.0)),
    ]
    nimbus = export_bytes(anns, [])["nimbus.json"]
    assert len(from_platform_json(nimbus, W, H)) == 6  # each record is its own object


# ------------------------------------------------------------------------------ platform JSON
def platform_record(coords, tags=("cell",), loc=None, shape="polygon") -> dict:
    return {
        "shape": shape,
        "coordinates": [{"x": x, "y": y} for x, y in coords],
        "location": loc or {"XY": 0, "Z": 0, "Time": 2},
        "channel": 0,
        "tags": list(tags),
    }


def test_platform_polygons_become_bounds_filtered_by_tag():
    recs = [
        platform_record([(10, 10), (30, 12), (20, 25)]),
        platform_record([(50, 50), (60, 55), (55, 70)], tags=["other"], loc={"XY": 0, "Z": 3, "Time": 1}),
        platform_record([(5, 6)], shape="point"),
    ]
    everything = from_platform_json(json.dumps(recs), W, H)
    assert [p.box for p in everything[:2]] == [(10, 10, 30, 25), (50, 50, 60, 70)]
    assert everything[1].loc == Location(0, 1, 3)
    assert everything[2].points == [(5.0, 6.0, 1)] and everything[2].box is None
    only = from_platform_json({"annotations": recs}, W, H, tags=["other"])
    assert len(only) == 1 and only[0].obj_id == 0 and only[0].box == (50, 50, 60, 70)
    with pytest.raises(UserError, match="tags in the file: cell, other"):
        from_platform_json(recs, W, H, tags=["nope"])
    assert available_tags(everything) == ["cell", "other"]


@pytest.mark.parametrize(
    "data, words",
    [
        ("{}", "neither a list"),
        ("[]", "no annotations"),
        ("[3]", "not an object"),
        (json.dumps([{"shape": "polygon", "coordinates": [{"x": 1, "y": 1}, {"x": 5, "y": 5}]}]), "no location"),
        (json.dumps([platform_record([(1, 1), (5, 5)], shape="ellipse")]), "shape"),
        (json.dumps([platform_record([(1, 1), (5, 5)], loc={"XY": 0, "Z": 0, "Time": 1.5})]), "whole number"),
        (
            json.dumps([{"shape": "polygon", "coordinates": [{"x": "a", "y": 1}], "location": {"Time": 0}}]),
            "finite number",
        ),
    ],
)
def test_bad_platform_json_is_one_sentence(data, words):
    with pytest.raises(UserError, match=words):
        from_platform_json(data, W, H)


# ------------------------------------------------------------------------------- label images
def test_each_label_becomes_one_mask_prompt():
    labels = np.zeros((H, W), np.uint16)
    labels[5:10, 5:10] = 7
    labels[20:30, 40:60] = 300
    prompts = from_label_image(labels, Location(0, 4, 0), tags=["seed"], shape=(H, W))
    assert [(p.obj_id, p.name) for p in prompts] == [(0, "label 7"), (1, "label 300")]
    assert prompts[1].mask.sum() == 200 and prompts[1].mask[25, 50]
    assert prompts[0].loc == Location(0, 4, 0) and prompts[0].tags == ["seed"]


@pytest.mark.parametrize(
    "labels, words",
    [
        (np.zeros((H, W + 1), np.uint8), "frames are 120x80"),
        (np.zeros((2, H, W), np.uint8), "one 2D image"),
        (np.zeros((H, W), np.uint8), "no labels"),
        (np.full((H, W), 0.5), "whole-number labels"),
        (np.full((H, W), -1, np.int32), "negative"),
    ],
)
def test_bad_label_images(labels, words):
    with pytest.raises(UserError, match=words):
        from_label_image(labels, Location(0, 0, 0), shape=(H, W))


# ------------------------------------------------------------------------------- load_prompts
def test_load_prompts_dispatches_by_content_not_name(tmp_path):
    geo = tmp_path / "boxes.txt"
    geo.write_text(json.dumps(fc(poly_feature(1, 1, 9, 9, Time=1))))
    assert load_prompts(geo, W, H)[0].box == (1, 1, 9, 9)
    plat = tmp_path / "nimbus.geojson"
    plat.write_text(json.dumps([platform_record([(2, 2), (8, 9)])]))
    assert load_prompts(plat, W, H)[0].box == (2, 2, 8, 9)
    labels = np.zeros((H, W), np.uint16)
    labels[3:6, 3:9] = 2
    tif = tmp_path / "labels.json"
    tifffile.imwrite(tif, labels)
    got = load_prompts(tif, W, H, loc=Location(0, 2, 0))
    assert got[0].mask.sum() == 18 and got[0].loc == Location(0, 2, 0)
    png = tmp_path / "labels.png"
    cv2.imwrite(str(png), labels.astype(np.uint8))
    assert load_prompts(png, W, H)[0].loc == Location(0, 0, 0)


def test_load_prompts_bad_files(tmp_path):
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "text.geojson").write_text("hello world")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.ones((5, 5), np.uint8))
    for name, words in [
        ("empty.json", "empty"),
        ("text.geojson", "neither JSON"),
        ("bad.tif", "holds no image|cannot be read"),
        ("small.tif", "frames are"),
        ("missing.json", "does not exist"),
    ]:
        with pytest.raises(UserError, match=words):
            load_prompts(tmp_path / name, W, H)


# ---------------------------------------------------------------------------------- ids, dicts
def test_renumber_is_stable_and_sequential():
    ps = [Prompt(9, Location(0, 0, 0)), Prompt(4, Location(0, 1, 0)), Prompt(9, Location(0, 3, 0))]
    assert [p.obj_id for p in renumber(ps)] == [0, 1, 0]
    assert ps[0].obj_id == 9  # inputs untouched


def test_prompt_dict_round_trip_is_json_safe():
    mask = np.zeros((H, W), bool)
    mask[10:20, 30:33] = True
    p = Prompt(
        3, Location(1, 2, 3), box=(1.5, 2, 30, 40), points=[(4, 5, 1), (6, 7, 0)], mask=mask, tags=["a"], name="cell"
    )
    d = json.loads(json.dumps(prompt_to_dict(p)))
    q = prompt_from_dict({**d, "colour": "#ff0000"})  # UI extras are ignored
    assert (q.obj_id, q.loc, q.box, q.points, q.tags, q.name) == (
        3,
        Location(1, 2, 3),
        (1.5, 2, 30, 40),
        [(4, 5, 1), (6, 7, 0)],
        ["a"],
        "cell",
    )
    assert np.array_equal(q.mask, mask)
    assert len(d["mask"]["bits"]) < 100  # the bbox only, not the frame
    with pytest.raises(UserError, match="damaged"):
        prompt_from_dict({**d, "mask": {"shape": [H, W], "bbox": [0, 0, 5, 5], "bits": "!!"}})
    with pytest.raises(UserError, match="damaged"):
        prompt_from_dict({**d, "box": [1, 2]})


# ---------------------------------------------------------------------------- property tests
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "features",
                    "geometry",
                    "coordinates",
                    "properties",
                    "Time",
                    "XY",
                    "Z",
                    "label",
                    "object_id",
                    "tags",
                    "bbox",
                    "annotations",
                    "shape",
                    "location",
                    "x",
                    "y",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)

feature_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Feature", "Other"]),
        "geometry": st.none()
        | st.fixed_dictionaries(
            {
                "type": st.sampled_from(["Polygon", "Point", "MultiPolygon", "LineString", "Circle"]),
                "coordinates": json_values,
            }
        ),
        "properties": json_values,
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        json_values,
        st.builds(lambda fs: {"type": "FeatureCollection", "features": fs}, st.lists(feature_like, max_size=4)),
    )
)
def test_importers_raise_only_user_errors_on_junk(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("junk") / "prompts.json"
    path.write_text(json.dumps(doc))
    try:
        load_prompts(path, W, H, loc=Location(0, 1, 0))
    except UserError as err:
        assert str(err).strip()
    for fn in (from_geojson, from_platform_json):
        for data in (doc, json.dumps(doc)):
            try:
                prompts = fn(data, W, H)
            except UserError as err:
                assert str(err).strip()
            else:
                assert all(isinstance(p, Prompt) for p in prompts)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64))
def test_load_prompts_raises_only_user_errors_on_junk_bytes(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("junk") / "prompts.bin"
    path.write_bytes(raw)
    try:
        load_prompts(path, W, H)
    except UserError:
        pass


def test_huge_numbers_and_nested_locations():
    big = "1" + "0" * 400
    with pytest.raises(UserError, match="finite number"):
        from_geojson(
            '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"Time":0},'
            '"geometry":{"type":"Point","coordinates":[' + big + ",1]}}]}",
            W,
            H,
        )
    with pytest.raises(UserError, match="whole number"):
        from_platform_json('[{"shape":"polygon","coordinates":[{"x":1,"y":1}],"location":{"Time":' + big + "}}]", W, H)
    with pytest.raises(UserError, match="finite number"):
        make_box(0, 0, 10**400, 5, W, H)
    feat = poly_feature(1, 2, 11, 12, location={"XY": 0, "Time": 6, "Z": 2})
    assert from_geojson(fc(feat), W, H)[0].loc == Location(0, 6, 2)
