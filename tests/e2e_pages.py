"""What a user does on each page of the app, as Playwright steps (for the browser end-to-end tests).

Why separate from the test: these steps know the app's widget labels and layout (the sidebar
links, the form fields, the viewer component and its data-* hooks), so when the app's wording
changes there is one place to update, and the test itself reads as the user's story.

All waits are Playwright waits with explicit timeouts on visible UI state; nothing sleeps.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import numpy as np

PAGE_TIMEOUT_MS = 60_000  # a page's first render (imports, sample generation) on a busy 2-core CI box
RUN_TIMEOUT_MS = 150_000  # a few frames of SAM2 tiny on CPU, plus the model build


def no_traceback(page) -> None:
    """A user error is one sentence (st.error); a traceback (st.exception) means a bug."""
    exc = page.locator("[data-testid=stException]")
    assert exc.count() == 0, f"traceback on the page: {exc.first.inner_text()[:2000]}"


def settle(page, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    """Wait until the script run is over and every element has rendered (no loading skeletons).

    Why: Streamlit draws lazily loaded widgets as grey skeletons first; a screenshot taken then
    shows placeholders instead of the page a user sees a moment later.
    """
    from playwright.sync_api import expect

    expect(page.locator("[data-testid=stApp]")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=timeout_ms
    )
    expect(page.locator("[data-testid=stSkeleton]")).to_have_count(0, timeout=timeout_ms)


def snap(page, name: str) -> Path:
    """A screenshot of the settled page (see ``settle``)."""
    from e2e_support import screenshot

    settle(page)
    return screenshot(page, name)


def go(page, title: str) -> None:
    """Open a page from the sidebar navigation, as a user does, and wait for its title.

    A click that lands while the page is rerunning (e.g. right after a button) can be dropped by
    the browser's Streamlit client; a user then clicks again, and so does this (once).
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    link = page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=title, exact=True)
    heading = page.get_by_role("heading", name=title, exact=True)
    for attempt in range(2):
        link.click()
        try:
            heading.wait_for(timeout=PAGE_TIMEOUT_MS // 2)
            break
        except PlaywrightTimeout:
            if attempt:
                raise
    settle(page)


def workspace_id(page) -> str:
    """The workspace id the app keeps in the URL (``?ws=...``) so a refresh lands in the same place."""
    values = parse_qs(urlparse(page.url).query).get("ws", [])
    assert values, f"no workspace id in the URL {page.url}"
    return values[0]


def wait_ws_in_url(page) -> str:
    page.wait_for_url(re.compile(r"[?&]ws=[0-9a-f]+"), timeout=PAGE_TIMEOUT_MS)
    return workspace_id(page)


# -- Dataset -----------------------------------------------------------------------------------
EMPTY_DATASET = "Upload a stack or open the built-in sample to begin."


def open_sample(page) -> tuple[int, int]:
    """Open the built-in sample in the current (empty) workspace; returns its (width, height).

    The empty workspace's hint must be on screen first and gone afterwards: a click on an element
    left over from a previous run (Streamlit keeps stale elements visible during a rerun) would
    otherwise pass unnoticed.
    """
    hint = page.get_by_text(EMPTY_DATASET)
    hint.wait_for(timeout=PAGE_TIMEOUT_MS)
    settle(page)  # the expander's state is only known once the run is over
    button = page.get_by_role("button", name="Open the built-in sample")
    if not button.is_visible():
        page.locator("[data-testid=stExpander]").filter(has_text="Open a dataset").locator("summary").click()
    button.click()
    hint.wait_for(state="detached", timeout=PAGE_TIMEOUT_MS)
    width = _metric(page, "Width")
    height = _metric(page, "Height")
    page.locator("[data-testid=stImage] img").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    return width, height


def _metric(page, label: str) -> int:
    metric = page.locator("[data-testid=stMetric]").filter(has=page.get_by_text(label, exact=True))
    value = metric.locator("[data-testid=stMetricValue]")
    value.wait_for(timeout=PAGE_TIMEOUT_MS)
    return int(value.inner_text().strip())


def new_workspace(page) -> None:
    """The sidebar's "New workspace", from the Dataset page (a second user must not work in the
    first one's workspace); returns once the new, empty workspace is shown."""
    old = page.url
    page.locator("[data-testid=stSidebar]").get_by_role("button", name="New workspace").click()
    page.wait_for_url(lambda url: url != old, timeout=PAGE_TIMEOUT_MS)
    page.get_by_text(EMPTY_DATASET).wait_for(timeout=PAGE_TIMEOUT_MS)
    settle(page)


# -- the viewer (Annotate, Results) ------------------------------------------------------------
def viewer(page, n: int = 0):
    """The viewer component's root element (``.sv-root``, in an open shadow root that Playwright's
    CSS selectors pierce); it carries the test hooks data-frame, data-objects, data-prompts, data-zoom."""
    root = page.locator(".sv-root").nth(n)
    root.wait_for(timeout=PAGE_TIMEOUT_MS)
    return root


def viewer_state(root) -> dict:
    """The root's data-* attributes (the view transform, the frame, counts, the Python run counter)."""
    return root.evaluate("e => ({...e.dataset})")


def wait_viewer(root, predicate, timeout_s: float = 60.0, what: str = "the viewer's state") -> dict:
    """Poll the hooks until ``predicate(state)`` holds (a deadline bounds the loop)."""
    import time

    deadline = time.monotonic() + timeout_s
    state = viewer_state(root)
    while not predicate(state):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never came: {state}")
        root.page.wait_for_timeout(100)  # bounded poll (the deadline bounds the loop)
        state = viewer_state(root)
    return state


def to_screen(root, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of the image pixel position (x, y) under the viewer's current view."""
    st = viewer_state(root)
    bb = root.locator(".sv-canvas").bounding_box()
    assert bb and bb["width"] > 0, "the viewer's canvas has no size"
    s = float(st["scale"])
    return bb["x"] + float(st["tx"]) + x * s, bb["y"] + float(st["ty"]) + y * s


def to_image(root, px: float, py: float) -> tuple[float, float]:
    """The image pixel position under page coordinates (px, py) (the inverse of ``to_screen``)."""
    st = viewer_state(root)
    bb = root.locator(".sv-canvas").bounding_box()
    s = float(st["scale"])
    return (px - bb["x"] - float(st["tx"])) / s, (py - bb["y"] - float(st["ty"])) / s


def zoom_at(page, root, x: float, y: float, zoom: float) -> dict:
    """One wheel turn over image pixel (x, y) to ``zoom`` (the viewer zooms by exp(-deltaY / 500))."""
    import math

    root.locator(".sv-canvas").scroll_into_view_if_needed()
    px, py = to_screen(root, x, y)
    page.mouse.move(round(px), round(py))  # the browser reports whole CSS pixels
    current = float(viewer_state(root)["zoom"])
    page.mouse.wheel(0, -math.log(zoom / current) * 500)
    return wait_viewer(root, lambda s: abs(float(s["zoom"]) - min(zoom, 32)) < 0.01, 10, "the zoom")


def drag_box(page, root, box: tuple[float, float, float, float], steps: int = 6) -> None:
    """Drag a rectangle over ``box`` (image pixels), mapped through the viewer's own transform."""
    x0, y0 = to_screen(root, box[0], box[1])
    x1, y1 = to_screen(root, box[2], box[3])
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=steps)
    page.mouse.move(x1, y1, steps=steps)
    page.mouse.up()


_FAST_BOXES = """
async (root, [boxes, every]) => {
  const canvas = root.querySelector(".sv-canvas");
  const d = root.dataset;
  const at = (x, y) => {
    const r = canvas.getBoundingClientRect();  // where the canvas is now, as a hand follows it
    return [r.left + Number(d.tx) + x * Number(d.scale), r.top + Number(d.ty) + y * Number(d.scale)];
  };
  const fire = (type, [cx, cy], buttons) => canvas.dispatchEvent(new PointerEvent(type,
    {bubbles: true, cancelable: true, clientX: cx, clientY: cy, button: 0, buttons, pointerId: 1, isPrimary: true}));
  const t0 = performance.now();
  for (let k = 0; k < boxes.length; k++) {
    while (performance.now() - t0 < k * every) await new Promise((ok) => setTimeout(ok, 5));
    const [x0, y0, x1, y1] = boxes[k];
    fire("pointerdown", at(x0, y0), 1);
    for (let i = 1; i <= 4; i++) {
      fire("pointermove", at(x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4), 1);
    }
    fire("pointerup", at(x1, y1), 0);
  }
  return performance.now() - t0;
}
"""


def fast_boxes(root, boxes: list, every_ms: int = 300) -> float:
    """Draw boxes (image pixels) with pointer events dispatched in the page, one every ``every_ms``.

    Why in the page: each Playwright mouse call is a round trip (about 0.1 s on a busy 2-core
    machine), too slow for a fast hand; the events are the ones a mouse makes. Returns the ms taken.
    """
    return float(root.evaluate(_FAST_BOXES, [[list(b) for b in boxes], every_ms]))


def draw_box(page, box: tuple[float, float, float, float], image_w: int, image_h: int) -> None:
    """Drag a box (image pixels) on the Annotate viewer with the mouse (the default tool is Box)."""
    del image_w, image_h  # the viewer says its own transform
    root = viewer(page)
    root.locator(".sv-canvas").scroll_into_view_if_needed()
    drag_box(page, root, box)


def press(root, key: str) -> None:
    """A key in the viewer (it takes keys while it has the focus, as after a click on it)."""
    root.focus()
    root.press(key)


def wait_objects(page, n: int) -> None:
    """The object list says ``Objects (n)`` and the run that drew it is over."""
    page.get_by_role("heading", name=f"Objects ({n})").wait_for(timeout=PAGE_TIMEOUT_MS)
    settle(page)


def object_rows(page) -> list[str]:
    """The object list's captions, e.g. ``#1 · prompts at T1/Z1/XY1``."""
    return [t.strip() for t in page.get_by_text(re.compile(r"^#\d+ · prompts at ")).all_inner_texts()]


# -- Track -------------------------------------------------------------------------------------
def choose(page, label: str, option: str) -> None:
    """Pick an option of a Streamlit selectbox by its exact label."""
    page.locator("[data-testid=stSelectbox]").filter(has=page.get_by_text(label, exact=True)).click()
    page.get_by_role("option", name=option, exact=True).click()


def start_tracking(page, time_range: str, model_label: str = "SAM2.1 hiera tiny") -> int:
    """Fill the Track form (Batch Time, Model), submit; returns the new run's id."""
    page.get_by_role("textbox", name="Batch Time").fill(time_range)  # its help button has the label too
    choose(page, "Model", model_label)
    page.get_by_role("button", name="Start tracking").click()
    started = page.get_by_text(re.compile(r"Run \d+ started"))
    started.wait_for(timeout=PAGE_TIMEOUT_MS)
    return int(re.search(r"Run (\d+) started", started.inner_text()).group(1))


def run_title(page, run_id: int, status: str):
    return page.get_by_text(re.compile(rf"Run {run_id} · {status} ·"))


def wait_run_done(page, run_id: int) -> None:
    """Wait for the run card to say done; fail at once, with the page's words, if it failed."""
    done = run_title(page, run_id, "done")
    bad = run_title(page, run_id, "(failed|cancelled|interrupted)")
    done.or_(bad).first.wait_for(timeout=RUN_TIMEOUT_MS)
    if bad.count():
        card = page.locator("[data-testid=stVerticalBlockBorderWrapper], [data-testid=stVerticalBlock]").filter(
            has=bad.first
        )
        raise AssertionError(f"run {run_id} did not finish: {card.last.inner_text()[:1000]}")


# -- Results -----------------------------------------------------------------------------------
def download(page, button_name: str, dest: Path) -> Path:
    """Press a download button and save what the browser receives."""
    with page.expect_download(timeout=PAGE_TIMEOUT_MS) as info:
        page.get_by_role("button", name=button_name, exact=True).click()
    dl = info.value
    assert dl.failure() is None, dl.failure()
    assert dl.suggested_filename == button_name
    dl.save_as(str(dest))
    return dest


def check_geojson(path: Path, width: int, height: int, times: set[int], allow_multi: bool = False) -> dict:
    """The exported GeoJSON: a FeatureCollection of Polygons inside the image, at tracked times.

    ``allow_multi`` tolerates MultiPolygon features (only "Keep all fragments" should make them;
    see /tmp/prompts/e2e_findings.md for the default-mode case that still does).
    """
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection"
    ids = set()
    for feat in data["features"]:
        assert feat["type"] == "Feature"
        geom = feat["geometry"]
        assert geom["type"] in (("Polygon", "MultiPolygon") if allow_multi else ("Polygon",)), geom["type"]
        polygons = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        for rings in polygons:
            assert rings and len(rings[0]) >= 4
            xy = np.array([pt for ring in rings for pt in ring], dtype=float)
            assert xy.shape[1] == 2
            assert (xy[:, 0] >= 0).all() and (xy[:, 0] <= width).all(), "x outside the image"
            assert (xy[:, 1] >= 0).all() and (xy[:, 1] <= height).all(), "y outside the image"
            for ring in rings:
                assert ring[0] == ring[-1], "a ring is not closed"
        props = feat["properties"]
        assert props["Time"] in times, (props["Time"], times)
        assert props["XY"] == 0 and props["Z"] == 0
        assert props["area"] > 0
        ids.add(feat.get("id", props.get("id")))
    assert len(ids) == len(data["features"]), "feature ids are not unique"
    return data


def fetch_image(page, img_locator) -> np.ndarray:
    """The pixels of a Streamlit image as the browser got them (RGB uint8)."""
    import cv2

    src = img_locator.get_attribute("src")
    assert src, "the image has no source"
    resp = page.request.get(urljoin(page.url, src))
    assert resp.ok, resp.status
    arr = cv2.imdecode(np.frombuffer(resp.body(), np.uint8), cv2.IMREAD_COLOR)
    assert arr is not None, "the image could not be decoded"
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def colour_fraction(rgb: np.ndarray, hex_colour: str, tol: int = 40) -> float:
    """The fraction of pixels within ``tol`` (each channel) of a colour (JPEG-tolerant)."""
    c = hex_colour.lstrip("#")
    target = np.array([int(c[i : i + 2], 16) for i in (0, 2, 4)], dtype=int)
    close = (np.abs(rgb.astype(int) - target) <= tol).all(axis=-1)
    return float(close.mean())


def canvas_rgb(root) -> np.ndarray:
    """The viewer's canvas as drawn now (RGB uint8), from a screenshot of the element."""
    import cv2

    png = root.locator(".sv-canvas").screenshot()
    arr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert arr is not None, "the canvas screenshot could not be decoded"
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
