"""The registries: one place per kind, names refused with a sentence, entries usable end to end."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import pytest
import shapely

from sam2web import exporters, params, trackers
from sam2web.errors import UserError
from sam2web.registry import Registry, lazy
from sam2web.types import Annotation, Connection, Location, Prompt


@dataclass(frozen=True)
class _Entry:
    name: str


def test_registry_keeps_order_refuses_duplicates_and_unknown_names():
    reg = Registry("thing", [_Entry("a"), _Entry("b")])
    assert reg.names() == ("a", "b")
    with pytest.raises(ValueError):
        reg.register(_Entry("a"))
    with pytest.raises(UserError, match="Unknown thing 'c': choose one of a, b"):
        reg.get("c")
    reg.unregister("a")
    assert "a" not in reg and len(reg) == 1


def test_lazy_resolves_module_strings():
    assert lazy("sam2web.registry:Registry") is Registry


def test_params_models_come_from_the_tracker_registry():
    assert params.MODELS == trackers.all_models()
    assert trackers.family_of("tiny").name == "sam2.1"
    with pytest.raises(UserError, match="Unknown model"):
        trackers.family_of("nope")


def _context() -> exporters.ExportContext:
    anns = [Annotation(f"a{t}", 0, Location(0, t, 0), shapely.box(2, 2, 6, 5)) for t in range(3)]
    conns = [Connection("a0", "a1", 0), Connection("a1", "a2", 0)]
    return exporters.ExportContext(anns, conns, frame_shape=(10, 12), n_frames=3)


def test_default_exports_are_the_four_tables():
    files = exporters.export_files(_context())
    assert sorted(files) == sorted(exporters.EXPORTERS.get("tables").files)
    assert files["connections.csv"].count(b"\n") == 3  # header + two links


def test_label_and_ctc_exports_from_the_registry():
    files = exporters.export_files(_context(), ("labels", "ctc"))
    assert "labels_xy1.ome.tif" in files
    assert {"ctc/mask000.tif", "ctc/mask002.tif", "ctc/res_track.txt"} <= set(files)


def test_label_exports_without_a_frame_size_say_so():
    ctx = exporters.ExportContext(_context().annotations, [])
    with pytest.raises(UserError, match="frame size"):
        exporters.export_files(ctx, ("ctc",))


def test_units_pixel_area():
    assert exporters.Units((0.5, 0.25)).pixel_area == 0.125
    assert exporters.Units().pixel_area is None


# ------------------------------------------------------------------------------------- readers
def test_every_extension_list_comes_from_the_reader_registry():
    from sam2web.server_files import list_openable  # noqa: F401  (built from the registry too)
    from sam2web.stack import registry as readers
    from sam2web.ui.dataset_ui import UPLOAD_TYPES

    assert UPLOAD_TYPES == readers.upload_types()
    assert {"tif", "tiff", "png", "jpg", "jpeg", "czi", "mp4", "webm"} <= set(UPLOAD_TYPES)
    assert readers.frame_extensions() == {".tif", ".tiff", ".png", ".jpg", ".jpeg"}
    assert readers.READERS.names()[-1] == "frames"  # the folder fallback comes last


def test_a_registered_reader_opens_its_files_everywhere(tmp_path, monkeypatch):
    """A new format is one entry: open_stack dispatches to it, uploads and server listings offer it."""
    import numpy as np

    from sam2web import server_files
    from sam2web.stack import Opened, open_stack
    from sam2web.stack import registry as readers

    def sniff(path):
        return path.suffix == ".fake" and path.read_bytes().startswith(b"FAKE")

    def open_fake(path, pages_as, axes):
        data = np.arange(2 * 16 * 16, dtype=np.uint16).reshape(2, 16, 16)
        sizes = {"XY": 1, "T": 2, "Z": 1, "C": 1, "Y": 16, "X": 16}
        return Opened(sizes, data.dtype, lambda xy, t, z, c: data[t], ["Fake"])

    (tmp_path / "a.fake").write_bytes(b"FAKE0000")
    readers.READERS.register(readers.Reader("fake", "Fake", (".fake",), open_fake, sniff))
    try:
        with open_stack(tmp_path / "a.fake") as stack:
            assert stack.sizes["T"] == 2 and stack.source["format"] == "fake"
            assert int(stack.frame((0, 1, 0))[0, 1]) == 257
        assert "fake" in readers.upload_types()
        monkeypatch.setattr(server_files, "server_folders", lambda: [tmp_path.resolve()])
        assert server_files.list_openable(tmp_path) == ["a.fake"]
    finally:
        readers.READERS.unregister("fake")
    with pytest.raises(UserError, match="a.fake is a text file: open a TIFF, OME-TIFF, PNG, JPEG, CZI"):
        open_stack(tmp_path / "a.fake")


def test_a_text_file_is_refused_with_the_formats_named(tmp_path):
    from sam2web.stack import open_stack

    (tmp_path / "notes.tif").write_text("hello world, not an image")
    with pytest.raises(
        UserError,
        match="is a text file: open a TIFF, OME-TIFF, PNG, JPEG, CZI, OME-Zarr, MP4/AVI video, Nikon ND2, Leica LIF file",
    ):
        open_stack(tmp_path / "notes.tif")


# ------------------------------------------------------------------------------------ trackers
def build_fake(model, checkpoint, device, image_size, precision, download=False, progress=None):
    """A tracker family's build function: here SAM2's surface comes from the stand-in."""
    from sam2web.tracking.standin import StandInTracker

    tracker = StandInTracker()
    tracker.sam2web_info = {"device": "cpu", "precision": "fp32", "model": model, "image_size": 0}
    return tracker


def test_a_registered_tracker_family_tracks_through_the_run_service(tmp_path, monkeypatch):
    import numpy as np
    import tifffile

    from sam2web.params import TrackParams
    from sam2web.service import executor as executor_mod
    from sam2web.service import runs
    from sam2web.stack.display import DisplaySettings
    from sam2web.store import get_store
    from sam2web.tracking import factory

    monkeypatch.setenv("SAM2WEB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SAM2WEB_EXECUTOR", "inline")
    monkeypatch.delenv("SAM2WEB_STANDIN", raising=False)
    monkeypatch.delenv("SAM2WEB_RANDOM_WEIGHTS", raising=False)
    factory.clear()
    family = trackers.TrackerFamily("fake", "Fake tracker", ("fake-1",), f"{__name__}:build_fake", checkpoints={})
    trackers.TRACKERS.register(family)
    try:
        store = get_store(str(tmp_path / "data"))
        ws = store.create_workspace("w")
        arr = np.zeros((4, 32, 40), np.uint8)
        arr[:, 8:16, 8:16] = 200
        tifffile.imwrite(tmp_path / "m.tif", arr, imagej=True, metadata={"axes": "TYX"})
        store.save_upload(ws.id, "m.tif", (tmp_path / "m.tif").read_bytes())
        store.update_workspace(ws.id, dataset={"kind": "files", "files": ["m.tif"], "pages_as": "time"})
        ws = store.get_workspace(ws.id)
        with runs.open_dataset(store, ws) as stack:
            prompt = Prompt(0, Location(0, 0, 0), box=(8.0, 8.0, 16.0, 16.0))
            params = TrackParams(model="fake-1", time="all")
            run_id, _ = runs.submit(
                store, ws, stack, params, [prompt], DisplaySettings.default(stack), Location(0, 0, 0)
            )
        assert executor_mod.get_executor().wait(run_id, 60)
        run = store.get_run(run_id)
        assert run.status == "done", run.error
        assert store.count_masks(run_id) == 4 and run.info["model_info"]["model"] == "fake-1"
    finally:
        trackers.TRACKERS.unregister("fake")
        executor_mod.get_executor().shutdown()
        factory.clear()
    with pytest.raises(UserError, match="is not one of tiny, small, base_plus, large"):
        TrackParams(model="fake-1").validate()
