"""Interactive sessions without Streamlit: a mask the moment a prompt is drawn, and a run watched live.

What the Annotate and Track pages (and the viewer component behind them) call::

    warm(params)                       -> None   load the model in the device's worker, in the background
    model_status(params)               -> str    "cold" | "loading" | "ready" | "failed: <sentence>"
    frame_request(store, ws, stack, params, display, loc) -> FrameRequest
    view(request)                      -> None   embed the frame the user opened, in the background
    prompt(request, obj_id, box=None, points=(), timeout_s=30) -> PromptResult
    close(workspace_id)                -> None   drop the workspace's sessions in the worker
    live_frames(store, run_id, after=0, ...) -> LiveFrames   polygons saved since a cursor

Why the worker: it already holds the model a run uses, so "warm" serves both the first prompt and
the first tracked frame, and the web server never imports torch. The worker keeps one SAM2
inference state per (workspace, sequence) with the embeddings of the frames it has seen (bounded
by the cache budget); ``box``/``points`` are the object's whole prompt on that frame, so a second
point is the box plus both points (the page keeps the shapes; a repeated request changes nothing).
Interactive requests are served by their own thread of the worker, beside the run loop, so they
never queue behind a run (``session_host.py``). Every failure is one sentence in
``PromptResult.status``; the worker and its other sessions go on.

The sequence of a session is the whole tracking axis through the frame (every Time point at this
position and Z, or every Z slice), whatever the batch ranges, so a frame keeps its embedding
when the ranges change.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass, field
from typing import Any

from sam2web.config import settings
from sam2web.errors import UserError
from sam2web.params import TrackParams
from sam2web.service.executor import LocalExecutor, NoAnswer, get_executor, guess_device
from sam2web.service.spec import FrameRequest
from sam2web.store import Store, Workspace
from sam2web.types import CompactMask, Location, Sequence

Box = tuple[float, float, float, float]
Point = tuple[float, float, int]  # x, y, label (1 positive, 0 negative), full-resolution pixels

STATUS_WAIT_S = 0.5
MODEL_LABELS = {"tiny": "tiny", "small": "small", "base_plus": "base plus", "large": "large"}


@dataclass
class PromptResult:
    """The mask of one object on one frame, as the viewer draws it.

    ``polygons``: the outline's rings (outer ones and holes; fill even-odd) as ``[[x, y], ...]`` in
    full-resolution image pixels (x = column, y = row, pixel corners), empty when there is no mask.
    """

    ok: bool
    status: str  # one sentence: what happened, or what went wrong and what to do
    obj_id: int
    loc: Location | None
    frame: int
    polygons: list[list[list[float]]] = field(default_factory=list)
    area: int = 0  # mask pixels
    worker_ms: float = 0.0  # time in the worker, embedding included when it was cold
    worker_cpu_ms: float = 0.0  # CPU time of the worker process meanwhile (the bench's steadier clock)
    warm: bool = False  # the frame's embedding was ready before the prompt
    mask: CompactMask | None = None


@dataclass
class LiveFrames:
    """A running (or finished) run's masks saved after ``cursor`` was last read, as polygons."""

    polygons: dict[Location, dict[int, list[list[list[float]]]]]  # frame -> object -> rings
    cursor: int  # pass back as ``after`` for the next delta
    status: str
    done: int
    total: int
    epoch: int = 0  # pass back as ``epoch``: a change means masks were rewritten in place
    reset: bool = False  # ... and then every frame is sent again: drop what was drawn and redraw


# -- where requests go ------------------------------------------------------------------------
_PRIVATE: LocalExecutor | None = None
_PRIVATE_LOCK = threading.Lock()


def _executor() -> LocalExecutor:
    """The local executor whose workers host sessions (a private one when runs go to Ray)."""
    global _PRIVATE
    ex = get_executor()
    if isinstance(ex, LocalExecutor):
        return ex
    with _PRIVATE_LOCK:
        if _PRIVATE is None:
            _PRIVATE = LocalExecutor(processes=settings().executor != "inline")
        return _PRIVATE


@atexit.register
def _shutdown_private() -> None:
    if _PRIVATE is not None:
        _PRIVATE.shutdown()


def _workers(params: TrackParams, start: bool = True) -> list:
    return _executor().session_workers(guess_device(params.device), start=start)


def _host(params: TrackParams):
    return _workers(params)[0]


# -- the model ----------------------------------------------------------------------------------
def warm(params: TrackParams) -> None:
    """Load ``params``' model in the device's session worker (returns at once; a no-op once loaded).

    That worker also runs a run of one sequence, so Start finds the model loaded. The other workers
    of a CPU pool are left alone: each would hold another copy, for runs of several sequences only.
    """
    _host(params).post("warm", params)


def model_status(params: TrackParams) -> str:
    """ "cold" (no worker or not asked), "loading", "ready", or "failed: <sentence>" for the session worker."""
    workers = _workers(params, start=False)
    if not workers or not workers[0].started:
        return "cold"
    try:  # the worker's listener answers at once; a page must not wait for a busy or starting worker
        return str(workers[0].request("status", params, timeout=STATUS_WAIT_S))
    except NoAnswer:  # a worker still starting (importing torch) answers nothing yet
        return "loading"
    except UserError as err:
        return f"failed: {err}"


def loading_label(params: TrackParams) -> str:
    """What a page shows while the model loads: "Loading SAM2 small…"."""
    return f"Loading SAM2 {MODEL_LABELS.get(params.model, params.model)}…"


# -- frames and prompts -------------------------------------------------------------------------
def axis_sequence(stack: Any, across: str, loc: Location) -> tuple[Sequence, int]:
    """The whole tracking axis through ``loc`` and ``loc``'s index in it (see the module doc)."""
    sizes = stack.sizes
    if across == "z":
        frames = tuple(Location(loc.xy, loc.time, z) for z in range(int(sizes["Z"])))
        return Sequence(frames, "z"), int(loc.z)
    frames = tuple(Location(loc.xy, t, loc.z) for t in range(int(sizes["T"])))
    return Sequence(frames, "time"), int(loc.time)


def frame_request(
    store: Store, ws: Workspace, stack: Any, params: TrackParams, display: Any, loc: Location
) -> FrameRequest:
    """The request naming ``loc`` of ``ws``'s dataset, shown with ``display`` (a DisplaySettings or its dict)."""
    from sam2web.service.runs import dataset_source

    source = dataset_source(store, ws)
    if source is None:
        raise UserError("Open a dataset on the Dataset page first.")
    paths, pages_as = source
    sequence, frame = axis_sequence(stack, params.across, Location(*loc))
    shown = display.to_dict() if hasattr(display, "to_dict") else dict(display or {})
    return FrameRequest(ws.id, tuple(str(p) for p in paths), pages_as, shown, sequence, frame, params)


def view(request: FrameRequest) -> None:
    """Start computing the embedding of the frame the user opened (returns at once)."""
    _host(request.params).post("view", request)


def prompt(
    request: FrameRequest,
    obj_id: int,
    box: Box | None = None,
    points: list[Point] | tuple[Point, ...] = (),
    timeout_s: float = 30.0,
) -> PromptResult:
    """The mask of ``obj_id`` on the request's frame given its whole prompt there (box and/or points).

    Neither box nor points removes the object's prompt on that frame. Never raises for what the
    worker could not do: ``ok`` is False and ``status`` says why in one sentence.
    """
    from sam2web import geometry

    loc = request.loc
    base = {"obj_id": int(obj_id), "loc": loc, "frame": request.frame}
    try:
        got = _host(request.params).request("prompt", request, int(obj_id), box, list(points), timeout=timeout_s)
    except UserError as err:
        return PromptResult(ok=False, status=str(err), **base)
    mask: CompactMask = got["mask"]
    geom = None if mask.empty else geometry.mask_to_geometry(mask, request.params.padding, request.params.smoothing)
    rings = _rings(geom)
    area = int(mask.crop().sum()) if not mask.empty else 0
    status = (
        f"Object {int(obj_id) + 1}: {area} pixels on this frame ({got['ms']:.0f} ms)."
        if area
        else f"Object {int(obj_id) + 1}: no mask under this prompt; draw the box tighter or add a point inside."
    )
    if box is None and not points:
        status = f"Object {int(obj_id) + 1}: its prompt on this frame was removed."
    return PromptResult(
        ok=True,
        status=status,
        polygons=rings,
        area=area,
        worker_ms=float(got["ms"]),
        worker_cpu_ms=float(got.get("cpu_ms", 0.0)),
        warm=bool(got["warm"]),
        mask=mask,
        **base,
    )


def _rings(geom) -> list[list[list[float]]]:
    if geom is None or geom.is_empty:
        return []
    parts = list(getattr(geom, "geoms", [geom]))
    out = []
    for poly in parts:
        for ring in [poly.exterior, *poly.interiors]:
            out.append([[float(x), float(y)] for x, y in ring.coords])
    return out


def close(workspace_id: str) -> None:
    """Drop every session of a workspace in the workers (its embeddings are freed)."""
    ex = _executor()
    for device in ex.devices():
        workers = ex.session_workers(device, start=False)
        if workers and workers[0].started:
            workers[0].post("close", workspace_id)


def session_info(params: TrackParams, timeout_s: float = 30.0) -> dict:
    """What the session worker holds now: sessions, embeddings, their bytes (tests, the bench)."""
    return _host(params).request("info", timeout=timeout_s)


# -- live tracking --------------------------------------------------------------------------------
def live_frames(
    store: Store, run_id: int, after: int = 0, epoch: int | None = None, padding: float = 0.0, smoothing: float = 0.3
) -> LiveFrames:
    """The polygons of the frames a run saved after ``after`` (the ``cursor`` of the last call).

    Cheap per poll: only rows written since the cursor are read and traced. When the run's mask
    epoch differs from the ``epoch`` passed in (masks rewritten in place by a correction), every
    frame is sent again with ``reset`` set.
    """
    from sam2web import geometry

    run = store.get_run(int(run_id))
    if run is None:
        raise UserError("That run no longer exists; pick another run or track again.")
    now_epoch = store.mask_epoch(int(run_id))
    reset = epoch is not None and epoch != now_epoch
    masks, cursor = store.load_masks_since(int(run_id), 0 if reset else int(after))
    keys = list(masks)
    geoms = geometry.geometries_for([masks[k] for k in keys], padding, smoothing)
    out: dict[Location, dict[int, list]] = {}
    for (obj_id, loc), geom in zip(keys, geoms):
        out.setdefault(Location(*loc), {})[int(obj_id)] = _rings(geom)
    return LiveFrames(out, cursor, run.status, run.done_frames, run.total_frames, now_epoch, reset)
