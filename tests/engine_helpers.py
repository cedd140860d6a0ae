"""Shared helpers for the engine tests: a tiny synthetic non-square stack and a cached predictor.

The stack is deliberately non-square (72 x 120) so any width/height swap shows up, and tiny so
the real SAM2 (tiny, random weights, image size 256) runs a frame in a fraction of a second.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from sam2web.types import Location, Prompt, Sequence

H, W = 72, 120
N_FRAMES = 6


class SyntheticStack:
    """Duck-typed stand-in for sam2web.stack.Stack: two bright discs drifting right."""

    def __init__(self, n_frames: int = N_FRAMES, height: int = H, width: int = W):
        self.n = n_frames
        self.sizes = {"XY": 1, "T": n_frames, "Z": 1, "C": 1, "Y": height, "X": width}
        self.dtype = np.uint8
        self.name = "synthetic"
        self.channel_names = ["c0"]
        self.reads: list[Location] = []

    def centres(self, t: int) -> list[tuple[float, float]]:
        return [(20 + 3 * t, 24), (80 - 2 * t, 48)]

    def frame(self, loc: Location, channel: int = 0) -> np.ndarray:
        self.reads.append(loc)
        h, w = self.sizes["Y"], self.sizes["X"]
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.full((h, w), 20, np.uint8)
        for cx, cy in self.centres(loc.time):
            img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 81] = 220
        return img

    def render(self, loc: Location) -> np.ndarray:
        return np.repeat(self.frame(loc)[:, :, None], 3, axis=2)


def time_sequence(n: int = N_FRAMES, reverse: bool = False) -> Sequence:
    frames = tuple(Location(0, t, 0) for t in range(n))
    return Sequence(frames[::-1] if reverse else frames, "time")


def box_prompt(obj_id: int, t: int, stack: SyntheticStack, which: int | None = None) -> Prompt:
    cx, cy = stack.centres(t)[obj_id if which is None else which]
    return Prompt(obj_id=obj_id, loc=Location(0, t, 0), box=(cx - 11, cy - 11, cx + 11, cy + 11), tags=["cell"])


@functools.lru_cache(maxsize=2)
def tiny_predictor(image_size: int = 256, precision: str = "fp32"):
    """One random-weights tiny predictor per process (building one takes ~1 s)."""
    from sam2web.tracking import model

    old = os.environ.get(model.ENV_RANDOM)
    os.environ[model.ENV_RANDOM] = "1"
    try:
        return model.load_predictor("tiny", device="cpu", image_size=image_size, precision=precision)
    finally:
        if old is None:
            os.environ.pop(model.ENV_RANDOM, None)
        else:
            os.environ[model.ENV_RANDOM] = old
