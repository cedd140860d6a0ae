"""TrackMate XML export, read back by an independent reader (geff's TrackMate converter)."""

from __future__ import annotations

import csv
import io
import warnings
import xml.etree.ElementTree as ET
from collections import Counter

import pytest
import shapely
from geom_synthetic import TRA, needs_tra
from shapely.geometry import Polygon

from sam2web import exporters
from sam2web.cli import main
from sam2web.errors import UserError
from sam2web.links import connect
from sam2web.types import Annotation, Location


def _read_back(xml_path, tmp_path):
    """The XML as geff's TrackMate converter reads it (spots = nodes, edges, ROI per spot)."""
    import geff
    from geff.convert import from_trackmate_xml_to_geff

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_trackmate_xml_to_geff(xml_path, tmp_path / "back.geff")
        return geff.read(str(tmp_path / "back.geff"))


@needs_tra
def test_trackmate_export_of_the_ground_truth_reads_back_with_the_same_spots_edges_and_divisions(tmp_path):
    out = tmp_path / "gt"
    assert main(["convert", str(TRA), "--trackmate", "--out", str(out)]) == 0
    graph, meta = _read_back(out / "trackmate.xml", tmp_path)
    rows = list(csv.DictReader(io.StringIO((out / "annotations.csv").read_text())))
    links = list(csv.DictReader(io.StringIO((out / "connections.csv").read_text())))
    # the same spots: one per polygon, same object and frame
    got = Counter((int(d["OBJECT_ID"]), int(d["FRAME"])) for _, d in graph.nodes(data=True))
    assert got == Counter((int(r["object_id"]), int(r["Time"])) for r in rows)
    # the same edges, as (object, frame) -> (object, frame)
    key = {n: (int(d["OBJECT_ID"]), int(d["FRAME"])) for n, d in graph.nodes(data=True)}

    def place(annotation_id):
        obj, _xy, t, _z = annotation_id.split("-")
        return int(obj), int(t)

    assert {(key[u], key[v]) for u, v in graph.edges} == {(place(r["parent_id"]), place(r["child_id"])) for r in links}
    # the same divisions: mothers with two daughters, one track per founder's lineage
    mothers = Counter(place(r["parent_id"]) for r in links if r["tags"] == "DIVISION")
    assert {key[n] for n in graph if graph.out_degree(n) == 2} == {m for m, k in mothers.items() if k == 2}
    assert len({d["TRACK_ID"] for _, d in graph.nodes(data=True)}) == 2  # the colony's two founders
    # each ROI is the polygon (relative to the spot centre): its area is the spot's AREA
    for _, d in list(graph.nodes(data=True))[::20]:
        assert Polygon(d["ROI_coords"]).area == pytest.approx(d["AREA"])
    assert [a.unit for a in meta.axes if a.name == "POSITION_X"] == ["pixel"]


def test_trackmate_calibration_positions_and_file_reference(tmp_path):
    anns = [
        Annotation(f"0-0-{t}-0", 0, Location(0, t, 0), shapely.box(2 + t, 2, 6 + t, 5), tags=["a"]) for t in range(3)
    ]
    anns += [
        Annotation("1-0-3-0", 1, Location(0, 3, 0), shapely.box(1, 1, 3, 3), parent=0),
        Annotation("2-0-3-0", 2, Location(0, 3, 0), shapely.box(6, 6, 9, 9), parent=0),
        Annotation("3-0-1-0", 3, Location(0, 1, 0), shapely.box(10, 0, 12, 2)),  # linked to nothing
    ]
    units = exporters.Units(pixel_size=(0.5, 0.25), time_interval=30.0)
    ctx = exporters.ExportContext(
        anns, connect(anns), frame_shape=(10, 12), n_frames=4, units=units, source="movie.ome.tif", names={0: "mum"}
    )
    files = exporters.export_files(ctx, ("trackmate",))
    assert list(files) == ["trackmate.xml"]
    (tmp_path / "t.xml").write_bytes(files["trackmate.xml"])
    root = ET.fromstring(files["trackmate.xml"])
    image = root.find("Settings/ImageData").attrib
    assert image["filename"] == "movie.ome.tif"
    assert (image["width"], image["height"], image["nframes"]) == ("12", "10", "4")
    assert (float(image["pixelwidth"]), float(image["pixelheight"]), float(image["timeinterval"])) == (0.5, 0.25, 30.0)
    assert root.find("Model").attrib == {"spatialunits": "µm", "timeunits": "sec"}
    graph, _ = _read_back(tmp_path / "t.xml", tmp_path)
    assert graph.number_of_nodes() == 6 and graph.number_of_edges() == 4
    first = next(d for _, d in graph.nodes(data=True) if d["FRAME"] == 0)
    # box (2..6, 2..5): centre (3.5, 3.0) in array-index pixels, times the pixel size
    assert (first["POSITION_X"], first["POSITION_Y"], first["POSITION_T"]) == (1.75, 0.75, 0.0)
    assert first["name"] == "mum"
    assert first["AREA"] == pytest.approx(12 * 0.125)
    assert Polygon(first["ROI_coords"]).area == pytest.approx(12 * 0.125)
    lone = next(d for _, d in graph.nodes(data=True) if d["OBJECT_ID"] == 3)
    assert "TRACK_ID" not in lone  # a spot linked to nothing is in no track, as in TrackMate
    # a second position gets its own file; a run across Z is refused with a sentence
    moved = [Annotation("9-1-0-0", 9, Location(1, 0, 0), shapely.box(1, 1, 4, 4))]
    both = exporters.ExportContext(anns + moved, connect(anns + moved), frame_shape=(10, 12))
    assert sorted(exporters.export_files(both, ("trackmate",))) == ["trackmate_xy1.xml", "trackmate_xy2.xml"]
    with pytest.raises(UserError, match="through time"):
        exporters.export_files(exporters.ExportContext(anns, [], across="z"), ("trackmate",))
