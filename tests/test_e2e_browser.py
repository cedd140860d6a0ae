"""Browser end-to-end: the real app in a real headless Chromium, as a first-time user drives it.

Why: AppTest runs the page scripts but not the browser; only a browser shows that the drawable
viewer maps mouse drags to image pixels, that a background run's progress reaches the page, that
downloads arrive, and that a refresh finds the workspace where the user left it.

The app runs as ``streamlit run app.py`` on a free localhost port with its own data folder,
random SAM2 weights (``SAM2WEB_RANDOM_WEIGHTS=1``) and a small model input (``SAM2WEB_IMAGE_SIZE``)
so a few frames of the tiny model track in seconds on a CPU. Screenshots of every page go to
test-artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import e2e_pages as ui
import pytest
from e2e_support import CHROMIUM, app_server, chromium_browser, screenshot

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium (/usr/bin/chromium) is not installed; "
        "`apt-get install chromium` (the CI script does).",
    ),
]

VIEWPORT = {"width": 1400, "height": 1600}
TRACK_TIMES = "1-4"  # Batch Time, 1-based
TRACKED = {0, 1, 2, 3}  # the same, 0-based, as the exports write it
OBJECT_COLOUR = "#e6194b"  # sam2web.overlay.color_for(0), checked below against the module


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app as a server; its log is printed when a test fails so the cause is visible."""
    root = tmp_path_factory.mktemp("e2e")
    empty_ckpt = root / "no-checkpoints"
    empty_ckpt.mkdir()
    # No checkpoint may be found (random weights are the point), whatever the machine's cache holds.
    env = {"SAM2WEB_CHECKPOINTS": str(empty_ckpt), "XDG_CACHE_HOME": str(root / "cache")}
    with app_server(root / "data", root / "server.log", extra_env=env, image_size=256) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, shared by the tests (each test opens its own contexts)."""
    with chromium_browser() as b:
        yield b


def _page(browser, errors: list[str]):
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = ctx.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return ctx, page


def _report_failure(server, pages: dict) -> None:
    """On failure: screenshots of what the users saw and the server's log (pytest prints stdout)."""
    for name, page in pages.items():
        try:
            screenshot(page, name)
        except Exception as err:  # the page may be gone; the log still helps
            print(f"no screenshot {name}: {err}")
    print("---- streamlit server log (tail) ----")
    print(server.log()[-6000:])


def _true_cell_box(width: int, height: int) -> tuple[float, float, float, float]:
    """The first sample cell's bounding box at time 1 (from the sample's own true labels), +4 px."""
    import numpy as np

    from sam2web.stack import sample

    labels = sample.sample_labels(height=height, width=width)[0]
    ys, xs = np.nonzero(labels == 1)
    return float(xs.min() - 4), float(ys.min() - 4), float(xs.max() + 5), float(ys.max() + 5)


def test_object_colour_matches_overlay_module():
    from sam2web.overlay import color_for

    assert color_for(0).lower() == OBJECT_COLOUR


def test_sample_draw_track_review_download_refresh(server, browser, tmp_path):
    from sam2web.store import Store

    errors: list[str] = []
    ctx, page = _page(browser, errors)
    try:
        # 1. Dataset: a first-time user opens the built-in sample.
        page.goto(server.url)
        page.get_by_role("heading", name="Dataset", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ws_id = ui.wait_ws_in_url(page)
        ui.snap(page, "1_dataset_empty")
        width, height = ui.open_sample(page)
        assert (width, height) == (320, 240)
        ui.no_traceback(page)
        plain = ui.fetch_image(page, page.locator("[data-testid=stImage] img").first)
        ui.snap(page, "2_dataset_sample")

        # 2. Annotate: drag a box around a cell with the mouse.
        ui.go(page, "Annotate")
        ui.wait_objects(page, 0)
        box = _true_cell_box(width, height)
        ui.draw_box(page, box, width, height)
        ui.wait_objects(page, 1)
        assert ui.object_rows(page) == ["#1 · prompts at T1/Z1/XY1"]
        ui.no_traceback(page)
        ui.snap(page, "3_annotate_box")
        # The box reached the workspace in image pixels (the canvas is shown 2.4x larger).
        saved = Store(server.data_dir).get_workspace(ws_id)
        assert saved is not None and len(saved.prompts) == 1
        got = saved.prompts[0]["box"]
        assert got == pytest.approx(list(box), abs=1.5), (got, box)
        assert saved.prompts[0]["loc"] == {"XY": 0, "Time": 0, "Z": 0}

        # 3. Track: tiny, four frames, in the background.
        ui.go(page, "Track")
        run_id = ui.start_tracking(page, TRACK_TIMES)
        ui.run_title(page, run_id, "(queued|running|done)").first.wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.snap(page, "4_track_started")
        ui.wait_run_done(page, run_id)
        page.get_by_text(re.compile(r"Tracked all 4 frames")).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.no_traceback(page)
        ui.snap(page, "5_track_done")

        # 4. Results: the overlay, the random-weights warning, the GeoJSON download.
        ui.go(page, "Results")
        page.get_by_role("button", name="annotations.geojson", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.run_title(page, run_id, "done").wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        page.get_by_text("RANDOM weights", exact=False).first.wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.no_traceback(page)
        ui.snap(page, "6_results")
        geo = ui.check_geojson(
            ui.download(page, "annotations.geojson", tmp_path / "annotations.geojson"), width, height, TRACKED
        )
        assert "RANDOM" in geo.get("sam2web_warning", ""), "random-weights output must say so"
        # Random weights are seeded (sam2web.tracking.model), so this run's masks are the same every time:
        # the one object has a polygon on each of the four tracked frames.
        assert {f["properties"]["object_id"] for f in geo["features"]} == {0}
        assert {f["properties"]["Time"] for f in geo["features"]} == TRACKED
        # The overlay at the first frame draws that polygon in the object's colour.
        shown = ui.viewer(page)
        ui.wait_viewer(shown, lambda s: s["frame"] == "0" and s["objects"] == "1", what="frame 1's outline")
        page.get_by_text(re.compile(r"Time 1 of 4 · .*1 object\(s\)")).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        overlay = ui.canvas_rgb(shown)
        assert ui.colour_fraction(overlay, OBJECT_COLOUR) > 0.002
        assert ui.colour_fraction(plain, OBJECT_COLOUR) < 0.0005

        # 5. Refresh: the same workspace, prompt and run are back.
        page.reload()
        page.get_by_role("heading", name="Results", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.run_title(page, run_id, "done").wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        page.get_by_role("button", name="annotations.geojson", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
        ui.settle(page)
        ui.wait_viewer(ui.viewer(page), lambda s: s["frame"] == "0" and s["objects"] == "1", what="the outline")
        assert ui.workspace_id(page) == ws_id
        ui.snap(page, "7_results_after_refresh")
        ui.go(page, "Annotate")
        ui.wait_objects(page, 1)
        assert ui.object_rows(page) == ["#1 · prompts at T1/Z1/XY1"]
        ui.no_traceback(page)

        assert not errors, f"JavaScript errors in the page: {errors}"

        # 6. A closed tab: the same browser at the bare URL gets a new workspace of its own, and
        # the one it worked in is a click away under Recent workspaces (another browser never sees it).
        page.close()
        page2 = ctx.new_page()
        page2.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page2.goto(server.url + "/annotate")
            assert ui.wait_ws_in_url(page2) != ws_id
            page2.locator(f".st-key-sb_open_{ws_id} button").first.click()
            ui.wait_objects(page2, 1)
            assert ui.workspace_id(page2) == ws_id
            assert ui.object_rows(page2) == ["#1 · prompts at T1/Z1/XY1"]
            ui.snap(page2, "8_annotate_new_session")
        except Exception:
            _report_failure(server, {"failure_new_session": page2})
            raise
        page = page2
        assert not errors, f"JavaScript errors in the page: {errors}"
    except Exception:
        _report_failure(server, {"failure": page})
        raise
    finally:
        ctx.close()


def _run_states(data_dir: Path, run_ids: list[int]) -> dict[int, tuple[str, int, int]]:
    """One consistent snapshot (a single read-only SELECT) of the runs' status and progress."""
    import sqlite3

    con = sqlite3.connect(f"file:{data_dir / 'sam2web.db'}?mode=ro", uri=True, timeout=30)
    try:
        marks = ",".join("?" * len(run_ids))
        rows = con.execute(
            f"SELECT id, status, done_frames, total_frames FROM runs WHERE id IN ({marks})", run_ids
        ).fetchall()
    finally:
        con.close()
    return {int(r[0]): (str(r[1]), int(r[2]), int(r[3])) for r in rows}


def _prepare_user(page, server, cell_label: int) -> tuple[str, tuple[int, int]]:
    """A user on the shared server: their own new workspace, the sample, one box, the Track page."""
    import numpy as np

    from sam2web.stack import sample

    page.goto(server.url)
    page.get_by_role("heading", name="Dataset", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
    ui.wait_ws_in_url(page)
    ui.settle(page)
    ui.new_workspace(page)
    ws_id = ui.wait_ws_in_url(page)
    width, height = ui.open_sample(page)
    ui.go(page, "Annotate")
    ui.wait_objects(page, 0)
    labels = sample.sample_labels(height=height, width=width)[0]
    ys, xs = np.nonzero(labels == cell_label)
    ui.draw_box(page, (xs.min() - 4, ys.min() - 4, xs.max() + 5, ys.max() + 5), width, height)
    ui.wait_objects(page, 1)
    ui.go(page, "Track")
    return ws_id, (width, height)


def test_two_users_track_at_once_one_queue(server, browser, tmp_path):
    """Two browser sessions track at the same time; runs queue on the one CPU, both finish."""
    errors: list[str] = []
    ctx_a, page_a = _page(browser, errors)
    ctx_b, page_b = _page(browser, errors)
    try:
        ws_a, (width, height) = _prepare_user(page_a, server, cell_label=1)
        ws_b, _ = _prepare_user(page_b, server, cell_label=4)
        assert ws_a != ws_b, "each user must work in their own workspace"

        # A starts a longer run; B starts while A's is running.
        run_a = ui.start_tracking(page_a, "1-6")
        ui.run_title(page_a, run_a, "(running|done)").first.wait_for(timeout=ui.RUN_TIMEOUT_MS)
        run_b = ui.start_tracking(page_b, "1-3")
        first = _run_states(server.data_dir, [run_a, run_b])
        if first[run_a][0] == "running":
            # One run per device: B waits its turn, and its page says where it stands.
            assert first[run_b][0] == "queued", first
            page_b.get_by_text("Queued: position 1 in the queue").wait_for(timeout=ui.PAGE_TIMEOUT_MS)
            ui.snap(page_b, "9_two_users_b_queued")
            ui.snap(page_a, "9_two_users_a_running")
        else:  # A finished before B was submitted (a very fast machine): the queue went unseen
            warnings.warn(f"run {run_a} ended before run {run_b} was submitted; queueing not observed")
        # Never two runs on the CPU at once, until both are over (bounded polling of the store).
        deadline = time.monotonic() + 2 * ui.RUN_TIMEOUT_MS / 1000
        while True:
            states = _run_states(server.data_dir, [run_a, run_b])
            assert [s for s, _, _ in states.values()].count("running") <= 1, states
            if all(s not in ("queued", "running") for s, _, _ in states.values()):
                break
            assert time.monotonic() < deadline, f"runs still active: {states}"
            time.sleep(0.2)  # poll interval; the deadline above bounds the loop
        assert states[run_a] == ("done", 6, 6) and states[run_b] == ("done", 3, 3), states

        # Both pages show their own run done; each user's results hold only their own run.
        for page, run_id, other, times, name in (
            (page_a, run_a, run_b, set(range(6)), "a"),
            (page_b, run_b, run_a, {0, 1, 2}, "b"),
        ):
            ui.wait_run_done(page, run_id)
            ui.go(page, "Results")
            page.get_by_role("button", name="annotations.geojson", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
            ui.run_title(page, run_id, "done").wait_for(timeout=ui.PAGE_TIMEOUT_MS)
            assert ui.run_title(page, other, r"\w+").count() == 0, "another user's run is listed"
            ui.no_traceback(page)
            ui.snap(page, f"10_two_users_{name}_results")
            geo = ui.check_geojson(
                ui.download(page, "annotations.geojson", tmp_path / f"{name}.geojson"), width, height, times
            )
            assert {f["properties"]["object_id"] for f in geo["features"]} <= {0}
        assert not errors, f"JavaScript errors in the page: {errors}"
    except Exception:
        _report_failure(server, {"failure_a": page_a, "failure_b": page_b})
        raise
    finally:
        ctx_a.close()
        ctx_b.close()


def test_server_crash_mid_run_keeps_frames_and_offers_resume(browser, tmp_path):
    """The server dies mid-run; after a restart the run is "interrupted", its
    finished frames are kept and shown, and Resume starts it again."""
    root = tmp_path
    (root / "no-checkpoints").mkdir()
    env = {"SAM2WEB_CHECKPOINTS": str(root / "no-checkpoints"), "XDG_CACHE_HOME": str(root / "cache")}
    data = root / "data"
    errors: list[str] = []
    ctx, page = _page(browser, errors)
    try:
        with app_server(data, root / "server1.log", extra_env=env, image_size=256) as first:
            try:
                page.goto(first.url)
                page.get_by_role("heading", name="Dataset", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
                ws_id = ui.wait_ws_in_url(page)
                width, height = ui.open_sample(page)
                ui.go(page, "Annotate")
                ui.wait_objects(page, 0)
                ui.draw_box(page, _true_cell_box(width, height), width, height)
                ui.wait_objects(page, 1)
                ui.go(page, "Track")
                run_id = ui.start_tracking(page, "all")
                # At least one frame saved, then the server dies without any clean-up.
                page.get_by_text(re.compile(r"Frame [1-9]\d* of 24")).wait_for(timeout=ui.RUN_TIMEOUT_MS)
                first.crash()
            except Exception:
                _report_failure(first, {"failure_crash_before": page})
                raise
        kept = _run_states(data, [run_id])[run_id]
        assert kept[0] == "running" and 1 <= kept[1] < 24, kept

        with app_server(data, root / "server2.log", extra_env=env, image_size=256) as second:
            try:
                page.goto(f"{second.url}/results?ws={ws_id}")
                page.get_by_role("heading", name="Results", exact=True).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
                ui.run_title(page, run_id, "interrupted").wait_for(timeout=ui.PAGE_TIMEOUT_MS)
                page.get_by_text("The server stopped during this run").wait_for(timeout=ui.PAGE_TIMEOUT_MS)
                # The finished frames are still there and drawn.
                page.get_by_text(re.compile(rf"\b{kept[1]} object masks? saved")).wait_for(timeout=ui.PAGE_TIMEOUT_MS)
                ui.settle(page)
                ui.wait_viewer(ui.viewer(page), lambda s: s["frame"] == "0" and s["objects"] == "1", what="frame 1")
                ui.no_traceback(page)
                ui.snap(page, "11_results_after_crash")
                # Resume starts a new run on the restarted server (its completion is the engine's
                # business and slow on a CPU: here we check it is accepted and under way).
                page.get_by_role("button", name="Resume").click()
                ui.settle(page)
                ui.go(page, "Track")
                resumed = max(_all_run_ids(data))
                assert resumed > run_id
                ui.run_title(page, resumed, "(queued|running|done)").first.wait_for(timeout=ui.PAGE_TIMEOUT_MS)
                ui.snap(page, "12_track_resumed")
                assert _run_states(data, [resumed])[resumed][0] in ("queued", "running", "done")
            except Exception:
                _report_failure(second, {"failure_crash_after": page})
                raise
        assert not errors, f"JavaScript errors in the page: {errors}"
    finally:
        ctx.close()


def _all_run_ids(data_dir: Path) -> list[int]:
    import sqlite3

    con = sqlite3.connect(f"file:{data_dir / 'sam2web.db'}?mode=ro", uri=True, timeout=30)
    try:
        return [int(r[0]) for r in con.execute("SELECT id FROM runs")]
    finally:
        con.close()
