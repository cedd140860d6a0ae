"""The tracker registry: every model family sam2web can track with, without importing torch.

A family names the model choices it offers (``models``), how its checkpoint file is called and
where it is downloaded from, and the function that builds a predictor (``build``, a
``"module:function"`` string imported only inside a worker process, so the web server never
imports torch). ``sam2web.params`` takes its model choices from here, the Track page and the
CLI's ``--model`` from params; a new family is one module under ``sam2web.tracking`` and one entry.

``build(model, checkpoint, device, image_size, precision, download=False, progress=None)`` returns
a predictor with SAM2's video-predictor surface (``init_state``, ``add_new_points_or_box``,
``propagate_in_video``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sam2web.registry import Registry


@dataclass(frozen=True)
class TrackerFamily:
    name: str
    label: str  # e.g. "SAM2.1 hiera"
    models: tuple[str, ...]  # the --model choices it offers, smallest first
    build: str  # "module:function", see the module docstring
    checkpoints: dict[str, str]  # model -> checkpoint file name
    download_base: str | None = None  # where checkpoint files are downloaded from (None: not downloadable)
    configs: dict[str, str] | None = None  # model -> the family's own config name, where it has one
    default_model: str | None = None

    def model_label(self, model: str) -> str:
        return f"{self.label} {model}"


_SAM2_SHORT = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}

TRACKERS: Registry[TrackerFamily] = Registry(
    "model family",
    [
        TrackerFamily(
            name="sam2.1",
            label="SAM2.1 hiera",
            models=tuple(_SAM2_SHORT),
            build="sam2web.tracking.model:load_predictor",
            checkpoints={m: f"sam2.1_hiera_{m}.pt" for m in _SAM2_SHORT},
            download_base="https://dl.fbaipublicfiles.com/segment_anything_2/092824/",
            configs={m: f"configs/sam2.1/sam2.1_hiera_{s}.yaml" for m, s in _SAM2_SHORT.items()},
            default_model="small",
        ),
    ],
)


def all_models() -> tuple[str, ...]:
    """Every model choice of every family, in registry order."""
    return tuple(m for family in TRACKERS for m in family.models)


def family_of(model: str) -> TrackerFamily:
    """The family offering ``model`` (UserError listing the choices when none does)."""
    for family in TRACKERS:
        if model in family.models:
            return family
    from sam2web.errors import UserError

    raise UserError(f"Unknown model '{model}': choose one of {', '.join(all_models())}.")
