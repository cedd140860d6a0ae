"""AppTest: the Results page's NimbusImage dataset-id field and its label-image downloads."""

from __future__ import annotations

try:  # tests/ may be a package; the fallback keeps a plain rootdir run working
    from tests.app_helpers import assert_clean, data, errors, new_app, submit_track, wait_runs
    from tests.test_app_pages import _sample, _track_sample
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, data, errors, new_app, submit_track, wait_runs  # noqa: F401
    from test_app_pages import _sample, _track_sample

__all__ = ["data", "submit_track"]


def test_results_dataset_id_and_label_downloads(data):
    at = _sample(new_app())
    ws = _track_sample(at, data, time="1-4")
    wait_runs(data, ws.id)
    (run,) = data.list_runs(ws.id)
    at.switch_page("pages/results.py").run()
    assert_clean(at)
    labels = [d.label for d in at.get("download_button")]
    assert "nimbus.json" in labels and not any(n.endswith(".ome.tif") for n in labels)  # built only on request
    field = at.text_input(key=f"res_dataset_id_{run.id}")
    field.set_value("not-an-id").run()
    assert any("24-character id" in e for e in errors(at))
    field.set_value("65a1b2c3d4e5f60718293a4b").run()
    assert not errors(at)
    at.button(key=f"res_labels_{run.id}_0_build").click().run()
    assert_clean(at)
    labels = [d.label for d in at.get("download_button")]
    assert "labels_xy1.ome.tif" in labels and "ctc_xy1.zip" in labels
    assert "tracks.geff_xy1.zip" in labels and "trackmate_xy1.xml" in labels
    key = f"res_labels_{run.id}_0"
    files = at.session_state[key][1]
    import io

    import numpy as np
    import tifffile

    with tifffile.TiffFile(io.BytesIO(files["labels_xy1.ome.tif"])) as tif:
        assert tif.series[0].axes == "TYX"
        arr = tif.series[0].asarray()
    assert arr.shape[0] == 24 and set(np.unique(arr[:4])) == {0, 1} and not arr[4:].any()
    import xml.etree.ElementTree as ET
    import zipfile

    spots = ET.fromstring(files["trackmate_xy1.xml"]).findall("Model/AllSpots/SpotsInFrame/Spot")
    assert len(spots) == 4  # the object's four tracked frames
    with zipfile.ZipFile(io.BytesIO(files["tracks.geff_xy1.zip"])) as zf:
        assert "tracks.geff/.zattrs" in zf.namelist() and "tracks.geff/labels/.zarray" in zf.namelist()
