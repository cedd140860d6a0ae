"""SAM2 model registry, checkpoint lookup/download/verification, device and precision, CPU fixes.

The surface other modules use:
    MODELS: dict size -> (config name, checkpoint file name); DEFAULT_MODEL = "small"
    find_checkpoint(size, explicit=None) -> Path | None
    download_checkpoint(size, progress=None, dest_dir=None) -> Path
    verify_checkpoint(path, size) -> dict   (the state dict; UserError when it is not usable)
    pick_device(name="auto") -> str
    load_predictor(size="small", checkpoint=None, device="auto", image_size=None, precision="auto",
                   download=False, progress=None) -> Predictor   (sam2web.tracking.predictor's subclass)
        (UserError with what to do when no checkpoint; SAM2WEB_RANDOM_WEIGHTS=1 -> random weights)
        precision "auto": see precision_choice (may run a one-off micro-benchmark, then cached)
    pick_precision(device, precision="auto", model_key=None) -> str; precision_choice(...) -> Choice
    describe(predictor) -> dict(device, precision, precision_reason, model, image_size, random_weights,
                                checkpoint)
    inference_context(predictor) -> context manager (autocast where the precision asks for it)

Why it is shaped like this: the app caches one predictor per (size, device, image size,
precision) and shares it between runs, so the predictor holds no per-run state (that lives in
the inference state its ``init_state`` builds). The model is ``sam2web.tracking.predictor``'s
``SAM2VideoPredictor`` subclass, selected by the hydra ``_target_`` override in ``_overrides``.
Precision ``auto`` is decided by ``sam2web.tracking.precision`` (CPU flags + a cached one-off
micro-benchmark). torch and sam2 are imported lazily so that the rest of sam2web works without
them.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from sam2web import params
from sam2web.config import settings
from sam2web.errors import UserError
from sam2web.trackers import TRACKERS

# Config and checkpoint file of each SAM2.1 size: the "sam2.1" entry of the tracker registry.
# Official SHA-256 digests are not published next to the files; verification is by loading the
# file as the model's state dict with strict keys (see verify_checkpoint).
_FAMILY = TRACKERS.get("sam2.1")
MODELS: dict[str, tuple[str, str]] = {m: (_FAMILY.configs[m], _FAMILY.checkpoints[m]) for m in _FAMILY.models}
DEFAULT_MODEL = params.default("model")
DOWNLOAD_BASE = _FAMILY.download_base
DEVICES = params.DEVICES
PRECISIONS = params.PRECISIONS
ENV_CHECKPOINTS = "SAM2WEB_CHECKPOINTS"
ENV_RANDOM = "SAM2WEB_RANDOM_WEIGHTS"
ENV_IMAGE_SIZE = "SAM2WEB_IMAGE_SIZE"
RANDOM_WEIGHTS_WARNING = (
    "WARNING: SAM2 runs with RANDOM weights (SAM2WEB_RANDOM_WEIGHTS=1); "
    "the masks are meaningless and only exercise the plumbing."
)
# Number of Hiera trunk blocks per size: how a checkpoint of the wrong size is recognised.
_TRUNK_BLOCKS = {12: "tiny", 16: "small", 24: "base_plus", 48: "large"}

ProgressFn = Callable[[int, int], None]


# ----------------------------------------------------------------------------- checkpoints


def check_size(size: str) -> str:
    if size not in MODELS:
        raise UserError(f"Unknown model '{size}'; choose one of {', '.join(MODELS)}.")
    return size


def user_cache_dir() -> Path:
    """Per-user folder where downloaded checkpoints live (XDG_CACHE_HOME or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sam2web" / "checkpoints"


def checkpoint_dirs() -> list[Path]:
    """Folders searched for ``sam2.1_hiera_<size>.pt``, in order (after an explicit path)."""
    dirs = []
    folder = settings().checkpoints_dir
    if folder is not None:
        dirs.append(folder)
    dirs.append(user_cache_dir())
    return dirs


def download_dir() -> Path:
    """Where a download goes: the SAM2WEB_CHECKPOINTS folder when set, else the user cache."""
    return checkpoint_dirs()[0]


def find_checkpoint(size: str, explicit: str | Path | None = None) -> Path | None:
    """The checkpoint file to use, or None when it must be downloaded.

    Order: ``explicit`` (a file, or a folder holding the standard file name), then the folder in
    the environment variable SAM2WEB_CHECKPOINTS, then the per-user cache folder. An explicit
    path that does not exist is the user's mistake, so it raises instead of falling through.
    """
    _, file_name = MODELS[check_size(size)]
    if explicit is not None and str(explicit) != "":
        path = Path(explicit).expanduser()
        if path.is_dir():
            path = path / file_name
        if not path.exists():
            raise UserError(
                f"Checkpoint file {path} does not exist; check the path given with --checkpoint (or the path field)."
            )
        return path
    for folder in checkpoint_dirs():
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    return None


def missing_checkpoint_message(size: str, reason: str = "") -> str:
    """One sentence: which file to put where (used by the CLI, the app and failed downloads)."""
    _, file_name = MODELS[size]
    state = f"could not be downloaded ({reason})" if reason else "is not on this machine"
    return (
        f"The SAM2.1 {size} checkpoint {state}: download {DOWNLOAD_BASE}{file_name} and put "
        f"it at {download_dir() / file_name} (or pass --checkpoint PATH)."
    )


def _open_url(url: str, timeout: float = 30.0):
    """Indirection so tests can replace the network with a fake response."""
    import urllib.request

    return urllib.request.urlopen(url, timeout=timeout)


def download_checkpoint(
    size: str,
    progress: ProgressFn | None = None,
    dest_dir: str | Path | None = None,
    verify: Callable[[Path, str], object] | None = None,
) -> Path:
    """Download the official checkpoint, verify it, and only then give it its final name.

    The bytes go to a hidden temporary file in the target folder (same file system, so the
    final ``os.replace`` is atomic); any failure, including Ctrl-C, removes it, so no partial
    ``.pt`` file can ever be picked up by ``find_checkpoint``. ``progress(done, total)`` is
    called per chunk (total is 0 when the server does not say). ``verify(path, size)`` checks
    the file before it is renamed (default ``verify_checkpoint``, which imports torch: the web
    server passes one that verifies in a worker process).
    """
    _, file_name = MODELS[check_size(size)]
    folder = Path(dest_dir) if dest_dir is not None else download_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"Cannot create the checkpoint folder {folder} ({err.strerror}); set "
            f"{ENV_CHECKPOINTS} to a writable folder."
        ) from None
    final = folder / file_name
    url = DOWNLOAD_BASE + file_name
    fd, tmp_name = tempfile.mkstemp(prefix=f".{file_name}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        try:
            response = _open_url(url)
        except OSError as err:  # URLError, timeouts, DNS failures are all OSErrors
            raise UserError(missing_checkpoint_message(size, _reason(err))) from None
        with response, os.fdopen(fd, "wb") as out:
            fd = -1
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while True:
                try:
                    chunk = response.read(1 << 20)
                except OSError as err:
                    raise UserError(missing_checkpoint_message(size, _reason(err))) from None
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        if total and done != total:
            raise UserError(missing_checkpoint_message(size, f"the download stopped after {done} of {total} bytes"))
        (verify or verify_checkpoint)(tmp, size)
        os.replace(tmp, final)
        return final
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp.exists():
            tmp.unlink()


def _reason(err: BaseException) -> str:
    inner = getattr(err, "reason", None)
    return str(inner if inner is not None else err) or type(err).__name__


def _load_state_dict(path: Path) -> dict:
    """``torch.load(weights_only=True)`` with every failure turned into a sentence."""
    import torch

    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as err:
        raise UserError(
            f"Cannot read checkpoint {path} ({err.strerror or err}); check the file "
            f"and its permissions, or pass another --checkpoint PATH."
        ) from None
    if not head:
        raise UserError(f"Checkpoint {path} is empty; delete it and download it again.")
    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad files; all mean "unusable"
        import pickle
        import zipfile

        if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):
            raise UserError(
                f"Checkpoint {path} is truncated or corrupted (an interrupted "
                f"download?); delete it and download it again."
            ) from None
        if isinstance(err, pickle.UnpicklingError) and zipfile.is_zipfile(path):
            raise UserError(
                f"{path} holds Python objects besides weights, which sam2web refuses "
                f"to load for safety; use the official sam2.1_hiera_<size>.pt "
                f"file."
            ) from None
        raise UserError(
            f"{path} is not a PyTorch checkpoint ({type(err).__name__}); use the official sam2.1_hiera_<size>.pt file."
        ) from None
    state = data.get("model") if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise UserError(
            f"{path} is not a SAM2 checkpoint (it has no 'model' weights); use the "
            f"official sam2.1_hiera_<size>.pt file."
        )
    return state


def _guess_size(keys) -> str | None:
    blocks = {int(m.group(1)) for k in keys if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))}
    return _TRUNK_BLOCKS.get(len(blocks)) if blocks else None


def _check_state_dict(state: dict, expected: dict, path: Path, size: str) -> None:
    """Strict keys and shapes against the model's own state dict."""
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    if missing or unexpected:
        other = _guess_size(state.keys())
        if other and other != size:
            raise UserError(
                f"Checkpoint {path} holds the SAM2.1 {other} model, not {size}; "
                f"choose the model '{other}' or use {MODELS[size][1]}."
            )
        raise UserError(
            f"Checkpoint {path} does not match the SAM2.1 {size} model "
            f"({len(missing)} weights missing, {len(unexpected)} unexpected; a SAM2.0 "
            f"file?); use {MODELS[size][1]}."
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise UserError(
                f"Checkpoint {path} does not match the SAM2.1 {size} model (weight "
                f"{key} has shape {tuple(state[key].shape)}); use {MODELS[size][1]}."
            )


def verify_checkpoint(path: str | Path, size: str) -> dict:
    """Load ``path`` and check it is the SAM2.1 ``size`` model's state dict; return it."""
    path = Path(path)
    check_size(size)
    state = _load_state_dict(path)
    model = _build(size, image_size=None, device="cpu")
    _check_state_dict(state, model.state_dict(), path, size)
    return state


# ----------------------------------------------------------------------------- device, precision


def pick_device(name: str = "auto") -> str:
    """``auto``: CUDA, then Apple MPS, then CPU. A forced device must exist."""
    import torch

    name = (name or "auto").lower()
    if name not in DEVICES:
        raise UserError(f"Unknown device '{name}'; choose one of {', '.join(DEVICES)}.")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if name == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if name == "cuda" and not cuda:
        raise UserError(
            "Device 'cuda' was asked for but no CUDA GPU is available to this torch; use --device auto or cpu."
        )
    if name == "mps" and not mps:
        raise UserError("Device 'mps' was asked for but Apple MPS is not available; use --device auto or cpu.")
    return name


def pick_precision(device: str, precision: str = "auto", model_key: str | None = None) -> str:
    """The precision a run on ``device`` uses (see ``precision_choice``; without a model loaded,
    ``auto`` on a bf16-native CPU not yet measured for ``model_key`` reads "auto")."""
    return precision_choice(device, precision, model_key).precision


def precision_choice(device: str, precision: str = "auto", model_key: str | None = None, measure=None):
    """``precision.Choice`` (precision, reason): CUDA bf16 autocast; CPU bf16 only where the CPU
    has native bf16 and a one-off micro-benchmark (``measure``, cached per machine and model)
    finds it faster and within its agreement bound; fp32 elsewhere. UserError for unknown names."""
    from sam2web.tracking import precision as prec_mod

    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise UserError(f"Unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
    return prec_mod.choose(device, precision, model_key or "unknown model", measure=measure)


def model_key(size: str, image_size: int, random_weights: bool) -> str:
    """What the precision check is cached under, besides the machine."""
    return f"{size}@{int(image_size)}" + ("+random" if random_weights else "")


def default_image_size() -> int | None:
    """$SAM2WEB_IMAGE_SIZE (read by sam2web.config), checked like any other image size."""
    return check_image_size(settings().image_size)


def check_image_size(image_size: int | None) -> int | None:
    """SAM2's backbone downsamples by 32 overall, so the input side must be a multiple of 32."""
    if image_size is None:
        return None
    if image_size < 128 or image_size > 2048 or image_size % 32:
        raise UserError(
            f"Image size {image_size} is not usable; choose a multiple of 32 between "
            f"128 and 2048 (1024 is SAM2's own, 512 is ~8x faster on a CPU)."
        )
    return int(image_size)


def random_weights_requested() -> bool:
    return settings().random_weights


# ----------------------------------------------------------------------------- building


def _overrides(image_size: int | None) -> list[str]:
    from sam2web.tracking.predictor import TARGET

    out = [
        # sam2web's subclass of SAM2VideoPredictor (lazy frame sources, feature LRU, batched
        # objects); appended after build_sam2_video_predictor's own _target_, so it wins.
        f"++model._target_={TARGET}",
        # A correction on a frame already tracked becomes a conditioning frame, so the next
        # propagation keeps it instead of overwriting it (the SAM2 default drops it).
        "++model.add_all_frames_to_correct_as_cond=true",
    ]
    if image_size is not None:
        side = image_size // 16
        out += [
            f"++model.image_size={image_size}",
            # Precompute RoPE tables for the real feature size: SAM2 would otherwise rebuild
            # them on the shared module during the first run (per-run state on a shared model).
            f"++model.memory_attention.layer.self_attention.feat_sizes=[{side},{side}]",
            f"++model.memory_attention.layer.cross_attention.feat_sizes=[{side},{side}]",
        ]
    return out


def _build(size: str, image_size: int | None, device: str):
    """Build the video predictor with random (deterministic) weights on ``device``."""
    import torch

    from sam2web.tracking import sam2_patches

    sam2_patches.apply()
    from sam2.build_sam import build_sam2_video_predictor

    config, _ = MODELS[size]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # random weights are the same in every run (tests, demos)
        return build_sam2_video_predictor(
            config, ckpt_path=None, device=device, hydra_overrides_extra=_overrides(image_size)
        )


def _setup_cuda() -> None:
    import torch

    if torch.cuda.get_device_properties(0).major >= 8:
        # TF32 on Ampere or newer, as the worker does.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def load_predictor(
    size: str = DEFAULT_MODEL,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    image_size: int | None = None,
    precision: str = "auto",
    download: bool = False,
    progress: ProgressFn | None = None,
):
    """Build a reusable SAM2.1 video predictor.

    ``image_size`` (or env SAM2WEB_IMAGE_SIZE) runs the model at a reduced input side, e.g. 512
    on a CPU. Random weights only when SAM2WEB_RANDOM_WEIGHTS=1 and no explicit checkpoint is
    given. With ``download=True`` a missing checkpoint is fetched (CLI); otherwise a UserError
    tells the user where to put it (the app offers the download itself).
    """
    size = check_size(size)
    dev = pick_device(device)
    if (precision or "auto").lower() not in PRECISIONS:  # fail before building anything
        raise UserError(f"Unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
    image_size = check_image_size(image_size) if image_size is not None else default_image_size()
    # SAM2WEB_RANDOM_WEIGHTS=1 means "plumbing only": it wins over any cached checkpoint (so
    # tests never depend on what a machine has downloaded), but not over an explicit one.
    random_weights = checkpoint in (None, "") and random_weights_requested()
    path = None if random_weights else find_checkpoint(size, checkpoint)
    if path is None and not random_weights:
        if not download:
            raise UserError(missing_checkpoint_message(size))
        path = download_checkpoint(size, progress=progress)

    state = None if random_weights else _load_state_dict(path)
    predictor = _build(size, image_size, "cpu")
    if state is not None:
        _check_state_dict(state, predictor.state_dict(), path, size)
        predictor.load_state_dict(state, strict=True)
        del state
    if dev == "cuda":
        _setup_cuda()
    predictor = predictor.to(dev).eval()
    for p in predictor.parameters():
        p.requires_grad_(False)
    # Objects batched through memory attention: on a GPU one call per frame beats one per object
    # (launch overhead); on a CPU the per-object calls measured faster (bench.run: 0.96x batched
    # at 5 objects, fp32, one thread), so there SAM2's own per-object loop stays.
    predictor.batch_objects = predictor.batch_objects and dev != "cpu"
    from sam2web.tracking import precision as prec_mod

    choice = precision_choice(
        dev,
        precision,
        model_key(size, predictor.image_size, random_weights),
        measure=lambda: prec_mod.micro_benchmark(predictor),
    )
    predictor.sam2web_info = {
        "device": dev,
        "precision": choice.precision,
        "precision_reason": choice.reason,
        "model": size,
        "image_size": int(predictor.image_size),
        "random_weights": random_weights,
        "checkpoint": None if path is None else str(path),
    }
    return predictor


def describe(predictor) -> dict:
    """What the UI shows about a predictor: device, precision, model, image size, random weights."""
    info = getattr(predictor, "sam2web_info", None)
    if info is not None:
        return dict(info)
    return {
        "device": "cpu",
        "precision": "fp32",
        "precision_reason": "fp32: a stand-in tracker, no model",
        "model": type(predictor).__name__,
        "image_size": getattr(predictor, "image_size", None),
        "random_weights": bool(getattr(predictor, "random_weights", False)),
        "checkpoint": None,
    }


def inference_context(predictor):
    """Autocast for bf16 runs (CUDA by default, CPU when asked); a no-op otherwise."""
    info = describe(predictor)
    if info.get("precision") != "bf16" or not hasattr(predictor, "sam2web_info"):
        return contextlib.nullcontext()
    import torch

    device_type = "cuda" if info["device"] == "cuda" else "mps" if info["device"] == "mps" else "cpu"
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
