"""Crafted files cannot reach outside their folder nor take the server's memory.

The compressed "bomb" is opened in a child process whose address space is capped (RLIMIT_AS), and
the child reports its own peak memory before and after: a 1 MB file may not raise it by 1 GB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile

from sam2web.errors import UserError
from sam2web.stack import open_stack

ROOT = Path(__file__).resolve().parents[1]


def _ome_xml(size_t: int, second_file: str | None) -> str:
    second = (
        f'<TiffData IFD="0" FirstT="1" PlaneCount="1"><UUID FileName="{second_file}">urn:uuid:{uuid.uuid4()}</UUID>'
        "</TiffData>"
        if second_file
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="urn:uuid:{uuid.uuid4()}">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" '
        f'SizeX="32" SizeY="32" SizeC="1" SizeZ="1" SizeT="{size_t}">'
        '<Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        f'<TiffData IFD="0" PlaneCount="1"/>{second}</Pixels></Image></OME>'
    )


def _write_ome(path: Path, second_file: str | None) -> None:
    tifffile.imwrite(path, np.full((32, 32), 7, np.uint8), description=_ome_xml(2, second_file), metadata=None)


@pytest.fixture
def secret(tmp_path) -> Path:
    """A TIFF elsewhere on the server that an upload must never read."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    path = folder / "secret.tif"
    tifffile.imwrite(path, np.full((32, 32), 99, np.uint8))
    return path


@pytest.mark.parametrize("how", ["absolute", "dotdot"])
def test_an_ome_reference_outside_the_folder_is_refused(tmp_path, secret, how):
    upload = tmp_path / "upload"
    upload.mkdir()
    name = str(secret) if how == "absolute" else "../elsewhere/secret.tif"
    crafted = upload / "crafted.ome.tif"
    _write_ome(crafted, name)
    with tifffile.TiffFile(crafted) as tif:  # the attack is real: plain tifffile reads the secret
        assert 99 in tif.series[0].asarray()
    with pytest.raises(UserError, match="outside its own folder"):
        open_stack(str(crafted))


def test_an_ome_reference_inside_the_folder_is_not_refused(tmp_path):
    from sam2web.stack.tiff import _close_tif, _open_tifffile

    tifffile.imwrite(tmp_path / "part2.tif", np.full((32, 32), 5, np.uint8))
    crafted = tmp_path / "multi.ome.tif"
    _write_ome(crafted, "part2.tif")
    _close_tif(_open_tifffile(tifffile, crafted))  # the reference check lets a sibling file through


def test_label_images_and_ctc_masks_check_references_too(tmp_path, secret):
    from sam2web import ctc, prompts

    crafted = tmp_path / "labels.tif"
    _write_ome(crafted, str(secret))
    with pytest.raises(UserError, match="outside its own folder"):
        prompts.load_prompts(crafted, 32, 32)
    folder = tmp_path / "ctc"
    folder.mkdir()
    _write_ome(folder / "mask000.tif", str(secret))
    with pytest.raises(UserError, match="outside its own folder"):
        ctc.read_ctc(folder)


def _bomb(path: Path, side: int = 32000, tile: int = 1024) -> None:
    """A zlib TIFF declaring one side x side uint8 frame of zeros (about 1 MB on disk)."""
    zeros = np.zeros((tile, tile), np.uint8)
    n = (-(-side // tile)) ** 2
    tifffile.imwrite(
        path, (zeros for _ in range(n)), shape=(side, side), dtype=np.uint8, tile=(tile, tile), compression="zlib"
    )


CHILD = textwrap.dedent(
    """
    import json, resource, sys
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from sam2web.errors import UserError
    from sam2web.stack import open_stack
    from sam2web import prompts
    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    before = peak()
    refused = []
    for opener in (lambda: open_stack(sys.argv[1]), lambda: prompts.load_prompts(sys.argv[1], 64, 64)):
        try:
            opener().close()
        except UserError as err:
            refused.append(str(err))
    print(json.dumps({"before": before, "after": peak(), "refused": refused}))
    """
)


def test_a_compressed_bomb_is_refused_before_decoding_within_a_capped_child(tmp_path):
    bomb = tmp_path / "bomb.tif"
    _bomb(bomb)
    size = bomb.stat().st_size
    assert size < 2 << 20, size  # about 1 MB declaring 1 GB of pixels
    limit = 3 << 30  # the address space of the child: numpy, tifffile and their thread pools fit in it
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(bomb), str(limit)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    grew = got["after"] - got["before"]
    print(f"bomb {size / 1e6:.2f} MB: peak RSS {got['before'] / 1e6:.0f} MB -> {got['after'] / 1e6:.0f} MB")
    assert len(got["refused"]) == 2 and all("megapixels" in r for r in got["refused"]), got["refused"]
    assert grew < 64 << 20, f"opening a {size} B file raised the peak memory by {grew / 1e6:.0f} MB"


def test_the_pixel_budget_is_a_setting(tmp_path, monkeypatch):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.zeros((1000, 1200), np.uint8))
    monkeypatch.setenv("SAM2WEB_MAX_FRAME_MPIX", "1")
    with pytest.raises(UserError, match="1 megapixels"):
        open_stack(str(path))
    monkeypatch.setenv("SAM2WEB_MAX_FRAME_MPIX", "2")
    open_stack(str(path)).close()
    monkeypatch.setenv("SAM2WEB_MAX_FRAME_MPIX", "nan")
    with pytest.raises(UserError, match="above 0"):
        open_stack(str(path))
