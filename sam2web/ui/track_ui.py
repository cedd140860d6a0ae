"""Widgets of the Track page and the run panel: the parameter form, queued background runs.

Why: a run is resolved here (ranges -> sequences, tag filter, checkpoint check) so that every
user error is one sentence BEFORE anything is queued; the run itself goes to sam2web.service.jobs and
the page only polls its status (in an st.fragment), so the page stays usable.
"""

from __future__ import annotations

import os
import time
from typing import Any

import streamlit as st

from sam2web.errors import UserError
from sam2web.service.jobs import TrackJob, get_runner
from sam2web.store import Run, Workspace
from sam2web.types import Prompt
from sam2web.ui import state

ACROSS = {"time": "Time", "z": "Z"}
DIRECTIONS = {"forward": "Forward", "backward": "Backward", "both": "Both"}
MODEL_LABELS = {
    "tiny": "SAM2.1 hiera tiny",
    "small": "SAM2.1 hiera small",
    "base_plus": "SAM2.1 hiera base_plus",
    "large": "SAM2.1 hiera large",
}
IMAGE_SIZES = [0, 1024, 768, 512, 256]
STATUS_ICONS = {
    "queued": ":material/hourglass_top:",
    "running": ":material/play_circle:",
    "done": ":material/check_circle:",
    "cancelled": ":material/stop_circle:",
    "interrupted": ":material/warning:",
    "failed": ":material/error:",
}

FORM_DEFAULTS: dict[str, Any] = {
    "xy": "",
    "z": "",
    "time": "all",
    "across": "time",
    "direction": "forward",
    "model": "small",
    "tags": [],
    "connect": True,
    "padding": 0.0,
    "smoothing": 0.3,
    "device": "auto",
    "precision": "auto",
    "image_size": 0,
    "checkpoint": "",
}


def use_standin() -> bool:
    return os.environ.get("SAM2WEB_STANDIN") == "1"


def all_tags(prompts: list[Prompt]) -> list[str]:
    return sorted({t for p in prompts for t in p.tags})


def saved_form(ws: Workspace) -> dict:
    return {**FORM_DEFAULTS, **(ws.view or {}).get("track", {})}


def form(ws: Workspace, stack: Any, prompts: list[Prompt]) -> dict | None:
    """The parameter form (every SPEC.md parameter, plus device/precision/image size); returns values on submit."""
    from sam2web.tracking import model

    saved = saved_form(ws)
    tags_avail = all_tags(prompts)
    with st.form("track_form"):
        st.caption("Ranges are 1-based, e.g. `1-3, 5-8` or `all`; blank means the frame shown on the other pages.")
        c1, c2, c3 = st.columns(3)
        xy = c1.text_input("Batch XY", value=saved["xy"], key="trk_xy")
        z = c2.text_input("Batch Z", value=saved["z"], key="trk_z")
        t = c3.text_input("Batch Time", value=saved["time"], key="trk_time")
        c1, c2, c3 = st.columns(3)
        across = c1.radio(
            "Track across",
            list(ACROSS),
            format_func=ACROSS.get,
            horizontal=True,
            key="trk_across",
            index=list(ACROSS).index(saved["across"]),
        )
        direction = c2.radio(
            "Track direction",
            list(DIRECTIONS),
            format_func=DIRECTIONS.get,
            horizontal=True,
            key="trk_direction",
            index=list(DIRECTIONS).index(saved["direction"]),
        )
        size = c3.selectbox(
            "Model",
            list(model.MODELS),
            format_func=MODEL_LABELS.get,
            key="trk_model",
            index=list(model.MODELS).index(saved["model"]),
        )
        c1, c2, c3 = st.columns(3)
        tags = c1.multiselect(
            "Tag of objects to track (none = all)",
            tags_avail,
            key="trk_tags",
            default=[x for x in saved["tags"] if x in tags_avail],
        )
        padding = c2.number_input("Padding (px)", -20.0, 20.0, float(saved["padding"]), 0.5, key="trk_padding")
        smoothing = c3.number_input("Smoothing (px)", 0.0, 3.0, float(saved["smoothing"]), 0.1, key="trk_smoothing")
        connect = st.checkbox("Connect sequentially", value=bool(saved["connect"]), key="trk_connect")
        with st.expander("Device, precision, image size, checkpoint"):
            c1, c2, c3 = st.columns(3)
            device = c1.selectbox(
                "Device", list(model.DEVICES), key="trk_device", index=list(model.DEVICES).index(saved["device"])
            )
            precision = c2.selectbox(
                "Precision",
                list(model.PRECISIONS),
                key="trk_precision",
                index=list(model.PRECISIONS).index(saved["precision"]),
                help="auto: bfloat16 autocast on CUDA, fp32 on CPU.",
            )
            image_size = c3.selectbox(
                "Model image size",
                IMAGE_SIZES,
                key="trk_image_size",
                index=IMAGE_SIZES.index(int(saved["image_size"])) if int(saved["image_size"]) in IMAGE_SIZES else 0,
                format_func=_image_size_label,
                help="Smaller is much faster on a CPU, and coarser.",
            )
            checkpoint = st.text_input(
                "Checkpoint file (optional)",
                value=saved["checkpoint"],
                key="trk_checkpoint",
                help="A sam2.1_hiera_<size>.pt file; empty = look in $SAM2WEB_CHECKPOINTS and the user cache.",
            )
        submitted = st.form_submit_button("Start tracking", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return None
    values = {
        "xy": xy,
        "z": z,
        "time": t,
        "across": across,
        "direction": direction,
        "model": size,
        "tags": list(tags),
        "connect": bool(connect),
        "padding": float(padding),
        "smoothing": float(smoothing),
        "device": device,
        "precision": precision,
        "image_size": int(image_size),
        "checkpoint": checkpoint.strip(),
    }
    view = dict(ws.view or {})
    view["track"] = values
    state.store().update_workspace(ws.id, view=view)
    ws.view = view
    return values


def default_image_size() -> int:
    """The side the model runs at when the form says "default": $SAM2WEB_IMAGE_SIZE, else SAM2's 1024.

    Why: the server may be started with a smaller size (e.g. 256 on a CPU); the user must see the
    size that will really be used, not the model's nominal one. An invalid variable falls back to
    1024 here (the run itself reports it as a UserError).
    """
    from sam2web.tracking import model

    try:
        return int(model.default_image_size() or 1024)
    except UserError:
        return 1024


def _image_size_label(value: int) -> str:
    """The form's choice; "0" shows the default the run will really use, and where it comes from."""
    from sam2web.tracking import model

    if value:
        return f"{value} px"
    size = default_image_size()
    if os.environ.get(model.ENV_IMAGE_SIZE, "").strip() and size != 1024:
        return f"default: {size} px (${model.ENV_IMAGE_SIZE})"
    return f"model default ({size} px)"


def effective_image_size(values: dict | None = None) -> int:
    """The model input side a run with these form values uses."""
    chosen = int((values or FORM_DEFAULTS).get("image_size") or 0)
    return chosen or default_image_size()


def hardware_caption(values: dict | None = None) -> str:
    from sam2web.tracking import model

    values = values or FORM_DEFAULTS
    try:
        device = model.pick_device(values["device"])
    except UserError as err:
        return str(err)
    precision = model.pick_precision(device, values["precision"])
    return (
        f"Device: **{device}** · precision: **{precision}** · model image size: "
        f"**{effective_image_size(values)} px**" + (" · stand-in tracker (tests)" if use_standin() else "")
    )


def check_checkpoint(values: dict) -> None:
    """Refuse to queue a run that cannot load its model; say exactly what to do."""
    from sam2web.tracking import model

    if use_standin() or state.is_random_weights():
        return
    if model.find_checkpoint(values["model"], values["checkpoint"] or None) is None:
        st.session_state["trk_missing_ckpt"] = values["model"]
        size = values["model"]
        where = f"the file {values['checkpoint']}" if values["checkpoint"] else f"{model.MODELS[size][1]}"
        raise UserError(
            f"The SAM2.1 {size} checkpoint ({where}) was not found; download it with the button "
            f"below, put it in {model.download_dir()}, or type its path in Checkpoint file."
        )


def resolve(ws: Workspace, stack: Any, values: dict, prompts: list[Prompt]) -> tuple[list, list[Prompt], dict]:
    """Ranges -> sequences, tag filter -> prompts on those frames; UserError for every mistake."""
    from sam2web import selection

    loc = state.current_location(ws, stack)
    sizes = stack.sizes
    xys = selection.parse_ranges(values["xy"], sizes["XY"], loc.xy, name="XY")
    times = selection.parse_ranges(values["time"], sizes["T"], loc.time, name="Time")
    zs = selection.parse_ranges(values["z"], sizes["Z"], loc.z, name="Z")
    sequences = selection.build_sequences(xys, times, zs, values["across"], values["direction"])
    if not prompts:
        raise UserError("There are no prompts yet; draw a box around an object on the Annotate page.")
    chosen = [p for p in prompts if not values["tags"] or set(p.tags) & set(values["tags"])]
    if not chosen:
        raise UserError("No object has the chosen tags; pick other tags or none to track all objects.")
    on_frames = [p for p in chosen if any(seq.index_of(p.loc) is not None for seq in sequences)]
    if not on_frames:
        raise UserError(
            "No prompt lies on the frames to track; widen the Batch ranges to include a frame "
            "with a box, or draw one on a tracked frame."
        )
    objects = {}
    for p in on_frames:
        objects.setdefault(str(p.obj_id), {"name": p.name or f"Object {p.obj_id + 1}", "tags": list(p.tags)})
    return sequences, on_frames, objects


def submit(
    ws: Workspace,
    stack: Any,
    values: dict,
    prompts: list[Prompt],
    resume_from: Run | None = None,
    rerun_of: Run | None = None,
) -> int:
    """Queue a run on its device; returns the run id. Resume copies the finished sequences' masks."""
    from sam2web import prompts as prompts_mod
    from sam2web.tracking import model

    check_checkpoint(values)
    sequences, chosen, objects = resolve(ws, stack, values, prompts)
    device = "cpu" if use_standin() else model.pick_device(values["device"])
    resolved = {
        axis: sorted({getattr(loc, attr) for q in sequences for loc in q.frames})
        for axis, attr in (("xy", "xy"), ("time", "time"), ("z", "z"))
    }
    settings = {
        **values,
        "channel": 0,
        "n_sequences": len(sequences),
        "resolved": resolved,
        "display": state.display_settings(ws, stack).to_dict(),
        "prompts": [prompts_mod.prompt_to_dict(p) for p in chosen],
    }
    skip: set[int] = set()
    info: dict = {}
    if resume_from is not None:
        skip = set(resume_from.info.get("done_sequences", []))
        info = {"resumed_from": resume_from.id, "done_sequences": sorted(skip)}
    elif rerun_of is not None:
        info = {"rerun_of": rerun_of.id}
    s = state.store()
    run_id = s.create_run(
        ws.id,
        settings,
        objects=objects,
        total_frames=sum(len(q.frames) for i, q in enumerate(sequences) if i not in skip),
        random_weights=state.is_random_weights() and not use_standin(),
        info=info,
    )
    if resume_from is not None:
        s.copy_masks(resume_from.id, run_id)
    job = make_job(ws, values, sequences, chosen, state.display_settings(ws, stack), skip)
    position = get_runner().submit(s, run_id, device, job)
    st.session_state["trk_last_run"] = run_id
    if position > 0:
        st.toast(f"Run {run_id} queued: position {position} on {device}.")
    return run_id


def make_job(
    ws: Workspace, values: dict, sequences: list, prompts: list[Prompt], display: Any, skip: set[int]
) -> TrackJob:
    from sam2web import stack as stack_mod

    ds = dict(ws.dataset or {})
    paths = state.sample_paths() if ds.get("kind") == "sample" else state.store().dataset_paths(ws)
    pages_as = ds.get("pages_as", "time")

    def open_stack() -> Any:
        return stack_mod.open_stack([str(p) for p in paths] if len(paths) > 1 else str(paths[0]), pages_as=pages_as)

    return TrackJob(
        open_stack=open_stack,
        sequences=sequences,
        prompts=prompts,
        display=display,
        direction=values["direction"],
        model=values["model"],
        checkpoint=values["checkpoint"] or None,
        device=values["device"],
        image_size=values["image_size"] or None,
        precision=values["precision"],
        skip_sequences=skip,
    )


def rerun(ws: Workspace, stack: Any, run: Run, resume: bool) -> int:
    """Re-run (or Resume) a run with its own settings and the workspace's current prompts."""
    values = {k: run.settings.get(k, v) for k, v in FORM_DEFAULTS.items()}
    for axis, indices in (run.settings.get("resolved") or {}).items():
        values[axis] = ", ".join(str(i + 1) for i in indices)  # the same frames, whatever is shown now
    return submit(
        ws, stack, values, state.load_prompts(ws), resume_from=run if resume else None, rerun_of=None if resume else run
    )


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    return f" · about {seconds // 60} min {seconds % 60:02d} s left" if seconds >= 60 else f" · about {seconds} s left"


def run_card(ws: Workspace, run: Run, stack: Any | None, key_prefix: str) -> None:
    """One run: status, progress, ETA, queue position, Cancel / Resume / Re-run."""
    runner = get_runner()
    status = runner.status(state.store(), run.id)
    if status is None:
        return
    icon = STATUS_ICONS.get(status.status, "")
    title = (
        f"{icon} Run {run.id} · {status.status} · {run.settings.get('model', '')} · "
        f"{ACROSS.get(run.settings.get('across', 'time'), '')} {DIRECTIONS.get(run.settings.get('direction', ''), '')}"
        f" · {time.strftime('%H:%M:%S', time.localtime(run.created))}"
    )
    with st.container(border=True):
        st.markdown(title)
        if status.status == "queued" and status.queue_position:
            st.info(
                f"Queued: position {status.queue_position} in the queue for this device (one run at a time per device)."
            )
        if status.status in ("running", "queued"):
            st.progress(status.fraction, text=f"Frame {status.done} of {status.total}{_fmt_eta(status.eta_s)}")
            if st.button("Cancel", key=f"{key_prefix}_cancel_{run.id}", icon=":material/stop:"):
                runner.cancel(run.id)
                st.rerun()
        else:
            frames = state.store().count_masks(run.id)
            st.caption(f"{status.done} of {status.total} frames done · {frames} object-frame masks saved.")
            if status.error:
                (st.error if status.status == "failed" else st.warning)(status.error)
            later = resumed_by(run)
            if status.status in ("cancelled", "interrupted", "failed") and later is not None:
                # Resume / Re-run once more would queue a duplicate of the run that carries it on.
                st.caption(f"Resumed or re-run as run {later}; continue there.")
            elif status.status in ("cancelled", "interrupted", "failed") and stack is not None:
                c1, c2 = st.columns(2)
                if c1.button(
                    "Resume",
                    key=f"{key_prefix}_resume_{run.id}",
                    icon=":material/resume:",
                    help="Keeps the sequences (videos) that were finished and tracks the others again; "
                    "a sequence stopped midway is re-tracked from its start.",
                ):
                    with state.guard():
                        rerun(ws, stack, run, resume=True)
                        st.rerun()
                if c2.button(
                    "Re-run",
                    key=f"{key_prefix}_rerun_{run.id}",
                    icon=":material/replay:",
                    help="Tracks every sequence of this run again, with the current prompts.",
                ):
                    with state.guard():
                        rerun(ws, stack, run, resume=False)
                        st.rerun()
            if key_prefix != "res" and frames and status.status != "failed":
                if st.button("Open in Results", key=f"{key_prefix}_open_{run.id}", icon=":material/insights:"):
                    st.session_state["res_run_next"] = run.id  # pick_run selects it on the Results page
                    st.switch_page("pages/results.py")


def resumed_by(run: Run) -> int | None:
    """The id of the run that resumed or re-ran this one (newest first), if any."""
    for other in state.store().list_runs(run.ws_id):
        info = other.info or {}
        if other.id > run.id and run.id in (info.get("resumed_from"), info.get("rerun_of")):
            return other.id
    return None


def has_active_runs(ws: Workspace) -> bool:
    return any(r.status in ("queued", "running") for r in state.store().list_runs(ws.id)[:20])


def runs_panel(ws: Workspace, stack: Any | None, key_prefix: str = "trk", limit: int = 5) -> None:
    runs = state.store().list_runs(ws.id)[:limit]
    if not runs:
        st.caption("No runs yet.")
        return
    for run in runs:
        run_card(ws, run, stack, key_prefix)


def download_checkpoint_ui(size: str) -> None:
    """Offer the official checkpoint download, with a progress bar."""
    from sam2web.tracking import model

    st.warning(
        f"No SAM2.1 {size} checkpoint was found. Download it below (about 150-900 MB, from "
        f"{model.DOWNLOAD_BASE}), or put `{model.MODELS[size][1]}` in {model.download_dir()}, or type "
        "its path in **Checkpoint file** under *Device, precision, image size, checkpoint*."
    )
    if st.button(f"Download the {size} checkpoint", key="trk_download", icon=":material/download:"):
        bar = st.progress(0.0, text="Downloading…")

        def progress(done: int, total: int) -> None:
            bar.progress(
                min(1.0, done / total) if total else 0.0, text=f"Downloading… {done / 1e6:.0f} of {total / 1e6:.0f} MB"
            )

        with state.guard():
            path = model.download_checkpoint(size, progress=progress)
            st.success(f"Saved {path}.")
            st.session_state.pop("trk_missing_ckpt", None)
