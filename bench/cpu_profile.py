"""``python -m bench.cpu_profile``: where a frame's model time goes on this CPU, against what it can do.

For each stage of one tracking step (image encoder, memory attention, mask decoder, memory
encoder) at each image size, in one process:
- FLOPs per call, counted with ``torch.utils.flop_counter.FlopCounterMode`` (plus CPU SDPA, which
  torch's counter does not know: ``_scaled_dot_product_flash_attention_for_cpu``);
- time per call (median of interleaved repeats; process CPU seconds with one torch thread, the
  stable clock on a shared machine, wall seconds otherwise);
- achieved FLOP/s as a share of a 2048 x 2048 matmul in the same dtype, measured in the same run;
- the top operators by self CPU time (``torch.profiler``).
Five objects are five calls of the per-object stages (SAM2's own loop on a CPU), so the per-frame
rows add them up; one encoder call serves all objects. Random weights (the speed does not
depend on them). The CPU's flags and the threads/affinity the figures were taken with are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

FLAGS_SHOWN = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")


def cpu_env() -> dict:
    """CPU name, the flags that matter here, affinity and torch threads (detected, never assumed)."""
    import torch

    from sam2web.tracking import precision

    cpu = precision.read_cpu()
    return {
        "name": cpu.name,
        "flags": {f: f in cpu.flags for f in FLAGS_SHOWN},
        "native_bf16": precision.native_bf16(cpu.flags),
        "affinity": sorted(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def _register_cpu_sdpa_flops() -> None:
    """torch's FlopCounterMode counts CUDA SDPA kernels but not the CPU flash kernel: same formula."""
    import torch
    from torch.utils import flop_counter

    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    if op in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(op)
    def _cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def count_flops(fn) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    _register_cpu_sdpa_flops()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def clock() -> float:
    """Process CPU seconds with one torch thread (others' load barely moves it), else wall."""
    import torch

    return time.process_time() if torch.get_num_threads() == 1 else time.perf_counter()


def timed(fn) -> float:
    import torch

    with torch.inference_mode():
        t0 = clock()
        fn()
        return clock() - t0


def matmul_rate(dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of one n x n @ n x n matmul in ``dtype`` (median after a warm-up)."""
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dtype)
    b = torch.randn(n, n, generator=g).to(dtype)
    with torch.inference_mode():
        a @ b
        times = [timed(lambda: a @ b) for _ in range(repeats)]
    return 2 * n**3 / statistics.median(times)


def build(size: str, image_size: int):
    from sam2web.tracking import model

    predictor = model._build(size, image_size, "cpu").eval()
    for p in predictor.parameters():
        p.requires_grad_(False)
    return predictor


def stage_fns(predictor, autocast: bool = False) -> dict:
    """{stage: zero-argument callable} for one tracking step at the predictor's image size.

    The memory holds ``num_maskmem`` frames of features and 16 object pointers, as in steady-state
    tracking (what ``precision.micro_benchmark`` uses too).
    """
    import contextlib

    import torch

    side = int(predictor.image_size)
    feat = side // 16
    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, side, side, generator=g)
    mem_dim, hidden = int(predictor.mem_dim), int(predictor.hidden_dim)
    n_ptr = 16 * (hidden // mem_dim)
    n_mem = int(predictor.num_maskmem) * feat * feat + n_ptr
    memory = torch.randn(n_mem, 1, mem_dim, generator=g)
    memory_pos = torch.randn(n_mem, 1, mem_dim, generator=g)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
    with torch.inference_mode(), ctx():
        out = predictor.forward_image(image)
        _, feats, pos, sizes = predictor._prepare_backbone_features(out)
    high_res = [x.permute(1, 2, 0).reshape(1, x.shape[2], *s) for x, s in zip(feats[:-1], sizes[:-1])]
    pix = feats[-1].permute(1, 2, 0).reshape(1, hidden, feat, feat)
    mask_hr = torch.randn(1, 1, side, side, generator=g)
    score = torch.ones(1, 1)

    def wrap(fn):
        def run():
            with ctx():
                return fn()

        return run

    return {
        "image_encoder": wrap(lambda: predictor.forward_image(image)),
        "memory_attention": wrap(
            lambda: predictor.memory_attention(
                curr=feats[-1:], curr_pos=pos[-1:], memory=memory, memory_pos=memory_pos, num_obj_ptr_tokens=n_ptr
            )
        ),
        "mask_decoder": wrap(
            lambda: predictor._forward_sam_heads(
                backbone_features=pix, point_inputs=None, mask_inputs=None, high_res_features=high_res
            )
        ),
        "memory_encoder": wrap(
            lambda: predictor._encode_new_memory(
                current_vision_feats=feats,
                feat_sizes=sizes,
                pred_masks_high_res=mask_hr,
                object_score_logits=score,
                is_mask_from_pts=False,
            )
        ),
    }


PER_OBJECT = ("memory_attention", "mask_decoder", "memory_encoder")


def top_operators(fn, top: int = 8) -> list[dict]:
    """The ``top`` operators by self CPU time in one call, with their share of the call."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {
            "op": e.key,
            "share": round(e.self_cpu_time_total / total, 3),
            "calls": e.count,
            "ms": e.self_cpu_time_total / 1e3,
        }
        for e in events[:top]
    ]


def profile_size(size: str, image_size: int, repeats: int, top: int, rates: dict, bf16: bool) -> dict:
    """Every stage at one image size: FLOPs, median time, share of the matmul rate, top operators."""
    predictor = build(size, image_size)
    variants = {"fp32": stage_fns(predictor)}
    if bf16:
        variants["bf16_autocast"] = stage_fns(predictor, autocast=True)
    out: dict = {"image_size": image_size, "stages": {}}
    for name in variants["fp32"]:
        flops = count_flops(variants["fp32"][name])
        row: dict = {"gflop": flops / 1e9}
        for v, fns in variants.items():
            fns[name]()  # warm-up
        times: dict = {v: [] for v in variants}
        for _ in range(repeats):  # interleaved variants
            for v, fns in variants.items():
                times[v].append(timed(fns[name]))
        for v in variants:
            s = statistics.median(times[v])
            rate = flops / s
            ref = rates["bf16"] if v.startswith("bf16") else rates["fp32"]
            row[v] = {"s": s, "tflops": rate / 1e12, "matmul_share": rate / ref}
        best = min(variants, key=lambda v: row[v]["s"])
        row["top_ops"] = top_operators(variants[best][name], top)
        row["top_ops_of"] = best
        out["stages"][name] = row
    for k in (1, 5):
        per_frame = {}
        for v in variants:
            s = sum(out["stages"][n][v]["s"] * (k if n in PER_OBJECT else 1) for n in out["stages"])
            f = sum(out["stages"][n]["gflop"] * (k if n in PER_OBJECT else 1) for n in out["stages"])
            per_frame[v] = {"s": s, "gflop": f}
        out[f"per_frame_{k}_objects"] = per_frame
    return out


def measure(size: str = "tiny", sizes=(512, 1024), repeats: int = 3, top: int = 8, threads: int = 1) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    env = cpu_env()
    bf16 = bool(env["native_bf16"])
    rates = {"fp32": matmul_rate(torch.float32)}
    # bf16 matmul on a CPU without native bf16 is emulated (~10x slower): measured only where native
    rates["bf16"] = matmul_rate(torch.bfloat16) if bf16 else None
    res = {"cpu": env, "model": size, "matmul_tflops": {k: v and v / 1e12 for k, v in rates.items()}, "sizes": {}}
    for side in sizes:
        res["sizes"][str(side)] = profile_size(size, side, repeats, top, rates, bf16)
    return res


def table(res: dict) -> str:
    env = res["cpu"]
    flags = ", ".join(f for f, on in env["flags"].items() if on) or "none of " + ", ".join(FLAGS_SHOWN)
    mm = res["matmul_tflops"]
    lines = [
        f"CPU {env['name']}; flags: {flags}; affinity {env['affinity']}; torch threads {env['torch_threads']}",
        f"2048^2 matmul: fp32 {mm['fp32']:.3f} TFLOP/s"
        + (f", bf16 {mm['bf16']:.3f} TFLOP/s" if mm["bf16"] else ", bf16 not native (not measured)"),
    ]
    for side, r in res["sizes"].items():
        lines.append(f"--- {res['model']} at image size {side}")
        for name, row in r["stages"].items():
            parts = [f"{name:<17} {row['gflop']:7.2f} GFLOP"]
            for v in ("fp32", "bf16_autocast"):
                if v in row:
                    x = row[v]
                    parts.append(
                        f"{v} {x['s'] * 1e3:8.1f} ms {x['tflops']:.3f} TFLOP/s ({x['matmul_share']:.0%} of matmul)"
                    )
            lines.append("  ".join(parts))
            ops = "; ".join(f"{o['op']} {o['share']:.0%}" for o in row["top_ops"][:6])
            lines.append(f"    top ops ({row['top_ops_of']}): {ops}")
        for k in (1, 5):
            pf = r[f"per_frame_{k}_objects"]
            lines.append(
                f"  per frame, {k} object(s): "
                + ", ".join(f"{v} {x['s']:.3f} s ({x['gflop']:.0f} GFLOP)" for v, x in pf.items())
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cpu_profile", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default; wall clock then)")
    ap.add_argument("--json-only", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("SAM2WEB_RANDOM_WEIGHTS", "1")
    res = measure(args.model, args.sizes, args.repeats, args.top, args.threads)
    if not args.json_only:
        print(table(res))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
