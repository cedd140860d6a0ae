"""The missing-checkpoint panel: one message, in the app's words; a failed download leaves no
"Downloading…"; a valid path typed in the form makes the panel go away."""

from __future__ import annotations

from sam2web.ui.viewer import INJECT_KEY

try:
    from tests.app_helpers import assert_clean, data, errors, new_app, submit_track, wait_runs  # noqa: F401
except ImportError:  # pragma: no cover
    from app_helpers import assert_clean, errors, new_app, submit_track, wait_runs


def test_missing_checkpoint_panel_says_it_once_and_goes_away(data, monkeypatch):
    from sam2web.tracking import model

    at = new_app()
    at.button(key="ds_open_sample").click().run()
    at.switch_page("pages/annotate.py").run()
    at.session_state[INJECT_KEY] = [{"kind": "box", "box": [60, 40, 110, 90]}]
    at.run()
    monkeypatch.delenv("SAM2WEB_STANDIN")
    monkeypatch.setenv("SAM2WEB_CHECKPOINTS", str(data.root / "no-checkpoints"))
    monkeypatch.setenv("HOME", str(data.root / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(data.root / "cache"))
    at.switch_page("pages/track.py").run()
    submit_track(at, time="1-3", model="tiny")
    assert_clean(at)
    said = [e for e in errors(at) if "checkpoint" in e] + [w.value for w in at.warning if "checkpoint" in w.value]
    assert len(said) == 1, said  # one message, not an error plus a warning saying it again
    assert "--checkpoint" not in said[0]

    def offline(url, timeout=30.0):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(model, "_open_url", offline)
    at.button(key="trk_download").click().run()
    assert_clean(at)
    failed = [e for e in errors(at) if "could not be downloaded" in e]
    assert failed and "--checkpoint" not in failed[0] and "Checkpoint file" in failed[0]
    assert not [p for p in at.get("progress") if "Downloading" in p.proto.text]
    # A path given in the form that exists: the panel is gone (the stand-in tracker runs it here).
    ckpt = data.root / "mine.pt"
    ckpt.write_bytes(b"not checked until a run loads it")
    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    submit_track(at, time="1-3", model="tiny", checkpoint=str(ckpt))
    assert_clean(at)
    assert not [b for b in at.button if b.key == "trk_download"]
    assert "trk_missing_ckpt" not in at.session_state
    wait_runs(data, at.session_state["ws_id"])
