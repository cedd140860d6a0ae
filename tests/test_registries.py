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
from sam2web.types import Annotation, Connection, Location


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
