"""Which precision a run uses, and why: ``--precision auto`` chosen per machine and model.

The surface other modules use:
    read_cpu(text=None) -> CpuInfo(name, flags)          (/proc/cpuinfo; ``text`` injects one)
    native_bf16(flags) -> list[str]                       the flags that mean native bf16 matmuls
    choose(device, requested, model_key, measure=None, cpu=None) -> Choice(precision, reason, figures)
        ``measure()`` -> figures of ``micro_benchmark``; called only when the CPU has native bf16
        and nothing is cached yet for this machine and model.
    micro_benchmark(predictor) -> {"fp32_s", "bf16_s", "speedup", "cosine", "max_abs"}
    agreement(reference, variant) -> {"cosine", "max_abs", "mask_iou"}   (logit tensors/arrays)
    check_agreement(name, figures, bound=None) -> figures, or VariantRefused when outside bound
    cache_file() -> Path of the per-user JSON of measured choices

Rules: CUDA runs bf16 autocast (what SAM2's own GPU worker does); MPS runs fp32; a CPU
runs bf16 autocast only when its flags say it multiplies bf16 natively (AVX512_BF16 or AMX) AND a
one-off micro-benchmark on this machine and model (image encoder + memory attention, the two parts
that take the time) finds bf16 at least ``MIN_SPEEDUP`` times faster AND agreeing with fp32 within
``BOUNDS["bf16"]``. Anything else runs fp32: on an AVX2-only CPU bf16 is ~10x slower, so auto loses
nothing there. The measurement is cached per machine (CPU name, flags, torch version, threads) and
model (size, image size) in ``cache_file()``. An explicit ``fp32``/``bf16`` is always honoured.
Nothing here changes precision behind the caller's back: the reason says what was chosen and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

CPUINFO_PATH = "/proc/cpuinfo"  # tests point this at a fake file
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
MIN_SPEEDUP = 1.1
# How far a faster variant may disagree with fp32 before it is refused (logits or features).
BOUNDS: dict[str, dict[str, float]] = {
    "bf16": {"cosine": 0.999},
    "batched": {"max_abs": 1e-5},  # batched objects in fp32: the same math, other GEMM blocking
}


class VariantRefused(Exception):
    """A faster variant disagrees with fp32 beyond its bound."""


@dataclass(frozen=True)
class CpuInfo:
    name: str
    flags: frozenset[str]


@dataclass(frozen=True)
class Choice:
    precision: str
    reason: str
    figures: dict = field(default_factory=dict)


def read_cpu(text: str | None = None) -> CpuInfo:
    """CPU model name and flags (first processor) from /proc/cpuinfo or ``text``."""
    if text is None:
        try:
            with open(CPUINFO_PATH) as fh:
                text = fh.read()
        except OSError:
            text = ""
    name, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return CpuInfo(name or "unknown CPU", flags)


def native_bf16(flags) -> list[str]:
    return [f for f in BF16_FLAGS if f in flags]


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sam2web" / "precision.json"


def machine_key(cpu: CpuInfo) -> str:
    import torch

    raw = "|".join([cpu.name, " ".join(sorted(cpu.flags)), torch.__version__, str(torch.get_num_threads())])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_cache(path: Path, data: dict) -> None:
    """Atomic write; a read-only cache folder only costs a re-measurement next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass


# ----------------------------------------------------------------------------- agreement


def agreement(reference, variant) -> dict:
    """Logit cosine, max abs difference and IoU of the masks (logit > 0) of two outputs."""
    import numpy as np

    a = np.asarray(reference.detach().float().cpu() if hasattr(reference, "detach") else reference, np.float64)
    b = np.asarray(variant.detach().float().cpu() if hasattr(variant, "detach") else variant, np.float64)
    a, b = a.ravel(), b.ravel()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(a @ b / denom) if denom > 0 else float(np.array_equal(a, b))
    ma, mb = a > 0, b > 0
    union = int(np.count_nonzero(ma | mb))
    iou = float(np.count_nonzero(ma & mb) / union) if union else 1.0
    return {"cosine": cosine, "max_abs": float(np.abs(a - b).max()) if a.size else 0.0, "mask_iou": iou}


def check_agreement(name: str, figures: dict, bound: dict | None = None) -> dict:
    """``figures`` when within ``bound`` (default ``BOUNDS[name]``), else VariantRefused."""
    bound = BOUNDS.get(name, {}) if bound is None else bound
    bad = []
    if "cosine" in bound and not figures.get("cosine", 0.0) >= bound["cosine"]:
        bad.append(f"logit cosine {figures.get('cosine', float('nan')):.6f} < {bound['cosine']}")
    if "max_abs" in bound and not figures.get("max_abs", float("inf")) <= bound["max_abs"]:
        bad.append(f"max abs difference {figures.get('max_abs', float('nan')):.3g} > {bound['max_abs']:g}")
    if "mask_iou" in bound and not figures.get("mask_iou", 0.0) >= bound["mask_iou"]:
        bad.append(f"mask IoU {figures.get('mask_iou', float('nan')):.4f} < {bound['mask_iou']}")
    if bad:
        raise VariantRefused(f"{name} disagrees with fp32: " + "; ".join(bad))
    return figures


# ----------------------------------------------------------------------------- measuring


def micro_benchmark(predictor, repeats: int = 1) -> dict:
    """fp32 vs bf16 autocast on this CPU: image encoder + memory attention at the model's size.

    Random (seeded) input; the memory holds ``num_maskmem`` frames of features and 16 object
    pointers, as in steady-state tracking. Times are the best of ``repeats`` after a warm-up.
    """
    import torch

    side = int(predictor.image_size)
    feat = side // 16
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, side, side, generator=gen)
    mem_dim = int(predictor.mem_dim)
    n_ptr = 16 * (int(predictor.hidden_dim) // mem_dim)
    n_mem = int(predictor.num_maskmem) * feat * feat + n_ptr
    memory = torch.randn(n_mem, 1, mem_dim, generator=gen)
    memory_pos = torch.randn(n_mem, 1, mem_dim, generator=gen)

    def step():
        out = predictor.forward_image(image)
        _, feats, pos, _ = predictor._prepare_backbone_features(out)
        return predictor.memory_attention(
            curr=feats[-1:], curr_pos=pos[-1:], memory=memory, memory_pos=memory_pos, num_obj_ptr_tokens=n_ptr
        )

    def timed(bf16: bool):
        best, result = float("inf"), None
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            step()  # warm-up: first-call allocations, kernel choice
            for _ in range(repeats):
                t0 = time.perf_counter()
                result = step()
                best = min(best, time.perf_counter() - t0)
        return best, result.float()

    fp32_s, ref = timed(False)
    bf16_s, var = timed(True)
    figures = agreement(ref, var)
    figures.pop("mask_iou")  # features, not masks
    return {"fp32_s": fp32_s, "bf16_s": bf16_s, "speedup": fp32_s / bf16_s, **figures}


# ----------------------------------------------------------------------------- choosing


def choose(device: str, requested: str, model_key: str, measure=None, cpu: CpuInfo | None = None) -> Choice:
    """The precision for ``device`` and the sentence saying why (see the module rules)."""
    requested = (requested or "auto").lower()
    if requested != "auto":
        return Choice(requested, f"{requested}: asked for (--precision {requested})")
    if device == "cuda":
        return Choice("bf16", "bf16 autocast: CUDA (the precision SAM2's own GPU worker uses)")
    if device != "cpu":
        return Choice("fp32", f"fp32: {device} (bf16 autocast is only chosen on CUDA and bf16-native CPUs)")
    cpu = cpu or read_cpu()
    native = native_bf16(cpu.flags)
    if not native:
        return Choice(
            "fp32",
            f"fp32: this CPU ({cpu.name}) has no native bf16 (no {'/'.join(BF16_FLAGS)} flag), where bf16 is slow",
        )
    path = cache_file()
    key = machine_key(cpu)
    cache = _load_cache(path)
    figures = cache.get(key, {}).get(model_key)
    where = "cached"
    if not isinstance(figures, dict) or "speedup" not in figures:
        if measure is None:
            return Choice(
                "auto",
                f"auto: this CPU has native bf16 ({', '.join(native)}); a one-off check on the first run "
                f"decides between bf16 and fp32",
            )
        figures = dict(measure())
        figures["cpu"] = cpu.name
        figures["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
        cache.setdefault(key, {})[model_key] = figures
        _save_cache(path, cache)
        where = "measured now"
    speed = f"bf16 autocast {figures['speedup']:.2f}x fp32, logit cosine {figures.get('cosine', float('nan')):.5f}"
    head = f"this CPU has native bf16 ({', '.join(native)}); one-off check ({where}, {path}): {speed}"
    try:
        check_agreement("bf16", figures)
    except VariantRefused as err:
        return Choice("fp32", f"fp32: {head}; bf16 refused ({err})", figures)
    if figures["speedup"] < MIN_SPEEDUP:
        return Choice("fp32", f"fp32: {head}; not faster by {MIN_SPEEDUP}x, so fp32", figures)
    return Choice("bf16", f"bf16: {head}", figures)
