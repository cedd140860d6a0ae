"""Two positions, each with a division, tracked by the oracle through the run service (any executor).

The oracle (SAM2WEB_STANDIN=oracle:TRA) returns the ground-truth label under each prompt plus its
descendants; both positions show the same synthetic cell that divides at frame 3, so every
executor must find two divisions, give the four daughters four distinct ids, keep their parents
in the run's objects and write the same ``connections.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from sam2web.types import Location, Prompt

N, SPLIT, H, W = 8, 3, 40, 80


def division_frames() -> list[np.ndarray]:
    frames = []
    for t in range(N):
        lab = np.zeros((H, W), np.uint16)
        if t < SPLIT:
            lab[12:28, 10 + t : 60 + t] = 1
        else:
            gap = 2 * (t - SPLIT) + 2
            lab[12:28, 8:36] = 2
            lab[12:28, 36 + gap : 64 + gap] = 3
        frames.append(lab)
    return frames


def write_inputs(folder: Path) -> tuple[Path, Path]:
    """The oracle's TRA folder and a two-position OME-TIFF of the same cells."""
    tra = folder / "TRA"
    tra.mkdir(parents=True)
    frames = division_frames()
    for t, lab in enumerate(frames):
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", lab)
    (tra / "man_track.txt").write_text(f"1 0 {SPLIT - 1} 0\n2 {SPLIT} {N - 1} 1\n3 {SPLIT} {N - 1} 1\n")
    stack = folder / "two.ome.tif"
    image = (np.stack(frames) > 0).astype(np.uint8) * 200
    with tifffile.TiffWriter(stack, ome=True) as w:
        for _ in range(2):
            w.write(image, metadata={"axes": "TYX"})
    return tra, stack


def prompts() -> list[Prompt]:
    return [Prompt(xy, Location(xy, 0, 0), box=(10.0, 12.0, 60.0, 28.0), name=f"cell {xy + 1}") for xy in (0, 1)]


def add_workspace(store, stack: Path):
    ws = store.create_workspace("lineage")
    store.save_upload(ws.id, stack.name, stack.read_bytes())
    store.update_workspace(ws.id, dataset={"kind": "files", "files": [stack.name], "pages_as": "time"})
    return store.get_workspace(ws.id)


def submit(store, ws) -> int:
    from sam2web.params import TrackParams
    from sam2web.service import runs
    from sam2web.stack.display import DisplaySettings

    with runs.open_dataset(store, ws) as stack:
        params = TrackParams(xy="all", time="all", smoothing=0.0)
        run_id, _ = runs.submit(store, ws, stack, params, prompts(), DisplaySettings.default(stack), Location(0, 0, 0))
    return run_id


def connections_csv(store, run_id: int) -> bytes:
    from sam2web import exporters, geometry, links

    result = store.load_result(run_id)
    anns = geometry.annotations_from_result(result, smoothing=0.0)
    ctx = exporters.context_of(anns, links.connect(anns), objects=result.objects)
    return exporters.export_files(ctx)["connections.csv"]


def check_lineage(store, run_id: int) -> bytes:
    """The run's lineage as every executor must give it; returns its connections.csv."""
    run = store.get_run(run_id)
    assert run.status == "done", run.error
    parents = {int(k): v.get("parent") for k, v in run.objects.items()}
    daughters = sorted(k for k, p in parents.items() if p is not None)
    assert len(daughters) == 4, run.objects  # two divisions, each with two daughters, ids all distinct
    assert sorted(parents[d] for d in daughters) == [0, 0, 1, 1]
    by_position = {xy: {o for o, loc in store.load_masks(run_id) if loc.xy == xy} for xy in (0, 1)}
    assert not by_position[0] & by_position[1]  # no id is used in both positions
    text = connections_csv(store, run_id)
    assert text.count(b",DIVISION") == 4
    return text
