"""Results-page reruns, timed through Streamlit's AppTest on a run of many polygons.

Why AppTest and not a function: the page reruns as a whole every 0.7 s while it plays or while a
run is live, so the figure that matters is one rerun of the page script (its queries, polygons,
table, plot, frame and widgets), measured as the user's server would run it. Three kinds of rerun:
- ``steady``: nothing changed (a rerun while paused, or one triggered by an unrelated widget);
- ``playback``: the frame slider moved by one (what Play does every tick);
- ``live``: one more frame of masks was written to the store since the last rerun (a live run).
A cold first load is timed too (a fresh server process: empty caches; the TIFF and masks on disk).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


BENCH_BROWSER = "bench-browser-token-0123456789abcdef"  # the owner token a real browser keeps in a cookie
BENCH_OWNER = f"browser:{BENCH_BROWSER}"  # workspaces made here belong to that browser


def owner_cookie(url: str) -> dict:
    """The owner cookie of ``BENCH_BROWSER`` for a Playwright context (``ctx.add_cookies([...])``)."""
    from urllib.parse import urlsplit

    return {"name": "sam2web_owner", "value": BENCH_BROWSER, "domain": urlsplit(url).hostname, "path": "/"}


def _store_run(root: Path, n_frames: int, n_objects: int, side: int) -> tuple[str, int, list]:
    """A workspace whose dataset is an (n_frames, side, side) TIFF, and a done run of its masks.

    The last frame's masks are held back and returned, for the ``live`` reruns to add one by one.
    """
    import tifffile

    from bench.data import cell_mask_crops
    from sam2web.store import get_store
    from sam2web.types import CompactMask, Location

    s = get_store(str(root))
    ws = s.create_workspace("bench", owner=BENCH_OWNER)
    rng = np.random.default_rng(0)
    folder = s.files_dir(ws.id)
    folder.mkdir(parents=True, exist_ok=True)
    frames = rng.integers(0, 255, (n_frames + 1, side, side), dtype=np.uint8)
    tifffile.imwrite(folder / "frames.tif", frames, photometric="minisblack")
    s.update_workspace(ws.id, dataset={"kind": "files", "files": ["frames.tif"], "pages_as": "time"})
    objects = {str(k): {"name": f"cell {k}", "tags": ["cell"]} for k in range(n_objects)}
    settings = {
        "model": "tiny",
        "across": "time",
        "direction": "forward",
        "padding": 0.0,
        "smoothing": 0.3,
        "resolved": {"xy": [0], "time": list(range(n_frames + 1)), "z": [0]},
    }
    run_id = s.create_run(ws.id, settings, objects=objects, total_frames=n_frames + 1)
    held: list = []
    batch: list = []
    for t, k, r0, c0, crop in cell_mask_crops(n_frames + 1, n_objects, side, side):
        full = np.zeros((side, side), bool)
        h, w = crop.shape
        full[r0 : r0 + h, c0 : c0 + w] = crop[: side - r0, : side - c0]
        item = (k, Location(0, t, 0), CompactMask.from_mask(full))
        (held if t == n_frames else batch).append(item)
    s.add_masks(run_id, batch, done_frames=n_frames)
    s.update_run(run_id, status="done")
    return ws.id, run_id, held


def _rerun_ms(at, act=None) -> float:
    t0 = time.perf_counter()
    if act is not None:
        act()
    at.run()
    return (time.perf_counter() - t0) * 1e3


def results_rerun(n_frames: int = 100, n_objects: int = 20, side: int = 512, repeats: int = 5) -> dict:
    """ms per Results-page rerun at ``n_frames * n_objects`` polygons (medians), and the cold load."""
    from streamlit.testing.v1 import AppTest

    from sam2web.store import get_store
    from sam2web.ui import owner, results_ui  # noqa: F401 - imported before timing, as a warm server has it

    old = os.environ.get("SAM2WEB_DATA")
    with tempfile.TemporaryDirectory(prefix="bench-results-") as tmp:
        os.environ["SAM2WEB_DATA"] = tmp
        try:
            ws_id, run_id, held = _store_run(Path(tmp), n_frames, n_objects, side)
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
            at.session_state[owner.TOKEN_KEY] = BENCH_BROWSER  # the browser that owns the workspace
            at.query_params["ws"] = ws_id
            at.run()
            t0 = time.perf_counter()
            at.switch_page("pages/results.py").run()
            cold = (time.perf_counter() - t0) * 1e3
            if at.exception:
                raise RuntimeError(f"the Results page failed: {[e.value for e in at.exception]}")
            polygons = int(at.dataframe[0].value["frames tracked"].sum())
            steady = [_rerun_ms(at) for _ in range(repeats)]
            playback = []  # a frame reported by the viewer (a step or a pause): one rerun each
            for i in range(repeats):
                playback.append(_rerun_ms(at, lambda i=i: at.session_state.__setitem__(f"res_frame_{run_id}", 2 + i)))
            s = get_store(tmp)
            per_frame = len(held) // max(1, repeats)
            live = []
            for i in range(repeats):
                chunk = held[i * per_frame : (i + 1) * per_frame] or held[-1:]
                live.append(_rerun_ms(at, lambda chunk=chunk: s.add_masks(run_id, chunk)))
            if at.exception:
                raise RuntimeError(f"the Results page failed: {[e.value for e in at.exception]}")
            s.close()
        finally:
            if old is None:
                os.environ.pop("SAM2WEB_DATA", None)
            else:
                os.environ["SAM2WEB_DATA"] = old
    med = statistics.median
    return {
        "polygons": polygons,
        "cold_ms": cold,
        "steady_ms": med(steady),
        "playback_ms": med(playback),
        "live_ms": med(live),
        "rerun_ms": max(med(steady), med(playback), med(live)),
    }


BACTERIA = ROOT.parent / "shared" / "data" / "bacteria_ctc"
_COLD_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
t1 = time.perf_counter()
at = AppTest.from_file(sys.argv[1], default_timeout=300)
at.session_state["_sam2web_owner"] = sys.argv[4]  # the browser owning the workspace
at.query_params["ws"] = sys.argv[2]
if sys.argv[3] == "direct":  # a link straight to Results is the first request
    at.switch_page("pages/results.py")
at.run()
t2 = time.perf_counter()
if sys.argv[3] != "direct":
    at.switch_page("pages/results.py").run()
t3 = time.perf_counter()
ok = not at.exception and len(at.dataframe) == 1  # the frame itself is drawn by the viewer, in the browser
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "first_page_ms": (t2 - t1) * 1e3,
                  "results_ms": (t3 - t2) * 1e3, "ok": ok, "errors": [e.value for e in at.exception]}))
"""


def bacteria_run(root: Path, n_frames: int, n_objects: int) -> tuple[str, bool]:
    """A workspace of the first bacteria frames (per-frame TIFFs) and a done run of true cell masks.

    Falls back to synthetic frames of the same size when the shared data folder is absent.
    """
    import shutil

    import tifffile

    from sam2web.store import get_store
    from sam2web.types import CompactMask, Location

    s = get_store(str(root))
    ws = s.create_workspace("bacteria", owner=BENCH_OWNER)
    folder = s.files_dir(ws.id)
    folder.mkdir(parents=True, exist_ok=True)
    real = (BACTERIA / "img" / "t000000.tif").exists()
    names = [f"t{t:06d}.tif" for t in range(n_frames)]
    labels = []
    for t, name in enumerate(names):
        if real:
            shutil.copy(BACTERIA / "img" / name, folder / name)
            labels.append(tifffile.imread(BACTERIA / "TRA" / f"man_track{t:06d}.tif"))
        else:
            rng = np.random.default_rng(t)
            tifffile.imwrite(folder / name, rng.integers(0, 255, (1305, 1009), dtype=np.uint8))
            lab = np.zeros((1305, 1009), np.uint16)
            for k in range(n_objects):
                lab[100 + 200 * k + t : 140 + 200 * k + t, 300:330] = k + 1
            labels.append(lab)
    s.update_workspace(ws.id, dataset={"kind": "files", "files": names, "pages_as": "time"})
    ids = [int(v) for v in np.unique(labels[0]) if v][:n_objects]
    objects = {str(k): {"name": f"cell {k + 1}", "tags": ["cell"]} for k in range(len(ids))}
    settings = {"model": "small", "across": "time", "direction": "forward", "padding": 0.0, "smoothing": 0.3}
    settings["resolved"] = {"xy": [0], "time": list(range(n_frames)), "z": [0]}
    run_id = s.create_run(ws.id, settings, objects=objects, total_frames=n_frames)
    items = [
        (k, Location(0, t, 0), CompactMask.from_mask(lab == label))
        for t, lab in enumerate(labels)
        for k, label in enumerate(ids)
        if (lab == label).any()
    ]
    s.add_masks(run_id, items, done_frames=n_frames)
    s.update_run(run_id, status="done")
    return ws.id, real


def cold_results(n_frames: int = 10, n_objects: int = 2) -> dict:
    """The Results page right after a server restart (a fresh process), on the bacteria frames.

    The bound: everything shown within 2 s for 2 objects x 10 frames. Timed in new Python
    processes (empty caches, modules not yet imported), through AppTest: the app's first page, then
    the switch to Results (frame, outlines, plot, table); and, as ``direct_ms``, Results opened
    straight from a link as the first page (this one pays the library imports the first page
    otherwise starts in the background).
    """
    import json
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        ws_id, real = bacteria_run(Path(tmp), n_frames, n_objects)
        env = dict(os.environ, SAM2WEB_DATA=tmp)
        outs = {}
        for how in ("after_first_page", "direct"):
            proc = subprocess.run(
                [sys.executable, "-c", _COLD_SCRIPT, str(ROOT / "app.py"), ws_id, how, BENCH_BROWSER],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-2000:])
            outs[how] = json.loads(proc.stdout.strip().splitlines()[-1])
            if not outs[how]["ok"]:
                raise RuntimeError(f"the Results page did not show the run: {outs[how]['errors']}")
    out = outs["after_first_page"]
    out["direct_ms"] = outs["direct"]["first_page_ms"]  # Results as the very first page after a restart
    out["real_data"] = real
    out["frames"], out["objects"] = n_frames, n_objects
    return out


if __name__ == "__main__":
    import json

    print(json.dumps({"rerun": results_rerun(), "cold": cold_results()}, indent=1))
