"""ND2 and LIF through bioio's plugins: the adapter on a real file, the registry entries, damaged files.

No ND2 or LIF file can be written here (neither format has a writer) and no registry package
ships one, so the adapter is checked on an OME-TIFF read by bioio's own OME-TIFF plugin: the
same code maps any plugin's scenes, channels and planes onto sam2web's axes.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from sam2web.errors import UserError
from sam2web.server_files import list_openable
from sam2web.stack import open_stack
from sam2web.stack import registry as readers
from sam2web.stack.bioio_reader import LIF_MAGIC, ND2_MAGIC, open_plugin


@pytest.fixture
def two_positions(tmp_path):
    path = tmp_path / "two.ome.tif"
    rng = np.random.default_rng(0)
    data = [rng.integers(0, 1000, size=(3, 2, 64, 80), dtype=np.uint16) for _ in range(2)]
    with tifffile.TiffWriter(path, ome=True) as tw:
        for d in data:
            tw.write(
                d,
                metadata={
                    "axes": "TCYX",
                    "PhysicalSizeX": 0.4,
                    "PhysicalSizeY": 0.6,
                    "Channel": {"Name": ["DNA", "GFP"]},
                },
            )
    return path, data


def test_bioio_adapter_maps_scenes_channels_and_planes(two_positions):
    pytest.importorskip("bioio_ome_tiff")
    path, data = two_positions
    opened = open_plugin(path, "bioio_ome_tiff", "OME-TIFF")
    assert opened.sizes == {"XY": 2, "T": 3, "Z": 1, "C": 2, "Y": 64, "X": 80}
    assert opened.pixel_size == (0.4, 0.6, "µm") and opened.channel_names == ["DNA", "GFP"]
    for xy in (1, 0, 1):  # switching scenes back and forth
        for t in range(3):
            for c in range(2):
                assert np.array_equal(opened.reader(xy, t, 0, c), data[xy][t, c])


def test_nd2_and_lif_are_registry_entries_offered_for_upload_and_in_server_folders(tmp_path):
    assert {"nd2", "lif"} <= set(readers.READERS.names())
    assert {".nd2", ".lif"} <= set(readers.file_extensions())
    assert "Nikon ND2" in readers.formats_sentence() and "Leica LIF" in readers.formats_sentence()
    (tmp_path / "a.nd2").write_bytes(ND2_MAGIC[0] + b"\0" * 64)
    (tmp_path / "b.lif").write_bytes(LIF_MAGIC + b"\0" * 64)
    assert {"a.nd2", "b.lif"} <= set(list_openable(tmp_path))


@pytest.mark.parametrize(("name", "head", "label"), [("bad.nd2", ND2_MAGIC[0], "ND2"), ("bad.lif", LIF_MAGIC, "LIF")])
def test_a_damaged_nd2_or_lif_is_one_sentence(tmp_path, name, head, label):
    path = tmp_path / name
    path.write_bytes(head + bytes(range(256)) * 4)
    with pytest.raises(UserError, match=f"could not be read as {label}"):
        open_stack(path)
    other = tmp_path / f"text{path.suffix}"
    other.write_text("not a microscope file\n")
    with pytest.raises(UserError, match="text file"):
        open_stack(other)


def test_reader_bench_runs_on_a_tiny_file(capsys):
    pytest.importorskip("bioio_ome_tiff")
    from bench import readers as bench_readers

    out = bench_readers.main(["--size", "64", "--frames", "3", "--repeats", "2"])
    assert set(out["frame_read_ms"]) == {"sam2web (tifffile)", "bioio-ome-tiff"}
    assert all(r["first"] > 0 and r["cached"] >= 0 for r in out["frame_read_ms"].values())
    assert isinstance(out["bioio_no_slower"], bool)


def test_series_of_different_sizes_are_refused_with_a_sentence(tmp_path):
    pytest.importorskip("bioio_ome_tiff")
    path = tmp_path / "mixed.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(np.zeros((2, 32, 40), np.uint8), metadata={"axes": "TYX"})
        tw.write(np.zeros((2, 48, 40), np.uint8), metadata={"axes": "TYX"})
    with pytest.raises(UserError, match="series of different sizes"):
        open_plugin(path, "bioio_ome_tiff", "OME-TIFF")
