"""The viewer/annotator component: Streamlit Custom Components v2, plain JS/CSS/HTML in this folder.

Why a component of our own: zoom at the cursor, drag-pan, drawing and playback must happen in the
browser, without a Python rerun per wheel turn, per box or per frame (streamlit-drawable-canvas has
no wheel zoom and no client-side playback, and it dropped boxes drawn during a rerun). Python sends
frame URLs, polygons and prompts in full-resolution image pixels; the browser sends back every
drawn shape as an operation with a client id, keeps it until Python acknowledges that id, and
re-sends the whole unacknowledged list with each new shape, so nothing drawn is lost and nothing
is saved twice.

Flow on a page: ``events(key)`` first (before the page's other widgets: it may move a location
slider), apply the operations, then ``show(key, ...)`` with ``acked=done(key)``. Tests without a
browser put shapes in ``st.session_state["canvas_inject"]`` (image pixels; see ``INJECT_KEY``),
which ``events`` returns as operations.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from sam2web.overlay import _rings

ASSETS = Path(__file__).resolve().parent
INJECT_KEY = "canvas_inject"
SCREEN_SIDE = 900  # long side of the frames sent for playback (screen resolution)
FULL_SIDE = 4096  # the frame looked at is sent at full resolution up to this side
_ACK_KEPT = 400

_COMPONENT: Any = None
_LOCK = threading.Lock()


def _mount() -> Any:
    """The registered component (once per process; Streamlit re-registers it on a new runtime)."""
    global _COMPONENT
    with _LOCK:
        if _COMPONENT is None:
            _COMPONENT = st.components.v2.component(
                "sam2web_viewer",
                html=(ASSETS / "viewer.html").read_text(),
                css=(ASSETS / "viewer.css").read_text(),
                js=(ASSETS / "viewer.js").read_text(),
            )
        return _COMPONENT


# ------------------------------------------------------------------------------ frames as URLs
_JPEG: OrderedDict[tuple, bytes] = OrderedDict()
_JPEG_BYTES = 0
_JPEG_BUDGET = 96 * 1024 * 1024
_JPEG_LOCK = threading.Lock()


def screen_size(width: int, height: int, side: int = SCREEN_SIDE) -> tuple[int, int]:
    """The size a frame is sent at: the long side at most ``side`` px, never enlarged."""
    scale = min(1.0, side / max(width, height, 1))
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def jpeg(rgb: np.ndarray, key: tuple, side: int) -> bytes:
    """The frame as a JPEG of at most ``side`` px, cached per (key, side) within a byte budget."""
    global _JPEG_BYTES
    import cv2

    ck = (key, side)
    with _JPEG_LOCK:
        data = _JPEG.get(ck)
        if data is not None:
            _JPEG.move_to_end(ck)
            return data
    h, w = rgb.shape[:2]
    size = screen_size(w, h, side)
    img = np.ascontiguousarray(rgb[:, :, :3]) if rgb.ndim == 3 else np.repeat(rgb[:, :, None], 3, axis=2)
    if size != (w, h):
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB array
        raise RuntimeError("JPEG encoding failed")
    data = buf.tobytes()
    with _JPEG_LOCK:
        _JPEG[ck] = data
        _JPEG_BYTES += len(data)
        while _JPEG_BYTES > _JPEG_BUDGET and len(_JPEG) > 1:
            _, old = _JPEG.popitem(last=False)
            _JPEG_BYTES -= len(old)
    return data


def image_url(data: bytes, coordinates: str) -> str:
    """A URL the browser fetches once: Streamlit's media endpoint, else a data URI.

    Why the media endpoint: the component's data travels with every rerun; 30 frames inline would
    be megabytes per rerun, a URL is a few bytes and the browser (and the viewer) caches the image.
    The same bytes give the same URL, so a rerun does not make the browser fetch again.
    """
    try:
        from streamlit import runtime

        if runtime.exists():
            url = runtime.get_instance().media_file_mgr.add(data, "image/jpeg", coordinates)
            if isinstance(url, str):
                return url
    except Exception:  # noqa: BLE001 - no media manager (bare script): inline the image instead
        pass
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def frame_entry(
    rgb: np.ndarray, cache_key: tuple, index: int, loc: Iterable[int], key: str, pos: int, full: bool
) -> dict:
    """One frame for the viewer: its screen-resolution URL, and the full-resolution one when ``full``."""
    h, w = rgb.shape[:2]
    entry = {"src": image_url(jpeg(rgb, cache_key, SCREEN_SIDE), f"viewer.{key}.{pos}"), "index": int(index)}
    entry["loc"] = [int(v) for v in loc]
    if full and max(w, h) > SCREEN_SIDE:
        entry["full"] = image_url(jpeg(rgb, cache_key, FULL_SIDE), f"viewer.{key}.full")
    return entry


# ------------------------------------------------------------------------------- geometry as JSON
def rings_json(geometry: object, digits: int = 1) -> list[list[float]]:
    """A shapely (Multi)Polygon as flat rings [x0, y0, x1, y1, ...] in image pixels (pixel corners)."""
    out = []
    for ring in _rings(geometry):
        if len(ring) >= 3:
            out.append([round(float(v), digits) for v in np.asarray(ring, dtype=np.float64).reshape(-1)])
    return out


def prompts_json(prompts: Iterable[Any]) -> list[dict]:
    """Saved prompts of one frame as the viewer draws them (boxes and numbered points)."""
    out: list[dict] = []
    for p in prompts:
        if p.box is not None:
            out.append({"id": int(p.obj_id), "kind": "box", "box": [float(v) for v in p.box]})
        for n, (x, y, label) in enumerate(p.points):
            out.append(
                {"id": int(p.obj_id), "kind": "point", "x": float(x), "y": float(y), "label": int(label), "n": n}
            )
    return out


# ------------------------------------------------------------------------------- events from JS
@dataclass
class Events:
    """What the browser did since Python last looked: new operations, a click, a step, a frame."""

    ops: list[dict] = field(default_factory=list)
    select: Any = None
    step: int | None = None
    frame: int | None = None


def _done_key(key: str) -> str:
    return f"_viewer_done_{key}"


def done(key: str) -> list[str]:
    """The client ids of the operations applied so far (sent back so the browser drops them)."""
    return list(st.session_state.get(_done_key(key), []))


def ack(key: str, cids: Iterable[str]) -> None:
    """Mark operations applied. Call right after saving them, with no Streamlit call in between,
    so an interrupted rerun cannot save one twice."""
    kept = [c for c in st.session_state.get(_done_key(key), [])]
    seen = set(kept)
    kept.extend(c for c in cids if c and c not in seen)
    st.session_state[_done_key(key)] = kept[-_ACK_KEPT:]


def _peek(key: str) -> dict:
    try:
        value = st.session_state[key]
    except (KeyError, AttributeError):
        return {}
    except Exception:  # noqa: BLE001 - a component not registered yet in this session
        return {}
    return dict(value) if isinstance(value, dict) else {}


def events(key: str, pos: int = 0, loc: Iterable[int] | None = None) -> Events:
    """The operations not applied yet (in drawing order), plus this rerun's click/step triggers.

    ``pos``/``loc``: the frame injected shapes belong to (tests). Operations carry their own.
    """
    state = _peek(key)
    applied = set(done(key))
    ops = [dict(op) for op in (state.get("ops") or []) if isinstance(op, dict) and op.get("cid") not in applied]
    injected = st.session_state.pop(INJECT_KEY, None)
    if injected:
        base = st.session_state.get(f"_viewer_inject_n_{key}", 0)
        st.session_state[f"_viewer_inject_n_{key}"] = base + len(injected)
        where = {"pos": int(pos), "loc": list(loc) if loc is not None else None}
        for n, shape in enumerate(injected):
            op = {"cid": f"inject-{base + n}", "op": "add", "obj": None, **where, **dict(shape)}
            if op.get("kind") == "box":
                op["box"] = [float(v) for v in shape["box"]]
                op.setdefault("tool", "box_new")
            if op["cid"] not in applied:  # a test may replay operations with their own ids
                ops.append(op)
    frame = state.get("frame")
    seen_key = f"_viewer_frame_seen_{key}"
    if frame is not None and frame != st.session_state.get(seen_key):
        st.session_state[seen_key] = frame
    else:
        frame = None
    step = state.get("step")
    return Events(ops=ops, select=state.get("select"), step=int(step) if step else None, frame=frame)


def _noop() -> None:
    """State and trigger names are declared by their callbacks; pages read the values via ``events``."""


def show(
    key: str,
    *,
    image: tuple[int, int],
    frames: list[dict],
    axis: str,
    total: int,
    index: int = 0,
    seek: int = 0,
    objects: list[dict] | None = None,
    overlays: dict[int, list[dict]] | None = None,
    prompts: dict[int, list[dict]] | None = None,
    selected: int | None = None,
    tools: list[str] | None = None,
    tool: str | None = None,
    tool_seek: int | None = None,
    height: int = 560,
    legend: bool = True,
    hidden: Iterable[int] = (),
    report_frame: bool = False,
    step_via_python: bool = False,
    status: str = "",
    on_step: Callable[[], None] | None = None,
) -> None:
    """Mount the viewer with this data (see viewer.js for what each field does)."""
    runs = st.session_state.get("_viewer_runs", 0) + 1
    st.session_state["_viewer_runs"] = runs
    data = {
        "pyrun": runs,
        "image": {"w": int(image[0]), "h": int(image[1])},
        "frames": frames,
        "axis": axis,
        "total": int(total),
        "index": int(index),
        "seek": seek,
        "objects": objects or [],
        "overlays": {str(k): v for k, v in (overlays or {}).items()},
        "prompts": {str(k): v for k, v in (prompts or {}).items()},
        "selected": selected,
        "tools": tools or ["select"],
        "tool": tool or (tools or ["select"])[0],
        "tool_seek": tool_seek,
        "height": int(height),
        "legend": bool(legend),
        "hidden": sorted(int(h) for h in hidden),
        # a new choice in Python (e.g. "Show objects") replaces the legend's ticks; otherwise they stay
        "hidden_version": ",".join(str(int(h)) for h in sorted(hidden)),
        "acked": done(key)[-_ACK_KEPT:],
        "report_frame": bool(report_frame),
        "step_via_python": bool(step_via_python),
        "status": status,
        "fps": 15,
    }
    _mount()(
        key=key,
        data=data,
        height="content",
        on_ops_change=_noop,
        on_frame_change=_noop,
        on_select_change=_noop,
        on_step_change=on_step or _noop,
    )
