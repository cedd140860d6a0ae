"""Speed-ups tried on the CPU, each measured against fp32 / default threads in the same run.

``python -m bench.experiments [--frames 8] [--objects 5]`` prints a table and a JSON line:
- bf16 autocast (sam2web's ``precision="bf16"`` option): seconds per frame for the pure model and
  sam2web, and its effect on the masks as IoU against the fp32 masks (per object and frame).
- torch threads 1 vs the default (2 here), pure model.
Why IoU and not "equal": bf16 rounds every matmul input, so masks differ a little; the user
decides whether that is acceptable for the speed, which is why bf16 is an option, not the default.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.run import spf, worker


def mask_iou(a_path: Path, b_path: Path) -> dict:
    """IoU of every (object, frame) mask of run b against run a (empty vs empty counts as 1)."""
    a, b = np.load(a_path), np.load(b_path)
    ious, areas = [], []
    for key in sorted(set(a.files) | set(b.files)):
        ma = a[key] if key in a.files else None
        mb = b[key] if key in b.files else None
        if ma is None or mb is None:
            ious.append(0.0)
            continue
        union = np.logical_or(ma, mb).sum()
        ious.append(1.0 if union == 0 else float(np.logical_and(ma, mb).sum() / union))
        areas.append(float(ma.sum()))
    return {
        "n_masks": len(ious),
        "mean_iou": float(np.mean(ious)) if ious else None,
        "min_iou": float(np.min(ious)) if ious else None,
        "mean_area_fp32_px": float(np.mean(areas)) if areas else None,
    }


def run(frames: int = 8, objects: int = 5, image_size: int = 512, rounds: int = 1) -> dict:
    from bench import data

    out: dict = {"frames": frames, "objects": objects, "image_size": image_size}
    with tempfile.TemporaryDirectory(prefix="bench-exp-") as tmp:
        tiff = data.write_tiff(Path(tmp) / "f.tif", data.make_frames(frames, max(5, objects)))
        res: dict[str, list] = {"fp32": [], "bf16": [], "threads1": [], "threads_default": []}
        for r in range(rounds):
            for prec in ("fp32", "bf16"):
                dump = Path(tmp) / f"{prec}.npz"
                res[prec].append(
                    worker("pair", tiff, frames, objects, image_size, extra=["--precision", prec, "--dump", str(dump)])
                )
            res["threads1"].append(worker("pure", tiff, frames, objects, image_size, extra=["--threads", "1"]))
            res["threads_default"].append(worker("pure", tiff, frames, objects, image_size, extra=["--threads", "0"]))
        for prec in ("fp32", "bf16"):
            out[prec] = {
                "pure_s_per_frame": spf([x for w in res[prec] for x in w["runs"]["pure"]], frames),
                "sam2web_s_per_frame": spf([x for w in res[prec] for x in w["runs"]["sam2web"]], frames),
            }
        out["bf16_speedup_pure"] = out["fp32"]["pure_s_per_frame"] / out["bf16"]["pure_s_per_frame"]
        out["bf16_masks_vs_fp32"] = mask_iou(Path(tmp) / "fp32.npz", Path(tmp) / "bf16.npz")
        for key in ("threads1", "threads_default"):
            runs = [x for w in res[key] for x in w["runs"]["pure"]]
            out[key] = {
                "threads": res[key][0]["threads"],
                "pure_wall_s_per_frame": spf(runs, frames, "seconds"),
                "pure_cpu_s_per_frame": spf(runs, frames, "cpu_seconds"),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.experiments")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--objects", type=int, default=5)
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args(argv)
    out = run(args.frames, args.objects, args.image_size, args.rounds)
    print("(process CPU seconds per frame, one torch thread)")
    for prec in ("fp32", "bf16"):
        print(
            f"{prec}: pure {out[prec]['pure_s_per_frame']:.3f} s/frame, sam2web "
            f"{out[prec]['sam2web_s_per_frame']:.3f} s/frame"
        )
    m = out["bf16_masks_vs_fp32"]
    print(
        f"bf16 masks vs fp32: mean IoU {m['mean_iou']:.4f}, min {m['min_iou']:.4f} over "
        f"{m['n_masks']} masks (mean fp32 area {m['mean_area_fp32_px']:.0f} px)"
    )
    for key in ("threads1", "threads_default"):
        print(
            f"pure model, {out[key]['threads']} thread(s): wall "
            f"{out[key]['pure_wall_s_per_frame']:.3f} s/frame, CPU "
            f"{out[key]['pure_cpu_s_per_frame']:.3f} s/frame"
        )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
