"""Two small, idempotent fixes to the installed sam2 1.1.0, applied by ``sam2web.tracking.model``.

Why patches at all: the upstream video predictor was written for CUDA with the compiled
``sam2._C`` extension. On a plain CPU install two things go wrong:

1. **dtype mismatch** (upstream issues #308, #577). SAM2 stores every memory feature as
   bfloat16 (``maskmem_features.to(torch.bfloat16)``) to save GPU memory. When the memory bank
   has no float32 object pointers to promote the concatenation (reverse tracking, objects
   prompted on later frames), the bfloat16 memory meets float32 weights in the memory
   attention's linear layers and propagation crashes with "mat1 and mat2 must have the same
   dtype". Fix: cast the memory (and its positional encoding) to the dtype of the current
   frame's features right at the memory-attention input. Under CUDA/CPU autocast the linear
   layers cast anyway, so results there are unchanged; in fp32 the memory is upcast exactly.

2. **hole filling skipped**. ``fill_holes_in_mask_scores`` needs ``sam2._C`` for connected
   components; without it SAM2 warns and skips the step, so CPU masks differ from GPU masks.
   Fix: when the extension is missing, replace ``sam2.utils.misc.get_connected_components``
   with an OpenCV implementation of the same contract (8-connectivity, per-pixel labels and
   component areas).

A third lets SAM2's own ``init_state`` take a frame source (``sam2web.tracking.track.LazyFrames``,
anything marked ``sam2web_frame_source``) where it expects a JPEG folder: its module-level
``load_video_frames`` returns such a source as is and passes everything else to the original.

A fourth, cosmetic one silences SAM2's own per-propagation tqdm bar (sam2web reports progress
itself). All patches are class/module level (they hold no per-run state), marked so applying twice
is a no-op, and keep the original callables reachable as ``_sam2web_original``.
"""

from __future__ import annotations

import importlib.util

_APPLIED = False


def has_compiled_extension() -> bool:
    """True when sam2 was built with its CUDA/C++ extension ``sam2._C``."""
    try:
        return importlib.util.find_spec("sam2._C") is not None
    except (ImportError, ValueError):
        return False


def connected_components_cv2(mask):
    """Drop-in for ``sam2.utils.misc.get_connected_components`` without ``sam2._C``.

    ``mask`` is a (N, 1, H, W) tensor (bool or 0/1). Returns ``(labels, counts)``, both int32
    tensors of the same shape: the 8-connected component label of each foreground pixel and
    that component's area (0 on background), exactly what the compiled kernel returns.
    """
    import cv2
    import numpy as np
    import torch

    device = mask.device
    arr = mask.detach().to("cpu", torch.uint8).numpy()
    labels = np.zeros(arr.shape, dtype=np.int32)
    counts = np.zeros(arr.shape, dtype=np.int32)
    for i in range(arr.shape[0]):
        img = np.ascontiguousarray(arr[i, 0])
        n, lab, stats, _ = cv2.connectedComponentsWithStats(img, connectivity=8, ltype=cv2.CV_32S)
        areas = stats[:, cv2.CC_STAT_AREA].astype(np.int32)
        areas[0] = 0  # label 0 is background
        labels[i, 0] = lab
        counts[i, 0] = areas[lab]
    return torch.from_numpy(labels).to(device), torch.from_numpy(counts).to(device)


def _patch_memory_attention() -> None:
    from sam2.modeling.memory_attention import MemoryAttention

    if getattr(MemoryAttention.forward, "_sam2web_patched", False):
        return
    original = MemoryAttention.forward

    def forward(self, curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
        query = curr[0] if isinstance(curr, list) else curr
        if memory.dtype != query.dtype:
            memory = memory.to(query.dtype)
        if memory_pos is not None and memory_pos.dtype != query.dtype:
            memory_pos = memory_pos.to(query.dtype)
        return original(
            self, curr, memory, curr_pos=curr_pos, memory_pos=memory_pos, num_obj_ptr_tokens=num_obj_ptr_tokens
        )

    forward._sam2web_patched = True  # type: ignore[attr-defined]
    forward._sam2web_original = original  # type: ignore[attr-defined]
    forward.__doc__ = original.__doc__
    MemoryAttention.forward = forward


def _patch_connected_components() -> None:
    import sam2.utils.misc as misc

    if has_compiled_extension() or getattr(misc.get_connected_components, "_sam2web_patched", False):
        return
    original = misc.get_connected_components

    def get_connected_components(mask):
        return connected_components_cv2(mask)

    get_connected_components._sam2web_patched = True  # type: ignore[attr-defined]
    get_connected_components._sam2web_original = original  # type: ignore[attr-defined]
    misc.get_connected_components = get_connected_components


def _silence_progress_bar() -> None:
    """SAM2 draws its own tqdm bar per propagation on stderr; sam2web reports progress itself
    (CLI bar with ETA, app progress), so the inner bar would only garble the output."""
    import sam2.sam2_video_predictor as svp

    if getattr(svp.tqdm, "_sam2web_patched", False):
        return

    def quiet(iterable, *args, **kwargs):
        return iterable

    quiet._sam2web_patched = True  # type: ignore[attr-defined]
    svp.tqdm = quiet


def patch_frame_sources() -> None:
    """Only the frame-source patch (bench/gpu.py measures SAM2 otherwise unpatched)."""
    import sam2.sam2_video_predictor as svp

    from sam2web.tracking.predictor import load_video_frames

    current = svp.load_video_frames
    if getattr(current, "_sam2web_patched", False):
        return

    def patched(video_path, **kwargs):
        return load_video_frames(current, video_path, **kwargs)

    patched._sam2web_patched = True  # type: ignore[attr-defined]
    patched._sam2web_original = current  # type: ignore[attr-defined]
    svp.load_video_frames = patched


def apply() -> None:
    """Apply the fixes once per process (safe to call again; later calls do nothing)."""
    global _APPLIED
    if _APPLIED:
        return
    _patch_memory_attention()
    _patch_connected_components()
    _silence_progress_bar()
    patch_frame_sources()
    _APPLIED = True
