"""The run service: what the Track and Results pages and the CLI do with runs, without Streamlit.

Opening a workspace's dataset, resolving parameters into sequences and prompts (every user error
one sentence, before anything is queued), submit, resume, re-run, correct (with the correction
direction rule), cancel and delete. Pages call these and lay out widgets; tests call them directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sam2web import prompts as prompts_mod
from sam2web import selection
from sam2web.config import settings
from sam2web.errors import UserError
from sam2web.params import TrackParams
from sam2web.service import review
from sam2web.service.executor import Executor, get_executor, guess_device
from sam2web.service.spec import RunSpec
from sam2web.store import ACTIVE_STATUSES, Run, Store, Workspace
from sam2web.types import Location, Prompt, Sequence


# -- the dataset ------------------------------------------------------------------------------
def sample_paths(store: Store) -> list[Path]:
    """The built-in sample, written once under the data folder."""
    from sam2web.stack import sample

    made = sample.sample_path(store.root / "sample")
    return [Path(p) for p in (made if isinstance(made, (list, tuple)) else [made])]


def dataset_source(store: Store, ws: Workspace) -> tuple[list[Path], str] | None:
    """The files of a workspace's dataset and how their pages are read; None before one is chosen."""
    ds = ws.dataset or {}
    if ds.get("kind") == "sample":
        paths = sample_paths(store)
    elif ds.get("kind") in ("files", "server", "paths"):
        # "server": opened in place from SAM2WEB_SERVER_FOLDERS; "paths": the command line's own files
        paths = [Path(p) for p in ds.get("paths", [])] if ds.get("kind") == "paths" else store.dataset_paths(ws)
        missing = [p.name for p in paths if not p.exists()]
        if missing:
            raise UserError(f"The file {missing[0]} of this workspace is gone from the data folder; upload it again.")
    else:
        return None
    return (paths, ds.get("pages_as", "time")) if paths else None


def open_dataset(store: Store, ws: Workspace) -> Any | None:
    from sam2web.stack import open_stack

    source = dataset_source(store, ws)
    if source is None:
        return None
    paths, pages_as = source
    return open_stack([str(p) for p in paths] if len(paths) > 1 else str(paths[0]), pages_as=pages_as)


# -- parameters -------------------------------------------------------------------------------
@dataclass
class Resolved:
    sequences: list[Sequence]
    prompts: list[Prompt]
    objects: dict[str, dict]


def resolve(stack: Any, params: TrackParams, prompts: list[Prompt], current: Location) -> Resolved:
    """Ranges -> sequences, tag filter -> the prompts on those frames; a UserError for every mistake."""
    params.validate()
    sizes = stack.sizes
    xys = selection.parse_ranges(params.xy, sizes["XY"], current.xy, name="XY")
    times = selection.parse_ranges(params.time, sizes["T"], current.time, name="Time")
    zs = selection.parse_ranges(params.z, sizes["Z"], current.z, name="Z")
    sequences = selection.build_sequences(xys, times, zs, params.across, params.direction, sizes=sizes)
    if not prompts:
        raise UserError("There are no prompts yet; draw a box around an object on the Annotate page.")
    chosen = [p for p in prompts if not params.tags or set(p.tags) & set(params.tags)]
    if not chosen:
        raise UserError("No object has the chosen tags; pick other tags or none to track all objects.")
    on_frames = [p for p in chosen if any(seq.index_of(p.loc) is not None for seq in sequences)]
    if not on_frames:
        raise UserError(
            "No prompt lies on the frames to track; widen the Batch ranges to include a frame "
            "with a box, or draw one on a tracked frame."
        )
    objects: dict[str, dict] = {}
    for p in on_frames:
        entry = objects.setdefault(str(p.obj_id), {"name": p.name or f"Object {p.obj_id + 1}", "tags": list(p.tags)})
        if p.parent is not None:  # lineage hook: a manual division's daughter keeps her mother
            entry["parent"] = int(p.parent)
    return Resolved(sequences, on_frames, objects)


def uses_real_model() -> bool:
    cfg = settings()
    return not cfg.standin and not cfg.random_weights


def check_checkpoint(params: TrackParams) -> None:
    """Refuse to queue a run that cannot load its model; say exactly what to do."""
    from sam2web.trackers import family_of

    if not uses_real_model() or params.model not in family_of(params.model).checkpoints:
        return  # the stand-ins, and families that need no checkpoint file
    from sam2web.tracking import model

    if model.find_checkpoint(params.model, params.checkpoint or None) is None:
        where = f"the file {params.checkpoint}" if params.checkpoint else model.MODELS[params.model][1]
        raise UserError(
            f"The SAM2.1 {params.model} checkpoint ({where}) was not found; download it with the button "
            f"below, put it in {model.download_dir()}, or type its path in Checkpoint file."
        )


def random_weights_run() -> bool:
    """Runs made now use random weights (and say so everywhere): the one rule for app and CLI."""
    cfg = settings()
    return cfg.random_weights and not cfg.standin


# -- runs -------------------------------------------------------------------------------------
def _spec(store, ws, run_id, params, resolved, display, correct_from=None) -> RunSpec:
    source = dataset_source(store, ws)
    if source is None:
        raise UserError("Open a dataset on the Dataset page first.")
    paths, pages_as = source
    return RunSpec(
        run_id=run_id,
        data_dir=str(store.root),
        paths=[str(p) for p in paths],
        pages_as=pages_as,
        params=params,
        sequences=resolved.sequences,
        prompts=resolved.prompts,
        display=display.to_dict() if hasattr(display, "to_dict") else dict(display),
        device=guess_device(params.device),
        correct_from=correct_from,
    )


def run_settings(params: TrackParams, resolved: Resolved, display: Any, **extra: Any) -> dict:
    """What a run stores about itself: its parameters, the frames it covers, its prompts."""
    sequences = resolved.sequences
    frames = {
        axis: sorted({getattr(loc, attr) for q in sequences for loc in q.frames})
        for axis, attr in (("xy", "xy"), ("time", "time"), ("z", "z"))
    }
    return {
        **params.to_dict(),
        "channel": display.export_channel() if hasattr(display, "export_channel") else 0,
        "n_sequences": len(sequences),
        # Sequences with no prompt are not tracked; the run card names them (first frame, [xy, t, z]).
        "unprompted": [list(loc) for loc in review.unprompted(sequences, resolved.prompts)],
        "resolved": frames,
        "display": display.to_dict() if hasattr(display, "to_dict") else dict(display),
        "prompts": [prompts_mod.prompt_to_dict(p) for p in resolved.prompts],
        **extra,
    }


def submit(
    store: Store,
    ws: Workspace,
    stack: Any,
    params: TrackParams,
    prompts: list[Prompt],
    display: Any,
    current: Location,
    resume_from: Run | None = None,
    rerun_of: Run | None = None,
    executor: Executor | None = None,
) -> tuple[int, int]:
    """Queue a run; returns (run id, queue position). Resume keeps the finished frames of ``resume_from``.

    ``executor``: the process's own (``SAM2WEB_EXECUTOR``) unless a command line brings its own.
    """
    check_checkpoint(params)
    store.check_room(ws.id)
    resolved = resolve(stack, params, prompts, current)
    info: dict = {}
    if resume_from is not None:
        info = {"resumed_from": resume_from.id, "done_sequences": list(resume_from.info.get("done_sequences", []))}
    elif rerun_of is not None:
        info = {"rerun_of": rerun_of.id}
    run_id = store.create_run(
        ws.id,
        run_settings(params, resolved, display),
        objects=resolved.objects,
        total_frames=review.own_frames(resolved.sequences, resolved.prompts),
        random_weights=random_weights_run(),
        info=info,
    )
    if resume_from is not None:
        store.copy_masks(resume_from.id, run_id)
    position = (executor or get_executor()).submit(_spec(store, ws, run_id, params, resolved, display))
    return run_id, position


def params_of(run: Run) -> TrackParams:
    """A run's parameters, with its ranges pinned to the frames it covered (whatever is shown now)."""
    params = TrackParams.from_dict(run.settings)
    ranges = {
        axis: ", ".join(str(i + 1) for i in indices) for axis, indices in (run.settings.get("resolved") or {}).items()
    }
    return params.with_(**ranges) if ranges else params


def rerun(store: Store, ws: Workspace, stack: Any, run: Run, resume: bool, prompts: list[Prompt], display: Any) -> int:
    """Re-run (or Resume) a run with its own settings and the workspace's current prompts.

    Resume is idempotent: a run already resumed by one that is queued, running or done gets that
    run's id back (two quick presses, two tabs), not a second copy.
    """
    if resume:
        for other in store.list_runs(run.ws_id):
            if (other.info or {}).get("resumed_from") == run.id and other.status in (*ACTIVE_STATUSES, "done"):
                return other.id
    run_id, _ = submit(
        store,
        ws,
        stack,
        params_of(run),
        prompts,
        display,
        Location(0, 0, 0),
        resume_from=run if resume else None,
        rerun_of=None if resume else run,
    )
    return run_id


def resumed_by(store: Store, run: Run) -> int | None:
    """The id of the run that resumed, re-ran or corrected this one (newest first), if any."""
    for other in store.list_runs(run.ws_id):
        info = other.info or {}
        if other.id > run.id and run.id in (info.get("resumed_from"), info.get("rerun_of")):
            return other.id
    return None


def axis_step(run: Run, loc: Location) -> int:
    """The position of ``loc`` along the run's tracking axis (0-based)."""
    return int(loc.time if run.settings.get("across", "time") == "time" else loc.z)


def correction_direction(run: Run, obj_id: int, loc: Location) -> str:
    """Which way a correction at ``loc`` re-tracks: the run's way; for "both", away from the object's prompt.

    Why: "re-run from there" must leave the frames the user judged right alone. Forward and
    backward runs already propagate one way. A "both" run tracked the object both ways from its
    first prompt, so a correction after that prompt re-tracks forward to the end, and one before
    it re-tracks backward to the start (a fresh engine session given only the correction would
    otherwise re-track BOTH ways from it, overwriting the good frames before it too).
    """
    direction = run.settings.get("direction", "forward")
    if direction != "both":
        return direction
    across = run.settings.get("across", "time")
    axis, other = ("Time", "Z") if across == "time" else ("Z", "Time")
    mine = [
        p.get("loc", {})
        for p in run.settings.get("prompts", [])
        if int(p.get("obj_id", -1)) == obj_id
        and int(p.get("loc", {}).get("XY", 0)) == loc.xy
        and int(p.get("loc", {}).get(other, 0)) == (loc.z if across == "time" else loc.time)
    ]
    firsts = [int(p.get(axis, 0)) for p in mine]
    if not firsts:
        return "forward"
    return "forward" if axis_step(run, loc) >= min(firsts) else "backward"


def correct(
    store: Store, ws: Workspace, stack: Any, run: Run, obj_id: int, loc: Location, box: list, display: Any
) -> int:
    """A new run: the old run's masks, with ``obj_id`` re-tracked from a new box at ``loc`` on.

    The correction also joins the workspace's prompts, so a later full re-run keeps it.
    """
    bx = prompts_mod.make_box(*box, int(stack.sizes["X"]), int(stack.sizes["Y"]))
    info = run.objects.get(str(obj_id), {})
    prompt = Prompt(obj_id=obj_id, loc=loc, box=bx, tags=list(info.get("tags", [])), name=info.get("name", ""))
    direction = correction_direction(run, obj_id, loc)
    params = params_of(run).with_(direction=direction)
    check_checkpoint(params)
    resolved = resolve(stack, params.with_(tags=()), [prompt], loc)
    kept = [
        prompts_mod.prompt_from_dict(d)
        for d in (ws.prompts or [])
        if not (int(d.get("obj_id", -1)) == obj_id and tuple(prompts_mod.prompt_from_dict(d).loc) == tuple(loc))
    ]
    ws.prompts = store.save_prompts(
        ws.id, list(ws.prompts or []), [prompts_mod.prompt_to_dict(p) for p in kept + [prompt]]
    )
    settings_ = {
        **run.settings,
        "correction": {"obj_id": obj_id, "loc": list(loc), "box": list(bx), "from_run": run.id, "direction": direction},
        "prompts": list(run.settings.get("prompts", [])) + [prompts_mod.prompt_to_dict(prompt)],
    }
    new_id = store.create_run(
        ws.id,
        settings_,
        objects=run.objects,
        random_weights=run.random_weights,
        total_frames=review.own_frames(resolved.sequences, resolved.prompts),
        info={"corrected_from": run.id},
    )
    store.copy_masks(run.id, new_id)
    get_executor().submit(_spec(store, ws, new_id, params, resolved, display, correct_from=run.id))
    return new_id


def cancel(run_id: int) -> bool:
    return get_executor().cancel(int(run_id))


def stop_runs(store: Store, ws_id: str, wait_s: float) -> None:
    """Cancel a workspace's queued and running runs and wait for them (before it is deleted)."""
    executor = get_executor()
    active = [r for r in store.list_runs(ws_id) if r.status in ACTIVE_STATUSES]
    for run in active:
        executor.cancel(run.id)
    for run in active:
        if not executor.wait(run.id, wait_s):
            ws = store.get_workspace(ws_id)
            raise UserError(
                f"Run {run.id} of {ws.name if ws else ws_id!r} was cancelled but is still finishing its frame; "
                "press Delete again in a moment."
            )


def delete_workspace(store: Store, ws_id: str, wait_s: float) -> None:
    from sam2web.service import sessions

    stop_runs(store, ws_id, wait_s)
    sessions.close(ws_id)  # its interactive sessions (and their embeddings) in the workers
    store.delete_workspace(ws_id)
