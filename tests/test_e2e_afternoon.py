"""Browser end-to-end on real data: a biologist's afternoon on the bacteria time-lapse.

Enter in a Track field starts nothing, settings survive a reload, a one-time-point Z-stack
opens Track across Z; screenshots of every page at 1280 x 800 in test-artifacts/screenshots/.

Workspaces are made directly in the server's data folder (the dataset, and a finished run of the
true cell masks for Results), so no model runs here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import e2e_pages as ui
import numpy as np
import pytest
from e2e_support import CHROMIUM, app_server, chromium_browser, screenshot

from bench.results_page import BENCH_OWNER, owner_cookie

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA.exists():
    DATA = Path("/work/shared/data")
BACTERIA = DATA / "bacteria_ctc"
NUCLEI = DATA / "nuclei3d" / "nuclei.tif"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) is not installed."),
    pytest.mark.skipif(not BACTERIA.exists(), reason="the shared bacteria data is not on this machine."),
]
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("afternoon")
    empty = root / "no-checkpoints"
    empty.mkdir()
    env = {"SAM2WEB_CHECKPOINTS": str(empty), "XDG_CACHE_HOME": str(root / "cache")}
    with app_server(root / "data", root / "server.log", extra_env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as b:
        yield b


def _store(server):
    from sam2web.store import get_store

    return get_store(str(server.data_dir))


def _bacteria_workspace(server) -> str:
    """10 bacteria frames and a done run of 2 true cells x 10 frames (as a run would leave them)."""
    from bench.results_page import bacteria_run

    ws_id, real = bacteria_run(server.data_dir, 10, 2)
    assert real
    return ws_id


def _open(browser, url: str):
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    ctx.add_cookies([owner_cookie(url)])  # the browser that owns the workspaces made below
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    outside: list[str] = []
    page.on(
        "request",
        lambda req: outside.append(req.url) if not req.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None,
    )
    page.goto(url)
    return ctx, page, errors, outside


def test_annotate_enter_reload_and_screenshots(server, browser):
    ws_id = _bacteria_workspace(server)
    s = _store(server)
    runs_before = len(s.list_runs(ws_id))
    ctx, page, errors, outside = _open(browser, f"{server.url}/?ws={ws_id}")
    try:
        page.get_by_role("heading", name="Dataset", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.snap(page, "bacteria_dataset")
        ui.no_traceback(page)

        # Annotate: the viewer shows the whole frame (boxing at 8x is in test_e2e_viewer.py).
        ui.go(page, "Annotate")
        ui.wait_viewer(ui.viewer(page), lambda st: st["zoom"] == "1.000" and st["frame"] == "0", what="the frame")
        ui.snap(page, "bacteria_annotate_1x")

        # Track: Enter in a text field starts nothing.
        ui.go(page, "Track")
        field = page.get_by_role("textbox", name="Batch Time")
        field.fill("1-3")
        field.press("Enter")
        ui.settle(page)
        assert len(s.list_runs(ws_id)) == runs_before
        assert page.get_by_text("started; follow it below").count() == 0
        ui.snap(page, "bacteria_track")

        # Results: a setting changed, then a reload: still there (and the zoom on Annotate too).
        ui.go(page, "Results")
        ui.wait_viewer(ui.viewer(page), lambda st: st["objects"] == "2", what="the two outlines")
        ui.snap(page, "bacteria_results")
        padding = page.get_by_label("Padding (px)")
        padding.fill("2")
        padding.press("Enter")
        ui.settle(page)
        page.reload()
        page.get_by_role("heading", name="Results", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.settle(page)
        assert float(page.get_by_label("Padding (px)").input_value()) == 2.0
        ui.no_traceback(page)
        assert not errors, errors
        assert not outside, f"requests left this machine: {sorted(set(outside))[:5]}"
    except BaseException:
        screenshot(page, "afternoon_failure")
        print(server.log()[-6000:])
        raise
    finally:
        ctx.close()


def test_z_stack_opens_track_across_z(server, browser):
    s = _store(server)
    ws = s.create_workspace("Nuclei", owner=BENCH_OWNER)
    folder = s.files_dir(ws.id)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(NUCLEI, folder / "nuclei.tif")
    s.update_workspace(ws.id, dataset={"kind": "files", "files": ["nuclei.tif"], "pages_as": "z"})
    ctx, page, errors, _ = _open(browser, f"{server.url}/?ws={ws.id}")
    try:
        page.get_by_role("heading", name="Dataset", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.go(page, "Track")
        radio = page.locator("[data-testid=stRadio]").filter(has_text="Track across")
        assert radio.get_by_role("radio", name="Z", exact=True).is_checked()
        assert page.get_by_role("textbox", name="Batch Z").input_value() == "all"
        ui.snap(page, "nuclei_track")
        assert not errors, errors
    except BaseException:
        screenshot(page, "nuclei_failure")
        print(server.log()[-6000:])
        raise
    finally:
        ctx.close()
