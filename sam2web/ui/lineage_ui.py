"""Cell lineage in the app: mark a division on Annotate, see the tree on Results.

Annotate (``division_form``): "object A divides at this frame into these two boxes" adds two new
objects prompted with the boxes at this frame, each with A as parent; tracking then ends A at the
frame before (sam2web/lineage.py), and links/exports carry the division. The prompts are saved
with the workspace, so the division survives a refresh, a restart and later corrections.

Results (``lineage_section``, ``lineage_colors``): a track table with a parent column, a way to
jump to a division's frame, and daughters drawn in shades of their mother's colour.
"""

from __future__ import annotations

import colorsys
from typing import Any

import pandas as pd
import streamlit as st

from sam2web.errors import UserError
from sam2web.overlay import color_for
from sam2web.store import Run, Workspace
from sam2web.types import Location, Prompt
from sam2web.ui import labels, state


# ------------------------------------------------------------------------------------ Track form
def division_fields(saved: dict, columns: tuple | None = None) -> dict:
    """The Track form's division settings (inside its st.form; one line in track_ui.form), in the
    three ``columns`` given (the form's row) or a row of their own."""
    from sam2web import params as params_mod

    c1, c2, c3 = columns or st.columns(3)
    share, frames = params_mod.meta("division_share"), params_mod.meta("division_frames")
    return {
        "divisions": bool(
            c1.checkbox(
                "Detect divisions",
                value=bool(saved.get("divisions", True)),
                key="trk_divisions",
                help=params_mod.meta("divisions")["help"],
            )
        ),
        "division_share": float(
            c2.number_input(
                "Smallest daughter (share of mother)",
                *share["range"],
                float(saved.get("division_share", params_mod.default("division_share"))),
                share["step"],
                key="trk_division_share",
                help=share["help"],
            )
        ),
        "division_frames": int(
            c3.number_input(
                "Split lasts (frames)",
                int(frames["range"][0]),
                int(frames["range"][1]),
                int(saved.get("division_frames", params_mod.default("division_frames"))),
                1,
                key="trk_division_frames",
                help=frames["help"],
            )
        ),
    }


# ------------------------------------------------------------------------------------- Annotate
def _halves(box: tuple[float, float, float, float]) -> tuple[str, str]:
    """The mother's box cut across its long side: a sensible first guess for two daughters."""
    x0, y0, x1, y1 = box
    if x1 - x0 >= y1 - y0:
        xm = (x0 + x1) / 2
        parts = ((x0, y0, xm, y1), (xm, y0, x1, y1))
    else:
        ym = (y0 + y1) / 2
        parts = ((x0, y0, x1, ym), (x0, ym, x1, y1))
    return tuple(", ".join(f"{v:g}" for v in p) for p in parts)  # type: ignore[return-value]


def _parse_box(text: str, width: int, height: int, what: str) -> tuple[float, float, float, float]:
    from sam2web.prompts import make_box

    parts = [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise UserError(f"{what} must be four numbers x0, y0, x1, y1 in pixels, e.g. 10, 20, 40, 60.")
    return make_box(*values, width, height, what=what)


def add_division(
    prompts: list[Prompt], mother: int, loc: Location, boxes: list[tuple[float, float, float, float]]
) -> list[Prompt]:
    """Two daughters of ``mother`` starting at ``loc`` (new object ids, the mother's tags and name + .1/.2)."""
    mine = [p for p in prompts if p.obj_id == mother]
    if not mine:
        raise UserError(f"Object {labels.object_ref(mother)} has no prompt; choose an object that exists.")
    first = min(p.loc.time for p in mine if p.loc.xy == loc.xy) if any(p.loc.xy == loc.xy for p in mine) else None
    if first is None or first >= loc.time:
        raise UserError(
            f"Object {labels.object_ref(mother)} must be prompted before Time {loc.time + 1} at this XY to divide here; "
            "go to a later frame, or prompt the mother earlier."
        )
    name = next((p.name for p in mine if p.name), "") or f"Object {mother + 1}"
    tags = list(mine[0].tags)
    start = max(p.obj_id for p in prompts) + 1
    daughters = [
        Prompt(start + k, loc, box=box, tags=list(tags), name=f"{name}.{k + 1}", parent=mother)
        for k, box in enumerate(boxes)
    ]
    return list(prompts) + daughters


def division_form(ws: Workspace, stack: Any, loc: Location) -> None:
    """Annotate's "this object divides here" form (one line in annotate_ui.canvas_area, under the viewer)."""
    prompts = state.load_prompts(ws)
    ids = sorted({p.obj_id for p in prompts})
    if not ids:
        return
    width, height = int(stack.sizes["X"]), int(stack.sizes["Y"])
    with st.expander("Cell division at this frame"):
        st.caption(
            "The chosen object ends at the previous frame; two new objects (its daughters) start here "
            "from the two boxes. Tracking across Time links them to their mother in every export."
        )
        names = {p.obj_id: p.name for p in prompts if p.name}
        selected = st.session_state.get("ann_selected")
        mother = st.selectbox(
            "Dividing object",
            ids,
            index=ids.index(selected) if selected in ids else 0,
            key="lin_mother",
            format_func=lambda i: labels.object_label(i, names.get(i, "")),
        )
        if st.button(
            "Draw the two daughters' boxes on the frame", key="lin_draw", icon=":material/draw:"
        ):  # the viewer's daughter-box tool (V), for this mother
            st.session_state["ann_selected"] = int(mother)
            st.session_state["ann_tool"] = "divide"
            st.session_state["ann_tool_seek"] = st.session_state.get("ann_tool_seek", 0) + 1
            st.session_state["ann_version"] = st.session_state.get("ann_version", 0) + 1
            st.rerun()
        st.caption("Or type the two boxes in image pixels:")
        nearest = [p for p in prompts if p.obj_id == mother and p.box is not None and p.loc.time <= loc.time]
        guess = _halves(max(nearest, key=lambda p: p.loc.time).box) if nearest else ("", "")
        c1, c2 = st.columns(2)
        box1 = c1.text_input("Daughter 1 box (x0, y0, x1, y1)", value=guess[0], key=f"lin_box1_{mother}")
        box2 = c2.text_input("Daughter 2 box (x0, y0, x1, y1)", value=guess[1], key=f"lin_box2_{mother}")
        if st.button("Divide here", key="lin_divide", icon=":material/call_split:"):
            with state.guard():
                boxes = [
                    _parse_box(box1, width, height, "Daughter 1's box"),
                    _parse_box(box2, width, height, "Daughter 2's box"),
                ]
                state.save_prompts(ws, add_division(prompts, int(mother), loc, boxes))
                st.toast(
                    f"Object {labels.object_ref(mother)} divides at Time {loc.time + 1}; its daughters are new objects."
                )
                st.rerun()
        daughters = [p for p in prompts if p.parent is not None]
        if daughters:
            st.caption(
                "Divisions marked: "
                + "; ".join(
                    f"{labels.object_ref(p.parent)} → {labels.object_ref(p.obj_id)} at Time {p.loc.time + 1}"
                    for p in daughters
                )
            )


# -------------------------------------------------------------------------------------- Results
def lineage_colors(parents: dict[int, int], objects: list[int]) -> dict[int, str]:
    """Each object's colour: founders their own, daughters a lighter/darker shade of their mother's."""
    out: dict[int, str] = {}

    def colour(obj: int, depth: int = 0) -> str:
        if obj in out:
            return out[obj]
        mother = parents.get(obj)
        if mother is None or depth > 50:
            out[obj] = color_for(obj)
            return out[obj]
        base = colour(mother, depth + 1).lstrip("#")
        r, g, b = (int(base[i : i + 2], 16) / 255 for i in (0, 2, 4))
        h, lum, s = colorsys.rgb_to_hls(r, g, b)
        sisters = sorted(o for o, m in parents.items() if m == mother)
        k = sisters.index(obj) if obj in sisters else 0
        lum = min(0.85, max(0.25, lum + (0.18 if k % 2 == 0 else -0.18)))
        rr, gg, bb = colorsys.hls_to_rgb((h + 0.03 * (k - 0.5)) % 1.0, lum, s)
        out[obj] = f"#{int(rr * 255):02x}{int(gg * 255):02x}{int(bb * 255):02x}"
        return out[obj]

    for obj in objects:
        colour(obj)
    return out


def colors_of(anns: list) -> dict[int, str]:
    """The overlay colour of every object of these annotations (``lineage_colors`` over their parents)."""
    from sam2web.links import parents_of

    return lineage_colors(parents_of(anns), sorted({a.obj_id for a in anns}))


def track_table(run: Run, anns: list) -> pd.DataFrame:
    """One row per object, numbered from 1 like every list on screen: object, parent, first and last frame, daughters."""
    from sam2web.links import parents_of

    parents = parents_of(anns)
    spans: dict[int, list[int]] = {}
    for a in anns:
        spans.setdefault(a.obj_id, []).append(a.loc.time)
    rows = []
    for obj in sorted(spans):
        kids = sorted(o for o, m in parents.items() if m == obj)
        rows.append(
            {
                "object": labels.object_label(obj, run.objects.get(str(obj), {}).get("name", "")),
                "parent": labels.object_ref(parents[obj]) if obj in parents else "",
                "first Time": min(spans[obj]) + 1,
                "last Time": max(spans[obj]) + 1,
                "daughters": ", ".join(labels.object_ref(k) for k in kids),
            }
        )
    return pd.DataFrame(rows)


def lineage_section(run: Run, anns: list, frames: list[Location], frame_key: str) -> None:
    """The lineage table and "go to division" (one line in results_ui.playback, before its slider)."""
    from sam2web.links import parents_of

    parents = parents_of(anns)
    if not parents:
        return
    firsts: dict[int, Location] = {}
    for a in sorted(anns, key=lambda a: (a.loc.time, a.loc.z)):
        firsts.setdefault(a.obj_id, a.loc)
    divisions: dict[int, list[int]] = {}
    for child, mother in parents.items():
        divisions.setdefault(mother, []).append(child)
    with st.expander(f"Lineage: {len(divisions)} division(s)"):
        st.dataframe(track_table(run, anns), hide_index=True)
        events = sorted(
            (min(firsts[c].time for c in kids if c in firsts), mother, sorted(kids))
            for mother, kids in divisions.items()
            if any(c in firsts for c in kids)
        )
        if not events:
            return
        choice = st.selectbox(
            "Division",
            range(len(events)),
            format_func=lambda i: (
                f"{labels.object_ref(events[i][1])} → {', '.join(labels.object_ref(c) for c in events[i][2])} "
                f"at Time {events[i][0] + 1}"
            ),
            key=f"lin_event_{run.id}",
        )
        if st.button("Go to the division frame", key=f"lin_go_{run.id}", icon=":material/call_split:"):
            t = events[int(choice)][0]
            index = next((i for i, loc in enumerate(frames) if loc.time == t), None)
            if index is not None:
                st.session_state[frame_key] = index + 1
                st.session_state["res_playing"] = False
