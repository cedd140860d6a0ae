"""Widgets of the Dataset page: open a dataset, describe it, per-channel display, the frame view.

Why here and not in the page: the page stays a readable outline; the widget details (and the
rule "a failed upload never replaces a good dataset") live in one place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from sam2web.errors import UserError
from sam2web.stack.registry import upload_types
from sam2web.store import Workspace
from sam2web.types import Location
from sam2web.ui import state
from sam2web.ui.text import plain

UPLOAD_TYPES = upload_types()  # from the reader registry


def upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def _has_work(ws: Workspace) -> bool:
    return bool(ws.prompts) or bool(state.store().list_runs(ws.id))


def _dataset_gone(ws: Workspace) -> bool:
    """The workspace's uploaded files are no longer in the data folder (then an upload restores them)."""
    if (ws.dataset or {}).get("kind") != "files":
        return False
    try:
        return any(not p.exists() for p in state.store().dataset_paths(ws))
    except UserError:
        return True


def _target_workspace(ws: Workspace) -> Workspace:
    """Where a new dataset goes: this workspace if it holds no work yet, else a fresh one (nothing lost).

    A workspace whose files vanished takes the upload itself ("upload it again"): its prompts and runs
    become reachable again instead of staying behind in a workspace nobody can open a dataset in.
    """
    if ws.dataset and _has_work(ws) and not _dataset_gone(ws):
        new = state.new_workspace(state.store().unique_name(f"{ws.name} (new dataset)"))
        st.toast("Opened in a new workspace so the prompts and runs of the previous one stay intact.")
        return new
    return ws


def open_sample(ws: Workspace) -> None:
    target = _target_workspace(ws)
    s = state.store()
    s.update_workspace(target.id, dataset={"kind": "sample", "pages_as": "time"}, display={}, prompts=[], view={})
    if target.name.startswith("Workspace "):
        s.rename_workspace(target.id, s.unique_name("Sample time-lapse", exclude_id=target.id))


def open_uploads(ws: Workspace, files: list[Any], pages_as: str) -> None:
    """Copy uploads into the workspace (sanitised names) and open them; on failure keep the old dataset."""
    if not files:
        raise UserError("Choose one or more files to upload first.")
    for f in files:
        if f.size == 0:
            raise UserError(f"The file {f.name} is empty; choose the stack file itself.")
    s = state.store()
    s.discard_staging(ws.id)
    paths = [s.save_upload(ws.id, f.name, f.getvalue(), staging=True) for f in files]
    try:
        from sam2web import stack as stack_mod

        probe = stack_mod.open_stack([str(p) for p in paths] if len(paths) > 1 else str(paths[0]), pages_as=pages_as)
        probe.close()
    except UserError:
        s.discard_staging(ws.id)
        raise
    restoring = bool(ws.dataset) and _has_work(ws) and _dataset_gone(ws)
    target = _target_workspace(ws)
    if target.id != ws.id:
        os.replace(s.staging_dir(ws.id), s.staging_dir(target.id))
    s.commit_staging(target.id)
    names = [p.name for p in paths]
    dataset = {"kind": "files", "files": names, "pages_as": pages_as}
    if restoring:  # the same workspace's data again: its prompts, display and runs stay
        s.update_workspace(target.id, dataset=dataset)
        st.toast("The dataset is back in this workspace, with its prompts and runs.")
        return
    s.update_workspace(target.id, dataset=dataset, display={}, prompts=[], view={})
    if target.name.startswith("Workspace "):
        s.rename_workspace(
            target.id,
            s.unique_name(names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1})", exclude_id=target.id),
        )


def open_controls(ws: Workspace) -> None:
    """Upload / sample controls (collapsed once a dataset is open)."""
    with st.expander("Open a dataset", expanded=not ws.dataset):
        limit = upload_limit_mb()
        st.caption(
            f"TIFF / OME-TIFF / ImageJ hyperstacks, Zeiss CZI, MP4/AVI videos, or several per-frame "
            "TIFF/PNG/JPEG files at once. "
            f"Upload limit: {limit} MB per file (server.maxUploadSize in .streamlit/config.toml)."
        )
        files = st.file_uploader("Stack file(s)", type=UPLOAD_TYPES, accept_multiple_files=True, key=state.upload_key())
        pages_as = st.radio(
            "Pages of a multi-page TIFF are",
            ["time", "z"],
            horizontal=True,
            key="ds_pages_as",
            format_func=lambda v: "Time points" if v == "time" else "Z slices",
            help="Used only when the file does not say which axis its pages are.",
        )
        server_controls(ws, pages_as)
        if files:
            st.info(
                f"{len(files)} file(s) chosen: press **Open uploaded files** to open them"
                + (" as one stack (one file per frame)." if len(files) > 1 else "."),
                icon=":material/arrow_downward:",
            )
        c1, c2 = st.columns(2)
        if c1.button("Open uploaded files", key="ds_open_upload", type="primary", icon=":material/upload:"):
            with state.guard():
                open_uploads(ws, list(files or []), pages_as)
                st.rerun()
        if c2.button("Open the built-in sample", key="ds_open_sample", icon=":material/science:"):
            with state.guard():
                open_sample(ws)
                st.rerun()


# -- files already on the server (formats helper) --------------------------------------------------
def open_server_file(ws: Workspace, root: str, rel: str, pages_as: str) -> None:
    """Open a file inside an allowed server folder in place (no upload copy); on failure keep the old dataset."""
    from sam2web import server_files
    from sam2web import stack as stack_mod

    path = server_files.resolve(root, rel)
    probe = stack_mod.open_stack(str(path), pages_as=pages_as)
    probe.close()
    target = _target_workspace(ws)
    s = state.store()
    dataset = {"kind": "server", "root": str(Path(root).resolve()), "path": rel, "pages_as": pages_as}
    s.update_workspace(target.id, dataset=dataset, display={}, prompts=[], view={})
    if target.name.startswith("Workspace "):
        s.rename_workspace(target.id, s.unique_name(Path(rel).name, exclude_id=target.id))


def server_controls(ws: Workspace, pages_as: str) -> None:
    """List and open files in the folders SAM2WEB_SERVER_FOLDERS allows (nothing shown when none)."""
    from sam2web import server_files

    try:
        folders = server_files.server_folders()
    except UserError as err:
        st.error(plain(str(err)))
        return
    if not folders:
        return
    st.markdown("**Or open a file already on the server** (read in place, no upload)")
    c1, c2 = st.columns([1, 2])
    root = c1.selectbox("Server folder", [str(f) for f in folders], key="ds_server_root")
    choices = server_files.list_openable(root)
    chosen = c2.selectbox(
        "File",
        choices,
        index=None,
        key="ds_server_file",
        placeholder="choose a file" if choices else "no images, CZI, videos or OME-Zarr here",
    )
    typed = st.text_input(
        "…or its path inside the folder", key="ds_server_path", help="For example exp1/movie.czi (wins over the list)."
    )
    rel = typed.strip() or chosen
    if st.button("Open server file", key="ds_open_server", icon=":material/folder_open:"):
        with state.guard():
            if not rel:
                raise UserError("Choose a file from the list, or type its path inside the folder, first.")
            open_server_file(ws, root, rel, pages_as)
            st.rerun()


def describe(stack: Any) -> None:
    """The stack's dimensions as metrics, in rows of three (the page's left column)."""
    sizes = stack.sizes
    items = [
        ("XY positions", sizes["XY"]),
        ("Time points", sizes["T"]),
        ("Z slices", sizes["Z"]),
        ("Channels", sizes["C"]),
        ("Height", sizes["Y"]),
        ("Width", sizes["X"]),
    ]
    for row in (items[:3], items[3:]):
        for col, (label, value) in zip(st.columns(3), row):
            col.metric(label, value)
    extra = [
        f"**Name:** {plain(stack.name)}",
        f"**Data type:** {stack.dtype}",
        f"**Channels:** {plain(', '.join(stack.channel_names))}",
    ]
    if stack.pixel_size:
        x, y, unit = stack.pixel_size
        extra.append(f"**Pixel size:** {x:g} × {y:g} {unit}")
    st.caption(" · ".join(extra))


def display_controls(ws: Workspace, stack: Any) -> Any:
    """Per-channel visibility, colour and contrast; saved to the workspace when changed."""
    from sam2web.stack import display

    settings = state.display_settings(ws, stack)
    names = stack.channel_names
    with st.expander("Channels and contrast", expanded=False):
        new_channels = []
        for ch in settings.channels:
            name = names[ch.index] if ch.index < len(names) else f"Channel {ch.index + 1}"
            # Two rows per channel: the name gets the column's width (long names wrap, never "Cyt…"),
            # then contrast, low and high wide enough for their values at 1280 px.
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            visible = c1.checkbox(
                plain(name), value=ch.visible, key=f"loc_ch_vis_{ch.index}", help=f"Show {plain(name)}"
            )
            color = c2.color_picker(
                f"Colour of {plain(name)}", value=ch.color, key=f"loc_ch_col_{ch.index}", label_visibility="collapsed"
            )
            c3, c4, c5 = st.columns([1.4, 1, 1])
            mode = c3.selectbox(
                "Contrast",
                ["percentile", "absolute"],
                key=f"loc_ch_mode_{ch.index}",
                index=0 if ch.mode == "percentile" else 1,
                format_func=lambda m: "Percentile" if m == "percentile" else "Min / max",
            )
            if mode != ch.mode:  # switching modes resets the limits to that mode's defaults
                low, high = (1.0, 99.8) if mode == "percentile" else frame_range(ws, stack, ch.index)
            else:
                low, high = ch.low, ch.high
            low = c4.number_input("Low", value=float(low), key=f"loc_ch_low_{ch.index}_{mode}")
            high = c5.number_input("High", value=float(high), key=f"loc_ch_high_{ch.index}_{mode}")
            new_channels.append(
                display.ChannelDisplay(
                    index=ch.index, color=color, visible=visible, mode=mode, low=float(low), high=float(high)
                )
            )
        if not any(c.visible for c in new_channels):
            st.warning("All channels are hidden; the frame is black. Tick a channel to see it.")
    new = display.DisplaySettings(channels=new_channels)
    if new.to_dict() != (ws.display or {}):
        state.store().update_workspace(ws.id, display=new.to_dict())
        ws.display = new.to_dict()
    return new


def frame_range(ws: Workspace, stack: Any, channel: int) -> tuple[float, float]:
    """The shown frame's own min and max in one channel: where "Min / max" contrast starts.

    Why not the dtype's range: a 12-bit camera image in a uint16 file spans 0-4095 at most, so
    0-65535 would show it black.
    """
    loc = state.current_location(ws, stack)
    plane = np.asarray(stack.frame(loc, channel))
    if plane.size == 0:
        return 0.0, 1.0
    lo, hi = float(np.nanmin(plane)), float(np.nanmax(plane))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


PREVIEW_MAX_H = 560  # screen pixels: the whole frame stays above the fold of a 1280 x 800 window


def preview_width(rgb: Any) -> int:
    """The frame's screen width: fits the page (at most 900 px) and keeps its height under PREVIEW_MAX_H."""
    h, w = rgb.shape[:2]
    return int(max(240, min(state.image_width(rgb), 900, PREVIEW_MAX_H * w / h)))


def screen_sized(rgb: Any, width: int) -> Any:
    """The frame resampled to ``width`` screen pixels (nearest when enlarging: pixels stay pixels).

    Why not ``st.image(width=…)``: a fixed width wider than its column runs out of the column (at
    1280 px the frame's right part is cut off); an image of its own size shown "as content" never
    grows past its column.
    """
    from PIL import Image

    h, w = rgb.shape[:2]
    if w == width:
        return rgb
    height = max(1, round(h * width / w))
    how = Image.Resampling.NEAREST if width > w else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((width, height), how))


def show_frame(ws: Workspace, stack: Any, loc: Location, settings: Any) -> None:
    rgb = state.render(ws, stack, loc, settings)
    sizes = stack.sizes
    st.image(
        screen_sized(rgb, preview_width(rgb)),
        caption=f"XY {loc.xy + 1}/{sizes['XY']} · Time {loc.time + 1}/{sizes['T']} · Z {loc.z + 1}/{sizes['Z']}",
        width="content",
    )


def calibration_controls(ws: Workspace, stack: Any) -> None:
    """Pixel size, Z step and time interval: the file's values, or the user's where the file has none.

    Why here: exports carry µm² areas and calibrated axes only when the size is known, and many
    files (PNG frames, plain TIFFs, videos) do not say it. Stored in the workspace's dataset
    record (``calibration``), so every export of every run of the workspace uses it; 0 clears a
    value the user set (the file's own value, if any, comes back).
    """
    from sam2web.exporters import Units

    units = Units.of(stack, (ws.dataset or {}).get("calibration"))
    missing = units.pixel_size is None or (stack.sizes["T"] > 1 and units.time_interval is None)
    with st.expander("Physical size" + (" (not in the file: set it here)" if missing else ""), expanded=False):
        with st.form("ds_calibration", border=False):
            size = st.number_input(
                "Pixel size (µm per pixel)",
                min_value=0.0,
                value=float(units.pixel_size[0]) if units.pixel_size else 0.0,
                format="%.6g",
                key="ds_cal_pixel",
                help="0 = unknown; exports then give areas in px² only",
            )
            z_step = st.number_input(
                "Z step (µm)", min_value=0.0, value=float(units.z_step or 0.0), format="%.6g", key="ds_cal_z"
            )
            interval = st.number_input(
                "Time interval (seconds)",
                min_value=0.0,
                value=float(units.time_interval or 0.0),
                format="%.6g",
                key="ds_cal_t",
            )
            if st.form_submit_button("Save physical size"):
                # keep only what differs from the file: the file's own (possibly anisotropic) values stay
                file_units = Units.of(stack)
                file_size = file_units.pixel_size[0] if file_units.pixel_size else None
                new = {
                    "pixel_size": size if size and size != file_size else None,
                    "z_step": z_step if z_step and z_step != file_units.z_step else None,
                    "time_interval": interval if interval and interval != file_units.time_interval else None,
                }
                new = {k: v for k, v in new.items() if v is not None}
                if "pixel_size" in new:
                    new["unit"] = "µm"
                state.store().update_workspace(ws.id, dataset={**(ws.dataset or {}), "calibration": new})
                st.toast("Physical size saved: the exports of this workspace now use it.")
                st.rerun()
