"""CPU levers on a built SAM2 predictor: each one on its own, switched per instance, chosen by a check.

Contract:
    LEVERS: the lever names, in the order they are applied
    apply(predictor, levers) -> predictor     (in place; levers already on stay on)
    enabled(predictor) -> tuple[str, ...]     the levers on for this predictor
    candidates(cpu, precision) -> tuple       the levers worth measuring on this CPU and precision
    compile_cache_dir() -> Path               where inductor keeps its compiled kernels between runs
    levers_allowed() -> bool                  False when SAM2WEB_LEVERS=off (SAM2's own math, no check)

The levers (why each can pay, and what it costs):
- ``absorb_v``: memory attention's cross-attention reads about 7 frames of 64-dim memory with one
  256-dim head. Its values are ``v = m Wv^T + b`` and softmax rows sum to one, so
  ``softmax(QK^T) v = (softmax(QK^T) m) Wv^T + b``: the attention-times-values product runs at
  64 instead of 256 wide (the same math, in another order: fp32 rounding only). It is computed in
  query blocks whose scores stay in cache. Only where the value input is narrower than a head.
- ``bf16_weights``: the image encoder and memory attention (the two parts that take the time)
  hold their weights in bfloat16 once, with the inputs cast to bf16 and the outputs back to fp32
  at their boundaries, instead of autocast re-casting every weight on every call. Only where the
  CPU multiplies bf16 natively (AVX512_BF16 or AMX); elsewhere bf16 is emulated and ~10x slower.
- ``compile``: ``torch.compile`` (inductor, with freezing: weights folded in as constants) of the
  image encoder, its kernels cached on disk (``compile_cache_dir``) so that only the first run on
  a machine pays the compilation. Needs a C++ compiler (inductor's CPU backend writes C++).

None of them changes what the model computes beyond rounding; ``sam2web.tracking.precision``
decides per machine and model which ones run (faster, and within the agreement bound of fp32).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

LEVERS = ("absorb_v", "bf16_weights", "compile")
SCORE_BLOCK_ELEMENTS = 1 << 22  # scores held at once by absorb_v: 16 MB in fp32
ENV_COMPILE = "SAM2WEB_COMPILE"
ENV_LEVERS = "SAM2WEB_LEVERS"


def compile_cache_dir() -> Path:
    """inductor's on-disk cache (FX graphs and compiled C++), in sam2web's data folder when set."""
    from sam2web.config import settings

    base = getattr(settings(), "data_dir", None)
    if base is None:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sam2web"
    return Path(base) / "inductor"


def has_compiler() -> bool:
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def levers_allowed() -> bool:
    """``SAM2WEB_LEVERS=off`` keeps SAM2's own math (and skips the one-off check that picks levers)."""
    return os.environ.get(ENV_LEVERS, "").strip().lower() not in ("0", "off", "false", "no")


def compile_wanted() -> bool:
    """``SAM2WEB_COMPILE=1`` lets the check try ``compile`` (off by default: see ``candidates``)."""
    return os.environ.get(ENV_COMPILE, "").strip().lower() in ("1", "true", "yes", "on")


def candidates(cpu, precision: str) -> tuple[str, ...]:
    """The levers worth measuring on ``cpu`` (a ``precision.CpuInfo``) on top of ``precision``.

    ``bf16_weights`` replaces bf16 autocast, so it is tried only where autocast was chosen (which
    needs native bf16). ``compile`` only when asked (``SAM2WEB_COMPILE=1``) and a C++ compiler is
    there: its first compilation takes minutes on a 2-core CPU (see bench/RESULTS.md).
    """
    from sam2web.tracking import precision as prec_mod

    out = ["absorb_v"]
    if precision == "bf16" and prec_mod.native_bf16(cpu.flags):
        out.append("bf16_weights")
    if compile_wanted() and has_compiler():
        out.append("compile")
    return tuple(out)


def enabled(predictor) -> tuple[str, ...]:
    return tuple(getattr(predictor, "sam2web_levers", ()))


# ----------------------------------------------------------------------------- absorb_v


def _absorbed_attention(self, q, k, v, num_k_exclude_rope: int = 0):
    """``RoPEAttention.forward`` with the value projection after the attention (see module doc)."""
    import torch
    from sam2.modeling.position_encoding import apply_rotary_enc

    if self.training:  # attention dropout: SAM2's own path (sam2web only runs inference)
        return type(self).forward(self, q, k, v, num_k_exclude_rope)
    q = self._separate_heads(self.q_proj(q), self.num_heads)
    k = self._separate_heads(self.k_proj(k), self.num_heads)
    # SAM2's RoPE, as upstream does it (tables rebuilt when the feature size changes)
    side = math.sqrt(q.shape[-2])
    self.freqs_cis = self.freqs_cis.to(q.device)
    if self.freqs_cis.shape[0] != q.shape[-2]:
        self.freqs_cis = self.compute_cis(end_x=side, end_y=side).to(q.device)
    if q.shape[-2] != k.shape[-2]:
        assert self.rope_k_repeat
    num_k_rope = k.size(-2) - num_k_exclude_rope
    q, k[:, :, :num_k_rope] = apply_rotary_enc(
        q, k[:, :, :num_k_rope], freqs_cis=self.freqs_cis, repeat_freqs_k=self.rope_k_repeat
    )
    # one head here (checked when the lever is applied): values are the raw memory (B, 1, Nk, C)
    mem = v.unsqueeze(1).to(q.dtype)
    kt = (k * (1.0 / math.sqrt(q.shape[-1]))).transpose(-1, -2)
    n_q, n_k = q.shape[-2], k.shape[-2]
    block = max(32, min(n_q, SCORE_BLOCK_ELEMENTS // max(1, n_k)))
    parts = []
    for i in range(0, n_q, block):
        scores = torch.matmul(q[:, :, i : i + block], kt)
        parts.append(torch.matmul(torch.softmax(scores, dim=-1), mem))
    out = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
    out = torch.nn.functional.linear(out, self.v_proj.weight, self.v_proj.bias)
    return self.out_proj(self._recombine_heads(out))


def _absorb_targets(predictor) -> list:
    from sam2.modeling.sam.transformer import RoPEAttention

    out = []
    for mod in predictor.memory_attention.modules():
        if isinstance(mod, RoPEAttention) and mod.rope_k_repeat and mod.num_heads == 1:
            if mod.kv_in_dim < mod.internal_dim:
                out.append(mod)
    return out


def _apply_absorb_v(predictor) -> None:
    import types

    for mod in _absorb_targets(predictor):
        mod.forward = types.MethodType(_absorbed_attention, mod)


# ----------------------------------------------------------------------------- bf16_weights


def _cast(obj, dtype):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() and obj.dtype != dtype else obj
    if isinstance(obj, list | tuple):
        return type(obj)(_cast(o, dtype) for o in obj)
    if isinstance(obj, dict):
        return {k: _cast(v, dtype) for k, v in obj.items()}
    return obj


def _hold_in_bf16(module) -> None:
    import torch

    module.to(torch.bfloat16)
    module.register_forward_pre_hook(
        lambda mod, args, kwargs: (_cast(args, torch.bfloat16), _cast(kwargs, torch.bfloat16)), with_kwargs=True
    )
    module.register_forward_hook(lambda mod, args, out: _cast(out, torch.float32))


def _apply_bf16_weights(predictor) -> None:
    _hold_in_bf16(predictor.image_encoder)
    _hold_in_bf16(predictor.memory_attention)


# ----------------------------------------------------------------------------- compile


def configure_compile_cache() -> Path:
    """Point inductor's caches at ``compile_cache_dir`` (before the first compilation)."""
    path = compile_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(path))
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


def _apply_compile(predictor) -> None:
    import torch._inductor.config as inductor_config

    configure_compile_cache()
    # freezing folds the (inference-only) weights into the graph as constants, which lets inductor
    # pre-pack them for oneDNN; sam2web never trains, so nothing else in the process minds
    inductor_config.freezing = True
    predictor.image_encoder.compile(backend="inductor", dynamic=False)


_APPLY = {"absorb_v": _apply_absorb_v, "bf16_weights": _apply_bf16_weights, "compile": _apply_compile}


def apply(predictor, levers) -> object:
    """Switch ``levers`` on for ``predictor`` (in place; see the module doc for each)."""
    unknown = set(levers) - set(LEVERS)
    if unknown:
        raise ValueError(f"unknown levers: {sorted(unknown)}")
    levers = [lv for lv in LEVERS if lv in set(levers)]
    on = list(enabled(predictor))
    for lever in levers:
        if lever not in on:
            _APPLY[lever](predictor)
            on.append(lever)
    predictor.sam2web_levers = tuple(lv for lv in LEVERS if lv in on)
    return predictor
