"""GPU rows: frames per second per model size in bfloat16 on CUDA, against SAM2's A100 figures.

Only runs where ``torch.cuda.is_available()``; elsewhere ``gpu_rows`` returns a note saying so.
Frames are in GPU memory already (like SAM2's own speed benchmark), 1024 x 1024 input, one
object; ``vos_optimized`` (SAM2VideoPredictorVOS with torch.compile, sam2 >= 1.1.0) is tried
too, its compile time excluded by a warm-up run.
"""

from __future__ import annotations

import time

PUBLISHED_A100_FPS = {"tiny": 91.2, "small": 84.8, "base_plus": 64.1, "large": 39.5}


def _fps(size: str, vos: bool, n_frames: int) -> float:
    import numpy as np
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    from bench.worker import _state, _Tensors
    from sam2web.tracking.model import MODELS, _setup_cuda

    _setup_cuda()
    from sam2web.tracking import sam2_patches

    sam2_patches.patch_frame_sources()  # lets SAM2's init_state take in-memory frames (bench.worker._state)
    predictor = build_sam2_video_predictor(MODELS[size][0], ckpt_path=None, device="cuda", vos_optimized=vos)
    side = predictor.image_size
    frames = _Tensors(torch.randn(n_frames, 3, side, side, device="cuda"), side, side)
    box = np.array([side * 0.4, side * 0.4, side * 0.6, side * 0.6], np.float32)

    def once(n: int) -> float:
        state = _state(predictor, _Tensors(frames.t[:n], side, side))
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=0, box=box)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in predictor.propagate_in_video(state):
            pass
        torch.cuda.synchronize()
        return (n - 1) / (time.perf_counter() - t0)

    with torch.autocast("cuda", dtype=torch.bfloat16):
        once(min(8, n_frames))  # warm-up (and compilation for vos_optimized)
        return once(n_frames)


def gpu_rows(n_frames: int = 100, sizes=("tiny", "small", "base_plus", "large")) -> dict:
    """{size: {"fps_bf16", "fps_bf16_vos", "published_a100"}} or {"note": ...} without CUDA."""
    try:
        import torch
    except ImportError:
        return {"note": "GPU rows need torch with CUDA."}
    if not torch.cuda.is_available():
        return {"note": "GPU rows need CUDA; none here, so they were skipped."}
    out: dict = {"device": torch.cuda.get_device_name(0)}
    for size in sizes:
        row = {"published_a100": PUBLISHED_A100_FPS[size]}
        for vos in (False, True):
            key = "fps_bf16_vos" if vos else "fps_bf16"
            try:
                row[key] = round(_fps(size, vos, n_frames), 1)
            except Exception as err:  # compile may be unsupported; report instead of dying
                row[key] = f"failed: {type(err).__name__}: {str(err)[:80]}"
        out[size] = row
    return out
