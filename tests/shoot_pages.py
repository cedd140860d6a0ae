"""Screenshots of the Dataset, Track and Results pages at the window sizes people use (for looking at).

Run: ``python tests/shoot_pages.py [OUT_DIR]`` (default test-artifacts/screenshots/). It prepares a
data folder with the bacteria time-lapse (../shared/data) tracked by the ground-truth oracle, starts
the app as a real server and takes a viewport screenshot (what is visible without scrolling) and a
full-page one of each page at 1280 x 800 and 1440 x 900.

Why a script and not a test: the pictures are for people to judge; the layout rules they show are
asserted elsewhere (tests/test_app_layout.py).
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
DATA = Path(os.environ.get("SAM2WEB_SHARED", HERE.parent.parent / "shared")) / "data" / "bacteria_ctc"


def prepare(data_dir: Path) -> str:
    """A workspace with the bacteria frames, a box on each cell of frame 1 and one finished oracle run."""
    import numpy as np
    import tifffile

    os.environ.update(SAM2WEB_DATA=str(data_dir), SAM2WEB_EXECUTOR="inline", SAM2WEB_STANDIN=f"oracle:{DATA / 'TRA'}")
    from sam2web.params import TrackParams
    from sam2web.service import runs
    from sam2web.service.executor import get_executor
    from sam2web.stack.display import DisplaySettings
    from sam2web.store import get_store
    from sam2web.types import Location, Prompt

    store = get_store(str(data_dir))
    ws = store.create_workspace("bacteria time-lapse of a long experiment name 2026-12-03_phase_contrast_x40")
    names = []
    for path in sorted((DATA / "img").glob("*.tif"))[:15]:
        store.save_upload(ws.id, path.name, path.read_bytes())
        names.append(path.name)
    store.update_workspace(ws.id, dataset={"kind": "files", "files": names, "pages_as": "time"})
    labels = tifffile.imread(DATA / "TRA" / "man_track000000.tif")
    prompts = []
    for k, lab in enumerate(sorted(set(np.unique(labels)) - {0})):
        rows, cols = np.nonzero(labels == lab)
        box = (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
        prompts.append(Prompt(k, Location(0, 0, 0), box=box, tags=["cell"], name=f"Object {k + 1}"))
    from sam2web import prompts as prompts_mod

    store.update_workspace(ws.id, prompts=[prompts_mod.prompt_to_dict(p) for p in prompts])
    ws = store.get_workspace(ws.id)
    stack = runs.open_dataset(store, ws)
    run_id, _ = runs.submit(
        store, ws, stack, TrackParams(time="all"), prompts, DisplaySettings.default(stack), Location(0, 0, 0)
    )
    assert get_executor().wait(run_id, 300), "the oracle run did not finish"
    stack.close()
    return ws.id


def shoot(out: Path) -> list[Path]:
    from e2e_pages import go, settle
    from e2e_support import app_server, chromium_browser

    made: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="shots") as tmp:
        data_dir = Path(tmp) / "data"
        ws_id = prepare(data_dir)
        env = {"SAM2WEB_STANDIN": f"oracle:{DATA / 'TRA'}"}
        with app_server(data_dir, Path(tmp) / "server.log", extra_env=env) as server, chromium_browser() as browser:
            for w, h in SIZES:
                page = browser.new_page(viewport={"width": w, "height": h})
                page.goto(f"{server.url}/?ws={ws_id}")
                page.get_by_role("heading", name="Dataset", exact=True).wait_for(timeout=90_000)
                for title in ("Dataset", "Track", "Results"):
                    if title != "Dataset":
                        go(page, title)
                    settle(page)
                    out.mkdir(parents=True, exist_ok=True)
                    for full in (False, True):
                        path = out / f"{title.lower()}_{w}x{h}{'_full' if full else ''}.png"
                        page.screenshot(path=str(path), full_page=full)
                        made.append(path)
                page.close()
    return made


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "test-artifacts" / "screenshots"
    for p in shoot(target):
        print(p)
