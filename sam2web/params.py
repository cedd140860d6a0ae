"""``TrackParams``: the one description of a tracking run, for every face of sam2web.

Why: one parameter used to be spelled out in up to seven places (the Track form, `track` and
`sweep` argparse, the job, the stored run settings, export metadata) and they drifted. Each field
here carries its default, its choices or range and its help text; the form, the command line and
the stored settings are all derived from it. Adding a parameter means adding a field here and
using it in the engine, nothing else.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from sam2web.errors import UserError
from sam2web.trackers import all_models

ACROSS = ("time", "z")
DIRECTIONS = ("forward", "backward", "both")
MODELS = all_models()  # every tracker family's choices at import (the form and flags read them live)
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
KEEP = ("largest", "all")

LABELS = {
    "time": "Time",
    "z": "Z",
    "forward": "Forward",
    "backward": "Backward",
    "both": "Both",
    "tiny": "SAM2.1 hiera tiny",
    "small": "SAM2.1 hiera small",
    "base_plus": "SAM2.1 hiera base_plus",
    "large": "SAM2.1 hiera large",
}


def _f(default: Any, help: str, choices: tuple | None = None, range_: tuple | None = None, **extra: Any):
    """A field with its metadata: ``cli_default`` overrides the default on the command line only."""
    meta = {"help": help, "choices": choices, "range": range_, **extra}
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrackParams:
    # what to track
    across: str = _f("time", "the axis that plays the role of video frames", ACROSS)
    direction: str = _f(
        "forward",
        "forward: toward later frames; backward: toward earlier; both: each prompt toward both ends",
        DIRECTIONS,
    )
    xy: str = _f("", "positions, 1-based ranges such as 1-3, 5 or all", cli_default="all")
    time: str = _f("all", "time points, 1-based ranges")
    z: str = _f("", "Z slices, 1-based ranges", cli_default="all")
    tags: tuple[str, ...] = _f((), "tags of the prompts to track (none: all prompts)")
    # the model
    model: str = _f("small", "the model: a size of SAM2.1 hiera, or another tracker family's", all_models)
    checkpoint: str = _f("", "checkpoint file (or folder holding sam2.1_hiera_<model>.pt); blank: look it up")
    device: str = _f("auto", "auto: CUDA, then Apple MPS, then CPU", DEVICES)
    precision: str = _f("auto", "auto: bfloat16 on CUDA and on CPUs with native bf16, fp32 elsewhere", PRECISIONS)
    image_size: int = _f(0, "model input side, a multiple of 32 (0: SAM2WEB_IMAGE_SIZE or the model's 1024)")
    # polygons and links
    padding: float = _f(0.0, "grow (+) or shrink (-) each polygon, in pixels", range_=(-20.0, 20.0), step=0.5)
    smoothing: float = _f(0.3, "simplification tolerance in pixels", range_=(0.0, 3.0), step=0.1)
    keep: str = _f("largest", "keep the largest piece of each mask or all pieces", KEEP)
    connect: bool = _f(True, "link consecutive polygons of an object")
    # exports
    dataset_id: str = _f("", "NimbusImage dataset id (24 hex digits) written as datasetId in nimbus.json")
    # cell lineage (sam2web/lineage.py explains the detection and why these defaults)
    divisions: bool = _f(True, "detect cell divisions while tracking (Time, forward direction only)")
    division_share: float = _f(
        0.25, "smallest daughter, as a share of the dividing mask's area", range_=(0.05, 0.5), step=0.05
    )
    division_frames: int = _f(2, "frames a split must last to count as a division", range_=(1, 10), step=1)

    # -- checks and conversions ----------------------------------------------------------------
    def validate(self, flags: bool = False) -> TrackParams:
        """Every value a user can get wrong, as one sentence each (naming ``--flags`` on the command line)."""
        for f in fields(self):
            value = getattr(self, f.name)
            name = "--" + f.name.replace("_", "-") if flags else "The " + f.name.replace("_", " ")
            choices, range_ = _choices(f.metadata), f.metadata["range"]
            if choices and value not in choices:
                raise UserError(f"{name} '{value}' is not one of {', '.join(choices)}.")
            if range_ and not range_[0] <= value <= range_[1]:
                raise UserError(
                    f"{name} {value:g} is outside {range_[0]:g}..{range_[1]:g}; choose a value in that range."
                )
        if self.image_size and (self.image_size < 128 or self.image_size > 2048 or self.image_size % 32):
            raise UserError(
                f"Image size {self.image_size} is not usable; choose a multiple of 32 between 128 and 2048 "
                "(1024 is SAM2's own, 512 is much faster on a CPU)."
            )
        if self.dataset_id and not re.fullmatch(r"[0-9a-fA-F]{24}", self.dataset_id.strip()):
            raise UserError(
                f"The dataset id {self.dataset_id[:40]!r} is not a NimbusImage dataset id; copy the 24-character "
                "id from the dataset's address in NimbusImage."
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrackParams:
        """From stored settings or form values: unknown keys are ignored, missing ones take defaults."""
        data = dict(data or {})
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data or data[f.name] is None:
                continue
            kwargs[f.name] = _coerce(f, data[f.name])
        return cls(**kwargs)

    def with_(self, **changes: Any) -> TrackParams:
        return replace(self, **changes)

    # -- the command line ----------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, groups: dict[str, str] | None = None) -> None:
        """One flag per field (``--image-size``; ``--no-connect`` for a default-True switch)."""
        for f in fields(cls):
            flag = "--" + f.name.replace("_", "-")
            meta = f.metadata
            default = meta.get("cli_default", f.default)
            text = meta["help"]
            if f.type in (bool, "bool"):
                parser.add_argument(
                    f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_false", help=f"do not {text}"
                )
                parser.set_defaults(**{f.name: default})
            elif f.name == "tags":
                parser.add_argument(flag, default="", help=f"comma-separated {text}")
            else:
                kind = type(f.default)
                if meta["range"]:
                    text += f", {meta['range'][0]:g}..{meta['range'][1]:g}"
                parser.add_argument(
                    flag,
                    type=kind,
                    default=default,
                    choices=_choices(meta),
                    metavar=None if meta["choices"] else f.name.upper(),
                    help=f"{text} (default: {default if default != '' else 'none'})",
                )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrackParams:
        values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        if isinstance(values.get("tags"), str):
            values["tags"] = tuple(t.strip() for t in values["tags"].split(",") if t.strip())
        values["checkpoint"] = values.get("checkpoint") or ""
        values["image_size"] = values.get("image_size") or 0
        return cls.from_dict(values).validate(flags=True)


def meta(name: str) -> dict[str, Any]:
    """A field's metadata (choices, range, step, help) for the form."""
    data = dict(next(f for f in fields(TrackParams) if f.name == name).metadata)
    data["choices"] = _choices(data)
    return data


def _choices(meta: Any) -> tuple | None:
    """A field's choices; a callable is asked each time (a tracker family registered later counts)."""
    choices = meta["choices"]
    return tuple(choices()) if callable(choices) else choices


def default(name: str) -> Any:
    return next(f for f in fields(TrackParams) if f.name == name).default


def _coerce(f, value: Any) -> Any:
    kind = type(f.default)
    if kind is tuple:
        return tuple(value) if isinstance(value, (list, tuple)) else tuple(t for t in str(value).split(",") if t)
    if kind is bool:
        return bool(value)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UserError(f"{f.name.replace('_', ' ')} '{value}' is not a {kind.__name__}.") from None
