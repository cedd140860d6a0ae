"""What the lab-tool outputs cost next to the plain exports, measured in one run on one synthetic run.

    python -m bench.formats [--frames 100 --objects 20 --size 1024]

Prints milliseconds (median of a few repeats) and each output's cost as a ratio to
``export_bytes`` (the four files the Results page always offers): mean intensities (what `track`
adds to QuPath's measurements), the OME-TIFF label stack and the CTC zip (built on request only).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _ms(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> int:
    from bench.post import synthetic_result
    from sam2web import export, label_export
    from sam2web.geometry import annotations_from_result
    from sam2web.links import connect

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--objects", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    res = synthetic_result(args.frames, args.objects)
    anns = annotations_from_result(res, padding=0, smoothing=0.3)
    links = connect(anns)
    shape = next(iter(res.masks.values())).shape
    frame = np.zeros(shape, np.uint16)
    names = export.object_names(res.objects)
    base = _ms(lambda: export.export_bytes(anns, links, names=names), args.repeats)
    rows = {
        "export_bytes (4 files, QuPath + NimbusImage fields)": base,
        "mean_intensities (track's QuPath measurement)": _ms(
            lambda: export.mean_intensities(anns, lambda loc, c: frame), args.repeats
        ),
        "label_stack_bytes (OME-TIFF)": _ms(
            lambda: label_export.label_stack_bytes(anns, shape, "time", args.frames), args.repeats
        ),
        "ctc_zip_bytes": _ms(lambda: label_export.ctc_zip_bytes(anns, shape, "time", args.frames), args.repeats),
    }
    print(f"{len(anns)} polygons, {args.frames} frames of {shape[1]} x {shape[0]}")
    for name, ms in rows.items():
        print(f"{name:55s} {ms:9.1f} ms  {ms / base:6.2f}x export_bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
