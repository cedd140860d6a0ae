"""Display frames: contrast, colours, composite by maximum, and nothing crashes on odd data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam2web.errors import UserError
from sam2web.stack import Stack
from sam2web.stack.display import (
    ChannelDisplay,
    DisplaySettings,
    contrast_limits,
    parse_color,
    render,
    render_channel_gray,
    to_uint8,
)
from sam2web.types import Location

try:  # tests/ is a package in this repository; the fallback keeps a plain rootdir run working
    from tests.stack_helpers import ramp
except ImportError:  # pragma: no cover
    from stack_helpers import ramp

L0 = Location(0, 0, 0)


def _stack(data: np.ndarray, axes: str = "CYX") -> Stack:
    return Stack.from_array(data, axes)


def test_default_colours():
    assert [c.color for c in DisplaySettings.default(_stack(ramp((1, 20, 30)))).channels] == ["#ffffff"]
    two = DisplaySettings.default(_stack(ramp((2, 20, 30))))
    assert [c.color for c in two.channels] == ["#00ff00", "#ff00ff"]
    three = DisplaySettings.default(_stack(ramp((3, 20, 30))))
    assert [c.color for c in three.channels] == ["#00ff00", "#ff00ff", "#00ffff"]
    rgb = Stack.from_array(ramp((20, 30, 3)).astype(np.uint8), "YXS")
    assert rgb.channel_names == ["Red", "Green", "Blue"]
    rgb_settings = DisplaySettings.default(rgb)
    assert [c.color for c in rgb_settings.channels] == ["#ff0000", "#00ff00", "#0000ff"]
    assert all(c.mode == "absolute" and (c.low, c.high) == (0, 255) for c in rgb_settings.channels)


def test_settings_round_trip_through_json():
    settings = DisplaySettings(
        [
            ChannelDisplay(0, "#00ff00", True, "absolute", 10, 2000),
            ChannelDisplay(1, "#ff00ff", False, "percentile", 0.5, 99.5),
        ]
    )
    again = DisplaySettings.from_dict(json.loads(json.dumps(settings.to_dict())))
    assert again == settings
    assert DisplaySettings.from_dict({}) == DisplaySettings([])


def test_render_is_uint8_rgb_of_frame_shape_non_square():
    s = Stack.from_array(ramp((2, 20, 30)), "TYX")
    img = render(s, Location(0, 1, 0), DisplaySettings.default(s))
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    # gray: all three components equal, and the ramp runs along rows then columns
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])
    assert img[0, 0, 0] < img[0, 29, 0] < img[19, 29, 0]


def test_absolute_contrast_maps_exactly():
    data = np.zeros((1, 16, 16), np.uint16)
    data[0, 0, :4] = [100, 150, 200, 300]
    s = _stack(data)
    settings = DisplaySettings([ChannelDisplay(0, "#ffffff", mode="absolute", low=100, high=200)])
    img = render(s, L0, settings)
    assert list(img[0, :4, 0]) in ([0, 128, 255, 255], [0, 127, 255, 255])  # 127.5 rounds
    assert img[5, 5, 0] == 0


def test_percentile_contrast_spreads_the_range():
    s = _stack(ramp((1, 64, 64)) + 1000)
    gray = render_channel_gray(s, L0, 0, ChannelDisplay(0, low=1, high=99))
    assert gray.min() == 0 and gray.max() == 255
    lo, hi = contrast_limits(s.frame(L0, 0), ChannelDisplay(0, low=0, high=100))
    assert (lo, hi) == (1000, 1000 + 64 * 64 - 1)


def test_composite_is_maximum_with_colours():
    data = np.zeros((2, 16, 16), np.uint8)
    data[0, :, :8] = 255  # channel 1 on the left
    data[1, :8, :] = 255  # channel 2 on top
    s = _stack(data)
    settings = DisplaySettings(
        [
            ChannelDisplay(0, "#00ff00", mode="absolute", low=0, high=255),
            ChannelDisplay(1, "#ff00ff", mode="absolute", low=0, high=255),
        ]
    )
    img = render(s, L0, settings)
    assert tuple(img[0, 0]) == (255, 255, 255)  # both: max of green and magenta
    assert tuple(img[12, 2]) == (0, 255, 0)  # only channel 1
    assert tuple(img[2, 12]) == (255, 0, 255)  # only channel 2
    assert tuple(img[12, 12]) == (0, 0, 0)
    hidden = DisplaySettings([settings.channels[0], ChannelDisplay(1, "#ff00ff", visible=False)])
    assert tuple(render(s, L0, hidden)[2, 12]) == (0, 0, 0)
    assert tuple(render(s, L0, settings.only(1))[12, 2]) == (0, 0, 0)


def test_intermediate_colour_scales_intensity():
    data = np.full((1, 16, 16), 255, np.uint8)
    s = _stack(data)
    img = render(s, L0, DisplaySettings([ChannelDisplay(0, "#804000", mode="absolute", low=0, high=255)]))
    assert tuple(img[0, 0]) == (128, 64, 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int16])
@pytest.mark.parametrize("value", [0, 7])
def test_constant_frames_do_not_crash(dtype, value):
    s = _stack(np.full((1, 20, 30), value, dtype))
    img = render(s, L0)
    assert img.shape == (20, 30, 3)
    assert (img == (255 if value else 0)).all()


def test_nan_and_inf_frames():
    data = np.linspace(0, 1, 20 * 30, dtype=np.float32).reshape(1, 20, 30)
    data[0, 0, 0] = np.nan
    data[0, 0, 1] = np.inf
    data[0, 0, 2] = -np.inf
    img = render(_stack(data), L0)
    assert img[0, 0, 0] == 0  # NaN shows black
    assert img[0, 1, 0] == 255 and img[0, 2, 0] == 0  # +inf white, -inf black
    assert img[19, 29, 0] > 200
    all_nan = render(_stack(np.full((1, 20, 30), np.nan, np.float32)), L0)
    assert (all_nan == 0).all()


def test_negative_and_wide_integer_data():
    data = ramp((1, 20, 30)).astype(np.int32) - 300
    img = render(_stack(data), L0, DisplaySettings([ChannelDisplay(0, low=0, high=100)]))
    assert img[0, 0, 0] == 0 and img[19, 29, 0] == 255


def test_to_uint8_saturates_both_ends():
    frame = np.array([[0, 50, 100, 60000]] * 8, np.uint16)
    out = to_uint8(frame, 50, 100)
    assert list(out[0]) == [0, 0, 255, 255]


@pytest.mark.parametrize(
    "bad",
    [
        ChannelDisplay(0, "green-ish"),
        ChannelDisplay(0, mode="gamma"),
        ChannelDisplay(0, low=90, high=10),
        ChannelDisplay(0, low=-1, high=50),
        ChannelDisplay(0, mode="absolute", low=10, high=5),
        ChannelDisplay(3),
    ],
)
def test_bad_settings_are_user_errors(bad):
    with pytest.raises(UserError):
        render(_stack(ramp((1, 20, 30))), L0, DisplaySettings([bad]))


def test_parse_color_forms():
    assert parse_color("#0f0") == (0, 255, 0)
    assert parse_color("ff00ff") == (255, 0, 255)


@pytest.mark.parametrize(
    "dtype",
    [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64, np.float16, np.float32, np.float64, bool],
)
def test_every_dtype_renders(dtype):
    data = (np.arange(20 * 30).reshape(1, 20, 30) % 100).astype(dtype)
    img = render(_stack(data), L0)
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    assert img[0, 0, 0] == 0 and img.max() == 255
