"""Stack: every supported layout opens with the right sizes and the right pixels, lazily."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import tifffile
from PIL import Image

from sam2web.errors import UserError
from sam2web.stack import FrameCache, Stack, open_stack, reopen, sample
from sam2web.types import Location

try:  # tests/ is a package in this repository; the fallback keeps a plain rootdir run working
    from tests.stack_helpers import BACTERIA_IMG, NUCLEI, needs_bacteria, needs_nuclei, ramp
except ImportError:  # pragma: no cover
    from stack_helpers import BACTERIA_IMG, NUCLEI, needs_bacteria, needs_nuclei, ramp

L = Location


# ---------------------------------------------------------------------------------- from_array
def test_from_array_tyx_is_a_view_with_exact_frames():
    data = ramp((3, 20, 30))
    s = Stack.from_array(data, "TYX")
    assert s.sizes == {"XY": 1, "T": 3, "Z": 1, "C": 1, "Y": 20, "X": 30}
    assert s.height == 20 and s.width == 30
    for t in range(3):
        np.testing.assert_array_equal(s.frame(L(0, t, 0)), data[t])


def test_from_array_full_axes_any_order():
    data = ramp((2, 3, 4, 2, 20, 30))  # P T Z C Y X
    s = Stack.from_array(data, "PTZCYX")
    assert s.shape == (2, 3, 4, 2, 20, 30)
    np.testing.assert_array_equal(s.frame(L(1, 2, 3), 1), data[1, 2, 3, 1])
    shuffled = np.transpose(data, (3, 1, 0, 2, 5, 4))  # C T P Z X Y
    s2 = Stack.from_array(shuffled, "CTPZXY")
    assert s2.shape == (2, 3, 4, 2, 20, 30)
    np.testing.assert_array_equal(s2.frame(L(1, 2, 3), 1), data[1, 2, 3, 1])


def test_from_array_samples_after_xy_are_channels_before_are_positions():
    rgb = ramp((20, 30, 3)).astype(np.uint8)
    s = Stack.from_array(rgb, "YXS")
    assert s.sizes["C"] == 3 and s.sizes["XY"] == 1
    np.testing.assert_array_equal(s.frame(L(0, 0, 0), 2), rgb[:, :, 2])
    series = ramp((2, 5, 20, 30))
    s2 = Stack.from_array(series, "STYX")
    assert s2.sizes["XY"] == 2 and s2.sizes["T"] == 5 and s2.sizes["C"] == 1


def test_from_array_unnamed_axis_follows_pages_as():
    data = ramp((4, 20, 30))
    assert Stack.from_array(data, "QYX").sizes["T"] == 4
    assert Stack.from_array(data, "QYX", pages_as="z").sizes["Z"] == 4


def test_from_array_singleton_extra_axes_are_ignored():
    data = ramp((1, 3, 1, 20, 30))
    s = Stack.from_array(data, "ATEYX")
    assert s.sizes["T"] == 3


@pytest.mark.parametrize(
    "axes, shape", [("TYX", (20, 30)), ("TX", (3, 30)), ("TAYX", (3, 2, 20, 30)), ("TTYX", (3, 2, 20, 30))]
)
def test_from_array_refuses_bad_axes(axes, shape):
    with pytest.raises(UserError):
        Stack.from_array(np.zeros(shape, np.uint8), axes)


# ---------------------------------------------------------------------------------- TIFF files
def test_imagej_hyperstack_tzcyx(tmp_path):
    data = ramp((4, 3, 2, 20, 30))
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.5, 1 / 0.25), metadata={"axes": "TZCYX", "unit": "um"})
    s = open_stack(path)
    assert s.sizes == {"XY": 1, "T": 4, "Z": 3, "C": 2, "Y": 20, "X": 30}
    assert s.dtype == np.uint16
    assert s.pixel_size == (0.5, 0.25, "µm")
    assert s.name == "hyper.tif"
    for t in range(4):
        for z in range(3):
            for c in range(2):
                np.testing.assert_array_equal(s.frame(L(0, t, z), c), data[t, z, c])


def test_ome_tiff_series_become_positions(tmp_path):
    path = tmp_path / "multi.ome.tif"
    stacks = [ramp((3, 2, 20, 30)) + i for i in range(2)]
    with tifffile.TiffWriter(path, ome=True) as w:
        for arr in stacks:
            w.write(
                arr,
                metadata={
                    "axes": "TCYX",
                    "PhysicalSizeX": 0.3,
                    "PhysicalSizeY": 0.4,
                    "Channel": {"Name": ["dapi", "gfp"]},
                },
            )
    s = open_stack(path)
    assert s.sizes == {"XY": 2, "T": 3, "Z": 1, "C": 2, "Y": 20, "X": 30}
    assert s.channel_names == ["dapi", "gfp"]
    assert s.pixel_size == (0.3, 0.4, "µm")
    np.testing.assert_array_equal(s.frame(L(1, 2, 0), 1), stacks[1][2, 1])
    np.testing.assert_array_equal(s.frame(L(0, 1, 0), 0), stacks[0][1, 0])


def test_ome_tiff_unusual_dimension_order(tmp_path):
    data = ramp((2, 3, 4, 20, 30))  # C Z T
    path = tmp_path / "czt.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "CZTYX"})
    s = open_stack(path)
    assert (s.sizes["C"], s.sizes["Z"], s.sizes["T"]) == (2, 3, 4)
    np.testing.assert_array_equal(s.frame(L(0, 3, 2), 1), data[1, 2, 3])


@pytest.mark.parametrize("pages_as, axis", [("time", "T"), ("z", "Z")])
def test_plain_multipage_pages_as(tmp_path, pages_as, axis):
    data = ramp((5, 20, 30))
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data, metadata=None)
    s = open_stack(path, pages_as=pages_as)
    assert s.sizes[axis] == 5 and s.sizes["C"] == 1
    loc = L(0, 3, 0) if axis == "T" else L(0, 0, 3)
    np.testing.assert_array_equal(s.frame(loc), data[3])


def test_unnamed_dims_need_axes_override(tmp_path):
    data = ramp((5, 2, 20, 30))
    path = tmp_path / "shaped.tif"
    tifffile.imwrite(path, data)  # tifffile's own "shaped" metadata: axes unknown (QQYX)
    with pytest.raises(UserError, match="unnamed"):
        open_stack(path)
    s = open_stack(path, axes="TCYX")
    assert (s.sizes["T"], s.sizes["C"]) == (5, 2)
    np.testing.assert_array_equal(s.frame(L(0, 4, 0), 1), data[4, 1])


def test_single_2d_tiff_and_float(tmp_path):
    data = np.linspace(-1, 1, 20 * 30, dtype=np.float32).reshape(20, 30)
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, data)
    s = open_stack(path)
    assert s.shape == (1, 1, 1, 1, 20, 30) and s.dtype == np.float32
    np.testing.assert_array_equal(s.frame(L(0, 0, 0)), data)


@pytest.mark.parametrize("planar", [False, True])
def test_rgb_tiff_is_three_channels(tmp_path, planar):
    rgb = ramp((20, 30, 3)).astype(np.uint8)
    path = tmp_path / "rgb.tif"
    if planar:
        tifffile.imwrite(path, np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate", metadata=None)
    else:
        tifffile.imwrite(path, rgb, photometric="rgb", metadata=None)
    s = open_stack(path)
    assert s.sizes["C"] == 3 and s.channel_names == ["Red", "Green", "Blue"]
    for c in range(3):
        np.testing.assert_array_equal(s.frame(L(0, 0, 0), c), rgb[:, :, c])


def test_rgba_tiff_drops_alpha(tmp_path):
    rgba = ramp((20, 30, 4)).astype(np.uint8)
    path = tmp_path / "rgba.tif"
    tifffile.imwrite(path, rgba, photometric="rgb", extrasamples=["unassalpha"])
    s = open_stack(path)
    assert s.sizes["C"] == 3
    np.testing.assert_array_equal(s.frame(L(0, 0, 0), 2), rgba[:, :, 2])


def test_rgb_time_series(tmp_path):
    data = ramp((4, 20, 30, 3)).astype(np.uint8)
    path = tmp_path / "rgbt.tif"
    tifffile.imwrite(path, data, photometric="rgb", metadata=None)
    s = open_stack(path)
    assert (s.sizes["T"], s.sizes["C"]) == (4, 3)
    np.testing.assert_array_equal(s.frame(L(0, 3, 0), 1), data[3, :, :, 1])


# ---------------------------------------------------------------------------------- laziness
def test_compressed_frame_reads_one_page_not_the_series(tmp_path, monkeypatch):
    data = ramp((40, 64, 48))
    path = tmp_path / "zlib.tif"
    tifffile.imwrite(path, data, compression="zlib", metadata=None)
    s = open_stack(path)

    def refuse(*args, **kwargs):
        raise AssertionError("the whole file was decoded")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", refuse)
    monkeypatch.setattr(tifffile.TiffFile, "asarray", refuse)
    monkeypatch.setattr(tifffile, "imread", refuse)
    calls = []
    original = tifffile.TiffPage.asarray

    def counting(self, *args, **kwargs):
        calls.append(self.index)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffPage, "asarray", counting)
    np.testing.assert_array_equal(s.frame(L(0, 33, 0)), data[33])
    assert calls == [33]
    s.frame(L(0, 33, 0))  # cached: no second decode
    assert calls == [33]


def test_uncompressed_file_is_memory_mapped(tmp_path, monkeypatch):
    data = ramp((6, 2, 20, 30))
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TCYX"})
    s = open_stack(path)

    def refuse(*args, **kwargs):
        raise AssertionError("a page was decoded although the file is memory-mapped")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", refuse)
    monkeypatch.setattr(tifffile.TiffFrame, "asarray", refuse)
    np.testing.assert_array_equal(s.frame(L(0, 5, 0), 1), data[5, 1])


def test_cache_returns_read_only_frames_and_respects_budget():
    data = ramp((10, 20, 30))
    s = Stack.from_array(data, "TYX")
    s.cache = FrameCache(max_bytes=3 * 20 * 30 * 2)
    first = s.frame(L(0, 0, 0))
    assert s.frame(L(0, 0, 0)) is first
    with pytest.raises(ValueError):
        first[0, 0] = 1
    for t in range(10):
        s.frame(L(0, t, 0))
    assert len(s.cache) == 3


def test_parallel_reads_of_a_compressed_file_are_correct(tmp_path):
    data = ramp((24, 32, 40))
    path = tmp_path / "par.tif"
    tifffile.imwrite(path, data, compression="zlib", metadata=None)
    s = open_stack(path, cache_bytes=0)
    errors: list[str] = []

    def worker(offset: int) -> None:
        for i in range(24):
            t = (i + offset) % 24
            if not np.array_equal(s.frame(L(0, t, 0)), data[t]):
                errors.append(f"frame {t}")

    threads = [threading.Thread(target=worker, args=(k * 5,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


# ---------------------------------------------------------------------------------- folders
def test_folder_natural_sort_ctc_layout(tmp_path):
    frames = {i: ramp((20, 30)) + i for i in (0, 1, 2, 10)}
    for i, arr in frames.items():
        tifffile.imwrite(tmp_path / f"t{i}.tif", arr)
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.tif").write_bytes(b"junk")
    s = open_stack(tmp_path)
    assert s.sizes["T"] == 4 and s.name == tmp_path.name
    np.testing.assert_array_equal(s.frame(L(0, 3, 0)), frames[10])
    np.testing.assert_array_equal(s.frame(L(0, 2, 0)), frames[2])


def test_file_list_png_as_z(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"slice{i:03d}.png"
        Image.fromarray((ramp((20, 30)) + 1000 * i).astype(np.uint16)).save(p)
        paths.append(p)
    s = open_stack([paths[2], paths[0], paths[1]], pages_as="z")
    assert (s.sizes["Z"], s.sizes["T"], s.dtype) == (3, 1, np.uint16)
    np.testing.assert_array_equal(s.frame(L(0, 0, 2)), ramp((20, 30)) + 2000)


def test_jpeg_and_rgba_png_frames(tmp_path):
    rgba = ramp((20, 30, 4)).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    s = open_stack(tmp_path / "a.png")
    assert s.sizes["C"] == 3
    np.testing.assert_array_equal(s.frame(L(0, 0, 0), 1), rgba[:, :, 1])
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "b.jpg")
    s2 = open_stack(tmp_path / "b.jpg")
    assert s2.sizes["C"] == 3 and s2.frame(L(0, 0, 0), 0).shape == (20, 30)


def test_source_reopens_the_same_stack(tmp_path):
    data = ramp((3, 20, 30))
    tifffile.imwrite(tmp_path / "s.tif", data, photometric="minisblack", metadata=None)
    with open_stack(tmp_path / "s.tif", pages_as="z") as s, reopen(json.loads(json.dumps(s.source))) as again:
        assert again.sizes == s.sizes
        np.testing.assert_array_equal(again.frame(L(0, 0, 2)), data[2])
    with pytest.raises(UserError):
        reopen(Stack.from_array(data).source)


def test_location_outside_the_stack_is_a_user_error():
    s = Stack.from_array(ramp((3, 20, 30)), "TYX")
    with pytest.raises(UserError, match="Time 4 is outside"):
        s.frame(L(0, 3, 0))
    with pytest.raises(UserError, match="channel 2"):
        s.frame(L(0, 0, 0), 1)


# ---------------------------------------------------------------------------------- real data
@needs_bacteria
def test_real_bacteria_folder_non_square_not_transposed():
    s = open_stack(BACTERIA_IMG)
    # the files' headers say ImageWidth 1009, ImageLength 1305: 1305 rows of 1009 columns
    first = tifffile.imread(BACTERIA_IMG / "t000000.tif")
    assert s.sizes == {"XY": 1, "T": 30, "Z": 1, "C": 1, "Y": first.shape[0], "X": first.shape[1]}
    assert (s.height, s.width) == (1305, 1009)
    assert s.dtype == np.uint8
    last = s.frame(L(0, 29, 0))
    assert last.shape == (1305, 1009)
    np.testing.assert_array_equal(last, tifffile.imread(BACTERIA_IMG / "t000029.tif"))


@needs_nuclei
def test_real_nuclei_as_z():
    s = open_stack(NUCLEI, pages_as="z")
    assert s.sizes == {"XY": 1, "T": 1, "Z": 60, "C": 1, "Y": 256, "X": 256}
    with tifffile.TiffFile(NUCLEI) as tif:
        expected = tif.pages[30].asarray()
    np.testing.assert_array_equal(s.frame(L(0, 0, 30)), expected)


# ---------------------------------------------------------------------------------- sample
def test_sample_is_non_square_moving_and_dividing(tmp_path):
    arr = sample.sample_array(n_frames=10, height=96, width=128)
    labels = sample.sample_labels(n_frames=10, height=96, width=128)
    assert arr.shape == (10, 2, 96, 128) and arr.dtype == np.uint16
    assert labels.shape == (10, 96, 128)
    counts = [len(np.unique(f)) - 1 for f in labels]
    assert counts[0] == 4 and counts[-1] == 5  # one cell became two
    lineage = sample.sample_lineage(n_frames=10, height=96, width=128)
    daughters = [row for row in lineage if row[3] != 0]
    mother_end = {row[0]: row[2] for row in lineage}[daughters[0][3]]
    assert len(daughters) == 2 and all(row[1] == mother_end + 1 for row in daughters)
    # cells are brighter than background, and they move
    inside = arr[0, 0][labels[0] > 0].mean()
    outside = arr[0, 0][labels[0] == 0].mean()
    assert inside > 2 * outside
    ys, xs = np.nonzero(labels[0] == 2)
    ys2, xs2 = np.nonzero(labels[-1] == 2)
    assert abs(xs.mean() - xs2.mean()) + abs(ys.mean() - ys2.mean()) > 1.0
    np.testing.assert_array_equal(arr, sample.sample_array(n_frames=10, height=96, width=128))


def test_sample_file_opens_as_a_hyperstack(tmp_path):
    path = sample.sample_path(tmp_path)
    assert path.exists() and sample.sample_path(tmp_path) == path
    s = open_stack(path)
    assert s.sizes == {"XY": 1, "T": 24, "Z": 1, "C": 2, "Y": 240, "X": 320}
    assert s.channel_names == sample.CHANNEL_NAMES
    assert s.pixel_size == (sample.PIXEL_SIZE_UM, sample.PIXEL_SIZE_UM, "µm")
    np.testing.assert_array_equal(s.frame(L(0, 5, 0), 1), sample.sample_array()[5, 1])


def test_position_axis_inside_a_series(tmp_path):
    data = ramp((3, 2, 20, 30))  # R (positions) T Y X, as Micro-Manager-style files carry them
    path = tmp_path / "positions.tif"
    tifffile.imwrite(path, data, photometric="minisblack", metadata={"axes": "RTYX"})
    s = open_stack(path)
    assert (s.sizes["XY"], s.sizes["T"]) == (3, 2)
    np.testing.assert_array_equal(s.frame(L(2, 1, 0)), data[2, 1])


def test_shared_cache_keeps_stacks_apart():
    a = Stack.from_array(np.zeros((2, 20, 30), np.uint8), "TYX")
    b = Stack.from_array(np.ones((2, 20, 30), np.uint8), "TYX")
    assert a.cache is b.cache  # one process-wide budget
    assert a.frame(L(0, 1, 0)).max() == 0
    assert b.frame(L(0, 1, 0)).min() == 1


def test_sample_ground_truth_in_ctc_layout(tmp_path):
    folder = sample.sample_ground_truth_path(tmp_path)
    assert (folder / "man_track.txt").read_text().splitlines()[0] == "1 0 11 0"
    files = sorted(folder.glob("man_track*.tif"))
    assert len(files) == 24
    s = open_stack(folder)  # the stack reader takes the CTC folder too (the .txt is ignored)
    assert s.sizes["T"] == 24 and (s.height, s.width) == (240, 320)
    np.testing.assert_array_equal(s.frame(L(0, 20, 0)), sample.sample_labels()[20])
