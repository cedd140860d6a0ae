"""Widgets of the Results page: playback with overlays, per-object table, area plot, corrections,
downloads and the QA section.

Why: masks are stored per frame, so polygons are recomputed here on every padding/smoothing
change (milliseconds, no model); the page only lays these out.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from sam2web.errors import UserError
from sam2web.overlay import color_for, draw_geometries
from sam2web.params import LABELS
from sam2web.service import review, runs
from sam2web.store import Run, Workspace
from sam2web.types import Location, ObjectInfo, TrackResult
from sam2web.ui import canvas, labels, lineage_ui, state
from sam2web.ui.downloads_ui import download_builders, downloads, label_downloads  # noqa: F401  (the page calls them here)
from sam2web.ui.text import plain


def pick_run(ws: Workspace) -> Run | None:
    runs = state.store().list_runs(ws.id)
    if not runs:
        st.info("No runs yet: draw boxes on the Annotate page, then start tracking on the Track page.")
        return None
    labels = {r.id: run_label(r) for r in runs}
    ids = list(labels)
    pending = st.session_state.pop("res_run_next", None)
    if pending in ids:
        st.session_state["res_run"] = pending
    elif st.session_state.get("res_run") not in ids:
        st.session_state.pop("res_run", None)
    run_id = st.selectbox("Run", ids, format_func=labels.get, key="res_run")
    return next(r for r in runs if r.id == run_id)


def run_label(run: Run) -> str:
    """The Run selector's words for a run, from its current state (re-read on every rerun)."""
    status = run.status
    if not run.finished:
        status += f" {run.done_frames} of {run.total_frames}"
    model = LABELS.get(run.settings.get("model", ""), run.settings.get("model", ""))
    return f"Run {run.id} · {status} · {model}, across {labels.axis_name(run.settings)}, {run.settings.get('direction', '')}"


@st.cache_resource(max_entries=8, show_spinner=False)
def _run_view(db: str, run_id: int) -> Any:
    """One RunView per run and data folder, shared by the sessions of this server (bounded: 8 runs)."""
    from sam2web.ui.results_data import RunView

    return RunView(state.store(), run_id)


def run_view(run: Run) -> Any:
    """The run's masks, brought up to date by reading only what was written since the last rerun."""
    view = _run_view(str(state.store().db_path), run.id)
    view.refresh()
    return view


def _objects(run: Run) -> dict[int, ObjectInfo]:
    """The run's objects with their names, tags and parents (the store's one reading of them)."""
    from sam2web.store import objects_from_dict

    return objects_from_dict(run.objects)


def load_result(run: Run) -> TrackResult:
    """The run as a TrackResult (a snapshot of the live masks; see ``run_view``)."""
    return run_view(run).result(
        _objects(run),
        channel=int(run.settings.get("channel", 0) or 0),
        partial=run.status != "done",
        random_weights=run.random_weights,
        settings=dict(run.settings),
    )


def _saved(ws: Workspace | None, run: Run) -> dict:
    """This run's Results settings saved in the workspace (padding, smoothing, fragments, links, visible)."""
    return dict(((ws.view or {}).get("results") or {}).get(str(run.id), {})) if ws is not None else {}


def save_settings(ws: Workspace | None, run: Run, **values: Any) -> None:
    """Keep the Results settings of a run with the workspace, so a reload or restart shows the same view."""
    if ws is None:
        return
    saved = _saved(ws, run)
    if all(saved.get(k) == v for k, v in values.items()):
        return
    view = dict(ws.view or {})
    results = dict(view.get("results") or {})
    results[str(run.id)] = {**saved, **values}
    view["results"] = results
    state.store().update_workspace(ws.id, view=view)
    ws.view = view


def _seed(key: str, value: Any) -> None:
    """A widget's first value in this session comes from the workspace (later, the widget's own state)."""
    if key not in st.session_state:
        st.session_state[key] = value


def geometry_controls(run: Run, ws: Workspace | None = None) -> dict:
    saved = _saved(ws, run)
    _seed(f"res_padding_{run.id}", float(saved.get("padding", run.settings.get("padding", 0.0))))
    _seed(f"res_smoothing_{run.id}", float(saved.get("smoothing", run.settings.get("smoothing", 0.3))))
    _seed(f"res_keep_{run.id}", bool(saved.get("keep_all", False)))
    _seed(f"res_connect_{run.id}", bool(saved.get("connect", run.settings.get("connect", True))))
    c1, c2 = st.columns(2)
    c3, c4 = st.columns(2)
    padding = c1.number_input("Padding (px)", -20.0, 20.0, step=0.5, key=f"res_padding_{run.id}")
    smoothing = c2.number_input("Smoothing (px)", 0.0, 3.0, step=0.1, key=f"res_smoothing_{run.id}")
    keep_all = c3.checkbox(
        "Keep fragments",
        key=f"res_keep_{run.id}",
        help="Off: the largest piece of each mask (the default). On: every piece (MultiPolygon).",
    )
    connect = c4.checkbox("Connect sequentially", key=f"res_connect_{run.id}")
    save_settings(
        ws, run, padding=float(padding), smoothing=float(smoothing), keep_all=bool(keep_all), connect=bool(connect)
    )
    return {
        "padding": float(padding),
        "smoothing": float(smoothing),
        "keep": "all" if keep_all else "largest",
        "connect": bool(connect),
    }


def visible_objects(ws: Workspace | None, run: Run, objects: list[int]) -> set[int]:
    """The "Show objects" choice, saved with the workspace (objects new since then are shown)."""
    saved = _saved(ws, run)
    hidden = {int(i) for i in saved.get("hidden", [])}
    key = f"res_visible_{run.id}"
    _seed(key, [o for o in objects if o not in hidden])
    st.session_state[key] = [o for o in st.session_state[key] if o in objects]
    chosen = st.multiselect(
        "Show objects",
        objects,
        key=key,
        format_func=lambda i: labels.object_label(i, run.objects.get(str(i), {}).get("name", "")),
    )
    save_settings(ws, run, hidden=[o for o in objects if o not in chosen])
    return set(chosen)


def annotations(run: Run, result: Any, opts: dict) -> tuple[list, list]:
    """Polygons and links for these settings; only masks new since the last rerun are traced."""
    del result  # the run's RunView holds the same masks (kept in the signature for the page)
    return _run_view(str(state.store().db_path), run.id).annotations(
        _objects(run),
        int(run.settings.get("channel", 0) or 0),
        opts["padding"],
        opts["smoothing"],
        opts["keep"],
        opts["connect"],
    )


def frames_of(run: Run, result: Any) -> list[Location]:
    """The frames along the tracking axis, in (Time, Z, XY) order: the run's frames plus any masked one."""
    resolved = run.settings.get("resolved") or {}
    locs = {loc for (_, loc) in result.masks}
    if resolved:
        across = run.settings.get("across", "time")
        xs, ts, zs = resolved.get("xy", [0]), resolved.get("time", [0]), resolved.get("z", [0])
        locs |= {Location(x, t, z) for x in xs for t in ts for z in zs}
        del across
    return sorted(locs, key=lambda l: (l.xy, l.time, l.z))


def _memo(run: Run, what: str, opts: dict, *extra: Any, make: Any) -> Any:
    """``make()`` once per run, mask version, settings and object names (see ``RunView.memo``)."""
    key = (what, tuple(sorted(opts.items())), json.dumps(run.objects, sort_keys=True), *extra)
    return _run_view(str(state.store().db_path), run.id).memo(key, make)


def object_table(run: Run, anns: list, result: Any, opts: dict | None = None) -> pd.DataFrame:
    """One row per object: name, tags, frames tracked, first/last frame (1-based), mean area."""
    del result
    if opts is not None:
        return _memo(run, "table", opts, make=lambda: _object_table(run, anns))
    return _object_table(run, anns)


def _object_table(run: Run, anns: list) -> pd.DataFrame:
    across = run.settings.get("across", "time")
    axis = (lambda l: l.time) if across == "time" else (lambda l: l.z)
    by_obj: dict[int, list] = {}
    for a in anns:
        by_obj.setdefault(a.obj_id, []).append(a)
    rows = []
    for obj_id in sorted(set(by_obj) | {int(k) for k in run.objects}):
        mine = by_obj.get(obj_id, [])
        info = run.objects.get(str(obj_id), {})
        steps = [axis(a.loc) + 1 for a in mine]
        rows.append(
            {
                "object": obj_id + 1,
                "name": info.get("name", "") or f"Object {obj_id + 1}",
                "tags": ", ".join(info.get("tags", [])),
                "frames tracked": len(mine),
                f"first {across}": min(steps) if steps else None,
                f"last {across}": max(steps) if steps else None,
                "mean area (px²)": round(sum(a.area for a in mine) / len(mine), 1) if mine else 0.0,
            }
        )
    return pd.DataFrame(rows)


def area_frame(run: Run, anns: list, visible: set[int]) -> pd.DataFrame:
    """Area per (frame, object), 1-based frames; a frame where an object has no mask is a gap (NaN).

    Why the gaps: a line drawn straight across frames with no mask suggests the object was there.
    """
    across = run.settings.get("across", "time")
    axis = (lambda l: l.time) if across == "time" else (lambda l: l.z)
    data = [
        {"frame": axis(a.loc) + 1, "object": f"#{a.obj_id + 1}", "area": a.area} for a in anns if a.obj_id in visible
    ]
    if not data:
        return pd.DataFrame(columns=["frame", "object", "area"])
    df = pd.DataFrame(data).groupby(["frame", "object"], as_index=False)["area"].sum()
    frames = range(int(df["frame"].min()), int(df["frame"].max()) + 1)
    full = pd.MultiIndex.from_product([frames, sorted(df["object"].unique())], names=["frame", "object"])
    return df.set_index(["frame", "object"]).reindex(full).reset_index()


def area_spec(df: pd.DataFrame, label: str) -> dict:
    """The Vega-Lite spec of the area plot, written out (Altair's validation cost ~60 ms a rerun).

    Lines with points (one frame is still visible), whole-number ticks, one colour per object as on
    the frames; a missing area (NaN, no mask) breaks the line.
    """
    objects = sorted(df["object"].unique(), key=lambda o: int(o[1:]))
    frames = sorted(int(f) for f in df["frame"].unique())
    axis: dict = {"format": "d", "tickMinStep": 1, "title": label}
    if len(frames) <= 30:
        axis["values"] = frames
    return {
        "mark": {"type": "line", "point": {"size": 50}, "invalid": "break-paths-show-domains"},
        "encoding": {
            "x": {
                "field": "frame",
                "type": "quantitative",
                "scale": {"domain": [min(frames) - 0.5, max(frames) + 0.5]},
                "axis": axis,
            },
            "y": {"field": "area", "type": "quantitative", "title": "area (px²)"},
            "color": {
                "field": "object",
                "type": "nominal",
                "scale": {"domain": objects, "range": [color_for(int(o[1:]) - 1) for o in objects]},
            },
            "tooltip": [{"field": "object"}, {"field": "frame"}, {"field": "area", "format": ".1f"}],
        },
    }


def area_chart(run: Run, anns: list, visible: set[int], opts: dict | None = None) -> None:
    """Area per object over the tracking axis (see ``area_spec``)."""
    label = _axis_label(run)
    if opts is not None:
        df, spec = _memo(run, "area", opts, tuple(sorted(visible)), make=lambda: _area(run, anns, visible, label))
    else:
        df, spec = _area(run, anns, visible, label)
    if df.empty:
        return
    st.markdown(f"**Area (px²) over {label}**")
    st.vega_lite_chart(df, spec, width="stretch")


def _area(run: Run, anns: list, visible: set[int], label: str) -> tuple[pd.DataFrame, dict]:
    df = area_frame(run, anns, visible)
    return df, (area_spec(df, label) if not df.empty else {})


FRAME_MAX_H = 560  # screen pixels: a tall frame still fits a 1280 x 800 window


def playback(ws: Workspace, stack: Any, run: Run, anns: list, frames: list[Location], visible: set[int]) -> Location:
    """Play/pause and a frame slider; the polygons of visible objects drawn over the frame."""
    if not frames:
        st.caption("This run has no frames yet.")
        return state.current_location(ws, stack)
    key = f"res_frame_{run.id}"
    lineage_ui.lineage_section(run, anns, frames, key)  # lineage hook: track table, go to a division
    playing = st.session_state.get("res_playing", False)
    current, seeded = st.session_state.get(key), f"{key}_seeded"
    if (
        not isinstance(current, int)
        or not 1 <= current <= len(frames)
        or (st.session_state.get(seeded) is False and anns)
    ):
        # first visit (or no mask yet when it was made): open at the first frame with masks
        current = review.first_masked_frame(frames, {a.loc for a in anns}) + 1
        st.session_state[seeded] = bool(anns)
    if playing:
        current = (current % len(frames)) + 1
    st.session_state[key] = current  # the slider reads its value from here (no value= argument)
    c1, c2 = st.columns([1.3, 5])
    if c1.button(
        "Pause" if playing else "Play", key="res_play", icon=":material/pause:" if playing else ":material/play_arrow:"
    ):
        st.session_state["res_playing"] = not playing
        st.rerun()
    if len(frames) > 1:
        idx = c2.slider("Frame", 1, len(frames), key=key) - 1
    else:
        idx = 0
    loc = frames[idx]
    settings = state.display_settings(ws, stack)
    rgb = state.render(ws, stack, loc, settings)
    colors = lineage_ui.colors_of(anns)  # lineage hook: daughters in shades of their mother's colour
    here = [
        (a.geometry, colors.get(a.obj_id, color_for(a.obj_id))) for a in anns if a.loc == loc and a.obj_id in visible
    ]
    width = min(state.image_width(rgb), 900, int(FRAME_MAX_H * rgb.shape[1] / rgb.shape[0]))
    img = draw_geometries(rgb, here, scale=width / rgb.shape[1])
    st.image(img, caption=f"XY {loc.xy + 1} · Time {loc.time + 1} · Z {loc.z + 1} · {len(here)} object(s)")
    return loc


def correction(ws: Workspace, stack: Any, run: Run, loc: Location) -> None:
    """Draw a box for one object at the shown frame and re-track it from there."""
    with st.expander("Correct a track at this frame", key="res_corr_open", on_change="rerun") as section:
        if not section.open:  # collapsed: draw no canvas, render no frame
            return
        objs = sorted(int(k) for k in run.objects)
        if not objs:
            st.caption("This run has no objects.")
            return
        obj = st.selectbox(
            "Object to correct",
            objs,
            key="res_corr_obj",
            format_func=lambda i: labels.object_label(i, run.objects[str(i)].get("name", "")),
        )
        width, height = int(stack.sizes["X"]), int(stack.sizes["Y"])
        fit = canvas.fit_canvas(width, height, max_w=640, max_h=480)
        rgb = state.render(ws, stack, loc, state.display_settings(ws, stack))
        st.caption("Draw the box where the object really is, then press the button.")
        ver = st.session_state.get("res_corr_ver", 0)
        canvas.hide_toolbars()
        shapes = canvas.draw_on_frame(
            rgb, fit, "box", {"objects": []}, key=f"res_corr_canvas_{run.id}_{ver}", stroke_color=color_for(obj)
        )
        boxes = [sh for sh in shapes if sh["kind"] == "box"]
        if boxes:
            st.session_state["res_corr_box"] = list(boxes[-1]["box"])
        box = st.session_state.get("res_corr_box")
        if box:
            st.caption(f"Correction box: ({box[0]:.0f}, {box[1]:.0f}) – ({box[2]:.0f}, {box[3]:.0f}) px")
        st.caption(
            f"Re-tracks object #{obj + 1} from {_axis_label(run)} {_step(run, loc) + 1} "
            f"{_away_word(correction_direction(run, obj, loc))} in a new run; the frames on the other "
            f"side and the other objects are copied from run {run.id} unchanged."
        )
        if st.button("Re-track this object from here", key="res_corr_go", disabled=not box):
            with state.guard():
                run_id = submit_correction(ws, stack, run, obj, loc, box)
                st.session_state.pop("res_corr_box", None)
                st.session_state["res_corr_ver"] = ver + 1
                st.success(f"Correction queued as run {run_id}: {correction_summary(state.store().get_run(run_id))}")


def _axis_label(run: Run) -> str:
    return "Time" if run.settings.get("across", "time") == "time" else "Z"


def _step(run: Run, loc: Location) -> int:
    """The position of ``loc`` along the run's tracking axis (0-based)."""
    return runs.axis_step(run, loc)


def _away_word(direction: str) -> str:
    return "onward" if direction == "forward" else "back to the start"


correction_direction = runs.correction_direction


def correction_summary(run: Run | None) -> str:
    """One sentence saying what a correction run did (Results page and the success message)."""
    corr = (run.settings.get("correction") if run else None) or {}
    if not corr:
        return ""
    loc = Location(*corr.get("loc", [0, 0, 0]))
    obj = int(corr.get("obj_id", 0))
    name = run.objects.get(str(obj), {}).get("name", "")
    direction = corr.get("direction", run.settings.get("direction", "forward"))
    return (
        f"object #{obj + 1} {plain(name)} re-tracked from a correction box at {_axis_label(run)} {_step(run, loc) + 1} "
        f"{_away_word(direction)}; its other frames and the other objects are copied from run "
        f"{corr.get('from_run')}."
    )


def correction_note(run: Run) -> None:
    """Say plainly that this run is a correction of another, and what it changed."""
    summary = correction_summary(run)
    if summary:
        st.info(f"Run {run.id} is a correction: {summary}", icon=":material/edit:")


def submit_correction(ws: Workspace, stack: Any, run: Run, obj_id: int, loc: Location, box: list) -> int:
    """A new run: the old run's masks, with ``obj_id`` re-tracked from a new box at ``loc`` on (the service's rule)."""
    new_id = runs.correct(state.store(), ws, stack, run, obj_id, loc, box, state.display_settings(ws, stack))
    st.session_state["res_run_next"] = new_id  # selected on the next rerun (the widget exists already)
    return new_id


def qa_section(ws: Workspace, stack: Any, run: Run, anns: list, xy: int) -> None:
    """Score the run against ground-truth labels the user uploads (sam2web.evaluate)."""
    with st.expander("QA: score against ground truth", key="res_qa_open", on_change="rerun") as section:
        if not section.open:
            return
        st.caption(
            "Upload per-frame label images (Cell Tracking Challenge TRA/SEG `man_track*.tif`, plus "
            "`man_track.txt` for divisions), or one label stack, in the order of the time points "
            "(or Z slices) of this dataset."
        )
        files = st.file_uploader(
            "Ground-truth labels", type=["tif", "tiff", "png", "txt"], accept_multiple_files=True, key="res_gt"
        )
        c1, c2 = st.columns(2)
        if c1.button("Score", key="res_score"):
            with state.guard():
                if not files:
                    raise UserError("Upload ground-truth label images first.")
                with st.spinner(f"Scoring {len(anns)} outlines against {len(files)} file(s)…", show_time=True):
                    st.session_state[f"res_scores_{run.id}"] = score_uploads(ws, run, anns, files, xy)
        if (ws.dataset or {}).get("kind") == "sample" and c2.button(
            "Score against the sample's true labels", key="res_score_sample"
        ):
            with state.guard(), st.spinner("Scoring against the sample's true labels…", show_time=True):
                st.session_state[f"res_scores_{run.id}"] = score_sample(run, anns, stack, xy)
        scores = st.session_state.get(f"res_scores_{run.id}")
        if scores:
            show_scores(scores)


def _predictions(run: Run, anns: list, xy: int) -> tuple[dict, dict]:
    """{(obj, frame): geometry} along the tracking axis at one XY (``evaluate``'s own rule, the CLI's too),
    and each object's prompt frame."""
    from sam2web import evaluate

    across = run.settings.get("across", "time")
    axis = "Time" if across == "time" else "Z"
    preds = evaluate.predictions_from_annotations(anns, across, xy)
    prompt_frames: dict[int, int] = {}
    for p in run.settings.get("prompts", []):
        loc = p.get("loc", {})
        if int(loc.get("XY", 0)) == xy:
            f = int(loc.get(axis, 0))
            prompt_frames[int(p["obj_id"])] = min(f, prompt_frames.get(int(p["obj_id"]), f))
    return preds, prompt_frames


def score_uploads(ws: Workspace, run: Run, anns: list, files: list, xy: int) -> dict:
    from sam2web import evaluate, links

    s = state.store()
    s.discard_staging(ws.id)
    try:
        paths = [s.save_upload(ws.id, f.name, f.getvalue(), staging=True) for f in files]
        images = [p for p in paths if not p.name.endswith(".txt")]
        if not images:
            raise UserError("Upload the label images too, not only the lineage file.")
        frames, lineage = evaluate.read_truth(
            [str(p) for p in images] if len(images) > 1 else str(images[0]), run.settings.get("across", "time"), 0
        )
        preds, prompt_frames = _predictions(run, anns, xy)
        return evaluate.evaluate(frames, preds, prompt_frames, lineage, links.parents_of(anns)).to_dict()
    finally:
        s.discard_staging(ws.id)


def score_sample(run: Run, anns: list, stack: Any, xy: int) -> dict:
    """The built-in sample knows its true labels: a one-click QA demo."""
    from sam2web import evaluate, links
    from sam2web.stack import sample

    if run.settings.get("across", "time") != "time":
        raise UserError("The sample's true labels are per time point; score a run tracked across Time.")
    labels = sample.sample_labels(int(stack.sizes["T"]), int(stack.sizes["Y"]), int(stack.sizes["X"]))
    lineage = {
        lab: parent
        for lab, _b, _e, parent in sample.sample_lineage(
            int(stack.sizes["T"]), int(stack.sizes["Y"]), int(stack.sizes["X"])
        )
        if parent
    }
    preds, prompt_frames = _predictions(run, anns, xy)
    truth = {t: labels[t] for t in range(labels.shape[0])}
    return evaluate.evaluate(truth, preds, prompt_frames, lineage, links.parents_of(anns)).to_dict()


# The scores' keys (sam2web.evaluate) as words on screen; the JSON below keeps the keys.
METRIC_NAMES = {
    "objects": ("Objects", "Objects of the run that were scored."),
    "matched": ("Matched", "Objects matched to a true label at their prompt frame."),
    "scored_frames": ("Frames scored", "Object-frames compared with the truth."),
    "mean_iou": ("Mean IoU", "Overlap with the true cell, averaged over every scored frame (1 = perfect)."),
    "mean_object_iou": ("Mean IoU per object", "Each object's mean overlap, averaged over objects."),
    "tracked_fraction": ("Frames tracked", "Share of scored frames with an overlap of at least 0.5."),
    "lost_frames": ("Frames lost", "Frames where the true cell exists but the object has no mask."),
    "id_switches": ("Identity switches", "Times an object jumped to another true cell."),
    "wrong_id_frames": ("Frames on the wrong cell", "Frames where the object overlapped another cell most."),
    "TRA": ("Tracking (TRA)", "Cell Tracking Challenge tracking accuracy, 0–1: how little editing the tracks need."),
    "DET": ("Detection (DET)", "Cell Tracking Challenge detection accuracy, 0–1: cells found, none invented."),
    "LNK": ("Linking (LNK)", "Cell Tracking Challenge linking accuracy, 0–1: frame-to-frame links right."),
    "CHOTA": ("CHOTA", "Detection, association and lineage in one score, 0–1."),
    "division_recall": ("Divisions found", "Share of the true divisions found at their frame."),
    "division_precision": ("Divisions right", "Share of the divisions found that are true ones."),
    "division_f1": ("Division F1", "Divisions found and right, combined (0–1)."),
    "divisions_true": ("True divisions", "Divisions in the ground truth."),
    "divisions_found": ("Divisions detected", "Divisions in this run."),
    "obj_id": ("Object", ""),
    "true_label": ("True label", ""),
    "prompt_frame": ("Prompt frame", ""),
}


PERCENT_KEYS = {"tracked_fraction", "division_recall", "division_precision"}  # shares, shown as percentages


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, (key.replace("_", " ").capitalize(), ""))[0]


def show_scores(scores: dict) -> None:
    overall = {
        k: v for k, v in scores.get("overall", {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    summary = labels.qa_summary(scores.get("overall") or {})
    if summary:
        st.markdown(summary)
    if overall:
        cols = st.columns(min(len(overall), 5))
        for i, (k, v) in enumerate(overall.items()):
            shown = f"{100 * v:.0f} %" if k in PERCENT_KEYS else f"{v:.3f}" if isinstance(v, float) else v
            cols[i % len(cols)].metric(metric_name(k), shown, help=METRIC_NAMES.get(k, ("", None))[1] or None)
    per = scores.get("objects") or []
    if per:
        rows = [{metric_name(k): v for k, v in o.items() if k != "ious"} for o in per]
        for row, o in zip(rows, per):
            row[metric_name("obj_id")] = int(o["obj_id"]) + 1  # 1-based on screen, like the rest of the page
            if o.get("prompt_frame") is not None:
                row[metric_name("prompt_frame")] = int(o["prompt_frame"]) + 1
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    with st.expander("JSON"):
        st.code(json.dumps(scores, indent=1, default=str), language="json")
