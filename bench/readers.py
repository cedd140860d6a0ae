"""Frame reads: sam2web's own OME-TIFF reader against bioio's OME-TIFF plugin, on one large file.

    python -m bench.readers [--size 2048] [--frames 100] [--repeats 5]

Why: a format moves to a bioio plugin only where the plugin reads a frame no slower than the
reader sam2web has (the Dataset page and the tracker read one frame at a time). The file is a
``size``² uint16, 3-channel, ``frames``-time-point OME-TIFF (2.5 GB at the defaults), written once
into a temporary folder. Both readers are opened the same way (``sam2web.stack`` builds a Stack
over each), and for each the table gives, in ms (median of ``repeats`` different frames):

- ``open``: opening the file (metadata parsed, nothing decoded);
- ``first``: the first read of a frame's 3 channels (the OS has the file in its page cache, as
  after any earlier read; what the decoder itself costs);
- ``cached``: the same frame again (sam2web's frame cache, in front of either reader).

CZI and OME-Zarr are not compared: bioio-czi pulls aicspylibczi and the 86 MB cmake build tool,
and bioio-ome-zarr pulls s3fs/aiobotocore (and an older python-dateutil than the app's), so both
stay on sam2web's own readers (pylibCZIrw, zarr). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _write(path: Path, size: int, frames: int) -> None:
    import tifffile

    rng = np.random.default_rng(0)
    block = rng.integers(0, 4096, size=(3, size, size), dtype=np.uint16)
    with tifffile.TiffWriter(path, ome=True, bigtiff=True) as tw:
        tw.write(
            (np.roll(block, t, axis=2) for t in range(frames)),
            shape=(frames, 3, size, size),
            dtype=np.uint16,
            metadata={"axes": "TCYX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325},
        )


def _ours(path: Path):
    from sam2web.stack import open_stack

    return open_stack(path, cache_bytes=1 << 30)


def _bioio(path: Path):
    from sam2web.stack import _build
    from sam2web.stack.bioio_reader import open_plugin

    return _build(open_plugin(path, "bioio_ome_tiff", "OME-TIFF"), path.name, {}, 1 << 30)


def _measure(opener, path: Path, frames: int, repeats: int) -> dict:
    from sam2web.types import Location

    t0 = time.perf_counter()
    stack = opener(path)
    opened = (time.perf_counter() - t0) * 1000
    first, cached = [], []
    try:
        for i in range(repeats):
            loc = Location(0, (i * 37 + 11) % frames, 0)
            t0 = time.perf_counter()
            planes = [stack.frame(loc, c) for c in range(3)]
            first.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            again = [stack.frame(loc, c) for c in range(3)]
            cached.append((time.perf_counter() - t0) * 1000)
            assert all(np.array_equal(a, b) for a, b in zip(planes, again))
    finally:
        stack.close()
    return {"open": opened, "first": statistics.median(first), "cached": statistics.median(cached)}


def _cpu() -> str:
    """The CPU's model name and its SIMD flags that decoders use (from /proc/cpuinfo where there is one)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    simd = [f for f in ("sse4_2", "avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{name} ({', '.join(simd)})"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sam2web-readers-") as tmp:
        path = Path(tmp) / "big.ome.tif"
        t0 = time.perf_counter()
        _write(path, args.size, args.frames)
        written = time.perf_counter() - t0
        rows = {}
        for name, opener in (("sam2web (tifffile)", _ours), ("bioio-ome-tiff", _bioio)):
            _measure(opener, path, args.frames, 1)  # warm imports and the page cache alike
            rows[name] = _measure(opener, path, args.frames, args.repeats)
        a, b = rows["sam2web (tifffile)"], rows["bioio-ome-tiff"]
    print(f"{args.size}² uint16, 3 channels, {args.frames} frames ({path.name} written in {written:.1f} s)")
    print(f"{'reader':<22}{'open ms':>10}{'first ms':>10}{'cached ms':>11}")
    for name, r in rows.items():
        print(f"{name:<22}{r['open']:>10.1f}{r['first']:>10.1f}{r['cached']:>11.2f}")
    out = {
        "frame_read_ms": {k: {m: round(v, 2) for m, v in r.items()} for k, r in rows.items()},
        "bioio_first_ratio": round(b["first"] / a["first"], 2),
        "bioio_no_slower": b["first"] <= a["first"],
        "cpu": _cpu(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
