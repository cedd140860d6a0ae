"""sam2web's SAM2 video predictor: a ``SAM2VideoPredictor`` subclass, chosen by hydra ``_target_``.

Contract:
    TARGET: the hydra ``_target_`` that ``sam2web.tracking.model`` puts in the model config
    SAM2WebPredictor(SAM2VideoPredictor):
        init_state(frames_or_jpeg_folder, ..., feature_cache=None) -> SAM2's own inference state
            A frame source (``sam2web_frame_source = True``, ``len``, ``[i]`` -> normalised
            (3, S, S) tensor, ``height``, ``width``; see ``track.LazyFrames``) is used as is,
            nothing is loaded up front and frame 0 is not encoded in advance.
        _get_image_feature: backbone features come from a ``FeatureLRU`` (bounded in bytes,
            shared by all states that are given the same one) instead of SAM2's one-frame cache.
        propagate_in_video: with ``batch_objects``, the objects of a frame whose memories cover
            the same frames run as one batch through memory attention, the mask decoder and the
            memory encoder (same logits within 1e-5 in fp32); without, SAM2's own per-object
            loop. ``model.load_predictor`` turns it on off the CPU only (where it was faster).
    FeatureLRU(budget_bytes): get/put/hits/misses/used/clear

Why a subclass: the state layout, the prompt handling and the tracking step stay SAM2's; only the
three hooks above change, so a sam2 upgrade breaks loudly in one place instead of silently in a
hand-built copy of its private state. The predictor holds no per-run state (the app and the worker
share one per model); everything per run lives in the inference state.
"""

from __future__ import annotations

import contextvars
import itertools
from collections import OrderedDict
from collections.abc import Mapping

import torch
from sam2.sam2_video_predictor import SAM2VideoPredictor

TARGET = "sam2web.tracking.predictor.SAM2WebPredictor"
DEFAULT_FEATURE_CACHE_BYTES = 64 * 1024 * 1024

# True while SAM2's init_state runs: its frame-0 warm-up is skipped (features are computed when a
# frame is used, which is rarely frame 0 for later prompts or backward runs). A context variable,
# not an attribute, because one predictor is shared by concurrent runs.
_IN_INIT_STATE: contextvars.ContextVar[bool] = contextvars.ContextVar("sam2web_in_init_state", default=False)
_STATE_IDS = itertools.count()


def is_frame_source(obj) -> bool:
    return bool(getattr(obj, "sam2web_frame_source", False))


def load_video_frames(original, video_path, **kwargs):
    """What ``sam2.sam2_video_predictor.load_video_frames`` becomes (see ``sam2_patches``): a
    frame source is returned as is (no loading), anything else goes to SAM2's own loader."""
    if is_frame_source(video_path):
        return video_path, int(video_path.height), int(video_path.width)
    return original(video_path=video_path, **kwargs)


class FeatureLRU:
    """Backbone features per (state, frame), least recently used first out, bounded in bytes.

    SAM2 keeps the features of only the last frame it touched. Keeping a few more lets a
    correction (prompt at frame f, then propagate from f) skip the image encoder for frames it
    has already seen. The positional encodings are the same for every frame, so one copy is
    kept. The most recent entry is always kept, whatever the budget, because SAM2 reads a
    frame's features twice in a row (tracking step, then memory encoder).
    """

    def __init__(self, budget_bytes: int = DEFAULT_FEATURE_CACHE_BYTES):
        self.budget = int(budget_bytes)
        self.entries: OrderedDict[tuple, tuple[dict, int]] = OrderedDict()
        self.used = 0
        self.hits = 0
        self.misses = 0
        self._pos_enc: list | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key) -> dict | None:
        entry = self.entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key, backbone_out: dict) -> dict:
        pos = list(backbone_out["vision_pos_enc"])
        same = self._pos_enc is not None and all(
            a.shape == b.shape and a.dtype == b.dtype and a.device == b.device for a, b in zip(self._pos_enc, pos)
        )
        if not same or len(pos) != len(self._pos_enc or ()):
            self._pos_enc = pos
        slim = {"backbone_fpn": list(backbone_out["backbone_fpn"]), "vision_pos_enc": self._pos_enc}
        size = sum(t.numel() * t.element_size() for t in slim["backbone_fpn"])
        old = self.entries.pop(key, None)
        if old is not None:
            self.used -= old[1]
        self.entries[key] = (slim, size)
        self.used += size
        while self.used > self.budget and len(self.entries) > 1:
            _, (_, freed) = self.entries.popitem(last=False)
            self.used -= freed
        return slim

    def clear(self) -> None:
        self.entries.clear()
        self.used = 0


class _MergedOutputs(Mapping):
    """Several objects' ``{frame: output}`` dicts (same frames) seen as one batched dict.

    Entries are concatenated along the batch dimension when SAM2 reads them, in object order;
    only the frames the memory selection touches are ever merged.
    """

    def __init__(self, per_obj: list[dict]):
        self.per_obj = per_obj
        self._merged: dict = {}

    def __len__(self) -> int:
        return len(self.per_obj[0])

    def __iter__(self):
        return iter(self.per_obj[0])

    def __contains__(self, key) -> bool:
        return key in self.per_obj[0]

    def __getitem__(self, key):
        merged = self._merged.get(key)
        if merged is None:
            outs = [d[key] for d in self.per_obj]
            merged = {}
            for name in ("maskmem_features", "obj_ptr", "object_score_logits", "pred_masks"):
                vals = [o.get(name) for o in outs]
                merged[name] = None if any(v is None for v in vals) else torch.cat(vals, dim=0)
            encs = [o.get("maskmem_pos_enc") for o in outs]
            merged["maskmem_pos_enc"] = (
                None if any(e is None for e in encs) else [torch.cat(level, dim=0) for level in zip(*encs)]
            )
            self._merged[key] = merged
        return merged


def _split(out: dict, i: int) -> dict:
    """Object ``i``'s slice of a batched frame output (views: no copy)."""
    res = {}
    for name, val in out.items():
        if val is None:
            res[name] = None
        elif isinstance(val, list):
            res[name] = [v[i : i + 1] for v in val]
        else:
            res[name] = val[i : i + 1]
    return res


class SAM2WebPredictor(SAM2VideoPredictor):
    """SAM2's video predictor with lazy frame sources, a feature LRU and batched objects."""

    accepts_frame_source = True
    sam2web_feature_lru = True  # init_state takes feature_cache=FeatureLRU

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.feature_cache_bytes = DEFAULT_FEATURE_CACHE_BYTES
        # Objects with the same memory frames go through one batched call per frame. Off when
        # SAM2 would couple the objects of a batch (non-overlap constraints on the memory).
        self.batch_objects = not bool(getattr(self, "non_overlap_masks_for_mem_enc", False))

    # -- state -----------------------------------------------------------------------------
    @torch.inference_mode()
    def init_state(
        self,
        video_path,
        offload_video_to_cpu=False,
        offload_state_to_cpu=False,
        async_loading_frames=False,
        feature_cache: FeatureLRU | None = None,
    ):
        """SAM2's ``init_state`` (``video_path`` may be a frame source), without the warm-up.

        ``feature_cache``: a ``FeatureLRU`` to share between states (one budget for all the
        sequences of a run); by default each state gets its own of ``feature_cache_bytes``.
        """
        token = _IN_INIT_STATE.set(True)
        try:
            state = super().init_state(
                video_path,
                offload_video_to_cpu=offload_video_to_cpu,
                offload_state_to_cpu=offload_state_to_cpu,
                async_loading_frames=async_loading_frames,
            )
        finally:
            _IN_INIT_STATE.reset(token)
        state["sam2web_features"] = feature_cache if feature_cache is not None else FeatureLRU(self.feature_cache_bytes)
        state["sam2web_state_id"] = next(_STATE_IDS)
        return state

    # -- features --------------------------------------------------------------------------
    def _get_image_feature(self, inference_state, frame_idx, batch_size):
        if _IN_INIT_STATE.get():
            return None  # the warm-up of init_state, whose result SAM2 discards
        lru = inference_state.get("sam2web_features")
        if lru is None:
            return super()._get_image_feature(inference_state, frame_idx, batch_size)
        key = (inference_state["sam2web_state_id"], frame_idx)
        backbone_out = lru.get(key)
        if backbone_out is None:
            device = inference_state["device"]
            image = inference_state["images"][frame_idx].to(device).float().unsqueeze(0)
            backbone_out = lru.put(key, self.forward_image(image))
        expanded = {
            "backbone_fpn": [f.expand(batch_size, -1, -1, -1) for f in backbone_out["backbone_fpn"]],
            "vision_pos_enc": [p.expand(batch_size, -1, -1, -1) for p in backbone_out["vision_pos_enc"]],
        }
        # SAM2 returns the input image first; nothing downstream reads it, so it is not kept.
        feat = backbone_out["backbone_fpn"][0]
        image = feat.new_zeros((1, 3, 0, 0)).expand(batch_size, -1, -1, -1)
        return (image,) + self._prepare_backbone_features(expanded)

    # -- propagation -----------------------------------------------------------------------
    @staticmethod
    def _memory_signature(obj_output_dict: dict) -> tuple:
        """Objects whose outputs cover the same frames select the same memory frames."""
        return (
            frozenset(obj_output_dict["cond_frame_outputs"]),
            frozenset(obj_output_dict["non_cond_frame_outputs"]),
        )

    def _object_groups(self, inference_state, obj_idxs: list[int]) -> list[list[int]]:
        if not self.batch_objects:
            return [[o] for o in obj_idxs]
        groups: dict[tuple, list[int]] = {}
        for o in obj_idxs:
            sig = self._memory_signature(inference_state["output_dict_per_obj"][o])
            groups.setdefault(sig, []).append(o)
        return list(groups.values())

    def _track_group(self, inference_state, group: list[int], frame_idx: int, reverse: bool) -> list:
        """One tracking step for ``group``'s objects (batched when more than one)."""
        per_obj = inference_state["output_dict_per_obj"]
        if len(group) == 1:
            obj_output_dict = per_obj[group[0]]
            output_dict = obj_output_dict
        else:
            dicts = [per_obj[o] for o in group]
            output_dict = {
                "cond_frame_outputs": _MergedOutputs([d["cond_frame_outputs"] for d in dicts]),
                "non_cond_frame_outputs": _MergedOutputs([d["non_cond_frame_outputs"] for d in dicts]),
            }
        current_out, pred_masks = self._run_single_frame_inference(
            inference_state=inference_state,
            output_dict=output_dict,
            frame_idx=frame_idx,
            batch_size=len(group),
            is_init_cond_frame=False,
            point_inputs=None,
            mask_inputs=None,
            reverse=reverse,
            run_mem_encoder=True,
        )
        if len(group) == 1:
            per_obj[group[0]]["non_cond_frame_outputs"][frame_idx] = current_out
            return [pred_masks]
        masks = []
        for i, o in enumerate(group):
            per_obj[o]["non_cond_frame_outputs"][frame_idx] = _split(current_out, i)
            masks.append(pred_masks[i : i + 1])
        return masks

    @torch.inference_mode()
    def propagate_in_video(self, inference_state, start_frame_idx=None, max_frame_num_to_track=None, reverse=False):
        """SAM2's ``propagate_in_video`` with the objects of a frame batched (same outputs)."""
        self.propagate_in_video_preflight(inference_state)

        obj_ids = inference_state["obj_ids"]
        num_frames = inference_state["num_frames"]
        batch_size = self._get_obj_num(inference_state)
        per_obj = inference_state["output_dict_per_obj"]
        if start_frame_idx is None:
            start_frame_idx = min(t for d in per_obj.values() for t in d["cond_frame_outputs"])
        if max_frame_num_to_track is None:
            max_frame_num_to_track = num_frames
        if reverse:
            end_frame_idx = max(start_frame_idx - max_frame_num_to_track, 0)
            order = range(start_frame_idx, end_frame_idx - 1, -1) if start_frame_idx > 0 else []
        else:
            end_frame_idx = min(start_frame_idx + max_frame_num_to_track, num_frames - 1)
            order = range(start_frame_idx, end_frame_idx + 1)

        device = inference_state["device"]
        for frame_idx in order:
            pred_masks_per_obj: list = [None] * batch_size
            to_track = []
            for obj_idx in range(batch_size):
                obj_output_dict = per_obj[obj_idx]
                # Frames with prompts already hold their (consolidated) outputs.
                if frame_idx in obj_output_dict["cond_frame_outputs"]:
                    current_out = obj_output_dict["cond_frame_outputs"][frame_idx]
                    pred_masks_per_obj[obj_idx] = current_out["pred_masks"].to(device, non_blocking=True)
                    if self.clear_non_cond_mem_around_input:
                        self._clear_obj_non_cond_mem_around_input(inference_state, frame_idx, obj_idx)
                else:
                    to_track.append(obj_idx)
            for group in self._object_groups(inference_state, to_track):
                for obj_idx, masks in zip(group, self._track_group(inference_state, group, frame_idx, reverse)):
                    pred_masks_per_obj[obj_idx] = masks
            for obj_idx in range(batch_size):
                inference_state["frames_tracked_per_obj"][obj_idx][frame_idx] = {"reverse": reverse}

            all_pred_masks = torch.cat(pred_masks_per_obj, dim=0) if batch_size > 1 else pred_masks_per_obj[0]
            _, video_res_masks = self._get_orig_video_res_output(inference_state, all_pred_masks)
            yield frame_idx, obj_ids, video_res_masks
