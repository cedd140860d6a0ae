"""The security rules, checked on the files themselves so a later edit cannot drop one quietly."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for p in (REPO / "sam2web").rglob("*.py")] + [REPO / "app.py", *(REPO / "pages").glob("*.py")]


def test_server_config_is_local_offline_and_xsrf_protected():
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["server"]["address"] in ("localhost", "127.0.0.1")
    assert cfg["browser"]["gatherUsageStats"] is False
    assert 0 < cfg["server"]["maxUploadSize"] <= 4096  # MB; the Dataset page states it


def test_no_unsafe_deserialisation():
    for path in SOURCES:
        text = path.read_text()
        assert "pickle.load" not in text and "pickle.loads" not in text, path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"


def _imported(path: Path) -> set[str]:
    """Top-level names of the modules a source file imports (from its syntax tree, not its words)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_checkpoint_download_touches_the_network():
    net = {"urllib", "requests", "http", "socket", "httpx", "aiohttp"}
    users = sorted(p.relative_to(REPO).as_posix() for p in SOURCES if {n.split(".")[0] for n in _imported(p)} & net)
    assert users == ["sam2web/tracking/model.py"]
    model_src = (REPO / "sam2web" / "tracking" / "model.py").read_text()
    assert model_src.count("urlopen(") == 1
