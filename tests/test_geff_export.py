"""GEFF export, checked with independent readers: geff itself, traccuracy and napari-geff."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import warnings

import numpy as np
import pytest
import shapely
from geom_synthetic import TRA, needs_tra

from sam2web import exporters
from sam2web.cli import main
from sam2web.links import connect
from sam2web.types import Annotation, Location


@pytest.fixture(scope="module")
def gt_export(tmp_path_factory):
    """``convert --geff`` of the ground truth (bacteria_ctc/TRA), done once for the module."""
    if not TRA.is_dir():
        pytest.skip(f"shared real data not found at {TRA}")
    out = tmp_path_factory.mktemp("gt")
    assert main(["convert", str(TRA), "--geff", "--out", str(out)]) == 0
    return out


def _quiet():
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    logging.getLogger("traccuracy").setLevel(logging.ERROR)
    return stack


@needs_tra
def test_traccuracy_scores_the_ground_truth_geff_perfectly(gt_export):
    from traccuracy import run_metrics
    from traccuracy.loaders import load_ctc_data, load_geff_data
    from traccuracy.matchers import CTCMatcher, PointMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    with _quiet():
        gt = load_ctc_data(str(TRA), str(TRA / "man_track.txt"))
        # the label image comes from the GEFF's own related_objects
        pred = load_geff_data(str(gt_export / "tracks.geff"), load_geff_seg=True)
        by_mask, _ = run_metrics(gt, pred, CTCMatcher(), [CTCMetrics(), DivisionMetrics()])
        by_point, _ = run_metrics(gt, pred, PointMatcher(threshold=2.0), [CTCMetrics(), DivisionMetrics()])
    for results in (by_mask, by_point):
        ctc, div = results[0]["results"], results[1]["results"]["Frame Buffer 0"]
        assert ctc["TRA"] == 1.0 and ctc["LNK"] == 1.0 and ctc["DET"] == 1.0
        assert div["Division F1"] == 1.0 and div["Total GT Divisions"] > 0


@needs_tra
def test_geff_read_gives_one_edge_per_connection_and_the_metadata(gt_export):
    import geff

    graph, meta = geff.read(str(gt_export / "tracks.geff"))
    links = list(csv.DictReader(io.StringIO((gt_export / "connections.csv").read_text())))
    rows = list(csv.DictReader(io.StringIO((gt_export / "annotations.csv").read_text())))
    assert graph.number_of_edges() == len(links)
    assert graph.number_of_nodes() == len(rows)
    assert [a.name for a in meta.axes] == ["t", "y", "x"]
    assert [a.type for a in meta.axes] == ["time", "space", "space"]
    assert meta.track_node_props == {"tracklet": "tracklet_id", "lineage": "lineage_id"}
    (labels,) = meta.related_objects
    assert labels.type == "labels" and labels.node_prop == "seg_id"
    # divisions are two edges out of the mother, flagged
    divisions = [(u, v) for u, v, d in graph.edges(data=True) if d["division"]]
    assert len(divisions) == sum(1 for link in links if link["tags"] == "DIVISION") > 0
    mothers = {u for u, _ in divisions}
    assert all(graph.out_degree(m) == 2 for m in mothers)
    # each node: the object's label in the stored label image is its seg_id, at its centroid
    import zarr

    image = zarr.open_array(str(gt_export / "tracks.geff" / "labels"), mode="r")
    for n in list(graph.nodes)[::25]:
        node = graph.nodes[n]
        assert node["seg_id"] == node["object_id"] + 1
        frame = np.asarray(image[node["t"]])
        assert (frame == node["seg_id"]).sum() == pytest.approx(node["area"], rel=0.1)
        assert node["polygon"].shape[1] == 2


@needs_tra
def test_napari_geff_reads_a_tracks_layer(gt_export):
    from napari_geff import get_geff_reader

    path = str(gt_export / "tracks.geff")
    reader = get_geff_reader(path)
    assert reader is not None
    layers = {kind: (data, meta) for data, meta, kind in reader(path)}
    assert set(layers) == {"labels", "tracks"}
    data, meta = layers["tracks"]
    links = list(csv.DictReader(io.StringIO((gt_export / "connections.csv").read_text())))
    assert len(data) == len(list(csv.DictReader(io.StringIO((gt_export / "annotations.csv").read_text()))))
    assert list(data.columns) == ["napari_track_id", "t", "y", "x"]
    daughters = sum(len(parents) for parents in meta["graph"].values())
    assert daughters == sum(1 for link in links if link["tags"] == "DIVISION")


def _two_positions() -> exporters.ExportContext:
    anns = []
    for xy in (0, 1):
        for t in range(3):
            anns.append(Annotation(f"0-{xy}-{t}-0", 0, Location(xy, t, 0), shapely.box(2 + t, 2, 6 + t, 5), tags=["a"]))
    anns.append(Annotation("1-0-3-0", 1, Location(0, 3, 0), shapely.box(1, 1, 3, 3), parent=0))
    anns.append(Annotation("2-0-3-0", 2, Location(0, 3, 0), shapely.box(6, 6, 9, 9), parent=0))
    units = exporters.Units(pixel_size=(0.5, 0.25), time_interval=30.0)
    return exporters.ExportContext(
        anns, connect(anns), frame_shape=(10, 12), n_frames=4, units=units, names={0: "mother"}
    )


def test_geff_per_position_with_calibration(tmp_path):
    import geff

    ctx = _two_positions()
    files = exporters.export_files(ctx, ("geff",))
    assert {name.split("/")[0] for name in files} == {"tracks_xy1.geff", "tracks_xy2.geff"}
    exporters.write_all(tmp_path, files)
    graph, meta = geff.read(str(tmp_path / "tracks_xy1.geff"))
    assert graph.number_of_nodes() == 5 and graph.number_of_edges() == 4
    scales = {a.name: (a.scale, a.scaled_unit) for a in meta.axes}
    assert scales == {"t": (30.0, "second"), "y": (0.25, "micrometer"), "x": (0.5, "micrometer")}
    for _, node in graph.nodes(data=True):
        assert node["area_physical"] == pytest.approx(node["area"] * 0.125)
    first = next(d for _, d in graph.nodes(data=True) if d["t"] == 0)
    # centroid of the box (2..6, 2..5) in array-index coordinates: pixel centres are whole numbers
    assert (first["x"], first["y"]) == (3.5, 3.0)
    assert meta.extra["sam2web"]["objects"]["0"] == {"name": "mother", "tags": ["a"]}
    assert meta.extra["sam2web"]["objects"]["1"] == {"name": "object 1", "tags": []}
    assert len({d["tracklet_id"] for _, d in graph.nodes(data=True)}) == 3  # mother + two daughters
    assert len({d["lineage_id"] for _, d in graph.nodes(data=True)}) == 1
    # a second export into the same folder replaces it whole (no stale property from the first)
    bare = exporters.ExportContext(ctx.annotations, ctx.connections, positions=(0, 1))
    exporters.write_all(tmp_path, exporters.export_files(bare, ("geff",)))
    graph, meta = geff.read(str(tmp_path / "tracks_xy1.geff"))
    assert "area_physical" not in next(iter(graph.nodes(data=True)))[1]
    assert not (tmp_path / "tracks_xy1.geff" / "labels").exists() and meta.related_objects is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tracks_xy1.geff", "tracks_xy2.geff"]
