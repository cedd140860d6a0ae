"""Playback in the browser: frames per second of the Results viewer, sampled from its ``data-frame``.

``python -m bench.playback``: 30 bacteria frames (1009 x 1305) with 30 outlines each, the app as a
real server, Debian's headless Chromium; playback asked for at 60 frames/s, and the frame changes
counted in the page (a MutationObserver on the viewer's ``data-frame``) over a few seconds. Goal:
>= 15 frames/s. The frames are sent once at screen resolution and cached by the viewer, so this
measures the browser's drawing, not Python (no rerun happens while it plays: checked here too).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.results_page import BENCH_OWNER, owner_cookie

ROOT = Path(__file__).resolve().parents[1]
BACTERIA = ROOT.parent / "shared" / "data" / "bacteria_ctc"
if not BACTERIA.exists():
    BACTERIA = Path("/work/shared/data/bacteria_ctc")

_SAMPLE = """
async (root, seconds) => {
  const changes = [];
  const seen = new Set();
  const obs = new MutationObserver(() => { changes.push(performance.now()); seen.add(root.dataset.frame); });
  obs.observe(root, {attributes: true, attributeFilter: ["data-frame"]});
  const pyrun = root.dataset.pyrun;
  const objects = [];
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    objects.push(Number(root.dataset.objects));
    await new Promise((ok) => setTimeout(ok, 50));
  }
  obs.disconnect();
  const span = changes.length > 1 ? (changes[changes.length - 1] - changes[0]) / 1000 : seconds;
  return {changes: changes.length, span_s: span, distinct: seen.size, pyrun_same: pyrun === root.dataset.pyrun,
          min_objects: Math.min(...objects), max_objects: Math.max(...objects)};
}
"""


def make_workspace(root: Path, n_frames: int = 30, n_objects: int = 30) -> str:
    """Bacteria frames and a done run of ``n_objects`` cell-sized outlines per frame (moving a little)."""
    import shutil

    import tifffile

    from sam2web.store import get_store
    from sam2web.types import CompactMask, Location

    s = get_store(str(root))
    ws = s.create_workspace("playback", owner=BENCH_OWNER)
    folder = s.files_dir(ws.id)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"t{t:06d}.tif" for t in range(n_frames)]
    for t, name in enumerate(names):
        if (BACTERIA / "img" / name).exists():
            shutil.copy(BACTERIA / "img" / name, folder / name)
        else:
            rng = np.random.default_rng(t)
            tifffile.imwrite(folder / name, rng.integers(0, 255, (1305, 1009), dtype=np.uint8))
    s.update_workspace(ws.id, dataset={"kind": "files", "files": names, "pages_as": "time"})
    objects = {str(k): {"name": f"cell {k + 1}", "tags": ["cell"]} for k in range(n_objects)}
    settings = {"model": "small", "across": "time", "direction": "forward", "padding": 0.0, "smoothing": 0.3}
    settings["resolved"] = {"xy": [0], "time": list(range(n_frames)), "z": [0]}
    run_id = s.create_run(ws.id, settings, objects=objects, total_frames=n_frames)
    yy, xx = np.mgrid[0:1305, 0:1009]
    items = []
    for t in range(n_frames):
        for k in range(n_objects):
            cy, cx = 120 + 200 * (k // 6) + 2 * t, 90 + 170 * (k % 6) + t
            mask = ((yy - cy) / 28.0) ** 2 + ((xx - cx) / 12.0) ** 2 <= 1.0
            items.append((k, Location(0, t, 0), CompactMask.from_mask(mask)))
    s.add_masks(run_id, items, done_frames=n_frames)
    s.update_run(run_id, status="done")
    return ws.id


def measure(n_frames: int = 30, n_objects: int = 30, seconds: float = 4.0, fps: int = 60) -> dict:
    """Frames per second the viewer plays at in Chromium (see the module doc)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from e2e_support import CHROMIUM, app_server, chromium_browser

    if not CHROMIUM.exists():
        return {"note": "Debian's chromium is not installed: playback not measured"}
    with tempfile.TemporaryDirectory(prefix="bench-play-") as tmp:
        data = Path(tmp) / "data"
        ws_id = make_workspace(data, n_frames, n_objects)
        with app_server(data, Path(tmp) / "server.log", extra_env={"SAM2WEB_STANDIN": "1"}) as srv:
            with chromium_browser() as browser:
                ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                ctx.add_cookies([owner_cookie(srv.url)])
                page = ctx.new_page()
                page.goto(f"{srv.url}/results?ws={ws_id}")
                root = page.locator(".sv-root").first
                root.wait_for(timeout=180_000)
                page.wait_for_function(
                    f"(e) => Number(e.dataset.objects) === {n_objects}", arg=root.element_handle(), timeout=180_000
                )
                root.locator(".sv-fps").select_option(str(fps))
                root.focus()
                # One loop first: the viewer holds a frame until its image is decoded, so after it every
                # frame is in the browser's cache and the sample times drawing only.
                root.press(" ")
                last = f"(e) => e.dataset.frame === String({n_frames - 1})"
                page.wait_for_function(last, arg=root.element_handle(), timeout=180_000)
                got = root.evaluate(_SAMPLE, seconds)
                root.press(" ")
                ctx.close()
    rate = (got["changes"] - 1) / got["span_s"] if got["changes"] > 1 else 0.0
    return {
        "fps": round(rate, 1),
        "requested_fps": fps,
        "frames": n_frames,
        "outlines_per_frame": n_objects,
        "frame_size": [1009, 1305],
        "sampled_s": seconds,
        "distinct_frames": got["distinct"],
        "outlines_drawn_min_max": [got["min_objects"], got["max_objects"]],
        "no_python_rerun": bool(got["pyrun_same"]),
    }


if __name__ == "__main__":
    print(json.dumps(measure()))
