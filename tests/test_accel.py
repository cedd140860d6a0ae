"""CPU levers (``sam2web.tracking.accel``) and the one-off check that keeps them per machine.

Each lever must agree with fp32 within the bound the precision check uses; on a CPU without native
bf16 (flags injected) the choice stays fp32 and never tries bf16 weights. Random weights, image
size 128: the real measurements below take a few seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam2web.tracking import accel, model, precision

torch = pytest.importorskip("torch")

AVX2_ONLY = "processor: 0\nmodel name\t: Old Xeon\nflags\t\t: fpu sse2 avx avx2 fma\n"
AMX = "processor: 0\nmodel name\t: Intel Xeon Sapphire Rapids\nflags\t\t: avx2 avx512f amx_tile amx_bf16\n"
SIDE = 128


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(model.ENV_RANDOM, "1")
    monkeypatch.delenv(accel.ENV_LEVERS, raising=False)
    monkeypatch.delenv(accel.ENV_COMPILE, raising=False)


def _fake_cpuinfo(monkeypatch, tmp_path, text):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    monkeypatch.setattr(precision, "CPUINFO_PATH", str(path))


def _fp32():
    return model.load_predictor("tiny", device="cpu", image_size=SIDE, precision="fp32")


class _Frames:
    """In-memory normalised frames: a frame source SAM2's init_state takes (sam2web's patch)."""

    sam2web_frame_source = True

    def __init__(self, n: int):
        self.t = torch.randn(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
        self.height = self.width = SIDE

    def __len__(self):
        return len(self.t)

    def __getitem__(self, i):
        return self.t[i]


def _track(predictor, frames) -> torch.Tensor:
    state = predictor.init_state(frames)
    for obj, box in enumerate(([30, 30, 90, 90], [10, 50, 60, 120])):
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj, box=np.asarray(box, np.float32))
    with model.inference_context(predictor):
        return torch.stack([m.float() for _, _, m in predictor.propagate_in_video(state)])


@pytest.mark.parametrize("lever", ["absorb_v", "bf16_weights"])
def test_each_lever_agrees_with_fp32_within_the_check_bound(lever):
    predictor = _fp32()
    figures = precision.lever_benchmark(predictor, "fp32", [lever], repeats=1)
    got = figures["levers"][lever]
    assert precision.check_agreement(lever, got) is got
    assert got["s"] > 0 and got["speedup"] > 0
    # the predictor measured on is untouched (levers ran on shadows)
    assert accel.enabled(predictor) == ()
    assert next(predictor.image_encoder.parameters()).dtype == torch.float32


def test_absorb_v_rewrites_every_cross_attention_and_tracks_like_fp32():
    frames = _Frames(3)
    reference = _track(_fp32(), frames)
    fast = accel.apply(_fp32(), ["absorb_v"])
    assert accel.enabled(fast) == ("absorb_v",)
    assert len(accel._absorb_targets(fast)) == 4  # the tiny model's four memory-attention layers
    got = precision.agreement(reference, _track(fast, frames))
    assert got["mask_iou"] == 1.0 and got["cosine"] >= precision.BOUNDS["absorb_v"]["cosine"]


def test_bf16_weights_keep_fp32_at_the_boundaries():
    predictor = accel.apply(_fp32(), ["bf16_weights"])
    assert next(predictor.image_encoder.parameters()).dtype == torch.bfloat16
    assert next(predictor.memory_attention.parameters()).dtype == torch.bfloat16
    assert next(predictor.sam_mask_decoder.parameters()).dtype == torch.float32
    with torch.inference_mode():
        out = predictor.forward_image(torch.randn(1, 3, SIDE, SIDE))
    assert all(t.dtype == torch.float32 for t in out["backbone_fpn"] + out["vision_pos_enc"])


def test_a_cpu_without_native_bf16_stays_fp32_and_never_tries_bf16_weights(monkeypatch, tmp_path):
    _fake_cpuinfo(monkeypatch, tmp_path, AVX2_ONLY)
    assert accel.candidates(precision.read_cpu(), "fp32") == ("absorb_v",)
    measured = []
    real = precision.lever_benchmark

    def spy(predictor, prec, levers, repeats=3):
        measured.append((prec, tuple(levers)))
        return real(predictor, prec, levers, repeats=1)

    monkeypatch.setattr(precision, "lever_benchmark", spy)
    phases = []
    predictor = model.load_predictor("tiny", device="cpu", image_size=SIDE, phase=phases.append)
    info = model.describe(predictor)
    assert info["precision"] == "fp32" and "no native bf16" in info["precision_reason"]
    assert measured == [("fp32", ("absorb_v",))] and phases == ["preparing"]
    assert set(info["levers"]) <= {"absorb_v"} and "absorb_v" in info["levers_reason"]
    assert accel.enabled(predictor) == tuple(info["levers"])
    # a later build reads the cached check: nothing measured, nothing to prepare
    again = model.load_predictor("tiny", device="cpu", image_size=SIDE, phase=phases.append)
    assert measured == [("fp32", ("absorb_v",))] and phases == ["preparing"]
    assert model.describe(again)["levers"] == info["levers"] and "cached" in model.describe(again)["levers_reason"]


def _fake_lever_figures(**levers):
    return {"precision": "bf16", "base_s": 1.0, "levers": levers}


def test_bf16_weights_replace_autocast_where_the_check_keeps_them(monkeypatch, tmp_path):
    _fake_cpuinfo(monkeypatch, tmp_path, AMX)
    fast_close = {"fp32_s": 1.0, "bf16_s": 0.5, "speedup": 2.0, "cosine": 0.9999, "max_abs": 0.03}
    monkeypatch.setattr(precision, "micro_benchmark", lambda p: dict(fast_close))
    fake = _fake_lever_figures(
        absorb_v={"cosine": 0.9, "max_abs": 1.0, "s": 0.5, "speedup": 2.0, "prepare_s": 0.0},  # disagrees
        bf16_weights={"cosine": 0.9999, "max_abs": 0.05, "s": 0.5, "speedup": 2.0, "prepare_s": 0.0},
    )
    seen = []
    monkeypatch.setattr(precision, "lever_benchmark", lambda p, prec, levers: seen.append(levers) or fake)
    predictor = model.load_predictor("tiny", device="cpu", image_size=SIDE)
    info = model.describe(predictor)
    assert seen == [("absorb_v", "bf16_weights")]
    assert info["precision"] == "bf16-weights" and info["levers"] == ["bf16_weights"]
    assert "absorb_v refused" in info["levers_reason"] and "bf16_weights 2.00x" in info["levers_reason"]
    with model.inference_context(predictor):  # weights are bf16 already: no autocast on top
        assert not torch.is_autocast_enabled("cpu")
    assert _track(predictor, _Frames(2)).shape[0] == 2  # tracks end to end in bf16 weights


def test_choose_levers_keeps_only_what_pays_and_caches_it():
    cpu = precision.read_cpu(AVX2_ONLY)
    calls = []

    def measure():
        calls.append(1)
        return _fake_lever_figures(
            absorb_v={"cosine": 1.0, "max_abs": 1e-6, "s": 0.99, "speedup": 1.01},
            compile={"cosine": 1.0, "max_abs": 1e-6, "s": 0.5, "speedup": 2.0, "prepare_s": 30.0},
        )

    cands = ("absorb_v", "compile")
    first = precision.choose_levers("cpu", "fp32", "tiny@512", cands, measure=measure, cpu=cpu)
    assert first.levers == ("compile",) and "absorb_v 1.01x: not kept" in first.reason
    assert "measured now" in first.reason
    again = precision.choose_levers("cpu", "fp32", "tiny@512", cands, measure=measure, cpu=cpu)
    assert again.levers == ("compile",) and "cached" in again.reason and calls == [1]
    saved = json.loads(precision.cache_file().read_text())
    (per_machine,) = saved.values()
    assert any(k.startswith("levers:fp32:") for k in per_machine)
    # not measured yet and nothing to measure with: no levers, and the reason says so
    assert precision.choose_levers("cpu", "fp32", "small@512", cands, cpu=cpu).levers == ()
    assert precision.choose_levers("cuda", "bf16", "tiny@512", cands, measure=measure).levers == ()


def test_levers_off_and_explicit_precisions_keep_sam2s_math(monkeypatch):
    monkeypatch.setattr(precision, "lever_benchmark", lambda *a, **k: pytest.fail("nothing may be measured"))
    monkeypatch.setenv(accel.ENV_LEVERS, "off")
    info = model.describe(model.load_predictor("tiny", device="cpu", image_size=SIDE))
    assert info["levers"] == [] and "SAM2WEB_LEVERS=off" in info["levers_reason"]
    monkeypatch.delenv(accel.ENV_LEVERS)
    info = model.describe(_fp32())
    assert info["levers"] == [] and "asked for" in info["levers_reason"]


def test_compile_is_a_candidate_only_when_asked_and_a_compiler_exists(monkeypatch):
    cpu = precision.read_cpu(AMX)
    assert "compile" not in accel.candidates(cpu, "bf16")
    assert accel.candidates(cpu, "bf16") == ("absorb_v", "bf16_weights")
    assert accel.candidates(cpu, "fp32") == ("absorb_v",)  # bf16 weights only replace autocast
    monkeypatch.setenv(accel.ENV_COMPILE, "1")
    monkeypatch.setattr(accel, "has_compiler", lambda: True)
    assert accel.candidates(cpu, "fp32") == ("absorb_v", "compile")
    monkeypatch.setattr(accel, "has_compiler", lambda: False)
    assert "compile" not in accel.candidates(cpu, "fp32")
    with pytest.raises(ValueError, match="unknown levers"):
        accel.apply(object(), ["warp_drive"])


def test_the_factory_gives_the_preparing_callback_only_to_builds_that_take_it():
    from sam2web.tracking import factory

    def old_style(model, checkpoint, device, image_size, precision, download=False, progress=None):
        return None

    def with_phase(model, checkpoint, device, image_size, precision, download=False, progress=None, phase=None):
        return None

    assert not factory._accepts(old_style, "phase")
    assert factory._accepts(with_phase, "phase") and factory._accepts(lambda *a, **k: None, "phase")
    assert factory._accepts(model.load_predictor, "phase")
