"""Browser end-to-end on real data: a biologist's afternoon on the bacteria time-lapse.

Zoom in on Annotate and box a small cell at 8x (the saved box within 1 image pixel of the intended
one), Enter in a Track field starts nothing, settings survive a reload, a one-time-point Z-stack
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


def _small_cell_box() -> tuple[float, float, float, float]:
    """The bounding box (x0, y0, x1, y1 in pixel edges) of the smallest cell at frame 1."""
    import tifffile

    labels = tifffile.imread(BACTERIA / "TRA" / "man_track000000.tif")
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    ys, xs = np.nonzero(labels == ids[np.argmin(counts)])
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def _wait_view_change(s, ws_id: str, before: dict, timeout: float = 60.0) -> dict:
    """The workspace's saved view once the page has stored a new one (polled with a deadline)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = s.get_workspace(ws_id).view
        if (view.get("cx"), view.get("cy")) != (before.get("cx"), before.get("cy")):
            return view
        time.sleep(0.2)  # bounded poll of the store (the deadline bounds the loop)
    raise AssertionError(f"the minimap click did not move the view: {before}")


def _drag_until_saved(page, s, ws_id: str, box, fit, tries: int = 3) -> None:
    """Drag the box; if the canvas was still being replaced (a rerun), the drag is lost: drag again.

    A user whose stroke lands while the page redraws simply draws again; the test does the same
    (at most ``tries`` times), waiting for the prompt to be saved each time.
    """
    import time

    for _ in range(tries):
        main, _ = ui.canvases(page)
        ui.drag_image_box(page, main, box, fit)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if s.get_workspace(ws_id).prompts:
                return
            page.wait_for_timeout(200)  # bounded poll of the store (the deadline bounds the loop)
        ui.settle(page)
    raise AssertionError("the box drawn on the zoomed canvas was never saved")


def _open(browser, url: str):
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
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


def test_zoom_draw_small_cell_enter_reload_and_screenshots(server, browser):
    from sam2web.ui import canvas
    from sam2web.ui.annotate_ui import CANVAS_MAX_H, CANVAS_MAX_W, MINIMAP_MAX

    ws_id = _bacteria_workspace(server)
    s = _store(server)
    runs_before = len(s.list_runs(ws_id))
    ctx, page, errors, outside = _open(browser, f"{server.url}/?ws={ws_id}")
    try:
        page.get_by_role("heading", name="Dataset", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.snap(page, "bacteria_dataset")
        ui.no_traceback(page)

        # Annotate: zoom to 8x, look at the small cell through the minimap, box it there.
        ui.go(page, "Annotate")
        ui.snap(page, "bacteria_annotate_1x")
        assert ui.toolbar_hidden(page)
        ui.set_zoom_max(page)
        target = _small_cell_box()
        cx, cy = (target[0] + target[2]) / 2, (target[1] + target[3]) / 2
        _, mini = ui.canvases(page)
        before = s.get_workspace(ws_id).view
        ui.click_image_point(page, mini, cx, cy, canvas.fit_canvas(1009, 1305, max_w=MINIMAP_MAX, max_h=MINIMAP_MAX))
        view = _wait_view_change(s, ws_id, before)
        ui.settle(page)
        assert view["zoom"] == 8.0
        fit = canvas.viewport(1009, 1305, view["zoom"], view["cx"], view["cy"], max_w=CANVAS_MAX_W, max_h=CANVAS_MAX_H)
        assert fit.x0 <= target[0] and target[2] <= fit.x0 + fit.image_w  # the cell is in view
        shown = f"pixels {fit.x0 + 1}–{fit.x0 + fit.image_w} × {fit.y0 + 1}–{fit.y0 + fit.image_h} of 1009 × 1305"
        page.get_by_text(shown).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.settle(page)
        _drag_until_saved(page, s, ws_id, target, fit)
        ui.wait_objects(page, 1)
        ui.no_traceback(page)
        (prompt,) = s.get_workspace(ws_id).prompts
        assert max(abs(a - b) for a, b in zip(prompt["box"], target)) <= 1.0, (prompt["box"], target)
        ui.snap(page, "bacteria_annotate_8x")

        # Track: Enter in a text field starts nothing.
        ui.go(page, "Track")
        field = page.get_by_label("Batch Time")
        field.fill("1-3")
        field.press("Enter")
        ui.settle(page)
        assert len(s.list_runs(ws_id)) == runs_before
        assert page.get_by_text("started; follow it below").count() == 0
        ui.snap(page, "bacteria_track")

        # Results: a setting changed, then a reload: still there (and the zoom on Annotate too).
        ui.go(page, "Results")
        page.locator("[data-testid=stImage] img").first.wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.snap(page, "bacteria_results")
        padding = page.get_by_label("Padding (px)")
        padding.fill("2")
        padding.press("Enter")
        ui.settle(page)
        page.reload()
        page.get_by_role("heading", name="Results", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.settle(page)
        assert float(page.get_by_label("Padding (px)").input_value()) == 2.0
        ui.go(page, "Annotate")
        assert page.get_by_text("Click the small frame where to look.").count() == 1  # still at 8x
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
    ws = s.create_workspace("Nuclei")
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
        assert page.get_by_label("Batch Z").input_value() == "all"
        ui.snap(page, "nuclei_track")
        assert not errors, errors
    except BaseException:
        screenshot(page, "nuclei_failure")
        print(server.log()[-6000:])
        raise
    finally:
        ctx.close()
