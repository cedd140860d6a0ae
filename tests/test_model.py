"""Model registry, checkpoint lookup / download / verification, device and precision, CPU patches.

The network is never used: downloads go to an unreachable local URL or through a fake response.
"""

from __future__ import annotations

import io
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from sam2web.errors import UserError
from sam2web.tracking import model

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real cache folder, no inherited env, no network: every test starts from nothing."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(model.ENV_CHECKPOINTS, raising=False)
    monkeypatch.delenv(model.ENV_RANDOM, raising=False)
    monkeypatch.delenv(model.ENV_IMAGE_SIZE, raising=False)
    monkeypatch.setattr(model, "DOWNLOAD_BASE", "http://127.0.0.1:9/segment_anything_2/")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A real tiny state dict (random weights) saved like the official files: {"model": sd}."""
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    net = model._build("tiny", image_size=None, device="cpu")
    torch.save({"model": net.state_dict()}, path)
    return path


class FakeResponse(io.BytesIO):
    """What urlopen returns, for a download without a network; can fail after some bytes."""

    def __init__(
        self, data: bytes, length: int | None = None, fail_after: int | None = None, exc: BaseException | None = None
    ):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}
        self.fail_after = fail_after
        self.exc = exc

    def read(self, n=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise self.exc
        return super().read(n if self.fail_after is None else min(n, self.fail_after - self.tell()))


def test_registry_points_at_configs_inside_sam2():
    assert model.DEFAULT_MODEL == "small"
    assert set(model.MODELS) == {"tiny", "small", "base_plus", "large"}
    root = resources.files("sam2")
    for size, (config, ckpt) in model.MODELS.items():
        assert (root / config).is_file(), config
        assert ckpt == f"sam2.1_hiera_{size}.pt"


def test_lookup_order_explicit_then_env_then_cache(tmp_path, monkeypatch):
    name = "sam2.1_hiera_small.pt"
    cache = tmp_path / "cache" / "sam2web" / "checkpoints"
    env = tmp_path / "env"
    explicit = tmp_path / "mine.pt"
    for folder in (cache, env):
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"x")
    explicit.write_bytes(b"x")
    assert model.find_checkpoint("small") == cache / name
    monkeypatch.setenv(model.ENV_CHECKPOINTS, str(env))
    assert model.find_checkpoint("small") == env / name
    assert model.find_checkpoint("small", explicit) == explicit
    assert model.find_checkpoint("small", tmp_path / "env") == env / name  # a folder works too
    (env / name).unlink()
    assert model.find_checkpoint("small") == cache / name
    assert model.find_checkpoint("tiny") is None


def test_explicit_missing_path_and_unknown_size_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        model.find_checkpoint("small", tmp_path / "nope.pt")
    with pytest.raises(UserError, match="Unknown model 'huge'"):
        model.find_checkpoint("huge")


def test_missing_checkpoint_without_network_says_which_file_goes_where(tmp_path):
    with pytest.raises(UserError) as err:
        model.load_predictor("tiny", device="cpu", download=True)
    msg = str(err.value)
    target = tmp_path / "cache" / "sam2web" / "checkpoints" / "sam2.1_hiera_tiny.pt"
    assert str(target) in msg and "--checkpoint PATH" in msg
    assert "sam2.1_hiera_tiny.pt" in msg and "\n" not in msg
    assert not any(target.parent.iterdir())  # no partial file left behind


def test_missing_checkpoint_without_download_points_at_env_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(model.ENV_CHECKPOINTS, str(tmp_path / "ckpts"))
    with pytest.raises(UserError, match=str(tmp_path / "ckpts" / "sam2.1_hiera_small.pt")):
        model.load_predictor("small", device="cpu")


def test_random_weights_only_when_the_environment_says_so(monkeypatch, tmp_path):
    from sam2web.tracking import precision

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Old CPU\nflags\t\t: fpu avx2\n")  # auto -> fp32, nothing measured
    monkeypatch.setattr(precision, "CPUINFO_PATH", str(cpuinfo))
    with pytest.raises(UserError, match="is not on this machine"):
        model.load_predictor("tiny", device="cpu", image_size=256)
    cached = tmp_path / "cache" / "sam2web" / "checkpoints" / "sam2.1_hiera_tiny.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not even read: the environment asks for random weights")
    monkeypatch.setenv(model.ENV_RANDOM, "1")
    monkeypatch.setenv(model.ENV_IMAGE_SIZE, "256")
    predictor = model.load_predictor("tiny", device="cpu")
    info = model.describe(predictor)
    assert info == {
        "device": "cpu",
        "precision": "fp32",
        "precision_reason": "fp32: this CPU (Old CPU) has no native bf16 (no avx512_bf16/amx_bf16 flag), where bf16 is slow",
        "levers": [],  # the CPU lever check is off in tests (conftest); tests/test_accel.py covers it
        "levers_reason": "no levers: SAM2WEB_LEVERS=off",
        "model": "tiny",
        "image_size": 256,
        "random_weights": True,
        "checkpoint": None,
    }
    assert not any(p.requires_grad for p in predictor.parameters())
    assert "RANDOM" in model.RANDOM_WEIGHTS_WARNING


@pytest.mark.parametrize(
    "content, pattern",
    [
        (b"", "is empty"),
        (b"hello, this is text, not weights\n" * 10, "not a PyTorch checkpoint"),
        (b"\x89PNG\r\n\x1a\n" + bytes(200), "not a PyTorch checkpoint"),
    ],
)
def test_files_that_are_not_checkpoints(tmp_path, content, pattern):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=pattern):
        model.load_predictor("tiny", checkpoint=path, device="cpu")


def test_truncated_checkpoint(tmp_path):
    full = tmp_path / "full.pt"
    torch.save({"model": {"w": torch.zeros(1000)}}, full)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or corrupted"):
        model.verify_checkpoint(cut, "tiny")


def test_unreadable_checkpoint(tmp_path):
    # A folder where the file should be: unreadable as a file even for root (tests may run as
    # root, where permission bits do not stop reading).
    (tmp_path / "ck" / "sam2.1_hiera_tiny.pt").mkdir(parents=True)
    with pytest.raises(UserError, match="Cannot read checkpoint"):
        model.load_predictor("tiny", checkpoint=tmp_path / "ck", device="cpu")


def test_torch_file_without_model_weights(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state": {"w": torch.zeros(2)}}, path)
    with pytest.raises(UserError, match="not a SAM2 checkpoint"):
        model.verify_checkpoint(path, "tiny")


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": Path("x")}, path)  # needs full unpickling
    with pytest.raises(UserError, match="refuses to load for safety"):
        model.verify_checkpoint(path, "tiny")


def test_wrong_model_size_names_the_right_one(tiny_ckpt):
    with pytest.raises(UserError, match="holds the SAM2.1 tiny model, not small"):
        model.load_predictor("small", checkpoint=tiny_ckpt, device="cpu")


def test_wrong_shapes_are_refused(tmp_path, tiny_ckpt):
    sd = torch.load(tiny_ckpt, weights_only=True)["model"]
    key = next(iter(sd))
    sd[key] = torch.zeros(3)
    path = tmp_path / "bad.pt"
    torch.save({"model": sd}, path)
    with pytest.raises(UserError, match="has shape"):
        model.verify_checkpoint(path, "tiny")


def test_real_checkpoint_loads_with_strict_keys(tiny_ckpt, monkeypatch):
    monkeypatch.setenv(model.ENV_RANDOM, "1")  # an explicit checkpoint still wins
    predictor = model.load_predictor("tiny", checkpoint=tiny_ckpt, device="cpu", image_size=256)
    info = model.describe(predictor)
    assert info["random_weights"] is False and info["checkpoint"] == str(tiny_ckpt)
    sd = torch.load(tiny_ckpt, weights_only=True)["model"]
    key = "image_encoder.trunk.blocks.0.attn.qkv.weight"
    assert torch.equal(predictor.state_dict()[key], sd[key])


def test_download_verifies_then_renames(tmp_path, tiny_ckpt, monkeypatch):
    data = tiny_ckpt.read_bytes()
    monkeypatch.setattr(model, "_open_url", lambda url, timeout=30.0: FakeResponse(data))
    seen = []
    dest = tmp_path / "dl"
    path = model.download_checkpoint("tiny", progress=lambda d, t: seen.append((d, t)), dest_dir=dest)
    assert path == dest / "sam2.1_hiera_tiny.pt" and path.read_bytes() == data
    assert sorted(p.name for p in dest.iterdir()) == ["sam2.1_hiera_tiny.pt"]
    assert seen[-1] == (len(data), len(data))


@pytest.mark.parametrize(
    "response, exc, pattern",
    [
        (lambda: FakeResponse(b"PK\x03\x04" + bytes(500), length=2000), UserError, "stopped after 504"),
        (lambda: FakeResponse(b"x" * 5000, fail_after=3000, exc=ConnectionResetError("reset")), UserError, "reset"),
        (lambda: FakeResponse(b"x" * 5000, fail_after=3000, exc=KeyboardInterrupt()), KeyboardInterrupt, None),
        (lambda: FakeResponse(b"garbage" * 100), UserError, "not a PyTorch checkpoint"),
    ],
)
def test_failed_downloads_leave_no_file(tmp_path, monkeypatch, response, exc, pattern):
    monkeypatch.setattr(model, "_open_url", lambda url, timeout=30.0: response())
    dest = tmp_path / "dl"
    with pytest.raises(exc, match=pattern):
        model.download_checkpoint("tiny", dest_dir=dest)
    assert list(dest.iterdir()) == []


def test_unreachable_url_is_a_user_error(tmp_path):
    dest = tmp_path / "dl"
    with pytest.raises(UserError, match="could not be downloaded"):
        model.download_checkpoint("small", dest_dir=dest)
    assert list(dest.iterdir()) == []


def test_pick_device_and_precision():
    auto = model.pick_device("auto")
    assert auto in ("cuda", "mps", "cpu")
    assert model.pick_device("cpu") == "cpu"
    with pytest.raises(UserError, match="Unknown device 'tpu'"):
        model.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            model.pick_device("cuda")
    if not (torch.backends.mps.is_available()):
        with pytest.raises(UserError, match="MPS is not available"):
            model.pick_device("mps")
    assert model.pick_precision("cuda") == "bf16"
    assert model.pick_precision("cpu", "fp32") == "fp32"  # auto on a CPU: see test_precision.py
    assert model.pick_precision("cpu", "bf16") == "bf16"
    with pytest.raises(UserError, match="Unknown precision"):
        model.pick_precision("cpu", "fp8")


@pytest.mark.parametrize("size", [100, 4096, 500])
def test_bad_image_sizes(size, monkeypatch):
    with pytest.raises(UserError, match="multiple of 32"):
        model.check_image_size(size)
    monkeypatch.setenv(model.ENV_IMAGE_SIZE, "big")
    with pytest.raises(UserError, match="SAM2WEB_IMAGE_SIZE"):
        model.default_image_size()


def test_inference_context_autocasts_only_for_bf16(monkeypatch):
    from tests.engine_helpers import tiny_predictor

    fp32 = tiny_predictor(128)
    with model.inference_context(fp32):
        assert not torch.is_autocast_enabled("cpu")
    bf16 = tiny_predictor(128, "bf16")
    with model.inference_context(bf16):
        assert torch.is_autocast_enabled("cpu")


# ----------------------------------------------------------------------------- patches


def test_memory_attention_patch_fixes_the_bf16_float_mismatch():
    from sam2.modeling.memory_attention import MemoryAttention

    from tests.engine_helpers import tiny_predictor

    att = tiny_predictor(128).memory_attention
    curr = [torch.randn(8 * 8, 1, 256)]
    pos = [torch.randn(8 * 8, 1, 256)]
    memory = torch.randn(8 * 8, 1, 64).to(torch.bfloat16)  # as SAM2 stores memories
    memory_pos = torch.randn(8 * 8, 1, 64)
    with torch.inference_mode():
        out = att(curr=curr, curr_pos=pos, memory=memory, memory_pos=memory_pos)
        assert out.dtype == torch.float32 and out.shape == (64, 1, 256)
        original = MemoryAttention.forward._sam2web_original
        with pytest.raises(RuntimeError, match="dtype"):
            original(att, curr=curr, curr_pos=pos, memory=memory, memory_pos=memory_pos)


def test_patches_are_idempotent():
    from sam2.modeling.memory_attention import MemoryAttention

    from sam2web.tracking import sam2_patches

    sam2_patches.apply()
    first = MemoryAttention.forward
    sam2_patches._APPLIED = False
    sam2_patches.apply()
    assert MemoryAttention.forward is first


def test_hole_filling_works_without_the_compiled_extension():
    import sam2.utils.misc as misc

    from sam2web.tracking import sam2_patches

    sam2_patches.apply()
    if sam2_patches.has_compiled_extension():
        pytest.skip("sam2._C is present: SAM2's own kernel fills holes")
    scores = torch.full((2, 1, 12, 16), 5.0)
    scores[0, 0, 4:6, 4:6] = -3.0  # a 4-pixel hole: filled (<= 8)
    scores[1, 0, 2:6, 2:6] = -3.0  # a 16-pixel hole: kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the "skipping post-processing" warning would fail here
        out = misc.fill_holes_in_mask_scores(scores, 8)
    assert (out[0] > 0).all()
    assert (out[1, 0, 2:6, 2:6] < 0).all()


def test_connected_components_match_the_kernel_contract():
    from sam2web.tracking.sam2_patches import connected_components_cv2

    mask = torch.zeros(1, 1, 6, 7, dtype=torch.bool)
    mask[0, 0, 0:2, 0:2] = True  # area 4
    mask[0, 0, 2, 2] = True  # touches diagonally: same 8-connected component -> area 5
    mask[0, 0, 5, 6] = True  # alone: area 1
    labels, counts = connected_components_cv2(mask)
    assert labels.shape == counts.shape == mask.shape
    c = counts[0, 0].numpy()
    assert c[0, 0] == 5 and c[2, 2] == 5 and c[5, 6] == 1 and c[3, 3] == 0
    lab = labels[0, 0].numpy()
    assert lab[0, 0] == lab[2, 2] != lab[5, 6] and lab[3, 3] == 0
    assert np.count_nonzero(lab) == 6
