"""Screenshots of the Dataset, Track and Results pages at the window sizes people use (for looking at).

Run: ``python tests/shoot_pages.py [OUT_DIR]`` (default test-artifacts/screenshots/). It prepares a
data folder with the bacteria time-lapse (../shared/data) tracked by the ground-truth oracle and the
built-in sample tracked by the stand-in, starts the app as a real server and takes a screenshot of
what each page shows without scrolling, at 1280 x 800 and 1440 x 900 (Streamlit scrolls inside the
page, so that is all a screenshot holds).

Why a script and not a test: the pictures are for people to judge; the layout rules they show are
asserted in tests/test_e2e_layout.py, which uses the preparers below.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

SIZES = ((1280, 800), (1440, 900))
BACTERIA = Path(os.environ.get("SAM2WEB_SHARED", HERE.parent.parent / "shared")) / "data" / "bacteria_ctc"


def _track(store, ws, prompts, **params) -> int:
    """One finished run of ``ws`` (the caller chose the tracker and SAM2WEB_EXECUTOR=inline)."""
    from sam2web import prompts as prompts_mod
    from sam2web.params import TrackParams
    from sam2web.service import runs
    from sam2web.service.executor import get_executor
    from sam2web.stack.display import DisplaySettings
    from sam2web.types import Location

    store.update_workspace(ws.id, prompts=[prompts_mod.prompt_to_dict(p) for p in prompts])
    ws = store.get_workspace(ws.id)
    stack = runs.open_dataset(store, ws)
    try:
        run_id, _ = runs.submit(
            store, ws, stack, TrackParams(**params), prompts, DisplaySettings.default(stack), Location(0, 0, 0)
        )
    finally:
        stack.close()
    assert get_executor().wait(run_id, 300), "the run did not finish"
    return run_id


def prepare_sample(store) -> str:
    """The built-in sample with one box at Time 1, tracked over Time 1-8 (stand-in tracker)."""
    from sam2web.types import Location, Prompt

    ws = store.create_workspace("Sample time-lapse")
    store.update_workspace(ws.id, dataset={"kind": "sample", "pages_as": "time"})
    _track(store, ws, [Prompt(0, Location(0, 0, 0), box=(60, 40, 110, 90), tags=["cell"], name="")], time="1-8")
    return ws.id


def prepare_bacteria(store, frames: int = 15) -> str:
    """The bacteria frames with a box on each cell of frame 1, tracked by the ground-truth oracle."""
    import numpy as np
    import tifffile

    from sam2web.types import Location, Prompt

    ws = store.create_workspace("bacteria time-lapse of a long experiment name 2026-12-03_phase_contrast_x40")
    names = []
    for path in sorted((BACTERIA / "img").glob("*.tif"))[:frames]:
        store.save_upload(ws.id, path.name, path.read_bytes())
        names.append(path.name)
    store.update_workspace(ws.id, dataset={"kind": "files", "files": names, "pages_as": "time"})
    labels = tifffile.imread(BACTERIA / "TRA" / "man_track000000.tif")
    prompts = []
    for k, lab in enumerate(sorted(set(np.unique(labels).tolist()) - {0})):
        rows, cols = np.nonzero(labels == lab)
        box = (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
        prompts.append(Prompt(k, Location(0, 0, 0), box=box, tags=["cell"], name=""))
    _track(store, ws, prompts, time="all")
    return ws.id


def shoot(out: Path) -> list[Path]:
    from e2e_pages import go, settle
    from e2e_support import app_server, chromium_browser

    from sam2web.store import get_store

    made: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="shots") as tmp:
        data_dir = Path(tmp) / "data"
        oracle = f"oracle:{BACTERIA / 'TRA'}"
        os.environ.update(SAM2WEB_DATA=str(data_dir), SAM2WEB_EXECUTOR="inline", SAM2WEB_STANDIN=oracle)
        store = get_store(str(data_dir))
        workspaces = {"bacteria": prepare_bacteria(store)}
        os.environ["SAM2WEB_STANDIN"] = "1"
        workspaces["sample"] = prepare_sample(store)
        with app_server(data_dir, Path(tmp) / "server.log", extra_env={"SAM2WEB_STANDIN": oracle}) as server:
            with chromium_browser() as browser:
                for w, h in SIZES:
                    for name, ws_id in workspaces.items():
                        page = browser.new_page(viewport={"width": w, "height": h})
                        page.goto(f"{server.url}/?ws={ws_id}")
                        page.get_by_role("heading", name="Dataset", exact=True).wait_for(timeout=90_000)
                        for title in ("Dataset", "Track", "Results"):
                            if title != "Dataset":
                                go(page, title)
                            settle(page)
                            out.mkdir(parents=True, exist_ok=True)
                            path = out / f"{title.lower()}_{name}_{w}x{h}.png"
                            page.screenshot(path=str(path))
                            made.append(path)
                        if name == "sample":  # two channels with their contrast controls open
                            go(page, "Dataset")
                            page.locator("[data-testid=stExpander]").filter(has_text="Channels and contrast").locator(
                                "summary"
                            ).click()
                            settle(page)
                            path = out / f"dataset_sample_channels_{w}x{h}.png"
                            page.screenshot(path=str(path))
                            made.append(path)
                        page.close()
    return made


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "test-artifacts" / "screenshots"
    for p in shoot(target):
        print(p)
