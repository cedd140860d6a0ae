"""Model-free timings: re-drawing polygons after a settings change, and showing one frame.

Why these two: DESIGN.md promises that changing padding or smoothing re-draws the polygons "in
milliseconds without running the model", and that switching frames "feels instant"; these are
the two interactions a user repeats most on the Results and Dataset pages.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _ms(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


# ----------------------------------------------------------------------------- re-polygonize


def synthetic_result(n_frames: int = 100, n_objects: int = 20):
    """A TrackResult of realistic cell masks (bacteria_ctc frame size: 1305 rows x 1009 columns)."""
    from bench.data import cell_mask_crops
    from sam2web.types import CompactMask, Location, ObjectInfo, TrackResult

    h, w = 1305, 1009
    result = TrackResult(random_weights=False)
    for k in range(n_objects):
        result.objects[k] = ObjectInfo(k, f"cell {k}", ["cell"])
    for t, k, r0, c0, crop in cell_mask_crops(n_frames, n_objects, h, w):
        rows = np.flatnonzero(crop.any(axis=1))
        cols = np.flatnonzero(crop.any(axis=0))
        a, b, c, d = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        bits = np.packbits(crop[a:b, c:d]).tobytes()
        result.masks[(k, Location(0, t, 0))] = CompactMask(
            (h, w), (int(r0 + a), int(c0 + c), int(r0 + b), int(c0 + d)), bits
        )
    return result


def _fresh_copy(result):
    """The same masks as new objects with sam2web's outline cache emptied (it is keyed by content)."""
    import copy

    from sam2web import geometry
    from sam2web.types import CompactMask

    with geometry._CACHE_LOCK:
        geometry._RAW_CACHE.clear()
    out = copy.copy(result)
    out.masks = {k: CompactMask(m.shape, m.bbox, bytes(m.bits)) for k, m in result.masks.items()}
    return out


def repolygonize(n_frames: int = 100, n_objects: int = 20, repeats: int = 5) -> dict:
    """ms for polygons + links + export bytes after a change of smoothing / padding / cold."""
    from sam2web.export import export_bytes
    from sam2web.geometry import annotations_from_result
    from sam2web.links import connect

    result = synthetic_result(n_frames, n_objects)
    parts: dict[str, list[float]] = {"polygons": [], "links": [], "export": []}

    def redo(res, padding, smoothing, record=False):
        t0 = time.perf_counter()
        anns = annotations_from_result(res, padding=padding, smoothing=smoothing)
        t1 = time.perf_counter()
        links = connect(anns)
        t2 = time.perf_counter()
        files = export_bytes(anns, links)
        t3 = time.perf_counter()
        if record:
            parts["polygons"].append((t1 - t0) * 1e3)
            parts["links"].append((t2 - t1) * 1e3)
            parts["export"].append((t3 - t2) * 1e3)
        return len(anns), len(links), sum(len(b) for b in files.values())

    cold = []
    for _ in range(repeats):
        fresh = _fresh_copy(result)
        t0 = time.perf_counter()
        counts = redo(fresh, 0.0, 0.3)
        cold.append((time.perf_counter() - t0) * 1e3)
    redo(result, 0.0, 0.3)  # the state after a run: polygons drawn once at the defaults
    smoothing_vals = [0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 3.0]
    padding_vals = [1.0, 2.0, 3.0, -1.0, -2.0, 4.0, 5.0]
    smooth_ms = []
    for s in smoothing_vals[:repeats]:
        t0 = time.perf_counter()
        redo(result, 0.0, s)
        smooth_ms.append((time.perf_counter() - t0) * 1e3)
    pad_ms = []
    for p, s in zip(padding_vals[:repeats], smoothing_vals[:repeats]):
        t0 = time.perf_counter()
        redo(result, p, s, record=True)
        pad_ms.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median
    return {
        "masks": len(result.masks),
        "polygons": counts[0],
        "links": counts[1],
        "export_bytes": counts[2],
        "smoothing_change_ms": med(smooth_ms),
        "padding_change_ms": med(pad_ms),
        "cold_ms": med(cold),
        "padding_change_parts_ms": {k: med(v) for k, v in parts.items()},
    }


# ----------------------------------------------------------------------------- frame view


def write_view_tiff(
    path: Path, side: int = 2048, channels: int = 3, times: int = 4, compression: str | None = None
) -> Path:
    """An ImageJ hyperstack (T, C, Y, X) uint16 with cells and noise."""
    import tifffile

    rng = np.random.default_rng(3)
    data = rng.integers(90, 140, size=(times, channels, side, side), dtype=np.uint16)
    yy, xx = np.ogrid[0:side, 0:side]
    for k in range(40):
        cy, cx = rng.integers(50, side - 50, size=2)
        blob = (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(100, 900)
        data[:, k % channels][:, blob] += np.uint16(500 + 50 * k)
    kwargs = {"compression": compression} if compression else {}
    if compression:
        tifffile.imwrite(path, data, **kwargs, metadata={"axes": "TCYX"})
    else:
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TCYX"})
    return path


def frame_view(side: int = 2048, repeats: int = 5, compression: str | None = None, folder: Path | None = None) -> dict:
    """ms to read + composite one display frame: first read (sam2web's cache cold) and cached."""
    from sam2web.stack import open_stack
    from sam2web.stack.display import DisplaySettings, render
    from sam2web.types import Location

    with tempfile.TemporaryDirectory(prefix="bench-view-", dir=folder) as tmp:
        times = max(4, repeats)
        path = write_view_tiff(Path(tmp) / "view.tif", side, 3, times, compression)
        cold_stack = open_stack(path, cache_bytes=0)
        display = DisplaySettings.default(cold_stack)
        locs = [Location(0, t, 0) for t in range(times)]
        render(cold_stack, locs[0], display)  # imports, thread pool start
        cold = []
        for i in range(repeats):
            loc = locs[(i + 1) % times]
            t0 = time.perf_counter()
            rgb = render(cold_stack, loc, display)
            cold.append((time.perf_counter() - t0) * 1e3)
        cold_stack.close()
        warm_stack = open_stack(path, cache_bytes=1 << 30)
        render(warm_stack, locs[0], display)
        warm = _ms(lambda: render(warm_stack, locs[0], display), repeats)
        warm_stack.close()
    return {
        "shape": list(rgb.shape),
        "uncached_ms": statistics.median(cold),
        "cached_ms": statistics.median(warm),
        "compression": compression or "none",
    }
