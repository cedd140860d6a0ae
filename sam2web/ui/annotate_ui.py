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
from sam2web.ui import canvas, lineage_ui, state

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
    c1, c2, c3 = st.columns([2, 2, 2])
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
        format_func=lambda i: "— none —" if i is None else f"#{i} {objects[i]['name']}",
    )
    st.session_state["ann_selected"] = selected
    if view.get("selected_obj") != selected:
        view = {**view, "selected_obj": selected}
        state.store().update_workspace(ws.id, view=view)
        ws.view = view
    tags_text = c3.text_input("Tags for new objects (comma-separated)", value="cell", key="ann_tags")
    fit = canvas.fit_canvas(width, height)
    here = [p for p in prompts if tuple(p.loc) == tuple(loc)]
    initial = canvas.initial_drawing(
        [(p.box, color_for(p.obj_id)) for p in here if p.box is not None], [pt for p in here for pt in p.points], fit
    )
    rgb = state.render(ws, stack, loc, settings)
    stroke = (
        canvas.NEGATIVE_COLOR
        if mode == "neg"
        else canvas.POSITIVE_COLOR
        if mode == "pos"
        else color_for(selected if (mode == "box_obj" and selected is not None) else next_obj_id(prompts))
    )
    key = f"ann_canvas_{ws.id}_{loc.xy}_{loc.time}_{loc.z}_{st.session_state.get('ann_version', 0)}"
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
    st.caption(
        f"{len(here)} prompt(s) on this frame · {len(objects)} object(s) in all · frame {width} × {height} px "
        f"shown at {fit.canvas_w} × {fit.canvas_h}; coordinates are mapped back to image pixels."
    )
    lineage_ui.division_form(ws, stack, loc)  # lineage hook: "this object divides here" (ui/lineage_ui.py)


def object_list(ws: Workspace) -> None:
    prompts = state.load_prompts(ws)
    objects = objects_of(prompts)
    st.subheader(f"Objects ({len(objects)})")
    if not objects:
        st.caption("Draw a box on the frame to make an object.")
        return
    ver = st.session_state.get("ann_version", 0)
    for obj_id, info in objects.items():
        color = color_for(obj_id)
        c0, c1, c2, c3, c4 = st.columns([0.3, 2, 2, 2, 1])
        c0.markdown(
            f"<div style='width:18px;height:18px;margin-top:32px;background:{color};border-radius:3px'></div>",
            unsafe_allow_html=True,
        )
        name = c1.text_input(f"Name of #{obj_id}", value=info["name"], key=f"ann_name_{obj_id}_{ver}")
        tags = c2.text_input(f"Tags of #{obj_id}", value=", ".join(info["tags"]), key=f"ann_tagsof_{obj_id}_{ver}")
        frames = ", ".join(f"T{l.time + 1}/Z{l.z + 1}/XY{l.xy + 1}" for l in info["frames"][:4])
        c3.caption(f"#{obj_id} · prompts at {frames}{' …' if len(info['frames']) > 4 else ''}")
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
    offset = next_obj_id(existing)
    for p in imported:
        p.obj_id += offset
        if not p.name:
            p.name = f"Object {p.obj_id + 1}"
    state.save_prompts(ws, existing + imported)
    return len(imported)
