"""User-given names render as plain text; prompt imports and odd names are limited with a sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam2web import prompts
from sam2web.errors import UserError
from sam2web.store import Store
from sam2web.ui.text import plain

try:
    from tests.app_helpers import assert_clean, data, new_app  # noqa: F401 - data is a fixture
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, new_app

HOSTILE = "![p](http://host/x.png) **bold** :red[x] <img src=x>"


def test_plain_escapes_every_markup_character():
    import re

    out = plain(HOSTILE)
    assert re.search(r"(?<!\\)[\[\]*<>`]", out) is None, out  # none left unescaped
    assert out.replace("\\", "") == HOSTILE  # and nothing else changed
    assert plain("1. item") == "1\\. item" and plain("- item") == "\\- item" and plain("a\nb") == "a b"
    assert plain("sam2.1_hiera_tiny.pt (x)") == "sam2.1_hiera_tiny.pt (x)" and plain("_em_") == "\\_em\\_"


def test_a_hostile_workspace_name_is_never_markdown_in_the_sidebar(data):
    at = new_app()
    ws_id = at.session_state["ws_id"]
    data.rename_workspace(ws_id, HOSTILE)
    data.update_workspace(ws_id, dataset={"kind": "sample", "pages_as": "time"})
    at = new_app(ws_id)
    at.sidebar.button(key="sb_new").click().run()
    assert_clean(at)
    shown = (
        [t.value for t in at.sidebar.text]
        + [b.label for b in at.sidebar.button]
        + [b.help or "" for b in at.sidebar.button]
    )
    assert any(HOSTILE.split()[0] not in s and "host" in s for s in shown), shown  # escaped where markdown
    assert all("![p](http" not in s for s in [b.label for b in at.sidebar.button]), shown


def _features(n: int) -> dict:
    box = [[[1, 1], [5, 1], [5, 5], [1, 5], [1, 1]]]
    return {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": box}, "properties": {}}] * n,
    }


def test_prompt_imports_are_limited_with_a_sentence(tmp_path):
    with pytest.raises(UserError, match="more than one import takes"):
        prompts.from_geojson(_features(prompts.MAX_IMPORT_FEATURES + 1), 64, 64, default_loc=(0, 0, 0))
    with pytest.raises(UserError, match="more than one import takes"):
        prompts.from_platform_json([{}] * (prompts.MAX_IMPORT_FEATURES + 1), 64, 64)
    labels = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)  # 4,095 labels
    with pytest.raises(UserError, match="objects, more than sam2web tracks"):
        prompts.from_label_image(labels, (0, 0, 0))
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b" " * (17 << 20) + b"]")
    with pytest.raises(UserError, match="larger than 16 MB"):
        prompts.load_prompts(big, 64, 64)
    json.dumps(_features(2))  # a small import still works
    assert len(prompts.from_geojson(_features(2), 64, 64, default_loc=(0, 0, 0))) == 2


def test_a_nul_in_an_upload_name_or_a_server_path_is_a_sentence(tmp_path, monkeypatch):
    from sam2web import server_files

    s = Store(tmp_path / "d")
    ws = s.create_workspace("x", owner="browser:a")
    with pytest.raises(UserError, match="NUL"):
        s.save_upload(ws.id, "cells\x00.tif", b"data")
    s.close()
    monkeypatch.setenv("SAM2WEB_SERVER_FOLDERS", str(tmp_path))
    with pytest.raises(UserError, match="NUL"):
        server_files.resolve(tmp_path, "a\x00b.tif")


@pytest.mark.parametrize(
    "name,value,words",
    [("CACHE_MB", "nan", "above 0"), ("FRAME_CACHE_MB", "-3", "above 0"), ("STANDIN", "slow:abc", "slow:0.5")],
)
def test_bad_settings_are_one_sentence(monkeypatch, name, value, words):
    from sam2web.config import settings

    monkeypatch.setenv("SAM2WEB_" + name, value)
    with pytest.raises(UserError, match=words):
        settings()


def test_upload_it_again_restores_the_same_workspace(data, tmp_path):
    import io

    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((4, 32, 32), np.uint8), imagej=True, metadata={"axes": "TYX"})
    at = new_app()
    at.file_uploader(key="ds_upload").set_value(("cells.tif", buf.getvalue(), "image/tiff")).run()
    at.button(key="ds_open_upload").click().run()
    assert_clean(at)
    ws = data.get_workspace(at.session_state["ws_id"])
    box = {
        "obj_id": 0,
        "loc": {"XY": 0, "Time": 0, "Z": 0},
        "box": [1.0, 1.0, 9.0, 9.0],
        "points": [],
        "mask": None,
        "tags": [],
        "name": "a",
    }
    data.update_workspace(ws.id, prompts=[box])
    for p in data.dataset_paths(ws):
        p.unlink()  # the file vanished from the data folder
    at = new_app(ws.id)
    assert any("upload it again" in e.value for e in at.error), [e.value for e in at.error]
    at.file_uploader(key="ds_upload").set_value(("cells.tif", buf.getvalue(), "image/tiff")).run()
    at.button(key="ds_open_upload").click().run()
    assert_clean(at)
    assert at.session_state["ws_id"] == ws.id
    again = data.get_workspace(ws.id)
    assert again.prompts == [box] and all(p.exists() for p in data.dataset_paths(again))
