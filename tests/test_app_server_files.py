"""AppTest: the Dataset page lists files in SAM2WEB_SERVER_FOLDERS and opens one in place; paths
that leave the folder are refused with a sentence and the current dataset stays."""

from __future__ import annotations

import os

import numpy as np
import tifffile

try:  # tests/ may be a package; the fallback keeps a plain rootdir run working
    from tests.app_helpers import assert_clean, data, errors, new_app
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, data, errors, new_app  # noqa: F401

__all__ = ["data"]


def _server(tmp_path, monkeypatch):
    root = tmp_path / "server"
    (root / "exp").mkdir(parents=True)
    frames = np.zeros((5, 48, 64), np.uint16)
    frames[:, 10:20, 10:20] = 500
    tifffile.imwrite(root / "exp" / "movie.tif", frames, photometric="minisblack")
    outside = tmp_path / "outside"
    outside.mkdir()
    tifffile.imwrite(outside / "secret.tif", np.ones((40, 40), np.uint8))
    (root / "escape.tif").symlink_to(outside / "secret.tif")
    monkeypatch.setenv("SAM2WEB_SERVER_FOLDERS", str(root) + os.pathsep)
    return root


def test_open_a_server_file_in_place(data, tmp_path, monkeypatch):
    root = _server(tmp_path, monkeypatch)
    at = new_app()
    assert_clean(at)
    files = at.selectbox(key="ds_server_file")
    assert files.options == ["exp/movie.tif"]  # the link leaving the folder is not listed
    files.set_value("exp/movie.tif")
    at.button(key="ds_open_server").click().run()
    assert_clean(at)
    assert not errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Time points"] == "5" and metrics["Width"] == "64" and metrics["Height"] == "48"
    ws = data.get_workspace(at.session_state["ws_id"])
    assert ws.dataset == {"kind": "server", "root": str(root.resolve()), "path": "exp/movie.tif", "pages_as": "time"}
    assert not any(data.files_dir(ws.id).glob("*.tif")) if data.files_dir(ws.id).exists() else True  # no copy


def test_escapes_are_refused_and_the_dataset_stays(data, tmp_path, monkeypatch):
    _server(tmp_path, monkeypatch)
    at = new_app()
    at.selectbox(key="ds_server_file").set_value("exp/movie.tif")
    at.button(key="ds_open_server").click().run()
    ws_id = at.session_state["ws_id"]
    for rel, words in (
        ("../outside/secret.tif", "'..'"),
        (str(tmp_path / "outside" / "secret.tif"), "absolute"),
        ("escape.tif", "outside the chosen folder"),
    ):
        at.text_input(key="ds_server_path").set_value(rel)
        at.button(key="ds_open_server").click().run()
        assert_clean(at)
        assert any(words in e for e in errors(at)), (rel, errors(at))
        assert data.get_workspace(ws_id).dataset["path"] == "exp/movie.tif"


def test_no_setting_no_server_section(data, monkeypatch):
    monkeypatch.delenv("SAM2WEB_SERVER_FOLDERS", raising=False)
    at = new_app()
    assert_clean(at)
    assert not [w for w in at.selectbox if w.key == "ds_server_file"]


def test_upload_a_czi_and_a_video_shows_their_metadata(data, tmp_path):
    """The Dataset page shows sizes, channel names and pixel size for the new formats as for TIFF."""
    from pylibCZIrw import czi as pyczi

    from tests.test_stack_formats import moving_square, write_video

    path = tmp_path / "cells.czi"
    with pyczi.create_czi(str(path), exist_ok=True) as w:
        for t in range(4):
            for c in range(2):
                w.write(moving_square(t, c), plane={"T": t, "C": c, "Z": 0})
        w.write_metadata(channel_names={0: "DAPI", 1: "GFP"}, scale_x=0.65e-6, scale_y=0.65e-6)
    at = new_app()
    at.file_uploader(key="ds_upload").set_value(("cells.czi", path.read_bytes(), "application/octet-stream")).run()
    at.button(key="ds_open_upload").click().run()
    assert_clean(at)
    assert not errors(at), errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Time points"], metrics["Channels"], metrics["Width"], metrics["Height"]) == ("4", "2", "80", "64")
    caption = " ".join(c.value for c in at.caption)
    assert "DAPI, GFP" in caption and "0.65 × 0.65 µm" in caption
    video = tmp_path / "movie.mp4"
    write_video(video, "libx264")
    fresh = new_app()
    fresh.file_uploader(key="ds_upload").set_value(("movie.mp4", video.read_bytes(), "video/mp4")).run()
    fresh.button(key="ds_open_upload").click().run()
    assert_clean(fresh)
    metrics = {m.label: m.value for m in fresh.metric}
    assert (metrics["Time points"], metrics["Channels"]) == ("6", "3")
