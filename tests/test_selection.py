"""Batch ranges and sequences (and the bad ranges users type)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sam2web.errors import UserError
from sam2web.selection import build_sequences, format_ranges, parse_ranges
from sam2web.types import Location


# ---------------------------------------------------------------------------------- parse
@pytest.mark.parametrize(
    "text, expected",
    [
        ("1-3, 5-8", [0, 1, 2, 4, 5, 6, 7]),
        ("  2 ,4 ", [1, 3]),
        ("1 - 3", [0, 1, 2]),
        ("3 1 2", [0, 1, 2]),
        ("5-5", [4]),
        ("1-3, 2-4", [0, 1, 2, 3]),
        ("ALL", list(range(10))),
        (" all ", list(range(10))),
        ("1-2;9", [0, 1, 8]),
        ("10", [9]),
    ],
)
def test_parse_valid(text, expected):
    assert parse_ranges(text, 10, current=0) == expected


@pytest.mark.parametrize("blank", ["", "   ", None])
def test_blank_means_current(blank):
    assert parse_ranges(blank, 10, current=6) == [6]


def test_past_the_end_message_names_part_and_range():
    with pytest.raises(UserError) as err:
        parse_ranges("1-999", 30, current=0, name="Time")
    assert str(err.value) == 'Batch Time "1-999" goes past the end: choose numbers from 1 to 30.'


@pytest.mark.parametrize(
    "text, words",
    [
        ("3-1", ["3-1", "backwards", "1-3"]),
        ("0", ['"0"', "below 1"]),
        ("a", ['"a"', "not a number"]),
        ("1-3, x", ['"x"']),
        ("1--3", ['"1--3"']),
        ("-2", ['"-2"']),
        ("2.5", ['"2.5"']),
        (",", ["names no frames"]),
        ("11", ['"11"', "past the end"]),
    ],
)
def test_bad_ranges_name_the_bad_part(text, words):
    with pytest.raises(UserError) as err:
        parse_ranges(text, 10, current=0, name="Z")
    message = str(err.value)
    assert message.startswith("Batch Z") and "1 to 10" in message or "names no frames" in message
    for word in words:
        assert word in message


def test_current_outside_and_empty_axis():
    with pytest.raises(UserError):
        parse_ranges("", 5, current=5)
    with pytest.raises(UserError):
        parse_ranges("1", 0, current=0)


def test_format_ranges():
    assert format_ranges([0, 1, 2, 4, 6, 7]) == "1-3, 5, 7-8"
    assert format_ranges([]) == ""
    assert format_ranges([3, 3, 1]) == "2, 4"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=60).flatmap(
        lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), min_size=1))
    )
)
def test_format_then_parse_round_trips(case):
    size, chosen = case
    assert parse_ranges(format_ranges(chosen), size, current=0) == sorted(chosen)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("0123456789-,; aAlL\t–:x.")), max_size=20) | st.text(max_size=20),
    st.integers(min_value=1, max_value=50),
)
def test_junk_never_raises_anything_but_user_error(text, size):
    try:
        result = parse_ranges(text, size, current=0)
    except UserError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert result == sorted(set(result)) and all(0 <= i < size for i in result)


# ---------------------------------------------------------------------------------- sequences
def test_across_time_one_sequence_per_xy_and_z():
    seqs = build_sequences([0, 1], [0, 1, 2], [4, 5], across="time", direction="forward")
    assert len(seqs) == 4
    assert seqs[0].frames == (Location(0, 0, 4), Location(0, 1, 4), Location(0, 2, 4))
    assert {(s.frames[0].xy, s.frames[0].z) for s in seqs} == {(0, 4), (0, 5), (1, 4), (1, 5)}
    assert all(s.across == "time" for s in seqs)


def test_across_z_one_sequence_per_xy_and_time():
    seqs = build_sequences([0], [3, 7], [0, 1, 2, 3], across="z", direction="forward")
    assert len(seqs) == 2
    assert seqs[1].frames == tuple(Location(0, 7, z) for z in range(4))
    assert seqs[1].index_of(Location(0, 7, 2)) == 2


def test_backward_reverses_and_both_keeps_forward_order():
    back = build_sequences([0], [1, 2, 5], [0], across="time", direction="backward")
    assert [f.time for f in back[0].frames] == [5, 2, 1]
    both = build_sequences([0], [5, 1, 2], [0], across="time", direction="both")
    assert [f.time for f in both[0].frames] == [1, 2, 5]
    zback = build_sequences([0], [0], [0, 1, 2], across="z", direction="backward")
    assert [f.z for f in zback[0].frames] == [2, 1, 0]


def test_one_frame_sequence_is_refused_with_a_sentence():
    with pytest.raises(UserError) as err:
        build_sequences([0], [4], [0, 1], across="time", direction="forward")
    assert "at least 2 Time frames" in str(err.value) and "Batch Time" in str(err.value)
    with pytest.raises(UserError, match="Batch Z"):
        build_sequences([0], [0, 1], [3], across="z", direction="forward")


@pytest.mark.parametrize("kwargs", [dict(across="channel"), dict(direction="sideways")])
def test_bad_axis_or_direction(kwargs):
    args = dict(across="time", direction="forward") | kwargs
    with pytest.raises(UserError):
        build_sequences([0], [0, 1], [0], **args)


def test_empty_selection_is_refused():
    with pytest.raises(UserError, match="No XY"):
        build_sequences([], [0, 1], [0])


def test_blank_time_end_to_end_is_an_error_not_a_silent_no_op():
    times = parse_ranges("", 30, current=4, name="Time")
    with pytest.raises(UserError):
        build_sequences([0], times, [0], across="time")
