"""``python -m bench.profile_run [--frames 8] [--objects 1]``: where sam2web's time goes.

cProfile over one end-to-end sam2web run (after a 2-frame warm-up), summarised by stage: SAM2's
image encoder, memory attention, memory encoder, mask decoder, versus sam2web's own frame path
(reading + rendering + tensor conversion), mask storage, and post-processing. This is the
evidence for what stands in the way of the speed goals (py-spy is not available here).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
from pathlib import Path

# (label, file suffix, function name): cumulative time of these functions
STAGES = [
    ("SAM2 image encoder (forward_image)", "sam2_base.py", "forward_image"),
    ("SAM2 memory attention", "sam2_base.py", "_prepare_memory_conditioned_features"),
    ("SAM2 mask decoder (_forward_sam_heads)", "sam2_base.py", "_forward_sam_heads"),
    ("SAM2 memory encoder (_encode_new_memory)", "sam2_base.py", "_encode_new_memory"),
    ("SAM2 hole filling (fill_holes_in_mask_scores)", "misc.py", "fill_holes_in_mask_scores"),
    ("sam2web frame source (LazyFrames.__getitem__)", "track.py", "__getitem__"),
    ("  of which render (display.render)", "display.py", "render"),
    ("  of which to_model_input", "track.py", "to_model_input"),
    ("sam2web mask storage (_store)", "track.py", "_store"),
    ("sam2web feature LRU (FeatureLRU.put)", "predictor.py", "put"),
    ("sam2web polygons (annotations_from_result)", "geometry.py", "annotations_from_result"),
    ("sam2web links (connect)", "links.py", "connect"),
    ("sam2web exports (export_bytes)", "export.py", "export_bytes"),
    ("whole run (run_sam2web)", "worker.py", "run_sam2web"),
]


def stage_times(stats: pstats.Stats) -> dict[str, float]:
    out = {}
    for label, suffix, name in STAGES:
        total = 0.0
        for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
            if func == name and file.endswith(suffix):
                total += ct
        out[label] = total
    inject = sum(v[3] for k, v in stats.stats.items() if k[2] == "_inject" and k[0].endswith("track.py"))
    out["sam2web feature cache (_capture/_inject)"] += inject
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_run")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--objects", type=int, default=1)
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args(argv)
    from bench import data, worker

    with tempfile.TemporaryDirectory(prefix="bench-prof-") as tmp:
        tiff = data.write_tiff(Path(tmp) / "f.tif", data.make_frames(args.frames, 5))
        boxes = data.boxes(args.objects)
        predictor = worker.sam2web_predictor(args.image_size)
        worker.run_sam2web(predictor, tiff, 2, args.objects, boxes)  # warm-up
        prof = cProfile.Profile()
        prof.enable()
        run = worker.run_sam2web(predictor, tiff, args.frames, args.objects, boxes)
        prof.disable()
    stats = pstats.Stats(prof)
    stages = stage_times(stats)
    whole = stages["whole run (run_sam2web)"] or 1.0
    print(
        f"sam2web run: {args.frames} frames, {args.objects} object(s), image_size "
        f"{args.image_size}: {run['seconds']:.2f} s"
    )
    for label, sec in stages.items():
        print(f"{label:<50} {sec:8.3f} s {100 * sec / whole:6.1f} %")
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.top)
    print(buf.getvalue())
    print(json.dumps({"frames": args.frames, "objects": args.objects, "seconds": run["seconds"], "stages_s": stages}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
