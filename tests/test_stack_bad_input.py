"""Issue 6, files and folders: every bad input is refused with one sentence (a UserError)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sam2web.errors import UserError
from sam2web.stack import Stack, open_stack
from sam2web.types import Location

try:  # tests/ is a package in this repository; the fallback keeps a plain rootdir run working
    from tests.stack_helpers import ramp
except ImportError:  # pragma: no cover
    from stack_helpers import ramp


def _sentence(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and text.endswith(".") and len(text) < 300, text
    return text


def _multipage(path, n=5, compression=None):
    tifffile.imwrite(path, ramp((n, 64, 64)), compression=compression, photometric="minisblack", metadata=None)
    return path.read_bytes()


def test_missing_file(tmp_path):
    with pytest.raises(UserError) as err:
        open_stack(tmp_path / "nope.tif")
    assert "does not exist" in _sentence(err)


def test_empty_file(tmp_path):
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(UserError) as err:
        open_stack(tmp_path / "empty.tif")
    assert "empty" in _sentence(err)


def test_text_file_named_tif(tmp_path):
    (tmp_path / "notes.tif").write_text("Experiment 12\nexposure 100 ms\n")
    with pytest.raises(UserError) as err:
        open_stack(tmp_path / "notes.tif")
    assert "text file" in _sentence(err)


def test_png_named_tif(tmp_path):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "x.png").rename(tmp_path / "x.tif")
    with pytest.raises(UserError) as err:
        open_stack(tmp_path / "x.tif")
    assert "PNG" in _sentence(err) and ".png" in str(err.value)


def test_random_bytes(tmp_path):
    (tmp_path / "noise.tif").write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(UserError):
        open_stack(tmp_path / "noise.tif")


def test_truncated_ifd_chain_is_refused_not_shortened(tmp_path):
    """tifffile silently returns fewer pages when the chain breaks: we must say so instead."""
    full = _multipage(tmp_path / "full.tif")
    (tmp_path / "half.tif").write_bytes(full[: len(full) // 2])
    with pytest.raises(UserError) as err:
        open_stack(tmp_path / "half.tif")
    assert "truncated" in _sentence(err)


def test_truncated_header(tmp_path):
    full = _multipage(tmp_path / "full.tif")
    (tmp_path / "head.tif").write_bytes(full[:100])
    with pytest.raises(UserError) as err:
        open_stack(tmp_path / "head.tif")
    assert "truncated or damaged" in _sentence(err)


def test_truncated_pixel_data(tmp_path):
    full = _multipage(tmp_path / "full.tif", compression="zlib")
    (tmp_path / "cut.tif").write_bytes(full[:-200])
    with pytest.raises(UserError) as err:
        open_stack(tmp_path / "cut.tif")
    assert "truncated" in _sentence(err)


def test_absurd_dimensions_refused_from_header(tmp_path, monkeypatch):
    path = tmp_path / "absurd.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8))
    with tifffile.TiffFile(path, mode="r+") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(100_000)
        tif.pages[0].tags["ImageLength"].overwrite(100_000)

    def refuse(*args, **kwargs):
        raise AssertionError("pixels were decoded before the header was checked")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", refuse)
    with pytest.raises(UserError) as err:
        open_stack(path)
    assert "100000 x 100000" in _sentence(err)


def test_one_pixel_image(tmp_path):
    tifffile.imwrite(tmp_path / "dot.tif", np.zeros((1, 1), np.uint8))
    with pytest.raises(UserError) as err:
        open_stack(tmp_path / "dot.tif")
    assert "at least 8 x 8" in _sentence(err)
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp_path / "dot.png")
    with pytest.raises(UserError, match="at least 8 x 8"):
        open_stack(tmp_path / "dot.png")
    with pytest.raises(UserError, match="at least 8 x 8"):
        Stack.from_array(np.zeros((3, 1, 1), np.uint8), "TYX")


def test_folder_with_different_sizes(tmp_path):
    tifffile.imwrite(tmp_path / "t000.tif", np.zeros((20, 30), np.uint8))
    tifffile.imwrite(tmp_path / "t001.tif", np.zeros((30, 20), np.uint8))
    with pytest.raises(UserError) as err:
        open_stack(tmp_path)
    assert "t001.tif" in _sentence(err) and "same size" in str(err.value)


def test_folder_mixing_gray_and_rgb_or_bit_depths(tmp_path):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "a1.png")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a2.png")
    with pytest.raises(UserError, match="channel"):
        open_stack(tmp_path)
    (tmp_path / "a2.png").unlink()
    Image.fromarray(np.zeros((20, 30), np.uint16)).save(tmp_path / "a2.png")
    with pytest.raises(UserError, match="bit depth"):
        open_stack(tmp_path)


def test_folder_containing_a_stack(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((20, 30), np.uint8))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((4, 20, 30), np.uint8), photometric="minisblack", metadata=None)
    with pytest.raises(UserError, match="one 2D image"):
        open_stack(tmp_path)


def test_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(UserError) as err:
        open_stack(tmp_path)
    assert "has no images (.jpeg, .jpg, .png, .tif, .tiff)" in _sentence(err)


def test_bad_file_inside_a_folder_is_named(tmp_path):
    tifffile.imwrite(tmp_path / "t000.tif", np.zeros((20, 30), np.uint8))
    (tmp_path / "t001.tif").write_bytes(b"")
    with pytest.raises(UserError, match="t001.tif is empty"):
        open_stack(tmp_path)


def test_unknown_extra_dimension(tmp_path):
    tifffile.imwrite(
        tmp_path / "angle.tif", np.zeros((3, 4, 20, 30), np.uint8), photometric="minisblack", metadata={"axes": "ATYX"}
    )
    with pytest.raises(UserError) as err:
        open_stack(tmp_path / "angle.tif")
    assert "angle" in _sentence(err)


def test_unknown_singleton_dimension_is_fine(tmp_path):
    data = ramp((1, 4, 20, 30))
    tifffile.imwrite(tmp_path / "ok.tif", data, photometric="minisblack", metadata={"axes": "ATYX"})
    s = open_stack(tmp_path / "ok.tif")
    assert s.sizes["T"] == 4
    np.testing.assert_array_equal(s.frame(Location(0, 2, 0)), data[0, 2])


def test_bad_options(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((20, 30), np.uint8))
    with pytest.raises(UserError, match='"time" or "z"'):
        open_stack(tmp_path / "a.tif", pages_as="channels")
    with pytest.raises(UserError, match="one letter per dimension"):
        open_stack(tmp_path / "a.tif", axes="TZYX")
    with pytest.raises(UserError, match="No file"):
        open_stack([])
    with pytest.raises(UserError, match="folder"):
        open_stack([tmp_path, tmp_path / "a.tif"])


def test_damaged_page_is_reported_when_read(tmp_path):
    """A page whose compressed bytes are garbage opens (header fine) but says so when read."""
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, ramp((3, 64, 64)), compression="zlib", photometric="minisblack", metadata=None)
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[1].dataoffsets[0]
        count = tif.pages[1].databytecounts[0]
    raw = bytearray(path.read_bytes())
    raw[offset : offset + count] = b"\x00" * count
    path.write_bytes(bytes(raw))
    s = open_stack(path)
    with pytest.raises(UserError) as err:
        s.frame(Location(0, 1, 0))
    s.close()
    assert "could not be decoded" in _sentence(err)


def _png_with_size(path, width: int, height: int) -> None:
    """A real PNG whose IHDR is rewritten to declare another size (CRC fixed up)."""
    import struct
    import zlib

    Image.fromarray(np.zeros((16, 16), np.uint8)).save(path)
    raw = bytearray(path.read_bytes())
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(raw[ihdr : ihdr + 17])) & 0xFFFFFFFF
    raw[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(raw))


def test_png_declaring_absurd_size(tmp_path):
    _png_with_size(tmp_path / "huge.png", 60_000, 60_000)
    with pytest.raises(UserError) as err:
        open_stack(tmp_path / "huge.png")
    assert "too large" in _sentence(err) or "more than sam2web" in str(err.value)


def test_truncated_png_is_reported_when_read(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(ramp((64, 64)).astype(np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:80])
    with pytest.raises(UserError) as err:
        s = open_stack(path)
        s.frame(Location(0, 0, 0))
    assert "could not be" in _sentence(err)


def test_jpeg_named_png(tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.jpg")
    (tmp_path / "a.jpg").rename(tmp_path / "a.png")
    with pytest.raises(UserError, match="holds a JPEG"):
        open_stack(tmp_path / "a.png")


# ---------------------------------------------------------------------------------- fuzzing
@pytest.fixture(scope="module")
def fuzz_bases(tmp_path_factory):
    """Small valid files of each kind; the property test corrupts copies of them."""
    folder = tmp_path_factory.mktemp("fuzz")
    tifffile.imwrite(folder / "a.tif", ramp((3, 2, 16, 24)), imagej=True, metadata={"axes": "TCYX"})
    tifffile.imwrite(folder / "b.tif", ramp((4, 16, 24)), compression="zlib", photometric="minisblack", metadata=None)
    tifffile.imwrite(folder / "c.ome.tif", ramp((2, 2, 16, 24)).astype(np.uint8), ome=True, metadata={"axes": "TCYX"})
    Image.fromarray(ramp((16, 24, 3)).astype(np.uint8)).save(folder / "d.png")
    return folder, {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_corrupted_files_only_ever_raise_user_error(fuzz_bases, data):
    from sam2web.stack.display import render

    folder, bases = fuzz_bases
    name = data.draw(st.sampled_from(sorted(bases)))
    raw = bytearray(bases[name])
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), min_size=1, max_size=6))
    for pos, value in edits:
        raw[pos] = value
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(raw))))
    if cut is not None:
        raw = raw[:cut]
    path = folder / f"broken_{name}"
    path.write_bytes(bytes(raw))
    try:
        with open_stack(path) as s:  # closed also when a frame is refused
            for loc in s.locations()[:2]:
                render(s, loc)
    except UserError as err:
        assert str(err) and "\n" not in str(err)
