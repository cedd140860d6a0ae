"""The pages fit a 1280 x 800 window in a real Chromium: the Dataset frame stays inside its column
and "Start tracking" is on screen without scrolling, even with the random-weights warning shown.

Why a browser: only a browser lays the page out; AppTest knows the widgets, not where they land.
"""

from __future__ import annotations

import e2e_pages as ui
import pytest
from e2e_support import CHROMIUM, app_server, chromium_browser, screenshot
from shoot_pages import prepare_sample

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) is not installed")

W, H = 1280, 800


def test_dataset_and_track_fit_a_1280x800_window(tmp_path, monkeypatch):
    from sam2web.store import get_store
    from sam2web.tracking import factory

    data_dir = tmp_path / "data"
    monkeypatch.setenv("SAM2WEB_DATA", str(data_dir))
    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "inline")
    factory.clear()
    ws_id = prepare_sample(get_store(str(data_dir)))
    factory.clear()
    # The server runs with random weights (app_server's default): the Track page's warning is shown.
    with app_server(data_dir, tmp_path / "server.log") as server, chromium_browser() as browser:
        page = browser.new_page(viewport={"width": W, "height": H})
        page.goto(f"{server.url}/?ws={ws_id}")
        page.get_by_role("heading", name="Dataset", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.settle(page)
        img = page.locator("[data-testid=stImage] img").first
        frame = img.bounding_box()
        column = page.locator("[data-testid=stColumn]").filter(has=img).last.bounding_box()
        screenshot(page, "layout_dataset_1280x800")
        assert frame["x"] + frame["width"] <= column["x"] + column["width"] + 1, (frame, column)
        assert frame["x"] + frame["width"] <= W and frame["y"] + frame["height"] <= H, frame

        ui.go(page, "Track")
        page.get_by_text("RANDOM weights", exact=False).first.wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        button = page.get_by_role("button", name="Start tracking").bounding_box()
        screenshot(page, "layout_track_1280x800")
        assert button["y"] + button["height"] <= H, f"Start tracking is below the fold: {button}"
