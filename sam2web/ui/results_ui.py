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
from sam2web.overlay import color_for
from sam2web.params import LABELS
from sam2web.service import review, runs
from sam2web.store import Run, Workspace
from sam2web.types import Location, ObjectInfo, TrackResult
from sam2web.ui import labels, lineage_ui, state, viewer
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


FRAME_MAX_H = 400  # screen pixels: a tall frame still fits a 1280 x 800 window
VIEWER_WINDOW = 150  # frames sent to the browser at most (about 10 MB of screen-resolution JPEGs)
CORR_KEY = "res_corr_box"  # the correction drawn in the viewer: {"box", "loc", "obj"}


def playback(ws: Workspace, stack: Any, run: Run, anns: list, frames: list[Location], visible: set[int]) -> Location:
    """The run in the viewer: frames and outlines go to the browser once, which plays and zooms them.

    Python hears of the frame only when playback stops or the user steps (for the caption, the
    correction and the QA), and of a drawn box (a correction for the selected object).
    """
    if not frames:
        st.caption("This run has no frames yet.")
        return state.current_location(ws, stack)
    key = f"res_frame_{run.id}"  # the frame Python knows, 1-based
    vkey = f"res_viewer_{run.id}"
    lo_sent = int(st.session_state.get(f"{vkey}_lo", 0))  # the first frame of the window sent last time
    ev = viewer.events(vkey, pos=max(0, int(st.session_state.get(key, 1)) - 1 - lo_sent))
    if ev.frame is not None:
        st.session_state[key] = lo_sent + int(ev.frame) + 1
    if ev.step:
        st.session_state[key] = min(max(int(st.session_state.get(key, 1)) + int(ev.step), 1), len(frames))
    if ev.select is not None:
        st.session_state["res_corr_obj"] = int(ev.select)
    if ev.ops:
        take_correction_ops(run, frames[lo_sent:], ev.ops, vkey)
    lineage_ui.lineage_section(run, anns, frames, key)  # lineage hook: track table, go to a division
    current, seeded = st.session_state.get(key), f"{key}_seeded"
    if (
        not isinstance(current, int)
        or not 1 <= current <= len(frames)
        or (st.session_state.get(seeded) is False and anns)
    ):
        # first visit (or no mask yet when it was made): open at the first frame with masks
        current = review.first_masked_frame(frames, {a.loc for a in anns}) + 1
        st.session_state[seeded] = bool(anns)
    st.session_state[key] = current
    # A frame chosen in Python (first open, "go to the division") is sent as a seek; the browser keeps
    # its own frame otherwise (playing, scrubbing).
    idx = current - 1
    loc = frames[idx]
    # A long run is sent as a window of frames around the one shown (the browser caches what it gets);
    # stepping past either end of the window moves it.
    lo = 0 if len(frames) <= VIEWER_WINDOW else max(0, min(idx - VIEWER_WINDOW // 2, len(frames) - VIEWER_WINDOW))
    shown_frames = frames[lo : lo + VIEWER_WINDOW]
    sent = st.session_state.get(f"{vkey}_sent")
    seek = st.session_state.get(f"{vkey}_seek", 0)
    if (sent != current and ev.frame is None) or lo != lo_sent:
        seek += 1
        st.session_state[f"{vkey}_seek"] = seek
    st.session_state[f"{vkey}_sent"] = current
    st.session_state[f"{vkey}_lo"] = lo
    settings = state.display_settings(ws, stack)
    colors = lineage_ui.colors_of(anns)  # lineage hook: daughters in shades of their mother's colour
    width, height = int(stack.sizes["X"]), int(stack.sizes["Y"])
    pos_of = {f: i for i, f in enumerate(shown_frames)}
    overlays: dict[int, list[dict]] = {}
    for a in _memo_rings(run, anns):
        i = pos_of.get(a[1])
        if i is not None:
            overlays.setdefault(i, []).append({"id": a[0], "rings": a[2]})
    settings_json = json.dumps(settings.to_dict(), sort_keys=True)
    entries = []
    for i, f in enumerate(shown_frames):
        rgb = state.render(ws, stack, f, settings)
        cache_key = (state.dataset_key(ws), tuple(int(v) for v in f), settings_json)
        entries.append(viewer.frame_entry(rgb, cache_key, _step(run, f), f, vkey, i, full=i + lo == idx))
    prompts: dict[int, list[dict]] = {}
    for p in run.settings.get("prompts", []):
        from sam2web import prompts as prompts_mod

        q = prompts_mod.prompt_from_dict(p)
        i = pos_of.get(q.loc)
        if i is not None:
            prompts.setdefault(i, []).extend(viewer.prompts_json([q]))
    corr = st.session_state.get(CORR_KEY)
    if isinstance(corr, dict) and Location(*corr["loc"]) in pos_of:
        prompts.setdefault(pos_of[Location(*corr["loc"])], []).append(
            {"id": int(corr["obj"]), "kind": "box", "box": list(corr["box"]), "divide": True}
        )
    objects = sorted({int(k) for k in run.objects} | {a.obj_id for a in anns})
    names = {o: labels.object_label(o, run.objects.get(str(o), {}).get("name", "")) for o in objects}
    selected = st.session_state.get("res_corr_obj")
    viewer.show(
        vkey,
        image=(width, height),
        frames=entries,
        axis=_axis_label(run),
        total=len(frames),
        index=idx - lo,
        seek=seek,
        objects=[{"id": o, "name": names[o], "color": colors.get(o, color_for(o))} for o in objects],
        overlays=overlays,
        prompts=prompts,
        selected=selected if selected in objects else None,
        tools=["select", "box_obj"],
        tool="select",
        height=int(min(FRAME_MAX_H, max(320, round(700 * height / width)))),
        hidden=[o for o in objects if o not in visible],
        report_frame=True,
        step_via_python=len(frames) > VIEWER_WINDOW,
    )
    here = [a for a in anns if a.loc == loc and a.obj_id in visible]
    st.caption(
        f"XY {loc.xy + 1} · {_axis_label(run)} {_step(run, loc) + 1} of {len(frames)} · "
        f"{'Z' if _axis_label(run) == 'Time' else 'Time'} {(loc.z if _axis_label(run) == 'Time' else loc.time) + 1} · "
        f"{len(here)} object(s). Space plays, the wheel zooms, a box (Shift+B) corrects the selected object here."
        + (
            f" Frames {lo + 1}–{lo + len(shown_frames)} of {len(frames)} are in the viewer; ← / → past them moves on."
            if len(frames) > VIEWER_WINDOW
            else ""
        )
    )
    return loc


def _memo_rings(run: Run, anns: list) -> list[tuple[int, Location, list]]:
    """(object, frame, rings) of every outline: the polygons as the browser draws them."""
    key = ("rings", len(anns), id(anns))
    return _run_view(str(state.store().db_path), run.id).memo(
        key, lambda: [(a.obj_id, a.loc, viewer.rings_json(a.geometry)) for a in anns]
    )


def take_correction_ops(run: Run, frames: list[Location], ops: list[dict], vkey: str) -> None:
    """A box drawn on a Results frame is the correction of the selected object at that frame."""
    for op in ops:
        if op.get("op") != "add" or op.get("kind") != "box":
            continue
        obj = op.get("obj")
        if obj is None:
            obj = st.session_state.get("res_corr_obj")
        if obj is None:
            objs = sorted(int(k) for k in run.objects)
            obj = objs[0] if objs else 0
        loc = op.get("loc")
        if loc is None:
            loc = list(frames[min(max(int(op.get("pos", 0)), 0), len(frames) - 1)])
        st.session_state[CORR_KEY] = {"box": [float(v) for v in op["box"]], "loc": list(loc), "obj": int(obj)}
        st.session_state.pop("res_corr_done", None)
        st.session_state["res_corr_obj"] = int(obj)
        st.session_state["res_corr_open"] = True
    viewer.ack(vkey, [op.get("cid") for op in ops])


def correction(ws: Workspace, stack: Any, run: Run, loc: Location) -> None:
    """Re-track one object from a box drawn on a frame of the viewer above (at any zoom)."""
    with st.expander("Correct a track at this frame", key="res_corr_open", on_change="rerun") as section:
        if not section.open:  # collapsed: build nothing
            return
        objs = sorted(int(k) for k in run.objects)
        if not objs:
            st.caption("This run has no objects.")
            return
        if st.session_state.get("res_corr_obj") not in objs:
            st.session_state["res_corr_obj"] = objs[0]
        obj = st.selectbox(
            "Object to correct",
            objs,
            key="res_corr_obj",
            format_func=lambda i: labels.object_label(i, run.objects[str(i)].get("name", "")),
        )
        corr = st.session_state.get(CORR_KEY)  # drawn for the object selected then; re-tracks the one chosen now
        if not isinstance(corr, dict):
            if st.session_state.get("res_corr_done"):
                st.success(st.session_state["res_corr_done"])
            st.caption(
                "Click the object in the viewer (or choose it here), press Shift+B (Box ●) and draw the box "
                "where it really is, at any zoom; then press the button."
            )
            st.button("Re-track this object from here", key="res_corr_go", disabled=True)
            return
        box, where = corr["box"], Location(*corr["loc"])
        st.caption(
            f"Correction box at {_axis_label(run)} {_step(run, where) + 1}: ({box[0]:.1f}, {box[1]:.1f}) – "
            f"({box[2]:.1f}, {box[3]:.1f}) px. Re-tracks object #{obj + 1} from there "
            f"{_away_word(correction_direction(run, obj, where))} in a new run; the frames on the other "
            f"side and the other objects are copied from run {run.id} unchanged."
        )
        c1, c2 = st.columns([3, 1])
        if c2.button("Discard the box", key="res_corr_discard"):
            st.session_state.pop(CORR_KEY, None)
            st.rerun()
        if c1.button("Re-track this object from here", key="res_corr_go", type="primary"):
            with state.guard():
                run_id = submit_correction(ws, stack, run, obj, where, box)
                st.session_state.pop(CORR_KEY, None)
                # Kept for the next reruns: the page reruns at once to follow the new run.
                st.session_state["res_corr_done"] = (
                    f"Correction queued as run {run_id}: {correction_summary(state.store().get_run(run_id))}"
                )
                st.rerun()  # the Run selector follows the new run (``submit_correction``)


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
