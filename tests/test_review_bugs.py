"""Bugs the architecture review found, each pinned by a test that failed before the fix."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from sam2web.errors import UserError
from sam2web.params import TrackParams
from sam2web.stack import open_stack
from sam2web.tracking import factory


def test_a_bug_inside_a_decoder_is_not_called_a_damaged_file(tmp_path, monkeypatch):
    """Only what decoders raise for bad files becomes "export it again"; our own bug keeps its type."""
    path = tmp_path / "ok.tif"
    tifffile.imwrite(path, np.zeros((2, 16, 16), np.uint8))

    def bug(*a, **k):
        raise AttributeError("a bug of ours")

    monkeypatch.setattr(tifffile, "TiffFile", bug)
    with pytest.raises(AttributeError):
        open_stack(path)

    def damaged(*a, **k):
        raise ValueError("not a TIFF")

    monkeypatch.setattr(tifffile, "TiffFile", damaged)
    with pytest.raises(UserError, match="damaged"):
        open_stack(path)


def test_loaded_models_share_one_budget(monkeypatch):
    """Models were never evicted: now a worker keeps at most Settings.model_cache_count of them."""
    monkeypatch.setenv("SAM2WEB_CACHE_MB", "600")  # one model's worth
    monkeypatch.delenv("SAM2WEB_STANDIN", raising=False)
    factory.clear()
    monkeypatch.setattr(factory, "_build", lambda params, d, p: object())
    tiny = factory.get_predictor(TrackParams(model="tiny"))
    factory.get_predictor(TrackParams(model="small"))
    assert len(factory._PREDICTORS) == 1
    assert factory.get_predictor(TrackParams(model="tiny")) is not tiny  # evicted, built again
    factory.clear()


def test_the_parameter_lists_are_defined_once():
    """Models, directions, devices and precisions come from TrackParams everywhere."""
    from sam2web import params, selection
    from sam2web.tracking import model, track

    assert tuple(model.MODELS) == params.MODELS
    assert model.DEVICES is params.DEVICES and model.PRECISIONS is params.PRECISIONS
    assert selection.DIRECTIONS is params.DIRECTIONS and track.DIRECTIONS is params.DIRECTIONS
