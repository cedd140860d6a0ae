"""Browser end-to-end for the viewer component on the real bacteria time-lapse.

What only a browser shows: the wheel zooms without a Python rerun, a box drawn at 8x comes back in
full-resolution pixels, boxes drawn faster than Python reruns are all saved, a correction drawn at
zoom on a Results frame re-tracks from there, and how the pages look (screenshots at 1280 x 800 and
1440 x 900 in test-artifacts/screenshots/). One server (stand-in tracker, so corrections finish in
seconds) serves every test; workspaces are made directly in its data folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import e2e_pages as ui
import numpy as np
import pytest
from e2e_support import CHROMIUM, app_server, chromium_browser, screenshot

from bench.results_page import owner_cookie

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA.exists():
    DATA = Path("/work/shared/data")
BACTERIA = DATA / "bacteria_ctc"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) is not installed."),
    pytest.mark.skipif(not BACTERIA.exists(), reason="the shared bacteria data is not on this machine."),
]
SIZES = {"1280x800": {"width": 1280, "height": 800}, "1440x900": {"width": 1440, "height": 900}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer")
    empty = root / "no-checkpoints"
    empty.mkdir()
    env = {"SAM2WEB_CHECKPOINTS": str(empty), "XDG_CACHE_HOME": str(root / "cache"), "SAM2WEB_STANDIN": "1"}
    with app_server(root / "data", root / "server.log", extra_env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as b:
        yield b


def _store(server):
    from sam2web.store import get_store

    return get_store(str(server.data_dir))


def _workspace(server, frames: int = 6, objects: int = 3) -> str:
    from bench.results_page import bacteria_run

    ws_id, real = bacteria_run(server.data_dir, frames, objects)
    assert real
    return ws_id


def _labels(t: int) -> np.ndarray:
    import tifffile

    return tifffile.imread(BACTERIA / "TRA" / f"man_track{t:06d}.tif")


def _bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def _small_cell_box() -> tuple[float, float, float, float]:
    """The bounding box (x0, y0, x1, y1 in pixel edges) of the smallest cell at frame 1."""
    labels = _labels(0)
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    return _bbox(labels == ids[np.argmin(counts)])


def _open(browser, url: str, viewport: dict | None = None):
    ctx = browser.new_context(viewport=viewport or SIZES["1280x800"], accept_downloads=True)
    ctx.add_cookies([owner_cookie(url)])  # the browser that owns the workspaces made below
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sent: list[float] = []  # every message the browser sends the server (a rerun request is one)
    page.on("websocket", lambda ws: ws.on("framesent", lambda _payload: sent.append(time.monotonic())))
    page.goto(url)
    page.locator("[data-testid=stSidebar]").wait_for(timeout=ui.PAGE_TIMEOUT_MS)
    return ctx, page, errors, sent


def _wait_prompts(s, ws_id: str, n: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        prompts = s.get_workspace(ws_id).prompts or []
        if len(prompts) >= n:
            return prompts
        time.sleep(0.2)  # bounded poll of the store (the deadline bounds the loop)
    raise AssertionError(f"{n} prompt(s) never saved: {s.get_workspace(ws_id).prompts}")


def test_wheel_zooms_without_a_rerun_and_a_box_at_8x_is_exact(server, browser):
    s = _store(server)
    ws_id = _workspace(server)
    ctx, page, errors, sent = _open(browser, f"{server.url}/annotate?ws={ws_id}")
    try:
        root = ui.viewer(page)
        ui.settle(page)
        before = ui.wait_viewer(root, lambda st: st["zoom"] == "1.000", what="the fitted frame")
        target = _small_cell_box()
        cx, cy = (target[0] + target[2]) / 2, (target[1] + target[3]) / 2
        root.locator(".sv-canvas").scroll_into_view_if_needed()
        n_sent = len(sent)
        # The wheel zooms at the cursor: the image pixel under it stays under it.
        px, py = (round(v) for v in ui.to_screen(root, cx, cy))
        under = ui.to_image(root, px, py)
        after = ui.zoom_at(page, root, cx, cy, 8.0)
        still = ui.to_image(root, px, py)
        assert max(abs(a - b) for a, b in zip(under, still)) < 0.05, (under, still)
        qx, qy = ui.to_screen(root, cx, cy)
        page.mouse.move(qx, qy)
        page.mouse.down(button="right")  # pan and zoom back: still nothing for Python
        page.mouse.move(qx - 40, qy - 30, steps=4)
        page.mouse.up(button="right")
        page.mouse.wheel(0, 120)
        page.mouse.wheel(0, -120)
        ui.wait_viewer(root, lambda st: abs(float(st["zoom"]) - 8.0) < 0.01, 10, "the zoom back at 8x")
        # How we know no rerun happened: the browser sent the server nothing at all (a rerun request
        # is a websocket message), and the viewer's data still comes from the same Python run.
        assert len(sent) == n_sent, "the wheel or the pan sent something to the server"
        assert ui.viewer_state(root)["pyrun"] == before["pyrun"] == after["pyrun"]
        # A box drawn at 8x on the small bacterium, in full-resolution pixels.
        ui.drag_box(page, root, target)
        (prompt,) = _wait_prompts(s, ws_id, 1)
        assert max(abs(a - b) for a, b in zip(prompt["box"], target)) <= 0.5, (prompt["box"], target)
        done = ui.wait_viewer(root, lambda st: st["pending"] == "0" and st["prompts"] == "1", what="the saved box")
        assert int(done["pyrun"]) > int(before["pyrun"]) and len(sent) > n_sent  # the positive control
        assert abs(float(done["zoom"]) - 8.0) < 0.01  # the rerun kept the view
        # A mask the moment the box is drawn (the stand-in's interactive session), no Start pressed.
        ui.wait_viewer(root, lambda st: st["objects"] == "1", 90, "the mask outline of the new box")
        assert s.list_runs(ws_id)[0].id == 1 and len(s.list_runs(ws_id)) == 1  # no run was started
        ui.no_traceback(page)
        assert not errors, errors
    except BaseException:
        screenshot(page, "viewer_failure_zoom")
        print(server.log()[-6000:])
        raise
    finally:
        ctx.close()


def test_ten_boxes_in_three_seconds_are_ten_prompts(server, browser):
    s = _store(server)
    ws_id = _workspace(server)
    ctx, page, errors, _sent = _open(browser, f"{server.url}/annotate?ws={ws_id}")
    try:
        root = ui.viewer(page)
        ui.settle(page)
        ui.wait_viewer(root, lambda st: st["zoom"] == "1.000", what="the fitted frame")
        boxes = [
            (60.0 + 90 * (k % 5), 100.0 + 200 * (k // 5), 110.0 + 90 * (k % 5), 160.0 + 200 * (k // 5))
            for k in range(10)
        ]
        # Pointer events at a fast hand's pace (a box every 0.3 s, each a press, 4 moves and a release),
        # dispatched in the page: most boxes land while Python is still rerunning for the one before.
        drawn_ms = ui.fast_boxes(root, boxes, every_ms=300)
        print(f"10 boxes drawn in {drawn_ms / 1000:.2f} s")
        prompts = _wait_prompts(s, ws_id, 10)
        ui.wait_viewer(root, lambda st: st["pending"] == "0" and st["prompts"] == "10", what="ten saved boxes")
        assert len(prompts) == 10 and [p["obj_id"] for p in prompts] == list(range(10))
        got = sorted(tuple(p["box"]) for p in prompts)
        for a, b in zip(got, sorted(boxes)):
            assert max(abs(u - v) for u, v in zip(a, b)) <= 1.5, (a, b)
        ui.no_traceback(page)
        assert not errors, errors
    except BaseException:
        screenshot(page, "viewer_failure_ten")
        print(server.log()[-6000:])
        raise
    finally:
        ctx.close()


def _wait_new_run(s, ws_id: str, old_id: int, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        newest = s.list_runs(ws_id)[0]
        if newest.id != old_id:
            return newest
        time.sleep(0.2)  # bounded poll of the store (the deadline bounds the loop)
    raise AssertionError("the correction run was never created")


def _results(page, ws_id: str, url: str):
    page.goto(f"{url}/results?ws={ws_id}")
    page.get_by_role("heading", name="Results", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
    root = ui.viewer(page)
    ui.settle(page)
    return root


def test_correction_drawn_at_zoom_retracks_from_that_frame(server, browser):
    s = _store(server)
    ws_id = _workspace(server, frames=6, objects=2)
    (run,) = s.list_runs(ws_id)
    ctx, page, errors, _sent = _open(browser, f"{server.url}/?ws={ws_id}")
    try:
        root = _results(page, ws_id, server.url)
        ui.wait_viewer(root, lambda st: st["frame"] == "0" and st["objects"] == "2", what="frame 1's outlines")
        # Two frames on with the keyboard; the viewer tells Python the frame it stopped at.
        ui.press(root, "ArrowRight")
        ui.press(root, "ArrowRight")
        ui.wait_viewer(root, lambda st: st["frame"] == "2", what="Time 3")
        page.get_by_text("Time 3 of 6 ·", exact=False).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        # Object 1 (the second cell) at Time 3: click its outline to select it, zoom on it, box it.
        labels = _labels(2)
        ids = [int(v) for v in np.unique(_labels(0)) if v][:2]
        target = _bbox(labels == ids[1])
        cx, cy = (target[0] + target[2]) / 2, (target[1] + target[3]) / 2
        ui.settle(page)
        page.mouse.click(*ui.to_screen(root, cx, cy))
        ui.wait_viewer(root, lambda st: st["selected"] == "1", what="the selection")
        ui.settle(page)
        ui.zoom_at(page, root, cx, cy, 6.0)
        ui.press(root, "Shift+B")
        ui.wait_viewer(root, lambda st: st["tool"] == "box_obj", what="the box tool")
        ui.drag_box(page, root, target)
        page.get_by_text("Correction box at Time 3", exact=False).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.settle(page)
        assert abs(float(ui.viewer_state(root)["zoom"]) - 6.0) < 0.01  # still zoomed after the reruns
        for size, viewport in SIZES.items():  # the zoomed frame with the box, and the button under it
            page.set_viewport_size(viewport)
            page.get_by_role("button", name="Re-track this object from here").scroll_into_view_if_needed()
            ui.snap(page, f"viewer_correction_{size}")
        page.get_by_role("button", name="Re-track this object from here").click()
        newest = _wait_new_run(s, ws_id, run.id)
        page.get_by_text(f"Run {newest.id} is a correction", exact=False).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        corr = newest.settings["correction"]
        assert corr["obj_id"] == 1 and corr["loc"] == [0, 2, 0]
        assert max(abs(a - b) for a, b in zip(corr["box"], target)) <= 0.5, (corr["box"], target)
        ui.no_traceback(page)
        assert not errors, errors
    except BaseException:
        screenshot(page, "viewer_failure_correction")
        print(server.log()[-6000:])
        raise
    finally:
        ctx.close()


def test_screenshots_of_annotate_and_results_playing(server, browser):
    s = _store(server)
    ws_id = _workspace(server, frames=8, objects=2)
    ctx, page, errors, _sent = _open(browser, f"{server.url}/annotate?ws={ws_id}")
    try:
        root = ui.viewer(page)
        ui.settle(page)
        ui.drag_box(page, root, _small_cell_box())
        _wait_prompts(s, ws_id, 1)
        ui.wait_viewer(root, lambda st: st["pending"] == "0", what="the saved box")
        for size, viewport in SIZES.items():
            page.set_viewport_size(viewport)
            ui.snap(page, f"viewer_annotate_{size}")
        root = _results(page, ws_id, server.url)
        ui.wait_viewer(root, lambda st: st["objects"] == "2", what="two outlines")
        # Play keeps going in the browser: the frame moves with no Python run, and Pause keeps it.
        pyrun = ui.viewer_state(root)["pyrun"]
        ui.press(root, " ")
        ui.wait_viewer(root, lambda st: st["frame"] not in ("0",) and st["playing"] == "1", what="playback")
        assert ui.viewer_state(root)["pyrun"] == pyrun
        ui.press(root, " ")
        stopped = ui.wait_viewer(root, lambda st: st["playing"] == "0", what="the pause")
        ui.settle(page)
        assert ui.viewer_state(root)["frame"] == stopped["frame"]  # the rerun after Pause keeps the frame
        for size, viewport in SIZES.items():
            page.set_viewport_size(viewport)
            ui.snap(page, f"viewer_results_{size}")
        ui.no_traceback(page)
        assert not errors, errors
    except BaseException:
        screenshot(page, "viewer_failure_screens")
        print(server.log()[-6000:])
        raise
    finally:
        ctx.close()
