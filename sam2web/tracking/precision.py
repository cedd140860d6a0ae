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
    lever_benchmark(predictor, precision, levers) -> {"base_s", "levers": {lever: figures}, "combined": ...}
    choose_levers(device, precision, model_key, candidates, measure=None, cpu=None) -> LeverChoice
        which of ``sam2web.tracking.accel``'s levers run, measured once per machine and model on
        top of the chosen precision (``bf16_weights`` only replaces bf16 autocast); cached.

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
    # exact levers (sam2web.tracking.accel): the same math in another order, fp32 rounding only
    "absorb_v": {"cosine": 0.99999},
    "compile": {"cosine": 0.99999},
    "bf16_weights": {"cosine": 0.999},  # as bf16 autocast
}
# A lever is kept when the image encoder + memory attention step is at least this much faster.
LEVER_MIN_SPEEDUP = 1.03


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


@dataclass(frozen=True)
class LeverChoice:
    levers: tuple[str, ...]
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


# ----------------------------------------------------------------------------- levers


# The lever check runs at the model's image size up to this side: the levers' gains grow with the
# size, so a 1024 model measured at 512 errs on the side of keeping fewer, in a quarter the time.
LEVER_CHECK_MAX_SIDE = 512


def _step_inputs(predictor, side: int | None = None) -> dict:
    """Seeded image + a steady-state memory (``num_maskmem`` frames, 16 object pointers)."""
    import torch

    side = int(side or predictor.image_size)
    feat = side // 16
    gen = torch.Generator().manual_seed(0)
    mem_dim = int(predictor.mem_dim)
    n_ptr = 16 * (int(predictor.hidden_dim) // mem_dim)
    n_mem = int(predictor.num_maskmem) * feat * feat + n_ptr
    return {
        "image": torch.randn(1, 3, side, side, generator=gen),
        "memory": torch.randn(n_mem, 1, mem_dim, generator=gen),
        "memory_pos": torch.randn(n_mem, 1, mem_dim, generator=gen),
        "n_ptr": n_ptr,
    }


def lever_step(modules, inputs: dict, autocast: bool = False) -> list:
    """Image encoder + memory attention of ``modules`` (anything with those two attributes):
    the memory-conditioned features and the two high-resolution levels the mask decoder reads."""
    import contextlib

    import torch

    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    # RoPE tables follow the input size; put back the model's own afterwards (shared module)
    tables = [(m, m.freqs_cis) for m in modules.memory_attention.modules() if hasattr(m, "freqs_cis")]
    try:
        with torch.inference_mode(), ctx:
            out = modules.image_encoder(inputs["image"])
            curr = out["backbone_fpn"][-1].flatten(2).permute(2, 0, 1)
            pos = out["vision_pos_enc"][-1].flatten(2).permute(2, 0, 1)
            fused = modules.memory_attention(
                curr=[curr],
                curr_pos=[pos],
                memory=inputs["memory"],
                memory_pos=inputs["memory_pos"],
                num_obj_ptr_tokens=inputs["n_ptr"],
            )
    finally:
        for m, table in tables:
            m.freqs_cis = table
    return [fused.float()] + [f.float() for f in out["backbone_fpn"][:-1]]


def _agree(reference: list, variant: list) -> dict:
    parts = [agreement(a, b) for a, b in zip(reference, variant, strict=True)]
    return {"cosine": min(p["cosine"] for p in parts), "max_abs": max(p["max_abs"] for p in parts)}


def _clock() -> float:
    """Process CPU seconds with one torch thread (others' load barely moves them), else wall."""
    import torch

    return time.process_time() if torch.get_num_threads() == 1 else time.perf_counter()


def lever_benchmark(predictor, precision: str, levers, repeats: int = 3) -> dict:
    """Each lever on its own against ``precision``'s plain step, interleaved, with agreement vs fp32.

    The predictor itself is not changed: each lever runs on a shadow (copies of the modules it
    changes, sharing the rest). ``prepare_s`` is a lever's extra first-call time (compilation).
    """
    import copy
    import types

    from sam2web.tracking import accel

    inputs = _step_inputs(predictor, min(int(predictor.image_size), LEVER_CHECK_MAX_SIDE))
    autocast = precision == "bf16"
    reference = lever_step(predictor, inputs)  # fp32: what every variant is compared with
    shadows: dict = {"base": (predictor, autocast)}
    for lever in levers:
        encoder, attention = predictor.image_encoder, predictor.memory_attention
        if lever in ("absorb_v", "bf16_weights"):
            attention = copy.deepcopy(attention)
        if lever in ("compile", "bf16_weights"):
            encoder = copy.deepcopy(encoder)
        shadow = types.SimpleNamespace(image_encoder=encoder, memory_attention=attention)
        accel.apply(shadow, [lever])
        shadows[lever] = (shadow, autocast and lever != "bf16_weights")
    figures: dict = {"precision": precision, "levers": {}}
    first: dict = {}
    for name, (mods, amp) in shadows.items():  # warm-up: first-call allocations, compilation
        t0 = time.perf_counter()
        out = lever_step(mods, inputs, amp)
        first[name] = time.perf_counter() - t0
        if name != "base":
            figures["levers"][name] = _agree(reference, out)
    times: dict = {name: [] for name in shadows}
    for _ in range(repeats):
        for name, (mods, amp) in shadows.items():
            t0 = _clock()
            lever_step(mods, inputs, amp)
            times[name].append(_clock() - t0)
    import statistics

    base = statistics.median(times["base"])
    figures["base_s"] = base
    for name in levers:
        s = statistics.median(times[name])
        figures["levers"][name].update(s=s, speedup=base / s, prepare_s=max(0.0, first[name] - first["base"]))
    return figures


def choose_levers(
    device: str,
    precision: str,
    model_key: str,
    candidates,
    measure=None,
    cpu: CpuInfo | None = None,
) -> LeverChoice:
    """Which levers run: measured once per machine, model and precision (``measure()`` gives
    ``lever_benchmark``'s figures), kept when faster by ``LEVER_MIN_SPEEDUP`` and within their bound."""
    candidates = tuple(candidates)
    if device != "cpu" or not candidates:
        return LeverChoice((), "no CPU levers: " + (f"{device}" if device != "cpu" else "none apply to this CPU"))
    cpu = cpu or read_cpu()
    path = cache_file()
    key = machine_key(cpu)
    cache = _load_cache(path)
    slot = f"levers:{precision}:{'+'.join(candidates)}:{model_key}"
    figures = cache.get(key, {}).get(slot)
    where = "cached"
    if not isinstance(figures, dict) or "levers" not in figures:
        if measure is None:
            return LeverChoice((), "levers: not measured yet (the first run on this machine measures them)")
        figures = dict(measure())
        figures["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
        cache.setdefault(key, {})[slot] = figures
        _save_cache(path, cache)
        where = "measured now"
    kept, said = [], []
    for lever in candidates:
        fig = figures["levers"].get(lever)
        if not isinstance(fig, dict):
            continue
        try:
            check_agreement(lever, fig)
        except VariantRefused as err:
            said.append(f"{lever} refused ({err})")
            continue
        if fig["speedup"] < LEVER_MIN_SPEEDUP:
            said.append(f"{lever} {fig['speedup']:.2f}x: not kept")
            continue
        kept.append(lever)
        said.append(f"{lever} {fig['speedup']:.2f}x (cosine {fig['cosine']:.6f}): kept")
    reason = f"levers on {precision} ({where}, {path}): " + "; ".join(said)
    return LeverChoice(tuple(kept), reason, figures)
