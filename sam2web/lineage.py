"""Cell divisions: marked by hand (prompts with a parent) and detected while tracking, over ``track``.

Contract (the run service calls this instead of ``tracking.track.track``; same arguments, plus):
    track_lineage(stack, sequences, prompts, predictor, display, direction="forward", progress=None,
                  cancel=None, result=None, on_frame=None, session=None, detect=True, on_phase=None,
                  min_share=MIN_SHARE, persist=PERSIST, max_neck=MAX_NECK, lookback=LOOKBACK) -> TrackResult
    lineage_kwargs(params: TrackParams) -> {detect, min_share, persist}   TrackParams' divisions fields
    split_mask(mask, min_share, max_neck) -> (part_a, part_b) | None
    apply_manual_divisions(result, prompts) -> {obj_id: first Time index it no longer has}

Manual divisions: a prompt with ``parent=M`` at Time t starts a daughter of M; M ends at t-1
(its masks from t on are dropped, and ``on_frame`` is told so with empty masks, which the store
and every export treat as "no polygon").

Detection (Time only, forward direction): after a run, each live object's masks are scanned in time
order for a *split*: two sizeable parts (each at least ``min_share`` of the object's area), either
separate connected components or two bodies joined by a neck narrower than ``max_neck`` times the
object's widest point. A split at frame s is a *candidate* when it holds for ``persist`` frames
(s .. s+persist-1; fewer at the end of the sequence, so a division on the last frames is not
lost). Each candidate is then checked by the tracker itself, the way Chen et al. ("Segment
Anything for Cell Tracking", 2025) decide a division: they track *backward* in time and call it a
mitosis when two cells' tracks converge on one mask. Here the two parts are prompted as masks at s
and tracked backward (up to ``lookback`` frames, through the public ``track``; all candidates of a
round in one propagation): the division
frame t is the earliest frame back to which both stay distinct (each has pixels, they overlap
each other by IoU < 0.5, and each lies mostly inside the mother's mask). Not distinct at s itself
(e.g. both halves of one rod-shaped cell come back as the same cell) rejects the candidate. An
accepted one ends the mother at t-1, and two daughters (parent = mother) take the backward masks
for t .. s-1 and are tracked forward from s with their part as a mask prompt (``result=previous``:
only the daughters are re-tracked). If the tracker merges the two daughters again (or loses one)
within ``persist`` frames, the division is undone, as Chen et al. undo a mitosis the next frame
contradicts. Daughters are scanned in the next round, so a lineage tree of any depth is found.
Compared with Chen et al.'s single-frame convergence test, the split must also persist forward in
the mother's own mask before the tracker is asked at all.

Defaults, measured on ../shared/data/bacteria_ctc (30 divisions, 328 cell masks):
- MIN_SHARE = 0.25: daughters there take 43-57 % of the pair's area (median ~50 %); 0.25 leaves room
  for asymmetric divisions and for SAM2 cutting one daughter short, while a fragment or a
  protrusion (a few % of the mask) never counts as a daughter.
- PERSIST = 2: a split seen on one frame only is more often SAM2 flickering than a division;
  two frames rule that out at the cost of one frame of delay (the backward check restores the
  true division frame). Longer would lose divisions near the end of short sequences.
- MAX_NECK = 0.5: at the first frame of a division the two touching daughters' union has a neck
  below 0.5 x its widest point in half the cases; a single cell's mask does in 1 of 328 (and the
  backward check rejects that one). Daughters that touch without a clear neck are found one or
  two frames later, when they part, and dated back by the backward check.
- LOOKBACK = 8 frames: daughters there part within 0-2 frames of dividing; 8 covers slow
  separations without re-tracking long stretches.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from sam2web.errors import UserError
from sam2web.types import CompactMask, Location, ObjectInfo, Prompt, Sequence, TrackResult

MIN_SHARE = 0.25
PERSIST = 2
MAX_NECK = 0.5
LOOKBACK = 8
DISTINCT_IOU = 0.5  # two backward tracks overlapping more than this have converged on one cell
INSIDE_MOTHER = 0.5  # share of a backward daughter mask that must lie in the mother's mask


def lineage_kwargs(params) -> dict:
    """``track_lineage``'s extra arguments from a TrackParams (the run service and the CLI share it)."""
    return {
        "detect": bool(params.divisions) and params.across == "time",
        "min_share": float(params.division_share),
        "persist": int(params.division_frames),
    }


# ------------------------------------------------------------------------------------ splitting
def split_mask(mask: np.ndarray, min_share: float = MIN_SHARE, max_neck: float = MAX_NECK):
    """The two parts a mask splits into (full-size bool arrays), or None.

    Separate components count first; otherwise the largest component is eroded (by distance
    transform thresholds) until it falls into two bodies, which is a split only when it happens
    below ``max_neck`` x its widest half-width; pixels then go to the nearer body.
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = mask[r0:r1, c0:c1]
    total = float(crop.sum())
    lab, n = ndimage.label(crop)
    sizes = np.bincount(lab.ravel())[1:]
    order = np.argsort(sizes)[::-1]
    parts: list[np.ndarray] | None = None
    if n >= 2 and sizes[order[1]] >= min_share * total:
        parts = [lab == order[0] + 1, lab == order[1] + 1]
    elif max_neck > 0:
        parts = _neck_split(lab == order[0] + 1, total, min_share, max_neck)
    if parts is None:
        return None
    out = []
    for part in parts:
        full = np.zeros(mask.shape, dtype=bool)
        full[r0:r1, c0:c1] = part
        out.append(full)
    return out[0], out[1]


def _neck_split(body: np.ndarray, total: float, min_share: float, max_neck: float) -> list[np.ndarray] | None:
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(np.pad(body, 1))[1:-1, 1:-1]
    widest = float(dist.max())
    for r in np.arange(0.5, max_neck * widest, 0.5):
        seeds, n = ndimage.label(dist > r)
        if n < 2:
            continue
        _, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
        nearest = seeds[tuple(idx)] * body
        sizes = np.bincount(nearest.ravel(), minlength=n + 1)[1:]
        order = np.argsort(sizes)[::-1]
        if sizes[order[1]] >= min_share * total:
            return [nearest == order[0] + 1, nearest == order[1] + 1]
    return None


# ------------------------------------------------------------------------------ manual divisions
def _empty_like(cm: CompactMask) -> CompactMask:
    return CompactMask(tuple(cm.shape), (0, 0, 0, 0), b"")


def _end_objects(result: TrackResult, ends: dict[int, int], on_frame) -> None:
    """Drop each object's masks from Time ``ends[obj]`` on; tell ``on_frame`` with empty masks."""
    gone: dict[Location, dict[int, CompactMask]] = {}
    for key in [k for k in result.masks if k[0] in ends and k[1].time >= ends[k[0]]]:
        gone.setdefault(key[1], {})[key[0]] = _empty_like(result.masks.pop(key))
    if on_frame is not None:
        for loc in sorted(gone):
            on_frame(loc, gone[loc])


def apply_manual_divisions(result: TrackResult, prompts: list[Prompt]) -> dict[int, int]:
    """Parents from prompts into ``result.objects``; returns mother -> first Time she no longer has."""
    ends: dict[int, int] = {}
    for p in prompts:
        if p.parent is None:
            continue
        if p.parent == p.obj_id:
            raise UserError(f"Object {p.obj_id} cannot divide into itself; choose another mother object.")
        info = result.objects.setdefault(p.obj_id, ObjectInfo(p.obj_id, p.name, list(p.tags)))
        info.parent = int(p.parent)
        ends[int(p.parent)] = min(ends.get(int(p.parent), p.loc.time), p.loc.time)
    return ends


# ------------------------------------------------------------------------------------ detection
@dataclass
class _Candidate:
    seq_i: int
    obj: int
    s: int  # frame index in the sequence
    parts: tuple[np.ndarray, np.ndarray]
    t: int = -1  # division frame index, once verified


def _obj_frames(result: TrackResult, obj: int, seq: Sequence) -> dict[int, CompactMask]:
    out = {}
    for i, loc in enumerate(seq.frames):
        cm = result.masks.get((obj, loc))
        if cm is not None and not cm.empty:
            out[i] = cm
    return out


def _find_split(frames: dict[int, CompactMask], start: int, n: int, min_share, max_neck, persist):
    for i in sorted(f for f in frames if f >= start):
        parts = split_mask(frames[i].to_mask(), min_share, max_neck)
        if parts is None:
            continue
        ok = True
        for j in range(i + 1, min(i + persist, n)):
            if j not in frames or split_mask(frames[j].to_mask(), min_share, max_neck) is None:
                ok = False
                break
        if ok:
            return i, parts
    return None


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum()) / float(union) if union else 0.0


def _distinct(a: np.ndarray | None, b: np.ndarray | None, mother: np.ndarray | None) -> bool:
    if a is None or b is None or not a.any() or not b.any() or _iou(a, b) >= DISTINCT_IOU:
        return False
    if mother is None:
        return True
    return all(np.logical_and(x, mother).sum() >= INSIDE_MOTHER * x.sum() for x in (a, b))


def _verify(run_track, result: TrackResult, seq: Sequence, cands: list[_Candidate], lookback: int, ids) -> dict:
    """Track every candidate's parts backward from its s in ONE propagation; set ``t``.

    Returns {(seq_i, obj): {k: {frame index: mask}}}: each daughter's backward masks.
    """
    lo = max(0, min(c.s for c in cands) - lookback)
    hi = max(c.s for c in cands)
    back = Sequence(tuple(reversed(seq.frames[lo : hi + 1])), seq.across)
    prompts, temp = [], {}
    for c in cands:
        for k, part in enumerate(c.parts):
            tid = next(ids)
            temp[(c.obj, k)] = tid
            prompts.append(Prompt(tid, seq.frames[c.s], mask=part))
    back_result = run_track([back], prompts)
    masks: dict = {}
    for c in cands:
        first = min(_obj_frames(result, c.obj, seq))
        c.t = c.s + 1
        own: dict[int, dict[int, np.ndarray]] = {0: {}, 1: {}}
        for i in range(c.s, max(lo, c.s - lookback) - 1, -1):
            got = [back_result.masks.get((temp[(c.obj, k)], seq.frames[i])) for k in (0, 1)]
            a, b = (g.to_mask() if g is not None else None for g in got)
            mother = result.masks.get((c.obj, seq.frames[i]))
            if i <= first or not _distinct(a, b, mother.to_mask() if mother is not None else None):
                break
            own[0][i], own[1][i] = a, b
            c.t = i
        masks[(c.seq_i, c.obj)] = own
    return masks


def _drop_converged(res: TrackResult, sequences, births: list, persist: int, on_frame) -> list:
    """Undo divisions whose daughters, tracked on, fall back onto one cell within ``persist`` frames.

    The forward half of the convergence test: two daughters that the tracker merges again right
    away (or one of which it loses) were one cell after all. Their masks are dropped (``on_frame``
    hears empty masks), the objects removed, and the mother goes on as before.
    """
    pairs: dict[int, list[tuple]] = {}
    for birth in births:
        pairs.setdefault(id(birth[0]), []).append(birth)
    keep = []
    for group in pairs.values():
        c = group[0][0]
        seq = sequences[c.seq_i]
        ids = [d for _c, _k, d in group]
        ok = True
        for j in range(c.s + 1, min(c.s + persist, len(seq.frames))):
            got = [res.masks.get((d, seq.frames[j])) for d in ids]
            a, b = (g.to_mask() if g is not None else None for g in got)
            if not _distinct(a, b, None):
                ok = False
                break
        if ok:
            keep.extend(group)
            continue
        gone: dict[Location, dict[int, CompactMask]] = {}
        for key in [k for k in res.masks if k[0] in ids]:
            gone.setdefault(key[1], {})[key[0]] = _empty_like(res.masks.pop(key))
        for d in ids:
            res.objects.pop(d, None)
        if on_frame is not None:
            for loc in sorted(gone):
                on_frame(loc, gone[loc])
    return keep


def track_lineage(
    stack,
    sequences: list[Sequence],
    prompts: list[Prompt],
    predictor,
    display,
    direction: str = "forward",
    progress=None,
    cancel: Callable[[], bool] | None = None,
    result: TrackResult | None = None,
    on_frame=None,
    session=None,
    detect: bool = True,
    min_share: float = MIN_SHARE,
    persist: int = PERSIST,
    max_neck: float = MAX_NECK,
    lookback: int = LOOKBACK,
    new_ids: Iterator[int] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> TrackResult:
    """``track`` with divisions: manual ones from prompts' ``parent``, detected ones (see module doc).

    ``new_ids`` gives detected daughters their ids (ids already in use are skipped); the default
    counts on from the largest id here, which is unique only when one call sees the whole run.
    ``on_phase("divisions")`` is called when the search for divisions starts and
    ``on_phase("daughters")`` while daughters are tracked, so a progress bar that stands at its
    last frame can say what is still going on.
    """
    from sam2web.tracking.track import track

    if not 0 < min_share <= 0.5:
        raise UserError(f"Minimum daughter share {min_share:g} is outside 0..0.5; choose e.g. 0.25.")
    if persist < 1:
        raise UserError(f"Split persistence {persist} must be at least 1 frame; choose e.g. 2.")
    if not 0 <= max_neck < 1:
        raise UserError(f"Neck ratio {max_neck:g} is outside 0..1; choose e.g. 0.5 (0 = separate parts only).")
    ends = apply_manual_divisions(TrackResult(), prompts)

    def filtered(loc: Location, masks: dict) -> None:
        if on_frame is not None:
            on_frame(loc, {o: (_empty_like(m) if o in ends and loc.time >= ends[o] else m) for o, m in masks.items()})

    res = track(stack, sequences, prompts, predictor, display, direction, progress, cancel, result, filtered, session)
    ends = apply_manual_divisions(res, prompts)
    _end_objects(res, ends, on_frame)
    across = sequences[0].across if sequences else "time"
    if not detect or direction != "forward" or across != "time" or res.partial:
        return res
    phase = on_phase or (lambda _name: None)
    phase("divisions")
    return _detect(
        res, stack, sequences, predictor, display, progress, cancel, on_frame, min_share, persist, max_neck, lookback,
        new_ids, phase,
    )  # fmt: skip


def _detect(
    res, stack, sequences, predictor, display, progress, cancel, on_frame, min_share, persist, max_neck, lookback,
    new_ids=None, phase=lambda _name: None,
):  # fmt: skip
    from sam2web.tracking.track import track

    source = new_ids if new_ids is not None else itertools.count(max([*res.objects, *(k[0] for k in res.masks), 0]) + 1)

    def next_ids():
        for n in source:
            if n not in res.objects and not any(k[0] == n for k in res.masks):
                yield n

    ids = next_ids()
    temp_ids = iter(range(10**9, 2 * 10**9))
    cursor: dict[tuple[int, int], int] = {}
    max_rounds = 2 * max(len(s.frames) for s in sequences) + 4
    for _ in range(max_rounds):
        if cancel is not None and cancel():
            res.partial = True
            break
        mothers = {info.parent for info in res.objects.values() if info.parent is not None}
        cands: list[_Candidate] = []
        for si, seq in enumerate(sequences):
            for obj in sorted(o for o in res.objects if o not in mothers):
                frames = _obj_frames(res, obj, seq)
                if not frames:
                    continue
                found = _find_split(frames, cursor.get((obj, si), 0), len(seq.frames), min_share, max_neck, persist)
                if found is not None:
                    cands.append(_Candidate(si, obj, found[0], found[1]))
        if not cands:
            break
        groups: dict[int, list[_Candidate]] = {}
        for c in cands:
            groups.setdefault(c.seq_i, []).append(c)
        back_masks: dict = {}
        for si, group in groups.items():

            def run_back(seqs, prompts):
                return track(stack, seqs, prompts, predictor, display, "forward", cancel=cancel)

            back_masks.update(_verify(run_back, res, sequences[si], group, lookback, temp_ids))
        accepted = [c for c in cands if c.t <= c.s]
        for c in cands:
            cursor[(c.obj, c.seq_i)] = c.s + 1
        if not accepted:
            continue
        daughters: list[Prompt] = []
        births: list[tuple[_Candidate, int, int]] = []
        for c in accepted:
            mother = res.objects[c.obj]
            loc = sequences[c.seq_i].frames[c.s]
            for k, part in enumerate(c.parts):
                d = next(ids)
                name = f"{mother.name or f'Object {c.obj + 1}'}.{k + 1}"  # "Object 1.2", counted from 1 like the screen
                daughters.append(Prompt(d, loc, mask=part, tags=list(mother.tags), name=name, parent=c.obj))
                births.append((c, k, d))
        phase("daughters")
        res = track(stack, sequences, daughters, predictor, display, "forward", progress, cancel, res, on_frame)
        phase("divisions")
        births = _drop_converged(res, sequences, births, persist, on_frame)
        ends = {}
        for c, k, d in births:
            seq = sequences[c.seq_i]
            res.objects[d].parent = c.obj
            ends[c.obj] = seq.frames[c.t].time
            filled: dict[Location, dict[int, CompactMask]] = {}
            for i, m in back_masks[(c.seq_i, c.obj)][k].items():
                if i < c.s:
                    cm = CompactMask.from_mask(m)
                    res.masks[(d, seq.frames[i])] = cm
                    filled.setdefault(seq.frames[i], {})[d] = cm
            if on_frame is not None:
                for loc in sorted(filled):
                    on_frame(loc, filled[loc])
            cursor[(d, c.seq_i)] = c.s + 1
        _end_objects(res, ends, on_frame)
        if res.partial:
            break
    res.settings["divisions_found"] = sum(1 for info in res.objects.values() if info.parent is not None) // 2
    return res
