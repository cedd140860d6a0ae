"""The words the pages use for objects, frames, runs and scores: one numbering, one phrasing.

Why one module: when each page phrases numbers itself, one list says "#0" and the next "#1 Object
1", and a card counts frames nobody tracked. Every page names things through these functions, so
the screen counts from 1 everywhere (exports stay 0-based, as the README says) and says in words
what a run did. No Streamlit here: plain functions, unit-tested.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sam2web.params import LABELS

AXES = {"time": "Time", "z": "Z"}
DEVICES = {"cpu": "the CPU", "cuda": "the GPU (CUDA)", "mps": "the Apple GPU (MPS)"}
PRECISIONS = {
    "fp32": "full precision (fp32)",
    "bf16": "bfloat16 autocast",
    "fp16": "float16 autocast",
    "auto": "automatic precision",
}


def object_label(obj_id: int, name: str | None = "") -> str:
    """``#1 Object 1``: the 1-based number, then the name (its default when it has none)."""
    return f"#{int(obj_id) + 1} {(name or '').strip() or f'Object {int(obj_id) + 1}'}"


def object_ref(obj_id: int) -> str:
    """``#1``: an object's number where its name would be too long (tables, division arrows)."""
    return f"#{int(obj_id) + 1}"


def names_of(objects: Mapping[str, Any]) -> dict[int, str]:
    """A run's ``objects`` ({"0": {"name": …}}) as {0: "name"}."""
    return {int(k): str((v or {}).get("name", "") or "") for k, v in objects.items()}


def axis_name(settings: Mapping[str, Any]) -> str:
    return AXES.get(str(settings.get("across", "time")), "Time")


def run_span(settings: Mapping[str, Any]) -> str:
    """Where a run's frames lie, 1-based: ``from Time 16``, ``from Time 30 back``, ``Time 16–30``."""
    across = str(settings.get("across", "time"))
    steps = sorted(int(v) for v in ((settings.get("resolved") or {}).get(across) or []))
    if not steps:
        return ""
    axis, lo, hi = AXES.get(across, "Time"), steps[0] + 1, steps[-1] + 1
    direction = settings.get("direction", "forward")
    if direction == "backward":
        return f"from {axis} {hi} back"
    if direction == "both" or lo == hi:
        return f"{axis} {lo}–{hi}" if lo != hi else f"{axis} {lo}"
    return f"from {axis} {lo}"


def sequence_name(first: list | tuple, settings: Mapping[str, Any]) -> str:
    """A sequence named by the coordinates it does not track along: ``XY 3``, ``XY 2 · Z 5``.

    Only the coordinates the run's sequences differ in are named (a run over one Z slice says
    ``XY 3``, not ``XY 3 · Z 1``); ``first`` is the sequence's first frame as [xy, time, z].
    """
    xy, t, z = (int(v) for v in first)
    resolved = settings.get("resolved") or {}
    fixed = (
        [("XY", "xy", xy), ("Z", "z", z)]
        if settings.get("across", "time") == "time"
        else [
            ("XY", "xy", xy),
            ("Time", "time", t),
        ]
    )
    named = [f"{label} {v + 1}" for label, key, v in fixed if len(resolved.get(key) or []) > 1]
    return " · ".join(named) or f"XY {xy + 1}"


def unprompted_note(settings: Mapping[str, Any], limit: int = 6) -> str:
    """Which of a run's sequences had no prompt (and so were not tracked), or ``""`` when none."""
    skipped = list(settings.get("unprompted") or [])
    if not skipped:
        return ""
    n = int(settings.get("n_sequences") or len(skipped))
    names = [sequence_name(first, settings) for first in skipped[:limit]]
    more = f" and {len(skipped) - limit} more" if len(skipped) > limit else ""
    which = "sequence" if n == 1 else "sequences"
    return f"No prompt on {len(skipped)} of {n} {which} ({', '.join(names)}{more}): not tracked."


def frames_sentence(status: str, done: int, total: int, masks: int, settings: Mapping[str, Any]) -> str:
    """A finished run's frames in words: ``Tracked all 15 frames (from Time 16) · 114 masks saved.``"""
    span = run_span(settings)
    where = f" ({span})" if span else ""
    saved = f"{masks} object mask{'s' if masks != 1 else ''} saved"
    if total and done >= total and status == "done":
        return f"Tracked {'all ' if total > 1 else ''}{total} frame{'s' if total != 1 else ''}{where} · {saved}."
    return f"{done} of {total} frame{'s' if total != 1 else ''}{where} tracked before it stopped · {saved}."


def model_sentence(info: Mapping[str, Any]) -> str:
    """``Ran SAM2.1 hiera tiny on the CPU in full precision (fp32) at 512 px.`` (the card's line)."""
    model = LABELS.get(str(info.get("model", "")), str(info.get("model", "") or "the model"))
    device = str(info.get("device", "") or "")
    device_words = DEVICES.get(device.split(":")[0], device or "this machine")
    if ":" in device:
        device_words += f" {device.split(':', 1)[1]}"
    precision = PRECISIONS.get(str(info.get("precision", "")), str(info.get("precision", "") or ""))
    size = info.get("image_size")
    parts = [f"Ran {model} on {device_words}"]
    if precision:
        parts.append(f"in {precision}")
    if size:
        parts.append(f"at {int(size)} px")
    return " ".join(parts) + "."


def run_title(run_id: int, status: str, settings: Mapping[str, Any], started: str) -> str:
    """The card's first line: ``Run 3 · done · SAM2.1 hiera tiny, across Time, forward · started 16:12``."""
    model = LABELS.get(str(settings.get("model", "")), str(settings.get("model", "")))
    direction = str(settings.get("direction", "forward"))
    return f"Run {run_id} · {status} · {model}, across {axis_name(settings)}, {direction} · started {started}"


# -- QA --------------------------------------------------------------------------------------
def _pct(v: float) -> str:
    return f"{100 * float(v):.0f} %"


def qa_summary(overall: Mapping[str, Any]) -> str:
    """The scores as sentences a biologist reads at a glance; the table and JSON keep the numbers."""
    if not overall:
        return ""
    objects, matched = int(overall.get("objects", 0)), int(overall.get("matched", 0))
    frames = int(overall.get("scored_frames", 0))
    lines = [f"{matched} of {objects} tracked object{'s' if objects != 1 else ''} matched a true cell."]
    if frames:
        lines.append(
            f"On {frames} object-frame{'s' if frames != 1 else ''} the outlines overlap the true cells by "
            f"{float(overall.get('mean_iou', 0.0)):.2f} on average (IoU; 1 = perfect), and "
            f"{_pct(overall.get('tracked_fraction', 0.0))} of them by at least half."
        )
    lost, switches = int(overall.get("lost_frames", 0)), int(overall.get("id_switches", 0))
    wrong = int(overall.get("wrong_id_frames", 0))
    lines.append(
        f"{lost} frame{'s' if lost != 1 else ''} lost (the cell is there, no outline), "
        f"{switches} identity switch{'es' if switches != 1 else ''}, "
        f"{wrong} frame{'s' if wrong != 1 else ''} on the wrong cell."
    )
    measures = [
        f"{words} {float(overall[key]):.2f}"
        for key, words in (("TRA", "tracking"), ("DET", "detection"), ("LNK", "linking"), ("CHOTA", "CHOTA"))
        if isinstance(overall.get(key), (int, float))
    ]
    if measures:
        lines.append("Cell Tracking Challenge scores (0–1, higher is better): " + ", ".join(measures) + ".")
    if "divisions_true" in overall:
        found, true = int(overall.get("divisions_found", 0)), int(overall["divisions_true"])
        words = f"{found} division{'s' if found != 1 else ''} found, {true} in the truth"
        recall, precision = overall.get("division_recall"), overall.get("division_precision")
        if isinstance(recall, (int, float)) and isinstance(precision, (int, float)):
            words += f" ({_pct(recall)} of the true ones found, {_pct(precision)} of those found right)"
        lines.append(words + ".")
    return " ".join(lines)
