"""Browser end-to-end: workspaces belong to someone, with sign-in (a real local OIDC provider) and without.

Why a browser: who a visitor is comes from what the browser keeps (the owner cookie written by
the page's script, Streamlit's sign-in cookie after the OIDC redirect dance), which AppTest does not
have. Each user is a separate browser context (its own cookies), as two people on two machines are.
The provider is ``oidc-provider-mock``: its authorize page takes any ``sub`` and "Authorize".
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import e2e_pages as ui
import pytest
from e2e_support import CHROMIUM, app_server, chromium_browser, free_port

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) is not installed."),
]

VIEWPORT = {"width": 1300, "height": 1000}
PROVIDER = Path(sys.executable).with_name("oidc-provider-mock")  # requirements-test.txt


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as b:
        yield b


def _owners(data: Path) -> dict[str, str]:
    with sqlite3.connect(data / "sam2web.db") as con:
        return dict(con.execute("SELECT id, owner FROM workspaces").fetchall())


def _open_sample(page) -> str:
    page.get_by_role("button", name="Open the built-in sample").click()
    page.get_by_text("Sample time-lapse").first.wait_for(timeout=ui.PAGE_TIMEOUT_MS)
    ui.settle(page)
    return ui.wait_ws_in_url(page)


def _recent_names(page) -> str:
    ui.settle(page)
    return page.locator("[data-testid=stSidebar]").inner_text()


def test_two_anonymous_browsers_never_see_each_others_workspaces(browser, tmp_path):
    data = tmp_path / "data"
    with app_server(data, tmp_path / "server.log", extra_env={"SAM2WEB_STANDIN": "1"}) as srv:
        ctx_a = browser.new_context(viewport=VIEWPORT)
        ctx_b = browser.new_context(viewport=VIEWPORT)
        try:
            a = ctx_a.new_page()
            a.goto(srv.url, timeout=ui.PAGE_TIMEOUT_MS)
            ui.settle(a)
            ws_a = _open_sample(a)
            cookie = [c for c in ctx_a.cookies() if c["name"] == "sam2web_owner"]
            assert cookie and len(cookie[0]["value"]) >= 32, ctx_a.cookies()
            assert _owners(data)[ws_a] == f"browser:{cookie[0]['value']}"
            # The same browser, a new tab at the bare address: a new workspace, the sample one listed.
            a2 = ctx_a.new_page()
            a2.goto(srv.url, timeout=ui.PAGE_TIMEOUT_MS)
            assert ui.wait_ws_in_url(a2) != ws_a
            assert "Sample time-lapse" in _recent_names(a2)
            # Another browser: nothing of A's, not even with A's address.
            b = ctx_b.new_page()
            b.goto(srv.url, timeout=ui.PAGE_TIMEOUT_MS)
            ws_b = ui.wait_ws_in_url(b)
            assert ws_b != ws_a and "Sample time-lapse" not in _recent_names(b)
            b.goto(f"{srv.url}/?ws={ws_a}", timeout=ui.PAGE_TIMEOUT_MS)
            b.get_by_text("not one of yours or no longer exists").wait_for(timeout=ui.PAGE_TIMEOUT_MS)
            assert ui.workspace_id(b) != ws_a and "Sample time-lapse" not in _recent_names(b)
            ui.no_traceback(b)
            assert _owners(data)[ws_a] == f"browser:{cookie[0]['value']}"  # untouched
        except Exception:
            print(srv.log()[-4000:])
            raise
        finally:
            ctx_a.close()
            ctx_b.close()


def _provider(port: int, log: Path) -> subprocess.Popen:
    exe = str(PROVIDER)
    with open(log, "wb") as fh:
        proc = subprocess.Popen([exe, "-p", str(port)], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                json.load(resp)
                return proc
        except OSError:
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the OIDC provider did not start"
            time.sleep(0.2)  # poll interval; the deadline bounds the loop


def _sign_in(page, url: str, sub: str) -> None:
    page.goto(url, timeout=ui.PAGE_TIMEOUT_MS)
    page.get_by_role("button", name="Sign in").click()
    page.locator("input[name=sub]").fill(sub)
    page.get_by_role("button", name="Authorize").click()
    page.get_by_text(f"Signed in as {sub}").wait_for(timeout=ui.PAGE_TIMEOUT_MS)
    ui.settle(page)


def test_two_signed_in_users_never_see_each_others_workspaces(browser, tmp_path):
    if not PROVIDER.exists():
        pytest.skip("oidc-provider-mock is not installed (requirements-test.txt)")
    idp_port, app_port = free_port(), free_port()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{app_port}/oauth2callback"\n'
        'cookie_secret = "a-test-cookie-secret-0123456789abcdef"\n'
        'client_id = "sam2web-test"\n'
        'client_secret = "sam2web-test-secret"\n'
        f'server_metadata_url = "http://127.0.0.1:{idp_port}/.well-known/openid-configuration"\n'
    )
    idp = _provider(idp_port, tmp_path / "idp.log")
    data = tmp_path / "data"
    env = {"SAM2WEB_STANDIN": "1", "SAM2WEB_ADMINS": "carol"}
    try:
        with app_server(
            data, tmp_path / "server.log", extra_env=env, extra_args=["--secrets.files", str(secrets)], port=app_port
        ) as srv:
            url = f"http://localhost:{app_port}"
            contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(3)]
            try:
                alice, bob, carol = (c.new_page() for c in contexts)
                alice.goto(url, timeout=ui.PAGE_TIMEOUT_MS)
                alice.get_by_role("button", name="Sign in").wait_for(timeout=ui.PAGE_TIMEOUT_MS)
                assert "Open the built-in sample" not in alice.content()  # nothing before sign-in
                _sign_in(alice, url, "alice")
                ws_alice = _open_sample(alice)
                assert _owners(data)[ws_alice] == "user:alice"
                _sign_in(bob, url, "bob")
                ws_bob = ui.wait_ws_in_url(bob)
                assert ws_bob != ws_alice and "Sample time-lapse" not in _recent_names(bob)
                bob.goto(f"{url}/?ws={ws_alice}", timeout=ui.PAGE_TIMEOUT_MS)
                bob.get_by_text("not one of yours or no longer exists").wait_for(timeout=ui.PAGE_TIMEOUT_MS)
                assert ui.workspace_id(bob) != ws_alice
                ui.no_traceback(bob)
                # An admin sees everyone's workspaces (but has no delete button on them).
                _sign_in(carol, url, "carol")
                assert "Sample time-lapse" in _recent_names(carol)
                assert carol.locator(f".st-key-sb_open_{ws_alice}").count() == 1
                assert carol.locator(f".st-key-sb_del_{ws_alice}").count() == 0
                # Alice signs in again in a fresh browser: her workspace is listed there too.
                ctx = browser.new_context(viewport=VIEWPORT)
                contexts.append(ctx)
                again = ctx.new_page()
                _sign_in(again, url, "alice")
                assert "Sample time-lapse" in _recent_names(again)
            except Exception:
                print(srv.log()[-4000:])
                raise
            finally:
                for c in contexts:
                    c.close()
    finally:
        idp.terminate()
        idp.wait(timeout=10)
