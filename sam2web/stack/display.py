"""Turn raw frames into uint8 RGB for the model and the screen (channels, contrast, colours).

The surface other modules use:

    @dataclass ChannelDisplay(index: int, color: str = "#ffffff", visible: bool = True,
                              mode: str = "percentile", low: float = 1.0, high: float = 99.8)
        (mode "percentile": low/high are percentiles; mode "absolute": raw intensity limits)
    @dataclass DisplaySettings(channels: list[ChannelDisplay]); DisplaySettings.default(stack)
    render(stack, loc: Location, settings: DisplaySettings) -> np.ndarray (Y, X, 3) uint8
        composite by per-pixel maximum over visible channels, like the platform.
    render_channel_gray(stack, loc, channel, display=None) -> np.ndarray (Y, X) uint8
    contrast_limits(frame, display) -> (lo, hi) raw intensities
    Both dataclasses round-trip through to_dict()/from_dict() (JSON-safe, for the workspace store).

Why it is written this way: the app re-renders on every slider move and the tracker renders every
frame it feeds the model, so one 2048 x 2048 x 3-channel uint16 frame must take only a few tens of
milliseconds. Percentiles come from a strided subsample (a histogram for integer data), scaling is
done by OpenCV's saturating, multi-threaded kernels on the raw dtype, and no float64 full-frame
temporary is ever made. Non-finite values (NaN, inf) never crash: NaN shows as black.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from sam2web.errors import UserError
from sam2web.types import Location

# Colours for 2+ channel stacks, in the order microscopists expect (colour-blind friendly first).
PALETTE = ["#00ff00", "#ff00ff", "#00ffff", "#ffff00", "#ff0000", "#0000ff", "#ffffff"]
SUBSAMPLE_PIXELS = 1 << 18  # about 262k pixels are enough for stable percentiles
MODES = ("percentile", "absolute")


def parse_color(color: str) -> tuple[int, int, int]:
    """'#rrggbb' (or 'rrggbb', '#rgb') -> (r, g, b); UserError for anything else."""
    text = str(color).strip().lstrip("#")
    if len(text) == 3:
        text = "".join(ch * 2 for ch in text)
    try:
        if len(text) != 6:
            raise ValueError
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    except ValueError:
        raise UserError(
            f'The colour "{color}" is not a colour like #00ff00: pick one with the colour picker.'
        ) from None


@dataclass
class ChannelDisplay:
    """How one channel is shown: colour, visibility and contrast limits."""

    index: int
    color: str = "#ffffff"
    visible: bool = True
    mode: str = "percentile"
    low: float = 1.0
    high: float = 99.8

    def validate(self) -> None:
        if self.mode not in MODES:
            raise UserError(f'Contrast mode "{self.mode}" is unknown: use "percentile" or "absolute".')
        parse_color(self.color)
        if self.mode == "percentile" and not 0.0 <= self.low <= self.high <= 100.0:
            raise UserError(
                f"Contrast percentiles {self.low:g}-{self.high:g} must satisfy "
                "0 <= low <= high <= 100: adjust the sliders."
            )
        if self.mode == "absolute" and not self.low <= self.high:
            raise UserError(f"The contrast minimum {self.low:g} is above the maximum {self.high:g}: swap them.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ChannelDisplay:
        return cls(
            index=int(data["index"]),
            color=str(data.get("color", "#ffffff")),
            visible=bool(data.get("visible", True)),
            mode=str(data.get("mode", "percentile")),
            low=float(data.get("low", 1.0)),
            high=float(data.get("high", 99.8)),
        )


@dataclass
class DisplaySettings:
    """Per-channel display for a whole stack (the same for every frame, as in the platform)."""

    channels: list[ChannelDisplay] = field(default_factory=list)

    @classmethod
    def default(cls, stack) -> DisplaySettings:
        """One channel: gray. RGB uint8: red/green/blue at full range. Else green, magenta, ..."""
        n = int(stack.sizes["C"])
        names = [str(x).lower() for x in getattr(stack, "channel_names", [])]
        if n == 1:
            return cls([ChannelDisplay(0, "#ffffff")])
        if n == 3 and names == ["red", "green", "blue"]:
            if np.dtype(stack.dtype) == np.uint8:
                return cls(
                    [
                        ChannelDisplay(i, c, mode="absolute", low=0.0, high=255.0)
                        for i, c in enumerate(["#ff0000", "#00ff00", "#0000ff"])
                    ]
                )
            return cls([ChannelDisplay(i, c) for i, c in enumerate(["#ff0000", "#00ff00", "#0000ff"])])
        return cls([ChannelDisplay(i, PALETTE[i % len(PALETTE)]) for i in range(n)])

    def visible(self) -> list[ChannelDisplay]:
        return [c for c in self.channels if c.visible]

    def export_channel(self) -> int:
        """The channel exports name for a run (0-based): the first visible one, the model's input.

        One rule for the app and the CLI (they once wrote 0 and the first visible channel).
        """
        shown = self.visible()
        return int(shown[0].index) if shown else 0

    def only(self, channel: int) -> DisplaySettings:
        """The same settings with just one channel visible (e.g. the model's input channel)."""
        return DisplaySettings(
            [ChannelDisplay(c.index, c.color, c.index == channel, c.mode, c.low, c.high) for c in self.channels]
        )

    def to_dict(self) -> dict:
        return {"channels": [c.to_dict() for c in self.channels]}

    @classmethod
    def from_dict(cls, data: dict) -> DisplaySettings:
        return cls([ChannelDisplay.from_dict(c) for c in (data or {}).get("channels", [])])


# --------------------------------------------------------------------------------------------
# Contrast
# --------------------------------------------------------------------------------------------
def _subsample(frame: np.ndarray) -> np.ndarray:
    step = max(1, int(np.sqrt(frame.size / SUBSAMPLE_PIXELS)))
    return frame[::step, ::step]


def contrast_limits(frame: np.ndarray, display: ChannelDisplay) -> tuple[float, float]:
    """Raw intensity limits (lo, hi) with lo < hi, from percentiles or absolute values.

    A constant frame gets hi = value and lo just below it, so a constant bright frame shows
    bright and an all-zero frame black, instead of dividing by zero.
    """
    if display.mode == "absolute":
        lo, hi = float(display.low), float(display.high)
    else:
        sub = _subsample(frame)
        if sub.dtype in (np.uint8, np.uint16):
            # rank-based percentile from a histogram: the value at rank q/100 * (n - 1)
            cdf = np.cumsum(np.bincount(sub.ravel(), minlength=256))
            last = cdf[-1] - 1
            lo = float(np.searchsorted(cdf, last * display.low / 100.0, side="right"))
            hi = float(np.searchsorted(cdf, last * display.high / 100.0, side="right"))
        else:
            vals = sub.astype(np.float32, copy=False).ravel()
            vals = vals[np.isfinite(vals)]
            if vals.size == 0:
                return 0.0, 1.0
            lo, hi = (float(v) for v in np.percentile(vals, [display.low, display.high]))
    if not np.isfinite(lo) or not np.isfinite(hi):
        return 0.0, 1.0
    if hi <= lo:
        eps = max(abs(hi) * 1e-3, 1e-6) if frame.dtype.kind == "f" else 1.0
        if hi > 0:
            lo = hi - eps
        else:
            hi = lo + eps
    return lo, hi


_CV_NATIVE = (np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64)


def to_uint8(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map lo -> 0, hi -> 255, saturating; NaN and -inf -> 0, +inf -> 255. Any dtype."""
    scale = 255.0 / (hi - lo)
    if frame.dtype in (np.uint8, np.uint16) and lo >= 0:
        # saturating subtract keeps values below lo at 0, convertScaleAbs saturates at 255
        shifted = cv2.subtract(frame, float(lo)) if lo > 0 else frame
        return cv2.convertScaleAbs(shifted, alpha=scale)
    data = np.asarray(frame)
    if data.dtype == bool:
        data = data.view(np.uint8)
    if data.dtype not in _CV_NATIVE:
        data = data.astype(np.float32)
    # one saturating pass (no abs, unlike convertScaleAbs); NaN and +-inf come out as 0
    out = cv2.addWeighted(data, scale, data, 0.0, -float(lo) * scale, dtype=cv2.CV_8U)
    if data.dtype.kind == "f":
        pos = np.isposinf(data)
        if pos.any():
            out[pos] = 255
    return out


def render_channel_gray(stack, loc: Location, channel: int, display: ChannelDisplay | None = None) -> np.ndarray:
    """One channel as uint8 gray (Y, X) with its contrast applied."""
    display = display or ChannelDisplay(channel)
    frame = stack.frame(loc, channel)
    lo, hi = contrast_limits(frame, display)
    return to_uint8(frame, lo, hi)


# Channels are converted in parallel: decompression (zlib, zstd, ...) and OpenCV release the GIL,
# so a compressed multi-channel frame reads in roughly the time of its slowest channel.
_POOL = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="sam2web-render")


def render(stack, loc: Location, settings: DisplaySettings | None = None) -> np.ndarray:
    """The composite (Y, X, 3) uint8 of the visible channels: each coloured, maximum per pixel."""
    settings = settings or DisplaySettings.default(stack)
    h, w = stack.sizes["Y"], stack.sizes["X"]
    shown = []
    for cd in settings.visible():
        cd.validate()
        if not 0 <= cd.index < stack.sizes["C"]:
            raise UserError(
                f"Channel {cd.index + 1} does not exist in {stack.name}: choose a channel from 1 to {stack.sizes['C']}."
            )
        rgb = parse_color(cd.color)
        if any(rgb):
            shown.append((cd, rgb))
    if len(shown) > 1:
        grays = list(_POOL.map(lambda item: render_channel_gray(stack, loc, item[0].index, item[0]), shown))
    else:
        grays = [render_channel_gray(stack, loc, cd.index, cd) for cd, _ in shown]
    planes = [np.zeros((h, w), np.uint8) for _ in range(3)]
    for (cd, rgb), gray in zip(shown, grays):
        for k, comp in enumerate(rgb):
            if comp == 0:
                continue
            part = gray if comp == 255 else cv2.convertScaleAbs(gray, alpha=comp / 255.0)
            cv2.max(planes[k], part, dst=planes[k])
    return cv2.merge(planes)
