"""Helpers for the browser end-to-end tests: the app as a real server, headless Chromium, screenshots.

Why a separate module: the server and browser set-up is plumbing (ports, health polling, process
clean-up, launch flags) that would hide what the end-to-end test checks; keeping it here lets the
test read as the user's story. Nothing here sleeps blindly: the server is polled on its health
endpoint with a deadline, and UI state is awaited with Playwright's own timeouts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def streamlit_bin() -> Path:
    """The venv's streamlit next to the running interpreter (CI and local runs use the same venv)."""
    return Path(sys.executable).with_name("streamlit")


def free_port() -> int:
    """A port the OS says is free now (bound to 127.0.0.1 only, like the app)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log_path: Path
    data_dir: Path

    def crash(self) -> None:
        """Kill the server at once (SIGKILL to its process group): a crash or power cut, no clean-up."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 90.0) -> None:
    """Poll ``/_stcore/health`` until it answers ``ok``; fail early if the process died."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"streamlit exited with {proc.returncode} before it was healthy:\n"
                f"{log_path.read_text(errors='replace')[-4000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                body = resp.read().decode(errors="replace").strip()
                if resp.status == 200 and body == "ok":
                    return
                last = f"{resp.status} {body!r}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
            last = repr(err)
        # bounded poll interval between health probes (the deadline above bounds the loop)
        time.sleep(0.25)
    raise RuntimeError(
        f"streamlit was not healthy within {timeout:.0f}s (last answer: {last}):\n"
        f"{log_path.read_text(errors='replace')[-4000:]}"
    )


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server's process group (streamlit may start helpers); kill if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@contextmanager
def app_server(
    data_dir: Path,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    image_size: int = 256,
    extra_args: list[str] | None = None,
    port: int | None = None,
) -> Iterator[Server]:
    """Run ``streamlit run app.py`` on a free localhost port with its own data folder; always stop it.

    Random weights and a small model input side keep SAM2 fast enough for CI on a CPU.
    ``extra_args`` are more ``streamlit run`` options (e.g. ``--secrets.files``); ``port`` a port chosen
    before (a sign-in test writes it into its redirect address first).
    """
    port = port or free_port()
    env = dict(os.environ)
    env.update(
        {
            "SAM2WEB_DATA": str(data_dir),
            "SAM2WEB_RANDOM_WEIGHTS": "1",
            "SAM2WEB_IMAGE_SIZE": str(image_size),
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("SAM2WEB_STANDIN", None)
    env.update(extra_env or {})
    cmd = [
        str(streamlit_bin()),
        "run",
        str(ROOT / "app.py"),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        *(extra_args or []),
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log_path)
        yield Server(url=url, proc=proc, log_path=log_path, data_dir=data_dir)
    finally:
        _stop(proc)


@contextmanager
def chromium_browser() -> Iterator[object]:
    """Debian's Chromium through Playwright (never ``playwright install``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    """A full-page PNG under test-artifacts/screenshots/ (gitignored), for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
