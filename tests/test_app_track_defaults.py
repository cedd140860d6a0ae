"""Track form defaults that suit the stack, and range errors that point at the axis that would work."""

from __future__ import annotations

import numpy as np
import pytest

from sam2web.errors import UserError
from sam2web.selection import build_sequences
from sam2web.ui.track_ui import stack_defaults

try:
    from tests.app_helpers import assert_clean, data, new_app  # noqa: F401 - data is a fixture
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, new_app


def test_one_time_point_many_slices_defaults_to_across_z():
    assert stack_defaults({"T": 1, "Z": 30}) == {"across": "z", "z": "all", "time": ""}
    assert stack_defaults({"T": 24, "Z": 1}) == {} and stack_defaults({"T": 5, "Z": 5}) == {}


def test_too_short_range_suggests_the_other_axis_when_it_would_work():
    with pytest.raises(UserError) as err:
        build_sequences([0], [0], list(range(30)), "time", "forward", sizes={"T": 1, "Z": 30})
    assert "Or choose Track across Z: 30 Z frames are chosen." in str(err.value)
    with pytest.raises(UserError) as err:
        build_sequences([0], [0], [3], "time", "forward", sizes={"T": 1, "Z": 30})
    assert "This stack has 30 Z frames: choose Track across Z and set Batch Z to all." in str(err.value)
    with pytest.raises(UserError) as err:  # a time-lapse with one time chosen: the other axis would not work
        build_sequences([0], [4], [0], "time", "forward", sizes={"T": 24, "Z": 1})
    assert "Track across Z" not in str(err.value) and "Batch Time" in str(err.value)


def test_z_stack_opens_the_track_form_across_z_and_enter_starts_nothing(data):
    import tifffile

    ws = data.create_workspace("z stack")
    folder = data.files_dir(ws.id)
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / "nuclei.tif", np.random.default_rng(0).integers(0, 255, (6, 64, 80), dtype=np.uint8))
    data.update_workspace(ws.id, dataset={"kind": "files", "files": ["nuclei.tif"], "pages_as": "z"})
    at = new_app(ws.id)
    at.switch_page("pages/track.py").run()
    assert_clean(at)
    assert at.radio(key="trk_across").value == "z" and at.text_input(key="trk_z").value == "all"
    # Enter in a text field of the form submits nothing: the form is sent with enter_to_submit off.
    assert _forms(at._tree) == {"track_form": False}
    assert not data.list_runs(ws.id)


def _forms(node) -> dict[str, bool]:
    """form id -> enter_to_submit, for every form block on the page."""
    out: dict[str, bool] = {}
    proto = getattr(node, "proto", None)
    if type(proto).__name__ == "Block" and proto.WhichOneof("type") == "form":
        out[proto.form.form_id] = proto.form.enter_to_submit
    children = getattr(node, "children", None)
    for child in children.values() if isinstance(children, dict) else []:
        out.update(_forms(child))
    return out
