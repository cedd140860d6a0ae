"""Dataset page: "Min / max" contrast starts from the shown frame's own range; the preview fits the page."""

from __future__ import annotations

import numpy as np

from sam2web.ui.dataset_ui import PREVIEW_MAX_H, preview_width

try:
    from tests.app_helpers import assert_clean, data, new_app  # noqa: F401 - data is a fixture
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, new_app


def test_min_max_contrast_starts_from_the_frame_range(data):
    import tifffile

    ws = data.create_workspace("12-bit")
    folder = data.files_dir(ws.id)
    folder.mkdir(parents=True, exist_ok=True)
    frames = np.random.default_rng(0).integers(100, 4000, (3, 40, 50), dtype=np.uint16)  # 12-bit in uint16
    tifffile.imwrite(folder / "cells.tif", frames, photometric="minisblack")
    data.update_workspace(ws.id, dataset={"kind": "files", "files": ["cells.tif"], "pages_as": "time"})
    at = new_app(ws.id)
    assert_clean(at)
    at.selectbox(key="loc_ch_mode_0").set_value("absolute").run()
    assert_clean(at)
    low = at.number_input(key="loc_ch_low_0_absolute").value
    high = at.number_input(key="loc_ch_high_0_absolute").value
    assert (low, high) == (float(frames[0].min()), float(frames[0].max()))  # not 0-65535


def test_preview_keeps_a_tall_frame_above_the_fold():
    tall = np.zeros((1305, 1009, 3), np.uint8)  # a bacteria frame
    w = preview_width(tall)
    assert w * 1305 / 1009 <= PREVIEW_MAX_H + 1 and w <= 900
    wide = np.zeros((240, 320, 3), np.uint8)
    assert preview_width(wide) == 640  # small frames are still enlarged


def test_physical_size_set_on_the_dataset_page_is_stored_in_the_workspace(data):
    """A plain TIFF has no pixel size: the Dataset page's form fills it, and the exports use it."""
    import tifffile

    from sam2web.exporters import Units
    from sam2web.stack import open_stack

    ws = data.create_workspace("uncalibrated")
    folder = data.files_dir(ws.id)
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / "cells.tif", np.zeros((3, 40, 50), np.uint8), photometric="minisblack")
    data.update_workspace(ws.id, dataset={"kind": "files", "files": ["cells.tif"], "pages_as": "time"})
    at = new_app(ws.id)
    assert_clean(at)
    at.number_input(key="ds_cal_pixel").set_value(0.65)
    at.number_input(key="ds_cal_t").set_value(90.0)
    at.button[[b.label for b in at.button].index("Save physical size")].click().run()
    assert_clean(at)
    saved = data.get_workspace(ws.id).dataset
    assert saved["files"] == ["cells.tif"]  # the dataset itself is untouched
    assert saved["calibration"] == {"pixel_size": 0.65, "time_interval": 90.0, "unit": "µm"}
    with open_stack(folder / "cells.tif") as stack:
        assert stack.pixel_size is None
        assert Units.of(stack, saved["calibration"]) == Units((0.65, 0.65), None, 90.0, "µm")
    assert at.number_input(key="ds_cal_pixel").value == 0.65  # shown back after the rerun
