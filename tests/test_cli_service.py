"""`sam2web track` goes through the run service: the same parameters give the same stored run as the Track page."""

from __future__ import annotations

import json

from sam2web import cli
from sam2web.service import runs

try:  # tests/ may be a package; the fallback keeps a plain rootdir run working
    from tests.app_helpers import data, new_app, wait_runs
    from tests.test_app_pages import _sample, _track_sample
except ImportError:  # pragma: no cover
    from app_helpers import data, new_app, wait_runs  # noqa: F401
    from test_app_pages import _sample, _track_sample

__all__ = ["data"]

FORM = {"xy": "1", "z": "1", "time": "1-6", "padding": 1.0, "smoothing": 0.5}


def _geojson(prompts: list[dict]) -> dict:
    features = []
    for p in prompts:
        x0, y0, x1, y1 = p["box"]
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        loc = p["loc"]
        props = {"XY": loc["XY"], "Time": loc["Time"], "Z": loc["Z"], "name": p["name"], "tags": p["tags"]}
        features.append(
            {"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [ring]}}
        )
    return {"type": "FeatureCollection", "features": features}


def test_cli_track_and_the_track_page_store_the_same_run(data, tmp_path, capsys):
    at = _sample(new_app())
    ws = _track_sample(at, data, **FORM)
    wait_runs(data, ws.id)
    (page_run,) = data.list_runs(ws.id)
    assert page_run.status == "done", page_run.error
    prompt_file = tmp_path / "prompts.geojson"
    prompt_file.write_text(json.dumps(_geojson(page_run.settings["prompts"])))
    sample = runs.sample_paths(data)[0]
    cli_data = tmp_path / "cli-data"
    argv = ["track", str(sample), "--prompts", str(prompt_file), "--out", str(tmp_path / "out"), "--quiet"]
    argv += ["--data", str(cli_data), "--executor", "inline"]
    for key, value in FORM.items():
        argv += [f"--{key}", str(value)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    from sam2web.store import get_store

    cli_store = get_store(str(cli_data))
    (cli_ws,) = cli_store.list_workspaces()
    (cli_run,) = cli_store.list_runs(cli_ws.id)
    assert cli_run.status == "done", cli_run.error
    assert cli_run.settings == page_run.settings
    assert cli_run.objects == page_run.objects
    assert cli_run.total_frames == page_run.total_frames == 6
    assert cli_store.load_masks(cli_run.id) == data.load_masks(page_run.id)
    assert (tmp_path / "out" / "connections.csv").is_file()
