"""Server folders: parsing the setting, listing what can be opened, refusing paths that leave."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from sam2web import server_files
from sam2web.errors import UserError
from sam2web.stack import open_stack


@pytest.fixture()
def allowed(tmp_path, monkeypatch):
    root = tmp_path / "lab"
    (root / "exp1").mkdir(parents=True)
    tifffile.imwrite(root / "exp1" / "cells.tif", np.zeros((3, 32, 32), np.uint16), photometric="minisblack")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.tif").write_bytes(b"")
    outside = tmp_path / "private"
    outside.mkdir()
    tifffile.imwrite(outside / "secret.tif", np.ones((32, 32), np.uint8))
    (root / "link_out").symlink_to(outside, target_is_directory=True)
    (root / "secret_link.tif").symlink_to(outside / "secret.tif")
    (root / "inner_link.tif").symlink_to(root / "exp1" / "cells.tif")
    monkeypatch.setenv(server_files.ENV, f"{root}{os.pathsep}")
    return root, outside


def test_parse_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert server_files.parse_folders(f"{a}{os.pathsep} {b} {os.pathsep}{a}") == [a.resolve(), b.resolve()]
    assert server_files.parse_folders("") == [] and server_files.parse_folders(None) == []
    with pytest.raises(UserError, match="not an absolute path"):
        server_files.parse_folders("relative/folder")
    with pytest.raises(UserError, match="not a folder"):
        server_files.parse_folders(str(tmp_path / "missing"))


def test_listing_shows_openable_files_inside_only(allowed):
    root, _ = allowed
    assert server_files.list_openable(root) == ["exp1/cells.tif", "inner_link.tif"]


def test_resolve_opens_a_file_in_place(allowed):
    root, _ = allowed
    path = server_files.resolve(root, "exp1/cells.tif")
    assert path == (root / "exp1" / "cells.tif").resolve()
    with open_stack(path) as stack:
        assert stack.sizes["T"] == 3
    assert server_files.dataset_paths({"kind": "server", "root": str(root), "path": "inner_link.tif"}) == [path]


@pytest.mark.parametrize(
    ("rel", "words"),
    [
        ("../private/secret.tif", "goes up with '..'"),
        ("exp1/../../private/secret.tif", "goes up with '..'"),
        ("/etc/passwd", "is absolute"),
        ("C:\\\\Windows\\\\win.ini", "is absolute"),
        ("secret_link.tif", "leads outside"),
        ("link_out/secret.tif", "leads outside"),
        ("exp1/none.tif", "There is no"),
        ("  ", "Give the path"),
    ],
)
def test_escapes_are_refused_with_a_sentence(allowed, rel, words):
    root, _ = allowed
    with pytest.raises(UserError, match=words):
        server_files.resolve(root, rel)


def test_a_folder_that_is_not_allowed_is_refused(allowed):
    _, outside = allowed
    with pytest.raises(UserError, match="not one the server allows"):
        server_files.resolve(outside, "secret.tif")


def test_no_setting_means_no_folders(monkeypatch):
    monkeypatch.delenv(server_files.ENV, raising=False)
    assert server_files.server_folders() == []


def test_an_ome_zarr_folder_is_one_entry_and_opens(allowed):
    from tests.test_stack_formats import moving_square, write_ome_zarr

    root, _ = allowed
    data = np.stack([np.stack([moving_square(t, c) for c in range(2)]) for t in range(3)])
    write_ome_zarr(root / "exp1" / "plate1.zarr", data, "tcyx")
    assert server_files.list_openable(root) == ["exp1/cells.tif", "exp1/plate1.zarr", "inner_link.tif"]
    stack = open_stack(server_files.resolve(root, "exp1/plate1.zarr"))
    assert stack.sizes["T"] == 3 and stack.channel_names == ["DAPI", "GFP"]
