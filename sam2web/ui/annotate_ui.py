"""Widgets of the Annotate page: the drawing canvas, the object list, prompt import.

Why: drawn shapes must become prompts in full-resolution pixels at once (saved to the
workspace on every change, so a refresh loses nothing), and each box is an object with its own
colour, id, name and tags that the user can rename, re-tag or delete.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from sam2web.errors import UserError
from sam2web.overlay import color_for
from sam2web.store import Workspace
from sam2web.types import Location, Prompt
from sam2web.ui import labels, lineage_ui, state, viewer


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


VIEWER_KEY = "ann_viewer"
TOOLS = ["select", "box_new", "box_obj", "pos", "neg", "move", "delete", "divide"]
DIVISION_KEY = "ann_division_boxes"  # daughters' boxes drawn so far: [{"loc", "box", "mother"}]
VIEWER_MAX_H = 450  # screen pixels: a tall frame still fits a 1280 x 800 window


def _axis(stack: Any) -> tuple[str, str, str]:
    """(Location field, size key, label) of the axis the viewer's ←/→ steps along: Time, else Z."""
    return ("time", "T", "Time") if int(stack.sizes["T"]) > 1 or int(stack.sizes["Z"]) <= 1 else ("z", "Z", "Z")


def _step_location(ws: Workspace, stack: Any, step: int) -> None:
    """←/→ in the viewer: move along Time (or Z), through the location slider's own state."""
    field_, size_key, _ = _axis(stack)
    loc = state.current_location(ws, stack)
    n = int(stack.sizes[size_key])
    value = min(max(getattr(loc, field_) + int(step), 0), n - 1)
    state.save_location(ws, loc._replace(**{field_: value}))
    st.session_state[f"loc_an_{field_}"] = value + 1


def viewer_events(ws: Workspace, stack: Any) -> None:
    """What was drawn or clicked in the viewer, applied before any widget of the page is built.

    Why first: a ←/→ moves the location slider, which may only be set before it is drawn; and the
    prompts saved here are drawn by the same rerun (no second rerun per box).
    """
    loc = state.current_location(ws, stack)
    ev = viewer.events(VIEWER_KEY, pos=0, loc=list(loc))
    if ev.step:
        _step_location(ws, stack, ev.step)
    if ev.select is not None:
        st.session_state["ann_selected"] = int(ev.select)
        _bump()
    if ev.ops:
        apply_viewer_ops(ws, stack, ev.ops, loc)


def apply_viewer_ops(ws: Workspace, stack: Any, ops: list[dict], loc: Location) -> None:
    """Save the drawn operations in order, then acknowledge them (no Streamlit call in between)."""
    from sam2web import prompts as prompts_mod

    width, height = int(stack.sizes["X"]), int(stack.sizes["Y"])
    prompts = state.load_prompts(ws)
    selected = st.session_state.get("ann_selected", (ws.view or {}).get("selected_obj"))
    tags = parse_tags((ws.view or {}).get("new_tags", st.session_state.get("ann_tags", "cell")))
    errors: list[str] = []
    drafts = list(st.session_state.get(DIVISION_KEY, []))
    for op in ops:
        where = Location(*op["loc"]) if op.get("loc") else loc
        obj = op.get("obj")
        obj = int(obj) if obj is not None else selected
        try:
            if op.get("op") == "add" and op.get("kind") == "box" and op.get("tool") == "divide":
                prompts, drafts = _division_box(prompts, drafts, where, op["box"], obj, width, height)
            elif op.get("op") == "add":
                if op.get("kind") == "box":
                    mode = "box_obj" if op.get("tool") == "box_obj" else "box_new"
                else:
                    mode = "neg" if int(op.get("label", 1)) == 0 else "pos"
                prompts, selected = apply_shapes(prompts, [op], where, mode, obj, width, height, tags)
            elif op.get("op") == "move" and obj is not None:
                existing = _prompt_at(prompts, obj, where)
                if existing is not None:
                    existing.box = prompts_mod.make_box(*op["box"], width, height)
                    selected = obj
            elif op.get("op") == "delete" and obj is not None:
                prompts = delete_prompt(prompts, obj, where, op.get("what", "all"), op.get("n"))
        except UserError as err:
            errors.append(str(err))
    state.save_prompts(ws, prompts)
    viewer.ack(VIEWER_KEY, [op.get("cid") for op in ops])
    st.session_state[DIVISION_KEY] = drafts
    st.session_state["ann_selected"] = selected
    _bump()
    for msg in errors:
        st.error(msg)


def delete_prompt(prompts: list[Prompt], obj: int, loc: Location, what: str, n: int | None) -> list[Prompt]:
    """Remove an object's box, one of its points, or all its prompts at ``loc``; an empty prompt goes."""
    out = []
    for p in prompts:
        if p.obj_id == obj and tuple(p.loc) == tuple(loc):
            if what == "box":
                p.box = None
            elif what == "point" and n is not None and 0 <= int(n) < len(p.points):
                p.points = [pt for i, pt in enumerate(p.points) if i != int(n)]
            else:
                continue
            if p.box is None and not p.points:
                continue
        out.append(p)
    return out


def _division_box(
    prompts: list[Prompt], drafts: list[dict], loc: Location, box: list, mother: int | None, width: int, height: int
) -> tuple[list[Prompt], list[dict]]:
    """A daughter's box drawn in the viewer; the second one at the same frame makes the division."""
    from sam2web import prompts as prompts_mod

    if mother is None:
        raise UserError("Select the dividing object first (click it), then draw its two daughters' boxes.")
    bx = prompts_mod.make_box(*box, width, height, what="A daughter's box")
    drafts = [d for d in drafts if tuple(d["loc"]) == tuple(loc) and d["mother"] == mother]
    drafts.append({"loc": list(loc), "box": list(bx), "mother": int(mother)})
    if len(drafts) < 2:
        return prompts, drafts
    boxes = [tuple(d["box"]) for d in drafts[:2]]
    return lineage_ui.add_division(prompts, int(mother), loc, boxes), []


MASKS_KEY = "ann_masks"  # (workspace, frame, object) -> (prompt signature, flat rings, status)
MASK_CALLS_PER_RERUN = 8  # prompts asked for at most per rerun (a page opened on many prompts)


def _signature(p: Prompt) -> tuple:
    return (tuple(p.box) if p.box is not None else None, tuple(tuple(pt) for pt in p.points))


def object_masks(ws: Workspace, stack: Any, loc: Location, here: list[Prompt], settings: Any) -> tuple[dict, str]:
    """The mask outline of each object prompted on this frame ({obj: flat rings}) and a status line.

    The one place the Annotate page asks for "a mask the moment a box is drawn": the device
    worker's interactive session (``sam2web.service.sessions``) answers for the object's whole
    prompt on this frame; an answer is kept until that prompt changes, and an object whose prompt
    went away is removed from the session too.
    """
    from sam2web.service import sessions
    from sam2web.ui import model_warmup

    params = model_warmup.form_params(ws)  # the model the page warms (``model_warmup.show``)
    try:
        req = sessions.frame_request(state.store(), ws, stack, params, settings, loc)
    except UserError as err:
        return {}, str(err)
    viewed = st.session_state.setdefault("ann_viewed", set())
    if (ws.id, tuple(loc)) not in viewed:
        viewed.add((ws.id, tuple(loc)))
        sessions.view(req)  # the embedding of the frame looked at, in the background
    masks: dict = st.session_state.setdefault(MASKS_KEY, {})
    mine = {p.obj_id: p for p in here}
    notes: list[str] = []
    for key in [k for k in masks if k[0] == ws.id and k[1] == tuple(loc) and k[2] not in mine]:
        sessions.prompt(req, key[2])  # neither box nor points: the object left this frame
        del masks[key]
    calls = 0
    out: dict[int, list] = {}
    for obj, p in mine.items():
        key, sig = (ws.id, tuple(loc), obj), _signature(p)
        held = masks.get(key)
        if (held is None or held[0] != sig) and calls < MASK_CALLS_PER_RERUN:
            calls += 1
            res = sessions.prompt(req, obj, box=p.box, points=list(p.points))
            rings = [[round(float(v), 1) for xy in ring for v in xy] for ring in res.polygons] if res.ok else []
            held = masks[key] = (sig, rings, res.status)
            notes.append(res.status)
        if held is not None and held[0] == sig and held[1]:
            out[obj] = held[1]
    return out, " ".join(notes)


def object_colors(prompts: list[Prompt]) -> dict[int, str]:
    """Each object's colour; daughters in shades of their mother's (the Results page's rule)."""
    parents = {p.obj_id: p.parent for p in prompts if p.parent is not None}
    return lineage_ui.lineage_colors(parents, sorted({p.obj_id for p in prompts}))


def canvas_area(ws: Workspace, stack: Any, loc: Location, settings: Any) -> None:
    prompts = state.load_prompts(ws)
    objects = objects_of(prompts)
    width, height = int(stack.sizes["X"]), int(stack.sizes["Y"])
    # The frame on the left, every control on the right: the viewer starts high enough that a tall
    # frame fits a 1280 x 800 window.
    left, right = st.columns([4.6, 1.4])
    rgb = state.render(ws, stack, loc, settings)
    ids = list(objects)
    view = ws.view or {}
    # The selection is part of the saved view, so a refresh keeps it (the session's choice wins).
    sel_default = st.session_state["ann_selected"] if "ann_selected" in st.session_state else view.get("selected_obj")
    options = [None] + ids
    index = options.index(sel_default) if sel_default in options else 0
    selected = right.selectbox(
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
    tags_text = right.text_input(
        "Tags for new objects (comma-separated)", value=view.get("new_tags", "cell"), key="ann_tags"
    )
    if view.get("new_tags", "cell") != tags_text:
        view = {**view, "new_tags": tags_text}
        state.store().update_workspace(ws.id, view=view)
        ws.view = view
    right.caption(
        "Draw with the tools above the frame: **B** box (new object), **P** / **N** positive / negative "
        "point for the selected object, **S** select, **M** move, **D** delete. The wheel zooms at the "
        "cursor; drag with the right button to pan; **?** lists every key."
    )
    here = [p for p in prompts if tuple(p.loc) == tuple(loc)]
    colors = object_colors(prompts)
    masks, mask_note = object_masks(ws, stack, loc, here, settings)
    overlays = [{"id": int(o), "rings": rings} for o, rings in masks.items()]
    drafts = [d for d in st.session_state.get(DIVISION_KEY, []) if tuple(d["loc"]) == tuple(loc)]
    shown = viewer.prompts_json(here) + [
        {"id": int(d["mother"]), "kind": "box", "box": d["box"], "divide": True} for d in drafts
    ]
    field_, size_key, axis_label = _axis(stack)
    cache_key = (state.dataset_key(ws), tuple(int(v) for v in loc), json.dumps(settings.to_dict(), sort_keys=True))
    frame = viewer.frame_entry(rgb, cache_key, getattr(loc, field_), loc, VIEWER_KEY, 0, full=True)
    vh = int(min(VIEWER_MAX_H, max(320, round(640 * height / width))))
    with left:
        viewer.show(
            VIEWER_KEY,
            image=(width, height),
            frames=[frame],
            axis=axis_label,
            total=int(stack.sizes[size_key]),
            objects=[
                {"id": int(i), "name": f"#{i + 1} {info['name']}", "color": colors.get(i, color_for(i))}
                for i, info in objects.items()
            ],
            overlays={0: overlays},
            prompts={0: shown},
            selected=selected,
            tools=TOOLS,
            tool=st.session_state.get("ann_tool", "box_new"),
            tool_seek=st.session_state.get("ann_tool_seek", 0),
            height=vh,
            legend=bool(objects),
            step_via_python=int(stack.sizes[size_key]) > 1,
            status=mask_note[:160],
        )
    left.caption(
        f"{len(here)} prompt(s) on this frame · {len(objects)} object(s) in all · frame {width} × {height} px; "
        "boxes and points are kept in full-resolution image pixels at every zoom."
    )
    lineage_ui.division_form(ws, stack, loc)  # lineage hook: "this object divides here" (ui/lineage_ui.py)


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
