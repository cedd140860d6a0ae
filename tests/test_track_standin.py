"""Tracking semantics with the deterministic stand-in tracker (no model, milliseconds per test).

What is pinned here: which frames get masks for Forward / Backward / Both, that connections
always point from the earlier to the later frame whatever the direction, progress / cancel /
on_frame hooks, corrections that keep the rest of a previous result, and the user errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam2web.errors import UserError
from sam2web.tracking.track import StandInTracker, TrackSession, track
from sam2web.types import Location, Prompt, Sequence, TrackResult
from tests.engine_helpers import N_FRAMES, H, SyntheticStack, W, box_prompt, time_sequence


@pytest.fixture()
def stack():
    return SyntheticStack()


def frames_of(result: TrackResult, obj_id: int) -> list[int]:
    return sorted(loc.time for (o, loc) in result.masks if o == obj_id)


def test_forward_masks_from_the_prompt_frame_to_the_end(stack):
    result = track(
        stack, [time_sequence()], [box_prompt(0, 2, stack)], StandInTracker(), stack.render, direction="forward"
    )
    assert frames_of(result, 0) == [2, 3, 4, 5]
    assert not result.partial
    # the stand-in drifts (2, 1) px per frame: frame 4 is the prompt box moved by (4, 2)
    r0, c0, r1, c1 = result.masks[(0, Location(0, 4, 0))].bbox
    x0, y0, x1, y1 = box_prompt(0, 2, stack).box
    assert (c0, r0, c1, r1) == (int(x0) + 4, int(y0) + 2, int(x1) + 4, int(y1) + 2)
    assert all(m.shape == (H, W) for m in result.masks.values())


def test_backward_masks_from_the_prompt_frame_to_the_start(stack):
    seq = time_sequence(reverse=True)  # selection.build_sequences reverses backward sequences
    result = track(stack, [seq], [box_prompt(0, 3, stack)], StandInTracker(), stack.render, direction="backward")
    assert frames_of(result, 0) == [0, 1, 2, 3]


def test_both_covers_every_frame_for_every_object_and_visits_each_once(stack):
    tracker = StandInTracker()
    seen: list[int] = []
    result = track(
        stack,
        [time_sequence()],
        [box_prompt(0, 2, stack), box_prompt(1, 4, stack)],
        tracker,
        stack.render,
        direction="both",
        on_frame=lambda loc, masks: seen.append(loc.time),
    )
    assert frames_of(result, 0) == list(range(N_FRAMES))
    assert frames_of(result, 1) == list(range(N_FRAMES))
    # forward from the earliest prompt, then reverse from the latest first-prompt
    assert tracker.calls == [(2, False), (4, True)]
    assert sorted(seen) == [0, 1, 2, 2, 3, 3, 4, 4, 5]
    # frame 3 of object 1 (prompted at 4) comes from the reverse pass, of object 0 from forward
    assert result.masks[(1, Location(0, 3, 0))].bbox[1] == box_prompt(1, 4, stack).box[0] - 2
    assert result.masks[(0, Location(0, 3, 0))].bbox[1] == box_prompt(0, 2, stack).box[0] + 2


def test_forward_two_objects_on_different_frames_start_at_their_own_prompt(stack):
    result = track(
        stack,
        [time_sequence()],
        [box_prompt(0, 1, stack), box_prompt(1, 4, stack)],
        StandInTracker(),
        stack.render,
        direction="forward",
    )
    assert frames_of(result, 0) == [1, 2, 3, 4, 5]
    assert frames_of(result, 1) == [4, 5]
    assert set(result.objects) == {0, 1}
    assert result.objects[0].tags == ["cell"]


@pytest.mark.parametrize("direction", ["forward", "backward", "both"])
@pytest.mark.parametrize("across", ["time", "z"])
def test_connections_point_from_earlier_to_later(direction, across):
    from sam2web import geometry, links, selection
    from sam2web.stack import Stack

    n = 6
    arr = np.zeros((n, H, W), np.uint8)
    stack = Stack.from_array(arr, axes="TYX" if across == "time" else "ZYX")
    seqs = selection.build_sequences(
        [0], list(range(n)) if across == "time" else [0], list(range(n)) if across == "z" else [0], across, direction
    )
    mid = Location(0, 3, 0) if across == "time" else Location(0, 0, 3)
    prompts = [Prompt(obj_id=0, loc=mid, box=(30, 20, 60, 44), tags=["cell"])]
    result = track(
        stack,
        seqs,
        prompts,
        StandInTracker(drift=(1, 1)),
        lambda loc: np.zeros((H, W, 3), np.uint8),
        direction=direction,
    )
    expected = {"forward": [3, 4, 5], "backward": [0, 1, 2, 3], "both": list(range(n))}[direction]
    key = (lambda loc: loc.time) if across == "time" else (lambda loc: loc.z)
    assert sorted(key(loc) for (_, loc) in result.masks) == expected
    anns = geometry.annotations_from_result(result, padding=0, smoothing=0)
    conns = links.connect(anns)
    by_id = {a.id: a for a in anns}
    assert len(conns) == len(expected) - 1
    for c in conns:
        parent, child = by_id[c.parent_id].loc, by_id[c.child_id].loc
        assert (parent.time, parent.z) < (child.time, child.z)
        assert key(child) - key(parent) == 1


def test_progress_counts_every_frame_and_ends_at_the_total(stack):
    calls = []
    seqs = [time_sequence(), Sequence(tuple(Location(1, t, 0) for t in range(N_FRAMES)), "time")]
    prompts = [box_prompt(0, 2, stack), Prompt(obj_id=1, loc=Location(1, 0, 0), box=(5, 5, 20, 20))]
    track(stack, seqs, prompts, StandInTracker(), stack.render, progress=lambda *a: calls.append(a))
    assert calls[0] == (0, 2, 1, 4)
    assert calls[3] == (0, 2, 4, 4)
    assert calls[-1] == (1, 2, N_FRAMES, N_FRAMES)
    assert len(calls) == 4 + N_FRAMES


def test_cancel_stops_within_one_frame_and_keeps_what_was_done(stack):
    done: list[int] = []
    result = track(
        stack,
        [time_sequence()],
        [box_prompt(0, 0, stack)],
        StandInTracker(),
        stack.render,
        cancel=lambda: len(done) >= 3,
        on_frame=lambda loc, masks: done.append(loc.time),
    )
    assert result.partial
    assert done == [0, 1, 2]
    assert frames_of(result, 0) == [0, 1, 2]


def test_cancel_before_start_tracks_nothing(stack):
    result = track(
        stack, [time_sequence()], [box_prompt(0, 0, stack)], StandInTracker(), stack.render, cancel=lambda: True
    )
    assert result.partial and not result.masks


def test_points_and_mask_prompts(stack):
    mask = np.zeros((H, W), bool)
    mask[40:50, 90:110] = True
    prompts = [
        Prompt(obj_id=0, loc=Location(0, 0, 0), points=[(30.0, 20.0, 1), (5.0, 5.0, 0)]),
        Prompt(obj_id=1, loc=Location(0, 0, 0), mask=mask),
    ]
    result = track(stack, [time_sequence()], prompts, StandInTracker(drift=(0, 0)), stack.render)
    assert result.masks[(1, Location(0, 5, 0))].bbox == (40, 90, 50, 110)
    r0, c0, r1, c1 = result.masks[(0, Location(0, 0, 0))].bbox
    assert c0 <= 30 < c1 and r0 <= 20 < r1 and c0 > 5  # the negative point is not in the box


def test_masks_callable_gives_the_output(stack):
    truth = {t: np.zeros((H, W), bool) for t in range(N_FRAMES)}
    for t, m in truth.items():
        m[t : t + 10, 2 * t : 2 * t + 10] = True
    tracker = StandInTracker(masks=lambda obj, loc: truth[loc.time])
    result = track(stack, [time_sequence()], [box_prompt(0, 0, stack)], tracker, stack.render)
    for t in range(N_FRAMES):
        assert np.array_equal(result.masks[(0, Location(0, t, 0))].to_mask(), truth[t])


def test_correction_in_a_live_session_rewrites_only_from_its_frame(stack):
    session = TrackSession(stack, [time_sequence()], StandInTracker(), stack.render, "forward")
    session.add_prompts([box_prompt(0, 0, stack), box_prompt(1, 0, stack)])
    first = dict(session.run().masks)
    session.add_prompts([Prompt(obj_id=0, loc=Location(0, 3, 0), box=(80, 40, 100, 60))])
    rewritten: list[tuple[int, int]] = []
    result = session.run(on_frame=lambda loc, masks: rewritten.extend((o, loc.time) for o in masks))
    assert rewritten == [(0, 3), (0, 4), (0, 5)]
    for t in range(3):
        assert result.masks[(0, Location(0, t, 0))] is first[(0, Location(0, t, 0))]
    for t in range(N_FRAMES):
        assert result.masks[(1, Location(0, t, 0))] is first[(1, Location(0, t, 0))]
    assert result.masks[(0, Location(0, 3, 0))].bbox == (40, 80, 60, 100)


def test_correction_with_previous_result_keeps_everything_else(stack):
    previous = track(
        stack, [time_sequence()], [box_prompt(0, 0, stack), box_prompt(1, 0, stack)], StandInTracker(), stack.render
    )
    fix = Prompt(obj_id=1, loc=Location(0, 4, 0), box=(10, 10, 20, 20))
    result = track(stack, [time_sequence()], [fix], StandInTracker(), stack.render, result=previous)
    assert result is not previous and len(previous.masks) == 2 * N_FRAMES
    assert result.masks[(1, Location(0, 4, 0))].bbox == (10, 10, 20, 20)
    for t in range(4):
        assert result.masks[(1, Location(0, t, 0))] is previous.masks[(1, Location(0, t, 0))]
    for t in range(N_FRAMES):
        assert result.masks[(0, Location(0, t, 0))] is previous.masks[(0, Location(0, t, 0))]


def test_both_correction_before_the_first_prompt_reruns_in_reverse(stack):
    tracker = StandInTracker()
    session = TrackSession(stack, [time_sequence()], tracker, stack.render, "both")
    session.add_prompts([box_prompt(0, 3, stack)])
    session.run()
    session.add_prompts([Prompt(obj_id=0, loc=Location(0, 1, 0), box=(50, 30, 60, 40))])
    rewritten: list[int] = []
    session.run(on_frame=lambda loc, masks: rewritten.append(loc.time))
    assert tracker.calls[-2:] == [(1, False), (1, True)]
    assert rewritten == [1, 2, 3, 4, 5, 1, 0]


def test_prompts_outside_the_selection_are_a_user_error(stack):
    with pytest.raises(UserError, match="no prompts on the selected frames"):
        track(
            stack,
            [time_sequence()],
            [Prompt(obj_id=0, loc=Location(0, 0, 3), box=(1, 1, 9, 9))],
            StandInTracker(),
            stack.render,
        )


def test_bad_prompts_are_user_errors(stack):
    seqs = [time_sequence()]
    with pytest.raises(UserError, match="no box, points or mask"):
        track(stack, seqs, [Prompt(obj_id=0, loc=Location(0, 0, 0))], StandInTracker(), stack.render)
    with pytest.raises(UserError, match="not the image size"):
        track(
            stack,
            seqs,
            [Prompt(obj_id=0, loc=Location(0, 0, 0), mask=np.ones((W, H), bool))],
            StandInTracker(),
            stack.render,
        )
    with pytest.raises(UserError, match="empty"):
        track(
            stack,
            seqs,
            [Prompt(obj_id=0, loc=Location(0, 0, 0), mask=np.zeros((H, W), bool))],
            StandInTracker(),
            stack.render,
        )
    with pytest.raises(UserError, match="direction"):
        track(stack, seqs, [box_prompt(0, 0, stack)], StandInTracker(), stack.render, direction="sideways")
    with pytest.raises(UserError, match="no prompts to track"):
        track(stack, seqs, [], StandInTracker(), stack.render)


def test_sequences_without_prompts_are_skipped_and_counted(stack):
    seqs = [time_sequence(), Sequence(tuple(Location(0, t, 1) for t in range(N_FRAMES)), "time")]
    result = track(stack, seqs, [box_prompt(0, 0, stack)], StandInTracker(), stack.render)
    assert {loc.z for (_, loc) in result.masks} == {0}
    assert result.settings["sequences_without_prompts"] == 1


def test_trim_keeps_the_memory_window_and_prompt_neighbourhoods():
    from types import SimpleNamespace

    session = TrackSession.__new__(TrackSession)
    session.predictor = SimpleNamespace(num_maskmem=7, memory_temporal_stride_for_eval=1, max_obj_ptrs_in_encoder=16)
    non_cond = {t: {"t": t} for t in range(0, 100) if t != 5}
    state = {"output_dict_per_obj": {0: {"cond_frame_outputs": {5: {}}, "non_cond_frame_outputs": non_cond}}}
    session._trim(state, 99, reverse=False)
    kept = sorted(non_cond)
    assert kept == [t for t in range(0, 23) if t != 5] + list(range(82, 100))
    session._trim(state, 0, reverse=True)  # reverse pass: frames after 17 are behind
    assert max(non_cond) <= 22
