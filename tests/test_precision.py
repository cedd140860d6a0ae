"""``--precision auto``: chosen from the CPU's flags (injected here) and a cached micro-benchmark.

The measuring function is injected too, except in the last tests, which run the real one on the
tiny model at image size 128 (a second or two).
"""

from __future__ import annotations

import json

import pytest

from sam2web.errors import UserError
from sam2web.tracking import model, precision

torch = pytest.importorskip("torch")

AVX2_ONLY = "processor: 0\nmodel name\t: Old Xeon\nflags\t\t: fpu sse2 avx avx2 fma\n"
AVX512_BF16 = "processor: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
AMX = "processor: 0\nmodel name\t: Intel Xeon Sapphire Rapids\nflags\t\t: avx2 avx512f amx_tile amx_bf16\n"
FAST_AND_CLOSE = {"fp32_s": 1.0, "bf16_s": 0.5, "speedup": 2.0, "cosine": 0.99997, "max_abs": 0.03}


@pytest.fixture(autouse=True)
def isolated_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def never():
    raise AssertionError("the micro-benchmark must not run here")


def counting(figures):
    calls = []

    def measure():
        calls.append(1)
        return dict(figures)

    return measure, calls


def test_cpu_flags_are_read_from_cpuinfo():
    cpu = precision.read_cpu(AMX)
    assert cpu.name == "Intel Xeon Sapphire Rapids" and "amx_bf16" in cpu.flags
    assert precision.native_bf16(cpu.flags) == ["amx_bf16"]
    assert precision.native_bf16(precision.read_cpu(AVX512_BF16).flags) == ["avx512_bf16"]
    assert precision.native_bf16(precision.read_cpu(AVX2_ONLY).flags) == []
    assert precision.read_cpu("").name == "unknown CPU"


def test_avx2_only_cpu_runs_fp32_without_measuring():
    choice = precision.choose("cpu", "auto", "tiny@512", measure=never, cpu=precision.read_cpu(AVX2_ONLY))
    assert choice.precision == "fp32"
    assert "no native bf16" in choice.reason and "Old Xeon" in choice.reason
    assert not precision.cache_file().exists()


@pytest.mark.parametrize("cpuinfo", [AVX512_BF16, AMX])
def test_bf16_native_cpu_measures_once_then_reads_the_cache(cpuinfo):
    cpu = precision.read_cpu(cpuinfo)
    measure, calls = counting(FAST_AND_CLOSE)
    first = precision.choose("cpu", "auto", "tiny@512", measure=measure, cpu=cpu)
    assert first.precision == "bf16" and calls == [1]
    assert "measured now" in first.reason and "2.00x" in first.reason
    assert precision.native_bf16(cpu.flags)[0] in first.reason
    again = precision.choose("cpu", "auto", "tiny@512", measure=never, cpu=cpu)
    assert again.precision == "bf16" and "cached" in again.reason
    saved = json.loads(precision.cache_file().read_text())
    (per_model,) = saved.values()
    assert per_model["tiny@512"]["speedup"] == 2.0
    # another model (or image size) is measured on its own
    precision.choose("cpu", "auto", "small@1024", measure=measure, cpu=cpu)
    assert calls == [1, 1]


def test_a_variant_that_disagrees_with_fp32_is_refused():
    cpu = precision.read_cpu(AVX512_BF16)
    off = dict(FAST_AND_CLOSE, cosine=0.97)
    choice = precision.choose("cpu", "auto", "tiny@512", measure=lambda: off, cpu=cpu)
    assert choice.precision == "fp32" and "refused" in choice.reason and "cosine" in choice.reason
    with pytest.raises(precision.VariantRefused, match="max abs"):
        precision.check_agreement("batched", {"max_abs": 1e-3, "cosine": 1.0})
    assert precision.check_agreement("batched", {"max_abs": 1e-6})["max_abs"] == 1e-6
    with pytest.raises(precision.VariantRefused, match="mask IoU"):
        precision.check_agreement("x", {"mask_iou": 0.5}, bound={"mask_iou": 0.9})


def test_bf16_that_is_not_faster_is_not_chosen():
    slow = dict(FAST_AND_CLOSE, speedup=1.02)
    choice = precision.choose("cpu", "auto", "tiny@512", measure=lambda: slow, cpu=precision.read_cpu(AMX))
    assert choice.precision == "fp32" and "not faster" in choice.reason


def test_cuda_explicit_and_unknown():
    assert precision.choose("cuda", "auto", "tiny@512", measure=never).precision == "bf16"
    assert precision.choose("mps", "auto", "tiny@512", measure=never).precision == "fp32"
    cpu = precision.read_cpu(AVX512_BF16)
    forced = precision.choose("cpu", "fp32", "tiny@512", measure=never, cpu=cpu)
    assert forced.precision == "fp32" and "asked for" in forced.reason
    assert precision.choose("cpu", "bf16", "t", measure=never, cpu=precision.read_cpu(AVX2_ONLY)).precision == "bf16"
    unmeasured = precision.choose("cpu", "auto", "tiny@512", cpu=cpu)  # no model loaded: the UI caption
    assert unmeasured.precision == "auto" and "first run" in unmeasured.reason
    with pytest.raises(UserError, match="Unknown precision"):
        model.precision_choice("cpu", "fp8")


def test_agreement_figures():
    a = torch.tensor([[1.0, -2.0, 3.0, -4.0]])
    same = precision.agreement(a, a.clone())
    assert same == {"cosine": pytest.approx(1.0), "max_abs": 0.0, "mask_iou": 1.0}
    flipped = precision.agreement(a, torch.tensor([[1.0, 2.0, 3.0, -4.0]]))
    assert flipped["max_abs"] == 4.0 and flipped["mask_iou"] == pytest.approx(2 / 3)


def _fake_cpuinfo(monkeypatch, tmp_path, text):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    monkeypatch.setattr(precision, "CPUINFO_PATH", str(path))


def _load(monkeypatch):
    monkeypatch.setenv(model.ENV_RANDOM, "1")
    return model.load_predictor("tiny", device="cpu", image_size=128)


def test_load_predictor_auto_on_an_avx2_cpu_is_fp32(monkeypatch, tmp_path):
    _fake_cpuinfo(monkeypatch, tmp_path, AVX2_ONLY)
    monkeypatch.setattr(precision, "micro_benchmark", lambda p: never())
    info = model.describe(_load(monkeypatch))
    assert info["precision"] == "fp32" and "no native bf16" in info["precision_reason"]


def test_load_predictor_auto_on_a_bf16_cpu_runs_the_real_check(monkeypatch, tmp_path):
    _fake_cpuinfo(monkeypatch, tmp_path, AVX512_BF16)
    predictor = _load(monkeypatch)
    info = model.describe(predictor)
    figures = next(iter(json.loads(precision.cache_file().read_text()).values()))["tiny@128+random"]
    assert figures["fp32_s"] > 0 and figures["bf16_s"] > 0 and 0.9 < figures["cosine"] <= 1.0 + 1e-9
    expected = "bf16" if figures["speedup"] >= precision.MIN_SPEEDUP and figures["cosine"] >= 0.999 else "fp32"
    assert info["precision"] == expected and "one-off check (measured now" in info["precision_reason"]
    with model.inference_context(predictor):
        assert torch.is_autocast_enabled("cpu") == (expected == "bf16")
