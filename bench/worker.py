"""One model measurement in its own process: ``python -m bench.worker KIND [options]``.

Why a process per measurement: peak resident memory (``ru_maxrss``) only ever grows, so each
memory figure needs a fresh process; and the plain SAM2 recipe must run *without* sam2web's
patches (hole filling on CPU, dtype fix), exactly as a user of upstream SAM2 would get it.

Kinds
- ``sam2web``: open the TIFF as a Stack, ``sam2web.tracking.track.track`` (lazy frames), then masks ->
  polygons -> links -> export bytes. Model build excluded from the timing.
- ``pure``: the same predictor object, frames already in memory as normalised tensors (made
  before the clock starts), ``add_new_points_or_box`` + ``propagate_in_video``, no post-processing.
- ``pair``: ``pure`` and ``sam2web`` alternated in one process (same predictor, same frames), for
  the overhead ratio with the least noise.
- ``variants``: the speed-ups on the pure model, one process, same frames, in rounds:
  fp32 one call per object (SAM2's own loop: the reference), fp32 with the objects batched,
  and ``--precision auto`` as this machine chooses it (objects batched as the device's default). Each is
  timed and its logits compared with the reference (cosine, max abs difference, mask IoU).
- ``plain``: the upstream recipe: read frames, write JPEGs to a folder, ``init_state(folder)``,
  add boxes, ``propagate_in_video``, threshold at 0. Model build excluded.
Each run reports wall ``seconds`` and process ``cpu_seconds`` (all threads). With one torch
thread (``--threads 1``) CPU time is the work done, which other users of a shared machine barely
disturb, so ``bench.run`` takes its ratios from it. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def rss_mb(field: str = "VmRSS") -> float:
    """A memory line of /proc/self/status in MB: VmRSS now, VmHWM the peak so far."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class AnonPeak:
    """Samples RssAnon (anonymous memory: heap, tensors) every 20 ms in a daemon thread.

    Why: ``ru_maxrss`` also counts file pages mapped into the process; sam2web memory-maps
    uncompressed TIFFs, so every frame read adds clean, reclaimable page-cache pages to RSS.
    The anonymous peak is the memory a run really holds.
    """

    def __init__(self, interval: float = 0.02):
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True)
        self._thread.start()

    @staticmethod
    def read() -> float:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak = max(self.peak, self.read())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())
        return self.peak


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far.

    Why VmHWM first: the kernel folds the current RSS into it when it is read, while
    ``ru_maxrss`` is updated lazily and can lag behind a VmRSS read just before it.
    """
    hwm = rss_mb("VmHWM")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KB
    return maxrss if hwm != hwm else max(hwm, maxrss)


# ----------------------------------------------------------------------------- sam2web


def sam2web_predictor(image_size: int, precision: str = "fp32"):
    os.environ["SAM2WEB_RANDOM_WEIGHTS"] = "1"
    from sam2web.tracking import model

    return model.load_predictor("tiny", device="cpu", image_size=image_size, precision=precision)


def run_sam2web(
    predictor,
    tiff: Path,
    n_frames: int,
    n_objects: int,
    boxes: list,
    masks_out: dict | None = None,
    feature_cache_mb: float | None = None,
) -> dict:
    """End to end, from the file on disk to the four export files (bytes)."""
    from sam2web.export import export_bytes
    from sam2web.geometry import annotations_from_result
    from sam2web.links import connect
    from sam2web.selection import build_sequences
    from sam2web.stack import open_stack
    from sam2web.stack.display import DisplaySettings
    from sam2web.tracking.track import TrackSession, track
    from sam2web.types import Location, Prompt

    c0, t0 = time.process_time(), time.perf_counter()
    stack = open_stack(tiff, pages_as="time", cache_bytes=0)
    display = DisplaySettings.default(stack)
    seqs = build_sequences([0], range(n_frames), [0], "time", "forward")
    prompts = [
        Prompt(obj_id=i, loc=Location(0, 0, 0), box=tuple(b), tags=["cell"]) for i, b in enumerate(boxes[:n_objects])
    ]
    t_model0 = time.perf_counter()
    session = None
    if feature_cache_mb is not None:  # the engine's default LRU budget unless asked otherwise
        session = TrackSession(stack, seqs, predictor, display, "forward", feature_cache_mb=feature_cache_mb)
    result = track(stack, seqs, prompts, predictor, display, session=session)
    t_model1 = time.perf_counter()
    anns = annotations_from_result(result, padding=0.0, smoothing=0.3)
    links = connect(anns)
    files = export_bytes(anns, links, random_weights=result.random_weights)
    t1 = time.perf_counter()
    stack.close()
    if masks_out is not None:
        for (obj, loc), cm in result.masks.items():
            masks_out[f"{obj}_{loc.time}"] = cm.to_mask()
    return {
        "seconds": t1 - t0,
        "cpu_seconds": time.process_time() - c0,
        "track_seconds": t_model1 - t_model0,
        "post_seconds": t1 - t_model1,
        "n_masks": len(result.masks),
        "n_polygons": len(anns),
        "export_bytes": sum(len(b) for b in files.values()),
    }


# ----------------------------------------------------------------------------- pure model


class _Tensors:
    """A stack of preprocessed frames with the attributes a SAM2 state needs (a frame source)."""

    sam2web_frame_source = True

    def __init__(self, tensors, height: int, width: int):
        self.t = tensors
        self.height, self.width = height, width

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def __getitem__(self, i):
        return self.t[i]


def preprocess(frames: np.ndarray, image_size: int):
    """uint8 (T, H, W) -> float tensor (T, 3, S, S), exactly sam2web's model input."""
    import torch

    from sam2web.tracking.track import to_model_input

    return torch.stack([to_model_input(np.repeat(f[:, :, None], 3, axis=2), image_size) for f in frames])


def _state(predictor, frames: _Tensors) -> dict:
    """SAM2's own ``init_state`` given the in-memory frames (sam2web's patch lets any SAM2 video
    predictor take a frame source; sam2web's subclass also skips the frame-0 warm-up)."""
    from sam2web.tracking import sam2_patches

    sam2_patches.patch_frame_sources()
    return predictor.init_state(frames)


def run_pure(predictor, tensors: _Tensors, n_objects: int, boxes: list, autocast: bool = False) -> dict:
    """Only the model: prompts + propagate over in-memory tensors; outputs are not even read."""
    import contextlib

    import torch

    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    c0, t0 = time.process_time(), time.perf_counter()
    with ctx:
        state = _state(predictor, tensors)
        for i, b in enumerate(boxes[:n_objects]):
            predictor.add_new_points_or_box(state, frame_idx=0, obj_id=i, box=np.asarray(b, np.float32))
        n = 0
        for _ in predictor.propagate_in_video(state):
            n += 1
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "frames": n}


def run_variant(predictor, tensors: _Tensors, n_objects: int, boxes: list, bf16: bool, batched: bool) -> dict:
    """``run_pure`` with the objects batched or not; keeps the logits of every frame."""
    import contextlib

    import torch

    old = predictor.batch_objects
    predictor.batch_objects = batched
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    logits = []
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        with ctx:
            state = _state(predictor, tensors)
            for i, b in enumerate(boxes[:n_objects]):
                predictor.add_new_points_or_box(state, frame_idx=0, obj_id=i, box=np.asarray(b, np.float32))
            for _, _, m in predictor.propagate_in_video(state):
                logits.append(m.float())
        res = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "frames": len(logits)}
    finally:
        predictor.batch_objects = old
    import torch

    res["logits"] = torch.stack(logits)
    return res


def run_stock(predictor, tensors: _Tensors, n_objects: int, boxes: list) -> dict:
    """SAM2's own ``SAM2VideoPredictor`` in fp32 eager on the same frames; keeps the logits."""
    import torch

    logits = []
    c0, t0 = time.process_time(), time.perf_counter()
    state = _state(predictor, tensors)
    for i, b in enumerate(boxes[:n_objects]):
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=i, box=np.asarray(b, np.float32))
    for _, _, m in predictor.propagate_in_video(state):
        logits.append(m.float())
    res = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "frames": len(logits)}
    res["logits"] = torch.stack(logits)
    return res


def _clock() -> float:
    """Process CPU seconds with one torch thread (the stable clock on a shared machine), else wall."""
    import torch

    return time.process_time() if torch.get_num_threads() == 1 else time.perf_counter()


def auto_predictor(image_size: int) -> tuple:
    """sam2web's predictor as ``--precision auto`` builds it on this machine (precision and CPU
    levers from the one-off check), in a fresh check cache: (predictor, first build s, second s).

    The second build reads the cache: what every later run pays (the build alone, nothing else)."""
    import torch

    from sam2web.tracking import model

    old = os.environ.get("XDG_CACHE_HOME")
    with tempfile.TemporaryDirectory(prefix="bench-check-") as cache:
        os.environ["XDG_CACHE_HOME"] = cache
        try:
            builds = []
            for _ in range(2):
                t0 = _clock()
                predictor = model.load_predictor("tiny", device="cpu", image_size=image_size, precision="auto")
                builds.append(_clock() - t0)
        finally:
            if old is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = old
    del torch
    return predictor, builds[0], builds[1]


def encoder_share(predictor) -> dict:
    """The image encoder's achieved FLOP/s under ``predictor``'s precision and levers, as a share of
    a 2048^2 matmul in its compute dtype, both measured here (``bench.cpu_profile``)."""
    import statistics

    import torch

    from bench import cpu_profile
    from sam2web.tracking import model

    info = model.describe(predictor)
    bf16 = info["precision"] in ("bf16", "bf16-weights")
    side = int(predictor.image_size)
    image = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))

    def call():
        with model.inference_context(predictor):
            return predictor.forward_image(image)

    flops = cpu_profile.count_flops(call)
    call()
    seconds = statistics.median(cpu_profile.timed(call) for _ in range(3))
    rate = cpu_profile.matmul_rate(torch.bfloat16 if bf16 else torch.float32)
    return {
        "gflop": flops / 1e9,
        "seconds": seconds,
        "matmul_dtype": "bf16" if bf16 else "fp32",
        "matmul_tflops": rate / 1e12,
        "share": flops / seconds / rate,
    }


def variants(
    predictor, tensors: _Tensors, n_objects: int, boxes: list, repeats: int, stock=None, auto=None, stock_repeats=None
) -> dict:
    """Reference (fp32 per object), fp32 batched, auto (batched): times and agreement.

    With ``stock`` (SAM2's own predictor) and ``auto`` (sam2web's auto predictor with its CPU
    levers) they are alternated in the same rounds: the speed-up over stock fp32."""
    from sam2web.tracking import model, precision

    info = model.describe(predictor)
    choice = model.precision_choice(
        "cpu",
        "auto",
        model.model_key("tiny", predictor.image_size, info.get("random_weights", True)),
        measure=lambda: precision.micro_benchmark(predictor),
    )
    default_batched = bool(predictor.batch_objects)  # what load_predictor chose for this device
    plan = {
        "fp32_per_object": (False, False),
        "fp32_batched": (False, True),
        "auto": (choice.precision == "bf16", default_batched),
    }
    if n_objects == 1:
        del plan["fp32_batched"]  # one object: nothing to batch
    extra = {}
    if stock is not None:
        extra["stock_fp32"] = lambda: run_stock(stock, tensors, n_objects, boxes)
    if auto is not None:
        extra["auto_levers"] = lambda: _run_auto(auto, tensors, n_objects, boxes)
    runs: dict[str, list] = {k: [] for k in [*plan, *extra]}
    logits: dict = {}
    for r in range(repeats):  # interleaved: the machine is shared and noisy
        for name, (bf16, batched) in plan.items():
            res = run_variant(predictor, tensors, n_objects, boxes, bf16, batched)
            logits[name] = res.pop("logits")
            runs[name].append(res)
        for name, fn in extra.items() if r < (repeats if stock_repeats is None else stock_repeats) else ():
            res = fn()
            logits[name] = res.pop("logits")
            runs[name].append(res)
    ref = logits["fp32_per_object"]
    agreement = {name: precision.agreement(ref, logits[name]) for name in runs if name != "fp32_per_object"}
    out = {
        "runs": runs,
        "agreement": agreement,
        "auto_precision": choice.precision,
        "auto_reason": choice.reason,
        "default_batched": default_batched,
    }
    if auto is not None:
        info = model.describe(auto)
        out["auto_levers"] = {k: info.get(k) for k in ("precision", "levers", "levers_reason")}
    return out


def _run_auto(predictor, tensors: _Tensors, n_objects: int, boxes: list) -> dict:
    """The auto predictor as a run would use it (its precision's inference context)."""
    from sam2web.tracking import model

    with model.inference_context(predictor):
        return run_variant(predictor, tensors, n_objects, boxes, False, bool(predictor.batch_objects))


# ----------------------------------------------------------------------------- plain recipe


def plain_predictor(image_size: int):
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    return build_sam2_video_predictor(
        CONFIG, ckpt_path=None, device="cpu", hydra_overrides_extra=[f"++model.image_size={image_size}"]
    )


def run_plain(predictor, tiff: Path, n_frames: int, n_objects: int, boxes: list) -> dict:
    """The recipe of SAM2's README/notebook, with frames coming from the same TIFF file."""
    import tifffile
    from PIL import Image

    c0, t0 = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-jpeg-") as folder:
        with tifffile.TiffFile(tiff) as tf:
            for i in range(n_frames):
                gray = tf.pages[i].asarray()
                Image.fromarray(gray).convert("RGB").save(Path(folder) / f"{i:05d}.jpg", quality=95)
        state = predictor.init_state(folder)
        for i, b in enumerate(boxes[:n_objects]):
            predictor.add_new_points_or_box(state, frame_idx=0, obj_id=i, box=np.asarray(b, np.float32))
        masks = {}
        for f, obj_ids, logits in predictor.propagate_in_video(state):
            masks[f] = (logits > 0.0).cpu().numpy()
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "frames": len(masks)}


# ----------------------------------------------------------------------------- main


def _write_profile(profiler, path: Path, top: int = 30) -> None:
    import io
    import pstats

    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(top)
    path.write_text(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["sam2web", "pure", "pair", "plain", "variants"])
    ap.add_argument("--tiff", type=Path, required=True)
    ap.add_argument("--frames", type=int, required=True)
    ap.add_argument("--objects", type=int, default=1)
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--dump", type=Path, help="save sam2web's masks (npz) for IoU comparisons")
    ap.add_argument(
        "--warmup", action="store_true", help="one untimed 2-frame run first (first-call allocations, kernel choice)"
    )
    ap.add_argument(
        "--feature-cache-mb",
        type=float,
        default=None,
        help="sam2web's backbone-feature LRU budget (default: the engine's)",
    )
    ap.add_argument("--profile", type=Path, help="cProfile the first sam2web run; top lines here")
    ap.add_argument(
        "--vs-stock",
        action="store_true",
        help="variants: also SAM2's own predictor (fp32 eager) and sam2web's auto predictor with its CPU levers",
    )
    ap.add_argument("--stock-repeats", type=int, default=None, help="rounds with the --vs-stock pair (default all)")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import tifffile

    from bench.data import boxes as make_boxes

    with tifffile.TiffFile(args.tiff) as tf:
        side = tf.pages[0].shape[0]
    boxes = make_boxes(args.objects, side)
    out: dict = {
        "kind": args.kind,
        "frames": args.frames,
        "objects": args.objects,
        "image_size": args.image_size,
        "precision": args.precision,
        "threads": torch.get_num_threads(),
    }
    anon = AnonPeak()
    t_build = time.perf_counter()
    if args.kind == "plain":
        predictor = plain_predictor(args.image_size)
    else:
        predictor = sam2web_predictor(args.image_size, args.precision)
    out["build_seconds"] = time.perf_counter() - t_build
    tensors = None
    if args.kind in ("pure", "pair", "variants"):
        frames = tifffile.imread(args.tiff, key=range(args.frames))
        tensors = _Tensors(preprocess(frames, args.image_size), side, side)
        del frames
    out["rss_before_mb"] = rss_mb()
    if args.warmup:
        if args.kind in ("pure", "pair"):
            run_pure(
                predictor, _Tensors(tensors.t[:2], side, side), args.objects, boxes, autocast=args.precision == "bf16"
            )
        if args.kind in ("sam2web", "pair"):
            run_sam2web(predictor, args.tiff, 2, args.objects, boxes)
        if args.kind == "plain":
            run_plain(predictor, args.tiff, 2, args.objects, boxes)
    if args.kind == "variants":
        stock = auto = None
        if args.vs_stock:
            stock = plain_predictor(args.image_size)
            auto, out["auto_first_build_s"], out["auto_later_build_s"] = auto_predictor(args.image_size)
            if args.objects == 1:  # one encoder per frame whatever the objects: measured once
                out["encoder_share"] = encoder_share(auto)
        if args.warmup:
            variants(predictor, _Tensors(tensors.t[:2], side, side), args.objects, boxes, 1, stock, auto)
        out.update(variants(predictor, tensors, args.objects, boxes, args.repeats, stock, auto, args.stock_repeats))
        out["peak_rss_mb"] = peak_rss_mb()
        out["peak_anon_rss_mb"] = anon.stop()
        print(json.dumps(out))
        return 0
    runs: dict[str, list] = {}
    masks: dict = {}
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    for r in range(args.repeats):
        if args.kind in ("pure", "pair"):
            runs.setdefault("pure", []).append(
                run_pure(predictor, tensors, args.objects, boxes, autocast=args.precision == "bf16")
            )
        if args.kind in ("sam2web", "pair"):
            if profiler is not None and r == 0:
                profiler.enable()
            runs.setdefault("sam2web", []).append(
                run_sam2web(
                    predictor,
                    args.tiff,
                    args.frames,
                    args.objects,
                    boxes,
                    masks if (args.dump and r == 0) else None,
                    args.feature_cache_mb,
                )
            )
            if profiler is not None and r == 0:
                profiler.disable()
                _write_profile(profiler, args.profile)
        if args.kind == "plain":
            runs.setdefault("plain", []).append(run_plain(predictor, args.tiff, args.frames, args.objects, boxes))
    if args.dump and masks:
        np.savez_compressed(args.dump, **masks)
    out["runs"] = runs
    out["peak_rss_mb"] = peak_rss_mb()
    out["peak_anon_rss_mb"] = anon.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
