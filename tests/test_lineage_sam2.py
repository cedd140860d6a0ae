"""Division detection with the real SAM2 video predictor (tiny, random weights): the plumbing.

Random weights make the masks meaningless, so whether a division is found is chance; what must
hold whatever happens: the run finishes, objects may be added mid-run (daughters prompted with a
mask), every daughter's mother ends before she starts, and the CTC folder loads in traccuracy.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam2web import ctc, geometry, links
from sam2web.lineage import track_lineage
from sam2web.types import Location, Prompt
from tests.engine_helpers import N_FRAMES, SyntheticStack, box_prompt, time_sequence, tiny_predictor

pytest.importorskip("sam2")


@pytest.fixture(scope="module")
def predictor():
    return tiny_predictor(128)


def _check_lineage_valid(res, tmp_path):
    from traccuracy.loaders import load_ctc_data

    overlaps = []  # (daughter, mother) pairs where the daughter has a mask at or before her mother's last one
    for obj, info in res.objects.items():
        if info.parent is None:
            continue
        mine = [loc.time for o, loc in res.masks if o == obj and not res.masks[(o, loc)].empty]
        hers = [loc.time for o, loc in res.masks if o == info.parent and not res.masks[(o, loc)].empty]
        if mine and hers and max(hers) >= min(mine):
            overlaps.append((obj, info.parent))
    assert not overlaps
    anns = geometry.annotations_from_result(res, smoothing=0)
    conns = links.connect(anns)
    ids = {a.id for a in anns}
    assert anns and all(c.parent_id in ids and c.child_id in ids for c in conns)
    ctc.write_ctc_annotations(tmp_path / "ctc", anns, (72, 120), n_frames=N_FRAMES)
    load_ctc_data(str(tmp_path / "ctc"), str(tmp_path / "ctc" / "res_track.txt"))


def test_detection_on_with_random_weights_stays_valid(predictor, tmp_path):
    stack = SyntheticStack()
    seen = []
    res = track_lineage(
        stack,
        [time_sequence()],
        [box_prompt(0, 0, stack, 0), box_prompt(1, 0, stack, 1)],
        predictor,
        stack.render,
        on_frame=lambda loc, masks: seen.append(loc),
    )
    assert not res.partial and seen
    assert {0, 1} <= set(res.objects)
    _check_lineage_valid(res, tmp_path)


def test_daughters_prompted_with_masks_mid_run(predictor, tmp_path):
    """What detection does to SAM2, made certain: two mask-prompted daughters join at frame 3."""
    stack = SyntheticStack()
    mother = box_prompt(0, 0, stack, 0)
    x0, y0, x1, y1 = (int(v) for v in mother.box)
    halves = []
    for a, b in ((x0, (x0 + x1) // 2), ((x0 + x1) // 2, x1)):
        m = np.zeros((72, 120), bool)
        m[y0:y1, a:b] = True
        halves.append(m)
    prompts = [mother] + [Prompt(5 + k, Location(0, 3, 0), mask=m, parent=0) for k, m in enumerate(halves)]
    res = track_lineage(stack, [time_sequence()], prompts, predictor, stack.render, detect=False)
    assert {o: i.parent for o, i in res.objects.items()} == {0: None, 5: 0, 6: 0}
    assert max(loc.time for o, loc in res.masks if o == 0) == 2
    assert sorted(loc.time for o, loc in res.masks if o == 5) == [3, 4, 5]
    _check_lineage_valid(res, tmp_path)
