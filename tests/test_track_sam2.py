"""The real SAM2 video predictor (tiny, random weights, image size 128/256) on a non-square stack.

Random weights make the masks meaningless, so these tests pin the plumbing: which frames are
covered, shapes (H, W) on a 72 x 120 stack, object ids, polygons inside the image, no crash in
any direction on CPU fp32 (upstream bf16/float bug), corrections, cancel, lazy frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam2web.tracking.track import TrackSession, track
from sam2web.types import Location, Prompt
from tests.engine_helpers import N_FRAMES, H, SyntheticStack, W, box_prompt, time_sequence, tiny_predictor

pytest.importorskip("sam2")


@pytest.fixture(scope="module")
def predictor():
    return tiny_predictor(128)  # the smallest valid input side: the plumbing is the same


@pytest.fixture()
def stack():
    return SyntheticStack()


def frames_of(result, obj_id):
    return sorted(loc.time for (o, loc) in result.masks if o == obj_id)


def assert_polygons_inside(result):
    from sam2web import geometry

    anns = geometry.annotations_from_result(result, padding=0, smoothing=0)
    for ann in anns:
        x0, y0, x1, y1 = ann.geometry.bounds
        assert 0 <= x0 <= x1 <= W and 0 <= y0 <= y1 <= H
    return anns


def test_forward_with_a_real_stack_and_display():
    predictor = tiny_predictor(256)
    from sam2web.stack import Stack
    from sam2web.stack.display import DisplaySettings

    synth = SyntheticStack()
    arr = np.stack([synth.frame(Location(0, t, 0)) for t in range(N_FRAMES)]).astype(np.uint16)
    stack = Stack.from_array(arr * 100, axes="TYX")
    result = track(
        stack,
        [time_sequence()],
        [box_prompt(0, 1, synth)],
        predictor,
        DisplaySettings.default(stack),
        direction="forward",
    )
    assert frames_of(result, 0) == [1, 2, 3, 4, 5]
    assert set(result.objects) == {0}
    assert all(m.shape == (H, W) for m in result.masks.values())
    assert result.random_weights and not result.partial
    assert result.settings["model"] == "tiny" and result.settings["image_size"] == 256
    assert_polygons_inside(result)


def test_backward_two_objects_on_different_frames(predictor, stack):
    # Backward = reversed sequence; obj 1 prompted on a later sequence frame than obj 0: the
    # case that crashed upstream on CPU with the bf16/float mismatch.
    seq = time_sequence(reverse=True)
    prompts = [box_prompt(0, 5, stack), box_prompt(1, 3, stack)]
    result = track(stack, [seq], prompts, predictor, stack.render, direction="backward")
    assert frames_of(result, 0) == list(range(N_FRAMES))
    assert frames_of(result, 1) == [0, 1, 2, 3]
    assert_polygons_inside(result)


def test_both_directions_cover_every_frame(predictor, stack):
    prompts = [box_prompt(0, 2, stack), box_prompt(1, 4, stack)]
    seen: list[int] = []
    result = track(
        stack,
        [time_sequence()],
        prompts,
        predictor,
        stack.render,
        direction="both",
        on_frame=lambda loc, masks: seen.append(loc.time),
    )
    assert frames_of(result, 0) == frames_of(result, 1) == list(range(N_FRAMES))
    assert sorted(set(seen)) == list(range(N_FRAMES))
    assert set(result.objects) == {0, 1}
    assert_polygons_inside(result)


def test_frames_are_read_lazily_and_only_where_needed(predictor, stack):
    track(stack, [time_sequence()], [box_prompt(0, 3, stack)], predictor, stack.render)
    times = [loc.time for loc in stack.reads]
    assert set(times) == {3, 4, 5}  # frames before the prompt are never rendered
    assert len(times) == 3  # each frame rendered once: no preload, no second pass


def test_correction_reuses_features_and_rewrites_from_its_frame(predictor, stack):
    session = TrackSession(stack, [time_sequence()], predictor, stack.render, "forward")
    session.add_prompts([box_prompt(0, 0, stack)])
    first = dict(session.run().masks)
    reads_before = len(stack.reads)
    session.add_prompts([Prompt(obj_id=0, loc=Location(0, 3, 0), box=(70.0, 30.0, 100.0, 60.0))])
    rewritten: list[int] = []
    result = session.run(on_frame=lambda loc, masks: rewritten.append(loc.time))
    assert rewritten == [3, 4, 5]
    for t in range(3):
        assert result.masks[(0, Location(0, t, 0))] is first[(0, Location(0, t, 0))]
    assert len(stack.reads) == reads_before  # every frame's features came from the cache
    assert session.features.hits >= 3


def test_correction_through_previous_result(predictor, stack):
    previous = track(
        stack, [time_sequence()], [box_prompt(0, 0, stack), box_prompt(1, 0, stack)], predictor, stack.render
    )
    fix = Prompt(obj_id=1, loc=Location(0, 2, 0), box=(60.0, 30.0, 90.0, 60.0))
    result = track(stack, [time_sequence()], [fix], predictor, stack.render, result=previous)
    assert frames_of(result, 1) == list(range(N_FRAMES))
    for t in range(N_FRAMES):
        assert result.masks[(0, Location(0, t, 0))] is previous.masks[(0, Location(0, t, 0))]
    for t in (0, 1):
        assert result.masks[(1, Location(0, t, 0))] is previous.masks[(1, Location(0, t, 0))]


def test_cancel_mid_run_keeps_finished_frames(predictor, stack):
    done: list[int] = []
    result = track(
        stack,
        [time_sequence()],
        [box_prompt(0, 0, stack)],
        predictor,
        stack.render,
        cancel=lambda: len(done) >= 2,
        on_frame=lambda loc, masks: done.append(loc.time),
    )
    assert result.partial
    assert frames_of(result, 0) == [0, 1] == done
    assert [loc.time for loc in stack.reads] == [0, 1]  # stopped before frame 2 was read


def test_mask_and_point_prompts(predictor, stack):
    mask = np.zeros((H, W), bool)
    mask[38:58, 70:90] = True
    prompts = [
        Prompt(obj_id=3, loc=Location(0, 0, 0), mask=mask),
        Prompt(obj_id=7, loc=Location(0, 1, 0), points=[(26.0, 24.0, 1), (60.0, 60.0, 0)]),
    ]
    result = track(stack, [time_sequence()], prompts, predictor, stack.render)
    assert set(result.objects) == {3, 7}
    assert frames_of(result, 3) == list(range(N_FRAMES))
    assert frames_of(result, 7) == [1, 2, 3, 4, 5]


def test_cpu_bf16_reverse_does_not_crash(stack):
    bf16 = tiny_predictor(128, "bf16")  # bf16 matmuls are slow on most CPUs: keep it small
    from sam2web.tracking.model import describe

    assert describe(bf16)["precision"] == "bf16"
    seq = time_sequence(n=3, reverse=True)
    result = track(
        stack, [seq], [box_prompt(0, 2, stack), box_prompt(1, 1, stack)], bf16, stack.render, direction="backward"
    )
    assert frames_of(result, 0) == [0, 1, 2]
    assert frames_of(result, 1) == [0, 1]


def stock_twin(predictor):
    """SAM2's own ``SAM2VideoPredictor`` with the same config (but its own class) and weights."""
    from sam2.build_sam import build_sam2_video_predictor

    from sam2web.tracking import model
    from sam2web.tracking.predictor import TARGET, SAM2WebPredictor

    overrides = [o for o in model._overrides(predictor.image_size) if TARGET not in o]
    stock = build_sam2_video_predictor(
        model.MODELS["tiny"][0], ckpt_path=None, device="cpu", hydra_overrides_extra=overrides
    )
    assert type(stock).__name__ == "SAM2VideoPredictor" and not isinstance(stock, SAM2WebPredictor)
    stock.load_state_dict(predictor.state_dict(), strict=True)
    return stock.eval()


def test_the_model_is_the_sam2web_subclass(predictor):
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    from sam2web.tracking.predictor import SAM2WebPredictor

    assert isinstance(predictor, SAM2WebPredictor) and isinstance(predictor, SAM2VideoPredictor)
    assert predictor.batch_objects is False  # on a CPU SAM2's per-object loop measured faster


def test_same_masks_as_stock_sam2_and_trimming_is_lossless(predictor, monkeypatch):
    """Our subclass (lazy frames, feature LRU, batched objects) and memory trimming change nothing.

    Reference: SAM2's own ``SAM2VideoPredictor`` (same weights and config, stock ``init_state``
    with its frame-0 warm-up, stock one-object-at-a-time ``propagate_in_video``) on the same
    in-memory frames, so no JPEG loss muddies the comparison (the preprocessing itself is checked
    against SAM2's loader in test_preprocess_parity.py). Two objects prompted on frame 0 go
    through our batched path, a third prompted on frame 2 through its own group. The memory
    window is narrowed to 3 frames and the object-pointer window to 3 (for both runs alike) so
    that trimming really drops outputs within a short, fast sequence.
    """
    import torch

    from sam2web.tracking.track import LazyFrames

    stock = stock_twin(predictor)
    for p in (predictor, stock):
        monkeypatch.setattr(p, "max_obj_ptrs_in_encoder", 3)
        monkeypatch.setattr(p, "num_maskmem", 3)
    n = 12
    stack = SyntheticStack(n_frames=n)
    seq = time_sequence(n)
    prompts = [box_prompt(0, 0, stack), box_prompt(1, 0, stack), box_prompt(2, 2, stack, which=0)]
    batched = []
    original = type(predictor)._track_group

    def spy(self, state, group, frame_idx, reverse):
        batched.append(len(group))
        return original(self, state, group, frame_idx, reverse)

    monkeypatch.setattr(type(predictor), "_track_group", spy)
    monkeypatch.setattr(predictor, "batch_objects", True)  # load_predictor leaves it off on a CPU
    session = TrackSession(stack, [seq], predictor, stack.render, "forward")
    session.add_prompts(prompts)
    ours = session.run()
    assert max(batched) == 2  # objects 0 and 1 went through one call
    kept = session.seqs[0].state["output_dict_per_obj"][0]["non_cond_frame_outputs"]
    assert len(kept) < n - 1  # trimmed as it went (only the window behind and around the prompt)

    frames = LazyFrames(stack.render, seq.frames, predictor.image_size, H, W)
    with torch.inference_mode():
        state = stock.init_state(frames)  # SAM2's own init_state, given the frame source
        for p in prompts:
            stock.add_new_points_or_box(state, seq.index_of(p.loc), p.obj_id, box=np.asarray(p.box, np.float32))
        plain = {t: (ids, m[:, 0].numpy()) for t, ids, m in stock.propagate_in_video(state)}
    assert len(plain) == n
    for t in range(n):
        ids, logits = plain[t]
        for row, obj_id in enumerate(ids):
            if (obj_id, seq.frames[t]) not in ours.masks:
                assert obj_id == 2 and t < 2
                continue
            mine = ours.masks[(obj_id, seq.frames[t])].to_mask()
            differ = mine != (logits[row] > 0)
            # fp32 batched GEMMs may round differently: only pixels at a logit of ~0 may flip
            assert not differ.any() or np.abs(logits[row][differ]).max() < 1e-4, (t, obj_id)


def _logits(predictor, stack, seq, prompts, reverse=False):
    import torch

    from sam2web.tracking.track import LazyFrames

    frames = LazyFrames(stack.render, seq.frames, predictor.image_size, H, W)
    with torch.inference_mode():
        state = predictor.init_state(frames)
        for p in prompts:
            predictor.add_new_points_or_box(state, seq.index_of(p.loc), p.obj_id, box=np.asarray(p.box, np.float32))
        start = max(seq.index_of(p.loc) for p in prompts) if reverse else None
        return {t: m.clone() for t, _, m in predictor.propagate_in_video(state, start_frame_idx=start, reverse=reverse)}


@pytest.mark.parametrize("reverse", [False, True])
def test_batched_objects_equal_the_per_object_path(predictor, monkeypatch, reverse):
    """fp32: one batched call per frame for all objects = one call per object, logits within 1e-5."""
    stack = SyntheticStack()
    seq = time_sequence()
    prompts = [box_prompt(0, 4, stack), box_prompt(1, 4, stack), box_prompt(2, 4, stack, which=0)]
    monkeypatch.setattr(predictor, "batch_objects", True)
    batched = _logits(predictor, stack, seq, prompts, reverse)
    monkeypatch.setattr(predictor, "batch_objects", False)
    single = _logits(predictor, stack, seq, prompts, reverse)
    assert sorted(batched) == sorted(single) and len(batched) == (5 if reverse else 2)
    for t in batched:
        assert batched[t].shape == (3, 1, H, W)
        assert (batched[t] - single[t]).abs().max().item() <= 1e-5, t
        assert torch_equal_masks(batched[t], single[t])


def torch_equal_masks(a, b) -> bool:
    return bool(((a > 0) == (b > 0)).all())


def test_feature_lru_is_bounded_and_keeps_the_latest():
    import torch

    from sam2web.tracking.predictor import FeatureLRU

    def out(v):
        return {"backbone_fpn": [torch.full((1, 4, 8, 8), float(v))], "vision_pos_enc": [torch.zeros(1, 4, 8, 8)]}

    one = 4 * 8 * 8 * 4  # bytes of one entry's features
    lru = FeatureLRU(budget_bytes=2 * one)
    for i in range(3):
        lru.put(("s", i), out(i))
    assert lru.used == 2 * one and lru.get(("s", 0)) is None and lru.get(("s", 2)) is not None
    a, b = lru.get(("s", 1)), lru.get(("s", 2))
    assert a["vision_pos_enc"] is b["vision_pos_enc"]  # one copy of the positional encodings
    tiny = FeatureLRU(budget_bytes=0)
    tiny.put(("s", 0), out(0))
    tiny.put(("s", 1), out(1))
    assert len(tiny) == 1 and tiny.get(("s", 1)) is not None  # the latest stays whatever the budget
