"""Plain data passed between the stages of the pipeline (see DESIGN.md's one-way data flow).

stack -> Sequence + Prompt -> tracker -> TrackResult (masks) -> Annotation (polygons) -> Connection
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class Location(NamedTuple):
    """A 2D frame's place in the stack; 0-based indices."""

    xy: int
    time: int
    z: int


@dataclass(frozen=True)
class Sequence:
    """One "video" for the tracker: frames in the order the predictor will see them.

    Backward sequences are already reversed here, so ``frames[0]`` is always frame index 0.
    """

    frames: tuple[Location, ...]
    across: str  # "time" or "z"

    def index_of(self, loc: Location) -> int | None:
        try:
            return self.frames.index(loc)
        except ValueError:
            return None


@dataclass
class Prompt:
    """What the user gave for one object at one frame.

    ``box`` is ``(x0, y0, x1, y1)`` in full-resolution pixels (x = column, y = row), already
    clipped to the image. ``points`` are ``(x, y, label)`` with label 1 = positive, 0 = negative.
    ``mask`` is a bool array of the frame's (height, width). Several prompts may share an
    ``obj_id`` (the same object prompted on several frames, or a later correction).
    """

    obj_id: int
    loc: Location
    box: tuple[float, float, float, float] | None = None
    points: list[tuple[float, float, int]] = field(default_factory=list)
    mask: np.ndarray | None = None
    tags: list[str] = field(default_factory=list)
    name: str = ""
    parent: int | None = None  # obj_id of the mother when this prompt starts a daughter (a division)


@dataclass
class CompactMask:
    """A bool mask stored as its bounding box plus bit-packed pixels (a few % of the full size)."""

    shape: tuple[int, int]  # full frame (height, width)
    bbox: tuple[int, int, int, int]  # (row0, col0, row1, col1), exclusive ends; all 0 if empty
    bits: bytes

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> CompactMask:
        mask = np.asarray(mask, dtype=bool)
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return cls(mask.shape, (0, 0, 0, 0), b"")
        cols = np.flatnonzero(mask.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        return cls(mask.shape, (r0, c0, r1, c1), np.packbits(mask[r0:r1, c0:c1]).tobytes())

    @property
    def empty(self) -> bool:
        return self.bits == b""

    def crop(self) -> np.ndarray:
        """The mask inside its bbox (bool array of bbox size)."""
        r0, c0, r1, c1 = self.bbox
        n = (r1 - r0) * (c1 - c0)
        flat = np.unpackbits(np.frombuffer(self.bits, dtype=np.uint8), count=n)
        return flat.reshape(r1 - r0, c1 - c0).astype(bool)

    def to_mask(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        if not self.empty:
            r0, c0, r1, c1 = self.bbox
            out[r0:r1, c0:c1] = self.crop()
        return out


@dataclass
class ObjectInfo:
    """What a run knows about one object besides its masks.

    ``parent`` is the obj_id of the object this one divided from (None: a founder). A mother ends
    the frame before her daughters begin; links and exports turn the pair into a division.
    """

    obj_id: int
    name: str = ""
    tags: list[str] = field(default_factory=list)
    parent: int | None = None


@dataclass
class TrackResult:
    """Masks of a run, kept so polygons can be recomputed without the model.

    ``masks[(obj_id, loc)]`` is the object's mask at that frame (absent = not tracked there).
    ``partial`` is True when the run was cancelled or interrupted before every frame was done.
    """

    masks: dict[tuple[int, Location], CompactMask] = field(default_factory=dict)
    objects: dict[int, ObjectInfo] = field(default_factory=dict)
    channel: int = 0
    partial: bool = False
    random_weights: bool = False
    settings: dict = field(default_factory=dict)


@dataclass
class Annotation:
    """One polygon of one object at one frame; ``geometry`` is a shapely Polygon/MultiPolygon."""

    id: str
    obj_id: int
    loc: Location
    geometry: object
    channel: int = 0
    tags: list[str] = field(default_factory=list)
    parent: int | None = None  # the object's mother (ObjectInfo.parent), carried into the exports

    @property
    def area(self) -> float:
        return float(self.geometry.area)


@dataclass
class Connection:
    parent_id: str
    child_id: str
    obj_id: int
    tags: list[str] = field(default_factory=lambda: ["SAM2_VIDEO"])
