"""Label outputs: the OME-TIFF label stack (axes, ids, lineage metadata) and the CTC zip."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import tifffile
from geom_synthetic import synthetic_result

from sam2web import ctc
from sam2web.errors import UserError
from sam2web.geometry import annotations_from_result
from sam2web.label_export import ctc_zip_bytes, label_files, label_stack, label_stack_bytes
from sam2web.links import connect
from sam2web.types import Connection, Location

SHAPE = (200, 260)


@pytest.fixture()
def run():
    res = synthetic_result(n_frames=5, n_objects=3, shape=SHAPE)
    anns = annotations_from_result(res, padding=0, smoothing=0)
    return res, anns, connect(anns)


def test_label_stack_holds_object_ids(run):
    res, anns, _ = run
    stack = label_stack(anns, SHAPE, "time", 6)
    assert stack.shape == (6, *SHAPE) and stack.dtype == np.uint16
    for (obj, loc), cm in res.masks.items():
        labels = stack[loc.time]
        mask = cm.to_mask()
        # the object's own pixels carry id + 1 (overlaps go to the later object, so compare the rest)
        mine = mask & ~np.isin(labels, [o + 1 for o in range(obj + 1, 10)])
        assert np.all(labels[mine] == obj + 1)
    assert not stack[5].any()  # a frame without polygons is all background


def test_ome_tiff_opens_with_axes_ids_and_lineage(run, tmp_path):
    _, anns, links = run
    a0 = next(a for a in anns if a.obj_id == 0)
    a2 = next(a for a in anns if a.obj_id == 2 and a.loc.time > a0.loc.time)
    division = Connection(a0.id, a2.id, 0, ["SAM2_VIDEO", "division"])
    data = label_stack_bytes(anns, SHAPE, "time", 5, 0, links + [division], {0: "mother"}, pixel_size=(0.5, 0.5, "µm"))
    path = tmp_path / "labels.ome.tif"
    path.write_bytes(data)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        series = tif.series[0]
        assert series.axes == "TYX" and series.shape == (5, *SHAPE)
        arr = series.asarray()
        meta = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
    assert np.array_equal(arr, label_stack(anns, SHAPE, "time", 5))
    assert set(np.unique(arr)) == {0} | {a.obj_id + 1 for a in anns}
    desc = json.loads(meta["Description"])
    assert desc["labels"]["1"] == {"object_id": 0, "name": "mother"}
    assert desc["labels"]["2"]["name"] == "object 1"
    assert desc["lineage"] == [{"mother": 1, "daughter": 3}]  # same-object links are not lineage
    assert float(meta["Pixels"]["PhysicalSizeX"]) == 0.5


def test_z_stack_gets_zyx_axes(run):
    _, anns, _ = run
    moved = [type(a)(a.id, a.obj_id, Location(0, 0, a.loc.time), a.geometry, a.channel, a.tags) for a in anns]
    with tifffile.TiffFile(io.BytesIO(label_stack_bytes(moved, SHAPE, "z", 5))) as tif:
        assert tif.series[0].axes == "ZYX"
    with pytest.raises(UserError, match="several Z slices"):
        mixed = moved[:1] + [type(a)(a.id, a.obj_id, Location(0, 1, 2), a.geometry) for a in moved[1:2]]
        label_stack(mixed, SHAPE, "time")


def test_ctc_zip_is_what_track_ctc_writes(run, tmp_path):
    _, anns, links = run
    data = ctc_zip_bytes(anns, SHAPE, "time", 5)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert "ctc/res_track.txt" in names and "ctc/mask000.tif" in names and len(names) == 6
        zf.extractall(tmp_path / "zip")
    ctc.write_ctc_annotations(tmp_path / "direct", anns, SHAPE, "time", 0, 5)
    got_frames, got_tracks = ctc.read_ctc(tmp_path / "zip" / "ctc")
    want_frames, want_tracks = ctc.read_ctc(tmp_path / "direct")
    assert got_tracks == want_tracks and len(got_tracks) == 3
    assert all(np.array_equal(got_frames[f], want_frames[f]) for f in want_frames)
    with tifffile.TiffFile(tmp_path / "zip" / "ctc" / "mask002.tif") as tif:
        assert tif.series[0].shape == SHAPE and tif.series[0].dtype == np.uint16


def test_label_files_names(run):
    _, anns, links = run
    files = label_files(anns, links, SHAPE, "time", 5, 0)
    assert list(files) == ["labels_xy1.ome.tif", "ctc_xy1.zip"] and all(files.values())
