"""Widgets of the Track page and the run panel: the parameter form, queued background runs.

Why: a run is resolved here (ranges -> sequences, tag filter, checkpoint check) so that every
user error is one sentence BEFORE anything is queued; the run itself goes to sam2web.service.jobs and
the page only polls its status (in an st.fragment), so the page stays usable.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from sam2web import params as params_mod
from sam2web.config import settings
from sam2web.errors import UserError
from sam2web.params import LABELS, TrackParams
from sam2web.service import runs
from sam2web.service.executor import get_executor, guess_device
from sam2web.store import ACTIVE_STATUSES, Run, Workspace
from sam2web.types import Prompt
from sam2web.ui import labels, lineage_ui, progress_ui, state
from sam2web.ui.text import plain

STATUS_ICONS = {
    "queued": ":material/hourglass_top:",
    "running": ":material/play_circle:",
    "done": ":material/check_circle:",
    "cancelled": ":material/stop_circle:",
    "interrupted": ":material/warning:",
    "failed": ":material/error:",
}
IMAGE_SIZES = [0, 1024, 768, 512, 256]
FORM_DEFAULTS: dict[str, Any] = {**TrackParams().to_dict(), "xy": "", "z": ""}


def stack_defaults(sizes: Any) -> dict:
    """A stack with one time point and many Z slices is tracked across Z, over all its slices."""
    if int(sizes["T"]) == 1 and int(sizes["Z"]) > 1:
        return {"across": "z", "z": "all", "time": ""}
    return {}


def all_tags(prompts: list[Prompt]) -> list[str]:
    return sorted({t for p in prompts for t in p.tags})


RANGE_HINT = "e.g. 1-3, 5-8 or all (blank: this frame)"
RANGE_HELP = "Counted from 1, as on every page: `1-3, 5-8` or `all`; blank means the frame shown on the other pages."
USER_CHOICES = ("model", "image_size")  # remembered for the user across workspaces (state.preferences)


def saved_form(ws: Workspace) -> dict:
    """The form's values: defaults, then what this workspace last ran, then the user's own choices."""
    mine = {k: v for k, v in state.preferences().items() if k in USER_CHOICES}
    return {**FORM_DEFAULTS, **(ws.view or {}).get("track", {}), **mine}


def _choice(label: str, name: str, saved: dict, widget, **kw: Any) -> Any:
    """A radio/selectbox over a TrackParams field's choices, labelled from ``LABELS``."""
    options = list(params_mod.meta(name)["choices"])
    value = saved[name] if saved[name] in options else params_mod.default(name)
    return widget(
        label,
        options,
        index=options.index(value),
        format_func=lambda v: LABELS.get(v, v),
        key=f"trk_{name}",
        help=params_mod.meta(name)["help"],
        **kw,
    )


def _number(col: Any, label: str, name: str, saved: dict) -> float:
    meta = params_mod.meta(name)
    lo, hi = meta["range"]
    return col.number_input(label, lo, hi, float(saved[name]), meta["step"], key=f"trk_{name}", help=meta["help"])


def form(ws: Workspace, stack: Any, prompts: list[Prompt]) -> dict | None:
    """The parameter form: every TrackParams field (the NimbusImage worker's parameters plus device, precision,
    image size); returns the values on submit, saved with the workspace."""
    saved = saved_form(ws)
    if "track" not in (ws.view or {}):  # nothing typed yet: start from what suits this stack
        saved.update(stack_defaults(stack.sizes))
    tags_avail = all_tags(prompts)
    with st.form("track_form", enter_to_submit=False):  # Enter in a field must not start a run
        # How to write a range sits in the fields themselves (placeholder and tooltip): one row less
        # above "Start tracking".
        c1, c2, c3 = st.columns(3)
        xy = c1.text_input("Batch XY", value=saved["xy"], key="trk_xy", placeholder=RANGE_HINT, help=RANGE_HELP)
        z = c2.text_input("Batch Z", value=saved["z"], key="trk_z", placeholder=RANGE_HINT, help=RANGE_HELP)
        t = c3.text_input("Batch Time", value=saved["time"], key="trk_time", placeholder=RANGE_HINT, help=RANGE_HELP)
        c1, c2, c3 = st.columns(3)
        with c1:
            across = _choice("Track across", "across", saved, st.radio, horizontal=True)
        with c2:
            direction = _choice("Track direction", "direction", saved, st.radio, horizontal=True)
        with c3:
            size = _choice("Model", "model", saved, st.selectbox)
        c1, c2, c3 = st.columns(3)
        tags = c1.multiselect(
            "Tag of objects to track (none = all)",
            tags_avail,
            key="trk_tags",
            default=[x for x in saved["tags"] if x in tags_avail],
        )
        padding = _number(c2, "Padding (px)", "padding", saved)
        smoothing = _number(c3, "Smoothing (px)", "smoothing", saved)
        # One row for the two switches and the division thresholds: "Start tracking" stays above the
        # fold of a 1280 x 800 window.
        c1, c2, c3 = st.columns(3)
        connect = c1.checkbox("Connect sequentially", value=bool(saved["connect"]), key="trk_connect")
        divisions = lineage_ui.division_fields(saved, (c1, c2, c3))  # lineage hook: detect divisions, thresholds
        with st.expander("Device, precision, image size, checkpoint"):
            c1, c2, c3 = st.columns(3)
            with c1:
                device = _choice("Device", "device", saved, st.selectbox)
            with c2:
                precision = _choice("Precision", "precision", saved, st.selectbox)
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
        **saved,
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
        **divisions,
    }
    view = dict(ws.view or {})
    view["track"] = values
    state.store().update_workspace(ws.id, view=view)
    ws.view = view
    state.save_preferences(**{k: values[k] for k in USER_CHOICES})
    return values


def default_image_size() -> int:
    """The side the model runs at when the form says "default": $SAM2WEB_IMAGE_SIZE, else SAM2's 1024.

    Why: the server may be started with a smaller size (e.g. 256 on a CPU); the user must see the
    size that will really be used, not the model's nominal one.
    """
    return int(settings().image_size or 1024)


def _image_size_label(value: int) -> str:
    """The form's choice; "0" shows the default the run will really use, and where it comes from."""
    if value:
        return f"{value} px"
    size = default_image_size()
    if settings().image_size and size != 1024:
        return f"default: {size} px ($SAM2WEB_IMAGE_SIZE)"
    return f"model default ({size} px)"


def effective_image_size(values: dict | None = None) -> int:
    """The model input side a run with these form values uses."""
    chosen = int((values or FORM_DEFAULTS).get("image_size") or 0)
    return chosen or default_image_size()


def hardware_caption(values: dict | None = None) -> str:
    """Where and how a run with these values executes (said without loading torch in the server)."""
    values = values or FORM_DEFAULTS
    device = guess_device(values.get("device", "auto"))
    precision = values.get("precision", "auto")
    standin = " · stand-in tracker (tests)" if settings().standin else ""
    return (
        f"Device: **{device}** · precision: **{precision}** · model image size: "
        f"**{effective_image_size(values)} px**{standin}"
    )


def hardware_help() -> str:
    """The caption's tooltip: what "auto" precision means and where runs execute."""
    return (
        "Precision auto: bfloat16 on CUDA and on CPUs with native bf16, else fp32; the run card says which. "
        f"Runs execute {get_executor().describe()}."
    )


def submit(ws: Workspace, stack: Any, values: dict, prompts: list[Prompt]) -> int:
    """Queue a run from the form's values; returns the run id."""
    params = TrackParams.from_dict(values)
    try:
        run_id, position = runs.submit(
            state.store(),
            ws,
            stack,
            params,
            prompts,
            state.display_settings(ws, stack),
            state.current_location(ws, stack),
        )
    except UserError:
        if runs.uses_real_model() and "checkpoint" in values and _missing_checkpoint(params):
            st.session_state["trk_missing_ckpt"] = params.model
        raise
    st.session_state["trk_last_run"] = run_id
    st.session_state["res_run_next"] = run_id  # the Results page opens on the run just started
    if position > 0:
        st.toast(f"Run {run_id} queued: position {position} on its device.")
    return run_id


def _missing_checkpoint(params: TrackParams) -> bool:
    try:
        runs.check_checkpoint(params)
    except UserError:
        return True
    return False


def rerun(ws: Workspace, stack: Any, run: Run, resume: bool) -> int:
    """Re-run (or Resume) a run with its own settings and the workspace's current prompts."""
    return runs.rerun(state.store(), ws, stack, run, resume, state.load_prompts(ws), state.display_settings(ws, stack))


def run_card(ws: Workspace, run: Run, stack: Any | None, key_prefix: str) -> None:
    """One run: status, progress, ETA, queue position, Cancel / Resume / Re-run."""
    executor = get_executor()
    status = executor.progress(run.id, state.store())
    if status is None:
        return
    icon = STATUS_ICONS.get(status.status, "")
    started = time.strftime("%H:%M", time.localtime(run.created))
    title = f"{icon} " + labels.run_title(run.id, status.status, run.settings, started)
    span = labels.run_span(run.settings)
    with st.container(border=True):
        st.markdown(title)
        if status.status == "queued" and status.queue_position:
            st.info(
                f"Queued: position {status.queue_position} in the queue for this device (one run at a time per device)."
            )
        if status.status in ACTIVE_STATUSES:
            loading = status.phase in ("loading", "preparing")
            st.progress(0.0 if loading else status.fraction, text=progress_ui.progress_text(status, span=span))
            if status.where:
                st.caption(f"Executing in {status.where}.")
            if st.button("Cancel", key=f"{key_prefix}_cancel_{run.id}", icon=":material/stop:"):
                runs.cancel(run.id)
                st.rerun()
        else:
            # What it did and what it ran on, side by side: the card stays short above the frame.
            frames = state.store().count_masks(run.id)
            left, right = st.columns(2, vertical_alignment="center")
            left.caption(labels.frames_sentence(status.status, status.done, status.total, frames, run.settings))
            model_info = (run.info or {}).get("model_info")
            if model_info and model_info.get("precision_reason"):  # the self-check's numbers, one click away
                with right.expander(labels.model_sentence(model_info)):
                    st.caption(f"How the precision was chosen: {model_info['precision_reason']}.")
            elif model_info:
                right.caption(labels.model_sentence(model_info))
            if status.error:
                (st.error if status.status == "failed" else st.warning)(plain(status.error))
        skipped = labels.unprompted_note(run.settings)
        if skipped:
            st.caption(skipped)
        if status.status not in ACTIVE_STATUSES:
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
                    help="Keeps every finished frame and tracks only the missing ones: a sequence stopped "
                    "midway continues from its last saved frame.",
                ):
                    with state.guard():
                        st.session_state["res_run_next"] = rerun(ws, stack, run, resume=True)  # Results follows it
                        st.rerun()
                if c2.button(
                    "Re-run",
                    key=f"{key_prefix}_rerun_{run.id}",
                    icon=":material/replay:",
                    help="Tracks every sequence of this run again, with the current prompts.",
                ):
                    with state.guard():
                        st.session_state["res_run_next"] = rerun(ws, stack, run, resume=False)
                        st.rerun()
            if key_prefix != "res" and frames and status.status != "failed":
                if st.button("Open in Results", key=f"{key_prefix}_open_{run.id}", icon=":material/insights:"):
                    st.session_state["res_run_next"] = run.id  # pick_run selects it on the Results page
                    st.switch_page("pages/results.py")


def resumed_by(run: Run) -> int | None:
    """The id of the run that resumed or re-ran this one (newest first), if any."""
    return runs.resumed_by(state.store(), run)


def has_active_runs(ws: Workspace) -> bool:
    return any(not r.finished for r in state.store().list_runs(ws.id)[:20])


def runs_panel(ws: Workspace, stack: Any | None, key_prefix: str = "trk", limit: int = 5) -> None:
    runs = state.store().list_runs(ws.id)[:limit]
    if not runs:
        st.caption("No runs yet.")
        return
    for run in runs:
        run_card(ws, run, stack, key_prefix)


def checkpoint_found(size: str, path: str) -> bool:
    """Is there a usable checkpoint for this model now (the typed path, else the usual folders)?"""
    from sam2web.tracking import model

    try:
        return model.find_checkpoint(size, path or None) is not None
    except UserError:  # a typed path that does not exist
        return False


def download_checkpoint_ui(size: str, ws: Workspace | None = None) -> None:
    """The Download button under the "checkpoint not found" error; the error itself says what to do.

    Said once: the error above names the file and the folder, this panel only offers the download.
    It goes away as soon as a checkpoint is found (a path typed in the form, a file put in place),
    and a failed download leaves a sentence in the app's words, not a stuck "Downloading…".
    """
    from sam2web.service import checkpoints
    from sam2web.tracking import model

    typed = str(st.session_state.get("trk_checkpoint") or (saved_form(ws)["checkpoint"] if ws else "") or "")
    if checkpoint_found(size, typed.strip()):
        st.session_state.pop("trk_missing_ckpt", None)
        return
    _, file_name = model.MODELS[size]
    c1, c2 = st.columns([1, 2], vertical_alignment="center")
    c2.caption(f"Downloads {file_name} from {model.DOWNLOAD_BASE} into {model.download_dir()}.")
    if c1.button(f"Download the {size} checkpoint", key="trk_download", icon=":material/download:"):
        slot = st.empty()
        bar = slot.progress(0.0, text="Downloading…")

        def progress(done: int, total: int) -> None:
            bar.progress(
                min(1.0, done / total) if total else 0.0, text=f"Downloading… {done / 1e6:.0f} of {total / 1e6:.0f} MB"
            )

        try:
            path = checkpoints.download(size, progress=progress)  # verified in a worker process: no torch here
        except UserError as err:
            slot.empty()
            st.error(
                str(err).replace("(or pass --checkpoint PATH)", "(or type its path in Checkpoint file)"),
                icon=":material/error:",
            )
            return
        slot.empty()
        st.success(f"Saved {path}; start tracking again.")
        st.session_state.pop("trk_missing_ckpt", None)
