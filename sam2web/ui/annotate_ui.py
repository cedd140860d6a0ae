"""Widgets of the Annotate page: the drawing canvas, the object list, prompt import.

Why: drawn shapes must become prompts in full-resolution pixels at once (saved to the
workspace on every change, so a refresh loses nothing), and each box is an object with its own
colour, id, name and tags that the user can rename, re-tag or delete.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from sam2web.errors import UserError
from sam2web.overlay import color_for
from sam2web.store import Workspace
from sam2web.types import Location, Prompt
from sam2web.ui import canvas, labels, lineage_ui, state

MODES = {
    "box_new": "Box: new object",
    "box_obj": "Box: selected object",
    "pos": "Positive point",
    "neg": "Negative point",
}


def parse_tags(text: str) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def objects_of(prompts: list[Prompt]) -> dict[int, dict]:
    """obj_id -> {"name", "tags", "frames": [Location...]} in id order."""
    out: dict[int, dict] = {}
    for p in sorted(prompts, key=lambda p: p.obj_id):
        entry = out.setdefault(
            p.obj_id, {"name": p.name or f"Object {p.obj_id + 1}", "tags": list(p.tags), "frames": []}
        )
        entry["frames"].append(p.loc)
        if p.name:
            entry["name"] = p.name
    return out


def next_obj_id(prompts: list[Prompt]) -> int:
    return max((p.obj_id for p in prompts), default=-1) + 1


def apply_shapes(
    prompts: list[Prompt],
    shapes: list[dict],
    loc: Location,
    mode: str,
    selected: int | None,
    width: int,
    height: int,
    tags: list[str],
) -> tuple[list[Prompt], int | None]:
    """Turn newly drawn shapes into prompts; returns (prompts, the object to select next).

    A box in "box_new" mode is a new object; in "box_obj" mode it replaces (or adds) the selected
    object's box at this frame — the correction path. Points join the selected object's prompt at
    this frame (a new object when none is selected).
    """
    from sam2web import prompts as prompts_mod

    prompts = list(prompts)
    for shape in shapes:
        if shape["kind"] == "box":
            box = prompts_mod.make_box(*shape["box"], width, height)
            if mode == "box_obj" and selected is not None:
                existing = _prompt_at(prompts, selected, loc)
                if existing is not None:
                    existing.box = box
                else:
                    info = objects_of(prompts).get(selected, {})
                    prompts.append(
                        Prompt(
                            obj_id=selected,
                            loc=loc,
                            box=box,
                            tags=list(info.get("tags", tags)),
                            name=info.get("name", ""),
                        )
                    )
            else:
                new_id = next_obj_id(prompts)
                prompts.append(Prompt(obj_id=new_id, loc=loc, box=box, tags=list(tags), name=f"Object {new_id + 1}"))
                selected = new_id
        elif shape["kind"] == "point":
            label = 0 if mode == "neg" else 1
            point = (float(shape["x"]), float(shape["y"]), int(label))
            target = selected if selected is not None else next_obj_id(prompts)
            existing = _prompt_at(prompts, target, loc)
            if existing is None:
                info = objects_of(prompts).get(target, {})
                existing = Prompt(
                    obj_id=target,
                    loc=loc,
                    tags=list(info.get("tags", tags)),
                    name=info.get("name", f"Object {target + 1}"),
                )
                prompts.append(existing)
            existing.points = list(existing.points) + [point]
            selected = target
    return prompts, selected


def _prompt_at(prompts: list[Prompt], obj_id: int, loc: Location) -> Prompt | None:
    for p in prompts:
        if p.obj_id == obj_id and tuple(p.loc) == tuple(loc):
            return p
    return None


def _bump() -> None:
    st.session_state["ann_version"] = st.session_state.get("ann_version", 0) + 1


def canvas_area(ws: Workspace, stack: Any, loc: Location, settings: Any) -> None:
    prompts = state.load_prompts(ws)
    objects = objects_of(prompts)
    width, height = int(stack.sizes["X"]), int(stack.sizes["Y"])
    # The frame on the left, every control on the right: the canvas starts high enough that a tall
    # frame fits a 1280 x 800 window.
    left, right = st.columns([4, 1.6])
    c1 = c2 = c3 = right
    rgb = state.render(ws, stack, loc, settings)
    with right:  # zoom and minimap first: at 8x they are what the user reaches for
        fit = zoom_controls(ws, rgb, width, height)
    mode = c1.radio("Draw", list(MODES), format_func=MODES.get, key="ann_mode", horizontal=False)
    ids = list(objects)
    view = ws.view or {}
    # The selection is part of the saved view, so a refresh keeps it (the session's choice wins).
    sel_default = st.session_state["ann_selected"] if "ann_selected" in st.session_state else view.get("selected_obj")
    options = [None] + ids
    index = options.index(sel_default) if sel_default in options else 0
    selected = c2.selectbox(
        "Selected object",
        options,
        index=index,
        key=f"ann_sel_{st.session_state.get('ann_version', 0)}",
        format_func=lambda i: "— none —" if i is None else labels.object_label(i, objects[i]["name"]),
    )
    st.session_state["ann_selected"] = selected
    if view.get("selected_obj") != selected:
        view = {**view, "selected_obj": selected}
        state.store().update_workspace(ws.id, view=view)
        ws.view = view
    tags_text = c3.text_input(
        "Tags for new objects (comma-separated)", value=view.get("new_tags", "cell"), key="ann_tags"
    )
    if view.get("new_tags", "cell") != tags_text:
        view = {**view, "new_tags": tags_text}
        state.store().update_workspace(ws.id, view=view)
        ws.view = view
    here = [p for p in prompts if tuple(p.loc) == tuple(loc)]
    initial = canvas.initial_drawing(
        [(p.box, color_for(p.obj_id)) for p in here if p.box is not None], [pt for p in here for pt in p.points], fit
    )
    stroke = (
        canvas.NEGATIVE_COLOR
        if mode == "neg"
        else canvas.POSITIVE_COLOR
        if mode == "pos"
        else color_for(selected if (mode == "box_obj" and selected is not None) else next_obj_id(prompts))
    )
    key = (
        f"ann_canvas_{ws.id}_{loc.xy}_{loc.time}_{loc.z}_{fit.x0}_{fit.y0}_{fit.image_w}_"
        f"{st.session_state.get('ann_version', 0)}"
    )
    with left:
        canvas.hide_toolbars()
        shapes = canvas.draw_on_frame(
            rgb, fit, "box" if mode.startswith("box") else "point", initial, key, stroke_color=stroke
        )
    if shapes:
        with state.guard():
            new_prompts, new_sel = apply_shapes(
                prompts, shapes, loc, mode, selected, width, height, parse_tags(tags_text)
            )
            state.save_prompts(ws, new_prompts)
            st.session_state["ann_selected"] = new_sel
            _bump()
            st.rerun()
    shown = (
        f"frame {width} × {height} px shown at {fit.canvas_w} × {fit.canvas_h}"
        if fit.image_w == width and fit.image_h == height
        else f"pixels {fit.x0 + 1}–{fit.x0 + fit.image_w} × {fit.y0 + 1}–{fit.y0 + fit.image_h} of "
        f"{width} × {height} shown at {fit.canvas_w} × {fit.canvas_h}"
    )
    left.caption(
        f"{len(here)} prompt(s) on this frame · {len(objects)} object(s) in all · {shown}; "
        f"boxes and points are mapped back to image pixels."
    )
    lineage_ui.division_form(ws, stack, loc)  # lineage hook: "this object divides here" (ui/lineage_ui.py)


ZOOM_KEY = "ann_zoom"
CANVAS_MAX_W, CANVAS_MAX_H = 600, 540  # screen pixels of the drawing canvas
MINIMAP_MAX = 200


def zoom_controls(ws: Workspace, rgb: Any, width: int, height: int) -> canvas.CanvasFit:
    """Zoom (1×–8×), a minimap to click where to look, and pan buttons; returns the canvas's view.

    Why here and not in the canvas: the drawing component has no zoom, so the page shows a
    whole-pixel crop of the frame enlarged (``canvas.viewport``); the view is saved with the
    workspace, so a reload keeps it.
    """
    view = dict(ws.view or {})
    zoom = float(view.get("zoom", 1.0))
    cx = float(view.get("cx", width / 2))
    cy = float(view.get("cy", height / 2))
    if ZOOM_KEY not in st.session_state:
        st.session_state[ZOOM_KEY] = zoom if zoom in canvas.ZOOMS else 1.0
    zoom = float(st.select_slider("Zoom", options=list(canvas.ZOOMS), key=ZOOM_KEY, format_func=lambda z: f"{z:g}×"))
    fit = canvas.viewport(width, height, zoom, cx, cy, max_w=CANVAS_MAX_W, max_h=CANVAS_MAX_H)
    mini = canvas.fit_canvas(width, height, max_w=MINIMAP_MAX, max_h=MINIMAP_MAX)
    if zoom > 1:
        rect = [((fit.x0, fit.y0, fit.x0 + fit.image_w, fit.y0 + fit.image_h), "#ffff00")]
        clicked = canvas.draw_on_frame(
            rgb,
            mini,
            "point",
            canvas.initial_drawing(rect, [], mini),
            key=f"ann_minimap_{ws.id}_{fit.x0}_{fit.y0}_{fit.image_w}",
            stroke_color="#ffff00",
            inject_key=canvas.MINIMAP_INJECT_KEY,
        )
        st.caption("Click the small frame where to look.")
        points = [sh for sh in clicked if sh["kind"] == "point"]
        if points:
            cx, cy = float(points[-1]["x"]), float(points[-1]["y"])
        step_x, step_y = fit.image_w / 2, fit.image_h / 2
        b = st.columns(4)
        for col, (label, dx, dy) in zip(b, (("←", -step_x, 0), ("→", step_x, 0), ("↑", 0, -step_y), ("↓", 0, step_y))):
            if col.button(label, key=f"ann_pan_{label}"):
                cx, cy = fit.x0 + fit.image_w / 2 + dx, fit.y0 + fit.image_h / 2 + dy
        fit = canvas.viewport(width, height, zoom, cx, cy, max_w=CANVAS_MAX_W, max_h=CANVAS_MAX_H)
    if zoom > 1:  # the centre actually shown (a centre near an edge is pulled inside the frame)
        cx, cy = fit.x0 + fit.image_w / 2, fit.y0 + fit.image_h / 2
    new = {**view, "zoom": zoom, "cx": cx, "cy": cy}
    if new != (ws.view or {}):
        state.store().update_workspace(ws.id, view=new)
        ws.view = new
    return fit


OBJECTS_PER_PAGE = 25  # each object is a row of widgets; hundreds of them made every rerun slow


def _page_of(objects: dict) -> dict:
    """The objects of the chosen page of the list (a page selector only when there is more than one)."""
    pages = max(1, -(-len(objects) // OBJECTS_PER_PAGE))
    if pages == 1:
        return objects
    page = st.number_input(f"Page (of {pages}, {OBJECTS_PER_PAGE} objects each)", 1, pages, 1, key="ann_obj_page")
    ids = list(objects)[(int(page) - 1) * OBJECTS_PER_PAGE : int(page) * OBJECTS_PER_PAGE]
    return {i: objects[i] for i in ids}


def object_list(ws: Workspace) -> None:
    prompts = state.load_prompts(ws)
    objects = objects_of(prompts)
    st.subheader(f"Objects ({len(objects)})")
    if not objects:
        st.caption("Draw a box on the frame to make an object.")
        return
    ver = st.session_state.get("ann_version", 0)
    for obj_id, info in _page_of(objects).items():
        color = color_for(obj_id)
        c0, c1, c2, c3, c4 = st.columns([0.3, 2, 2, 2, 1])
        c0.markdown(
            f"<div style='width:18px;height:18px;margin-top:32px;background:{color};border-radius:3px'></div>",
            unsafe_allow_html=True,
        )
        name = c1.text_input(f"Name of #{obj_id + 1}", value=info["name"], key=f"ann_name_{obj_id}_{ver}")
        tags = c2.text_input(f"Tags of #{obj_id + 1}", value=", ".join(info["tags"]), key=f"ann_tagsof_{obj_id}_{ver}")
        frames = ", ".join(f"T{l.time + 1}/Z{l.z + 1}/XY{l.xy + 1}" for l in info["frames"][:4])
        c3.caption(f"#{obj_id + 1} · prompts at {frames}{' …' if len(info['frames']) > 4 else ''}")
        if c4.button("Delete", key=f"ann_del_{obj_id}"):
            state.save_prompts(ws, [p for p in prompts if p.obj_id != obj_id])
            _bump()
            st.rerun()
        if name != info["name"] or parse_tags(tags) != info["tags"]:
            for p in prompts:
                if p.obj_id == obj_id:
                    p.name, p.tags = name.strip(), parse_tags(tags)
            state.save_prompts(ws, prompts)
    if st.button("Delete all prompts on this frame", key="ann_clear_frame"):
        loc = state.current_location(ws, state.open_dataset(ws))
        state.save_prompts(ws, [p for p in prompts if tuple(p.loc) != tuple(loc)])
        _bump()
        st.rerun()


def import_prompts(ws: Workspace, stack: Any, loc: Location) -> None:
    with st.expander("Import prompts (GeoJSON, platform JSON, label image)"):
        up = st.file_uploader("Prompt file", type=["geojson", "json", "tif", "tiff", "png"], key="ann_import_file")
        tags = st.text_input("Only annotations with these tags (comma-separated; empty = all)", key="ann_import_tags")
        st.caption("A label image is placed at the frame shown above; each label becomes one object.")
        if st.button("Import prompts", key="ann_import_btn"):
            with state.guard():
                if up is None:
                    raise UserError("Choose a prompt file to import first.")
                n = do_import(ws, stack, loc, up.name, up.getvalue(), parse_tags(tags))
                st.success(f"Imported {n} prompt(s).")
                _bump()


def do_import(ws: Workspace, stack: Any, loc: Location, name: str, data: bytes, tags: list[str]) -> int:
    """Save the file under the workspace, read it with sam2web.prompts, append with fresh object ids."""
    from sam2web import prompts as prompts_mod

    s = state.store()
    path = s.save_upload(ws.id, name, data, staging=True)
    try:
        imported = prompts_mod.load_prompts(
            path, int(stack.sizes["X"]), int(stack.sizes["Y"]), tags=tags or None, loc=loc
        )
    finally:
        s.discard_staging(ws.id)
    if not imported:
        raise UserError("The file held no prompts matching those tags; check the tags or the file.")
    imported = prompts_mod.renumber(imported)
    existing = state.load_prompts(ws)
    prompts_mod.check_objects(
        len({p.obj_id for p in existing} | {p.obj_id + 10**9 for p in imported}), "this workspace"
    )
    offset = next_obj_id(existing)
    for p in imported:
        p.obj_id += offset
        if not p.name:
            p.name = f"Object {p.obj_id + 1}"
    state.save_prompts(ws, existing + imported)
    return len(imported)
