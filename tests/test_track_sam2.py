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


def test_same_masks_as_plain_sam2_and_trimming_is_lossless(predictor, monkeypatch):
    """Our state builder, lazy frames, feature cache and memory trimming change nothing.

    Reference: SAM2's own ``init_state`` + ``propagate_in_video`` with the same in-memory
    frames (``load_video_frames`` swapped for them, so no JPEG loss muddies the comparison).
    The memory window is narrowed to 3 frames and the object-pointer window to 3 (for both
    runs alike) so that trimming really drops outputs within a short, fast sequence.
    """
    import sam2.sam2_video_predictor as svp
    import torch

    from sam2web.tracking.track import LazyFrames

    monkeypatch.setattr(predictor, "max_obj_ptrs_in_encoder", 3)
    monkeypatch.setattr(predictor, "num_maskmem", 3)
    n = 12
    stack = SyntheticStack(n_frames=n)
    seq = time_sequence(n)
    prompt = box_prompt(0, 0, stack)
    session = TrackSession(stack, [seq], predictor, stack.render, "forward")
    session.add_prompts([prompt])
    ours = session.run()
    kept = session.seqs[0].state["output_dict_per_obj"][0]["non_cond_frame_outputs"]
    assert len(kept) < n - 1  # trimmed as it went (only the window behind and around the prompt)

    frames = LazyFrames(stack.render, seq.frames, predictor.image_size, H, W)
    monkeypatch.setattr(svp, "load_video_frames", lambda **kw: (frames, H, W))
    with torch.inference_mode():
        state = predictor.init_state("in-memory")
        predictor.add_new_points_or_box(state, 0, 0, box=np.asarray(prompt.box, np.float32))
        plain = {t: (m[0, 0] > 0).numpy() for t, _, m in predictor.propagate_in_video(state)}
    assert len(plain) == n
    for t in range(n):
        assert np.array_equal(ours.masks[(0, seq.frames[t])].to_mask(), plain[t]), t
