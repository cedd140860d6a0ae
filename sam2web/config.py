"""Every ``SAM2WEB_*`` environment variable, read in this one module into a frozen ``Settings``.

Why one place: a variable parsed in two modules with two rules once made ``SAM2WEB_RANDOM_WEIGHTS=true``
load random weights while the run was recorded as real. ``settings()`` re-reads the environment only when
it changed (tests set variables per test; a server reads them once), and every yes/no variable goes through
``truthy``.

| Variable | Default | Meaning |
|---|---|---|
| SAM2WEB_DATA | ~/.sam2web | the data folder: workspaces database, uploaded files, run masks |
| SAM2WEB_CHECKPOINTS | (none) | a folder holding sam2.1_hiera_<size>.pt files |
| SAM2WEB_IMAGE_SIZE | model's own (1024) | default model input side, a multiple of 32 |
| SAM2WEB_CACHE_MB | 1024 | one byte budget for the process's caches (decoded frames, rendered frames, models) |
| SAM2WEB_FRAME_CACHE_MB | (from CACHE_MB) | the decoded-frame part of that budget (half of it by default) |
| SAM2WEB_RANDOM_WEIGHTS | off | random model weights, for tests and plumbing demos only |
| SAM2WEB_STANDIN | off | a stand-in tracker instead of SAM2 (tests): 1, slow:SECONDS per frame, oracle:LABELS |
| SAM2WEB_CPU_WORKERS | 0 (auto) | worker processes sharing a CPU (0: one per two cores); a run's sequences are dealt out |
| SAM2WEB_EXECUTOR | local | where runs execute: ``local`` (a worker process per device), ``ray`` (a Ray cluster) or ``inline`` (tests) |
| SAM2WEB_RAY_ADDRESS | (none) | the Ray cluster: ``auto`` (this node's), ``host:6379``, ``ray://host:10001``; blank starts a private one here |
| SAM2WEB_RAY_NAMESPACE | sam2web | the Ray namespace of the workers |
| SAM2WEB_RAY_WORKERS | 0 | how many worker actors; 0: as many as the cluster's resources fit |
| SAM2WEB_RAY_RESOURCES | {"CPU": 1} | each worker's resources, JSON: ``{"GPU": 1}``, ``{"CPU": 4}``, custom ones too |
| SAM2WEB_RAY_OBJECT_STORE_MB | 256 | object-store size of a private cluster started here (frames never go through it) |
| SAM2WEB_RAY_TOKEN_FILE | (Ray's ~/.ray/auth_token) | the cluster's auth token file (``RAY_AUTH_TOKEN`` works too); auth is always on |
| SAM2WEB_RAY_DATA_DIR | (SAM2WEB_DATA) | the data folder as the workers see it (a shared mount at another path) |
| SAM2WEB_RAY_RETRIES | 3 | restarts of a dead worker and re-runs of its sequence before the run is interrupted |
| SAM2WEB_SERVER_FOLDERS | (none) | absolute folders (os.pathsep-separated) whose files the Dataset page opens in place |
| SAM2WEB_MAX_FRAME_MPIX | 64 | the pixel budget: frames larger than this many megapixels are refused from the header |
| SAM2WEB_MAX_DATA_GB | 0 (no limit) | the data folder's size limit: uploads and new runs are refused with a sentence above it |
| SAM2WEB_MAX_WORKSPACE_GB | 0 (no limit) | the same limit per workspace (its files and its runs' masks) |
| SAM2WEB_ADMINS | (none) | with sign-in on: OIDC subs or e-mail addresses (comma-separated) that see every workspace |
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from sam2web.errors import UserError

PREFIX = "SAM2WEB_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def truthy(value: str | None, name: str = "") -> bool:
    """The one yes/no parser: 1/true/yes/on and 0/false/no/off (any case); anything else is a UserError."""
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UserError(f"{name or 'A yes/no setting'}={value!r} is not understood; use 1 or 0 (true/false).")


def _number(env: dict[str, str], name: str, default: float | None, kind=float) -> float | None:
    raw = env.get(PREFIX + name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise UserError(f"{PREFIX}{name}={raw!r} is not a number; set it to a number or unset it.") from None


def _positive(env: dict[str, str], name: str, default: float) -> float:
    """A finite number above 0 (``nan``, ``inf``, ``-1`` and ``0`` are refused with a sentence)."""
    value = float(_number(env, name, default) or 0)
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{PREFIX}{name}={env.get(PREFIX + name)!r} must be a number above 0; fix it or unset it.")
    return value


def _limit(env: dict[str, str], name: str) -> float:
    """A size limit in GB: 0 or unset means none; negative or not finite is refused with a sentence."""
    value = float(_number(env, name, 0.0) or 0)
    if not math.isfinite(value) or value < 0:
        raise UserError(f"{PREFIX}{name}={env.get(PREFIX + name)!r} must be 0 (no limit) or a size in GB; fix it.")
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    checkpoints_dir: Path | None
    image_size: int | None
    cache_mb: float
    frame_cache_mb: float
    random_weights: bool
    standin: str  # "" (off), "1" (the drifting stand-in), "slow:SECONDS" (it, slowed per frame), "oracle:PATH"
    executor: str
    cpu_workers: int = 0
    # Raw entries; sam2web.server_files checks them where they are used, so one bad folder is a
    # sentence on the Dataset page rather than a failure of every settings() call.
    server_folders: tuple[str, ...] = ()
    max_frame_mpix: float = 64.0  # frames above this many megapixels are refused before decoding
    max_data_gb: float = 0.0  # 0: no limit on the data folder's size
    max_workspace_gb: float = 0.0  # 0: no limit on one workspace's size
    admins: tuple[str, ...] = ()  # sign-in only: these subs / e-mail addresses list and open every workspace
    # Ray (sam2web.service.ray_executor; docs/scale-out.md)
    ray_address: str = ""
    ray_namespace: str = "sam2web"
    ray_workers: int = 0
    ray_resources: tuple[tuple[str, float], ...] = (("CPU", 1.0),)
    ray_object_store_mb: float = 256.0
    ray_token_file: Path | None = None
    ray_data_dir: Path | None = None
    ray_retries: int = 3

    @property
    def max_frame_pixels(self) -> int:
        return int(self.max_frame_mpix * 1e6)

    @property
    def frame_cache_bytes(self) -> int:
        return int(self.frame_cache_mb * (1 << 20))

    @property
    def render_cache_bytes(self) -> int:
        """Rendered (composited RGB) frames kept by the app: a quarter of the budget."""
        return int(self.cache_mb * (1 << 20) / 4)

    @property
    def session_cache_bytes(self) -> int:
        """Frame embeddings kept by a worker's interactive sessions, all sessions together: a quarter of the budget."""
        return int(self.cache_mb * (1 << 20) / 4)

    @property
    def model_cache_count(self) -> int:
        """Loaded models a worker keeps: a tiny model is ~150 MB, a large one ~900 MB; two fit most budgets."""
        return max(1, int(self.cache_mb // 512))

    def as_env(self) -> dict[str, str]:
        """The variables that reproduce these settings in a child process."""
        env = {k: v for k, v in os.environ.items() if k.startswith(PREFIX)}
        env[PREFIX + "DATA"] = str(self.data_dir)
        return env


def _parse(env: dict[str, str]) -> Settings:
    data = env.get(PREFIX + "DATA", "").strip()
    ckpt = env.get(PREFIX + "CHECKPOINTS", "").strip()
    image_size = _number(env, "IMAGE_SIZE", None, int)
    cache_mb = _positive(env, "CACHE_MB", 1024.0)
    frame_mb = _positive(env, "FRAME_CACHE_MB", cache_mb / 2)
    standin = env.get(PREFIX + "STANDIN", "").strip()
    if standin.startswith("slow:"):
        try:
            delay = float(standin[5:])
        except ValueError:
            delay = math.nan
        if not math.isfinite(delay) or delay < 0:
            raise UserError(f"{PREFIX}STANDIN={standin!r} needs seconds per frame after slow:, e.g. slow:0.5.")
    if standin and not standin.startswith(("oracle:", "slow:")):
        standin = "1" if truthy(standin, PREFIX + "STANDIN") else ""
    executor = env.get(PREFIX + "EXECUTOR", "local").strip().lower() or "local"
    if executor not in ("local", "inline", "ray"):
        raise UserError(f"{PREFIX}EXECUTOR={executor!r} is not known; use local, ray or inline.")
    return Settings(
        data_dir=Path(data or Path.home() / ".sam2web").expanduser(),
        checkpoints_dir=Path(ckpt).expanduser() if ckpt else None,
        image_size=image_size,
        cache_mb=cache_mb,
        frame_cache_mb=frame_mb,
        random_weights=truthy(env.get(PREFIX + "RANDOM_WEIGHTS"), PREFIX + "RANDOM_WEIGHTS"),
        standin=standin,
        executor=executor,
        cpu_workers=max(0, int(_number(env, "CPU_WORKERS", 0, int) or 0)),
        server_folders=tuple(p.strip() for p in env.get(PREFIX + "SERVER_FOLDERS", "").split(os.pathsep) if p.strip()),
        max_frame_mpix=_positive(env, "MAX_FRAME_MPIX", 64.0),
        max_data_gb=_limit(env, "MAX_DATA_GB"),
        max_workspace_gb=_limit(env, "MAX_WORKSPACE_GB"),
        admins=tuple(a.strip() for a in env.get(PREFIX + "ADMINS", "").replace(";", ",").split(",") if a.strip()),
        **_ray(env),
    )


def _ray(env: dict[str, str]) -> dict:
    """The ``SAM2WEB_RAY_*`` variables (read whatever the executor, so a typo is caught early)."""
    import json

    raw = env.get(PREFIX + "RAY_RESOURCES", "").strip()
    resources: tuple[tuple[str, float], ...] = (("CPU", 1.0),)
    if raw:
        try:
            parsed = json.loads(raw)
            if not isinstance(parsed, dict) or not parsed:
                raise ValueError
            resources = tuple(sorted((str(k), float(v)) for k, v in parsed.items()))
        except (ValueError, TypeError):
            raise UserError(
                f'{PREFIX}RAY_RESOURCES={raw!r} is not a JSON object of numbers; write it like {{"GPU": 1}}.'
            ) from None
        if any(v < 0 for _, v in resources):
            raise UserError(f"{PREFIX}RAY_RESOURCES={raw!r} has a negative amount; use 0 or more of each resource.")
    token = env.get(PREFIX + "RAY_TOKEN_FILE", "").strip()
    data = env.get(PREFIX + "RAY_DATA_DIR", "").strip()
    workers = int(_number(env, "RAY_WORKERS", 0, int) or 0)
    retries = int(_number(env, "RAY_RETRIES", 3, int) or 0)
    if workers < 0 or retries < 0:
        raise UserError(f"{PREFIX}RAY_WORKERS and {PREFIX}RAY_RETRIES must be 0 or more; fix the one below 0.")
    return {
        "ray_address": env.get(PREFIX + "RAY_ADDRESS", "").strip(),
        "ray_namespace": env.get(PREFIX + "RAY_NAMESPACE", "").strip() or "sam2web",
        "ray_workers": workers,
        "ray_resources": resources,
        "ray_object_store_mb": float(_number(env, "RAY_OBJECT_STORE_MB", 256.0) or 256.0),
        "ray_token_file": Path(token).expanduser() if token else None,
        "ray_data_dir": Path(data).expanduser() if data else None,
        "ray_retries": retries,
    }


_LOCK = threading.Lock()
_CACHED: tuple[tuple, Settings] | None = None


def settings() -> Settings:
    """The current settings (parsed again only when a SAM2WEB_* variable changed)."""
    global _CACHED
    snapshot = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(PREFIX)))
    with _LOCK:
        if _CACHED is None or _CACHED[0] != snapshot:
            _CACHED = (snapshot, _parse(dict(snapshot)))
        return _CACHED[1]
