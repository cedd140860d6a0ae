"""Physical units: read from OME / ImageJ metadata, set by hand, carried into the exports."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import tifffile

from sam2web.exporters import Units
from sam2web.stack import open_stack

PX, PY = 0.4, 0.6  # µm per pixel, deliberately anisotropic


def _ome_positions(path, positions=2, channels=2, t=3):
    """A 2-position, 2-channel OME-TIFF time-lapse with a physical pixel size and time increment."""
    rng = np.random.default_rng(0)
    with tifffile.TiffWriter(path, ome=True) as tw:
        for xy in range(positions):
            data = rng.integers(0, 50, size=(t, channels, 64, 80), dtype=np.uint16)
            for f in range(t):
                data[f, :, 20:36, 10 + 4 * f + xy : 30 + 4 * f + xy] = 1000  # a bright cell moving right
            tw.write(
                data,
                metadata={
                    "axes": "TCYX",
                    "PhysicalSizeX": PX,
                    "PhysicalSizeXUnit": "µm",
                    "PhysicalSizeY": PY,
                    "PhysicalSizeYUnit": "µm",
                    "TimeIncrement": 2.5,
                    "TimeIncrementUnit": "min",
                    "Channel": {"Name": ["DNA", "GFP"]},
                },
            )


def test_ome_tiff_pixel_size_and_time_increment_are_read(tmp_path):
    path = tmp_path / "two.ome.tif"
    _ome_positions(path)
    with open_stack(path) as stack:
        assert (stack.sizes["XY"], stack.sizes["C"], stack.sizes["T"]) == (2, 2, 3)
        assert stack.pixel_size == (PX, PY, "µm")
        assert stack.time_interval == 150.0
        units = Units.of(stack)
    assert units == Units((PX, PY), None, 150.0, "µm")
    assert units.pixel_area == pytest.approx(PX * PY)


def test_imagej_spacing_and_frame_interval_are_read(tmp_path):
    path = tmp_path / "hyper.tif"
    data = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"axes": "TZYX", "unit": "um", "spacing": 1.5, "finterval": 30.0},
    )
    with open_stack(path) as stack:
        assert stack.pixel_size == (0.25, 0.25, "µm")
        assert (stack.z_step, stack.time_interval) == (1.5, 30.0)


def test_calibration_set_by_hand_wins_over_the_file_and_fills_what_it_lacks():
    class _Stack:
        pixel_size = (0.5, 0.5, "µm")
        z_step = None
        time_interval = None

    assert Units.of(_Stack()) == Units((0.5, 0.5), None, None, "µm")
    assert Units.of(_Stack(), {"time_interval": 60, "z_step": 2}) == Units((0.5, 0.5), 2.0, 60.0, "µm")
    assert Units.of(_Stack(), {"pixel_size": 0.1, "unit": "nm"}).pixel_size == (0.1, 0.1)
    assert Units.of(None, {"pixel_size": [0.1, 0.2]}) == Units((0.1, 0.2), None, None, "µm")
    assert Units.of(None) == Units()


def test_track_exports_um2_areas_equal_to_px2_times_the_pixel_area(tmp_path, monkeypatch):
    """`track` on the 2-position, 2-channel OME-TIFF: GeoJSON and CSV carry µm² next to px²."""
    from sam2web.cli import main

    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    path = tmp_path / "two.ome.tif"
    _ome_positions(path)
    box = [[10, 20], [30, 20], [30, 36], [10, 36], [10, 20]]
    features = [
        {
            "type": "Feature",
            "properties": {"XY": xy, "Time": 0, "name": f"cell {xy}"},
            "geometry": {"type": "Polygon", "coordinates": [box]},
        }
        for xy in (0, 1)
    ]
    prompts = tmp_path / "prompts.geojson"
    prompts.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    out = tmp_path / "out"
    argv = ["track", str(path), "--prompts", str(prompts), "--out", str(out), "--quiet", "--channel", "2"]
    assert main([*argv, "--geff", "--trackmate"]) == 0
    feats = json.loads((out / "annotations.geojson").read_text())["features"]
    assert {f["properties"]["XY"] for f in feats} == {0, 1} and len(feats) == 6
    for f in feats:
        props, measured = f["properties"], f["properties"]["measurements"]
        assert props["area_um2"] == pytest.approx(props["area"] * PX * PY)
        assert measured["Area µm^2"] == pytest.approx(measured["Area px^2"] * PX * PY)
        assert props["centroid_x_um"] == pytest.approx(props["centroid_x"] * PX)
        assert props["centroid_y_um"] == pytest.approx(props["centroid_y"] * PY)
        assert measured["Centroid X µm"] == props["centroid_x_um"]
    rows = list(csv.DictReader(io.StringIO((out / "annotations.csv").read_text())))
    assert len(rows) == 6
    for row in rows:
        assert float(row["area_um2"]) == pytest.approx(float(row["area"]) * PX * PY)
    header = (out / "annotations.csv").read_text().splitlines()[0].split(",")
    assert header[header.index("area") + 1] == "area_um2" and header[-1] == "wkt"
    # the same calibration in the GEFF axes and the TrackMate settings, per position
    import xml.etree.ElementTree as ET

    import geff

    graph, meta = geff.read(str(out / "tracks_xy2.geff"))
    assert {a.name: (a.scale, a.scaled_unit) for a in meta.axes} == {
        "t": (150.0, "second"),
        "y": (PY, "micrometer"),
        "x": (PX, "micrometer"),
    }
    assert graph.number_of_nodes() == 3 and graph.number_of_edges() == 2
    image = ET.parse(out / "trackmate_xy1.xml").getroot().find("Settings/ImageData").attrib
    assert (float(image["pixelwidth"]), float(image["pixelheight"]), float(image["timeinterval"])) == (PX, PY, 150.0)
    assert image["filename"] == "two.ome.tif" and (image["width"], image["height"]) == ("80", "64")
