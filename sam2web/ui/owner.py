"""Who is looking: the owner of the workspaces this browser session may list, open and delete.

Two modes, chosen by the server's ``.streamlit/secrets.toml``:

- **Sign-in** (an ``[auth]`` section is there): Streamlit's own OpenID Connect (``st.login`` /
  ``st.user``). The owner is ``user:<the provider's sub>``; the sub never changes for a person,
  unlike an e-mail address. Admins named in ``SAM2WEB_ADMINS`` (subs or e-mail addresses) list
  and open every workspace. A visitor who is not signed in sees only the sign-in button.
- **No sign-in** (the default): the owner is ``browser:<token>``, 192 random bits kept by that
  browser in a cookie. Why a cookie: it is the one place a browser keeps a value that Streamlit
  hands back to Python on every new session (``st.context.cookies``) with no round trip, so the
  first script run of a new tab already knows its owner; a query parameter is lost at the bare
  address (and travels in every copied link), and localStorage can only be read by a component
  after the first run. Streamlit's cookies are read-only from Python, so the token is written once
  by a two-line script (``st.html`` with JavaScript); until that first write lands the token lives in
  the session. SameSite=Strict keeps other sites from sending it.

Anyone holding a workspace's URL but not its owner's token (or sign-in) gets a new workspace of
their own instead, with a sentence; a workspace from a data folder made before owners existed
(owner "") becomes the workspace of whoever opens it first by its URL.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

import streamlit as st

from sam2web.config import settings
from sam2web.store import Workspace

COOKIE = "sam2web_owner"
TOKEN_KEY = "_sam2web_owner"  # session_state: this session's browser token (tests set it to act as one browser)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")


@dataclass(frozen=True)
class Visitor:
    owner: str  # the owner string workspaces of this visitor carry
    admin: bool = False  # sees and opens every workspace
    signed_in: bool = False
    name: str = ""  # shown in the sidebar (signed in only)


def auth_enabled() -> bool:
    """True when the server's secrets.toml has an ``[auth]`` section (then everyone signs in)."""
    try:
        return bool(st.secrets.load_if_toml_exists() and st.secrets.get("auth"))
    except Exception:  # noqa: BLE001 - an unreadable secrets file is Streamlit's error to show on st.login
        return False


def _browser_token() -> str:
    token = st.session_state.get(TOKEN_KEY)
    if token:
        return token
    try:
        cookie = st.context.cookies.get(COOKIE) or ""
    except Exception:  # noqa: BLE001 - no request context (AppTest): a fresh token
        cookie = ""
    if _TOKEN.fullmatch(cookie):
        token = cookie
    else:
        token = secrets.token_urlsafe(24)
        # Written once, only if the browser has no token yet (two new tabs at once keep the first).
        script = (
            f"<script>if(!document.cookie.split('; ').some(c=>c.startsWith('{COOKIE}=')))"
            f"document.cookie={json.dumps(f'{COOKIE}={token}; Path=/; Max-Age=31536000; SameSite=Strict')};</script>"
        )
        st.html(script, unsafe_allow_javascript=True)
    st.session_state[TOKEN_KEY] = token
    return token


def visitor() -> Visitor:
    """This session's visitor; with sign-in on and nobody signed in, the sign-in page (the script stops)."""
    if not auth_enabled():
        return Visitor(f"browser:{_browser_token()}")
    user = st.user
    if not user.is_logged_in:
        sign_in_page()
        st.stop()
    sub = str(user.get("sub") or "")
    email = str(user.get("email") or "")
    admins = set(settings().admins)
    return Visitor(
        f"user:{sub}",
        admin=bool(admins & {sub, email} - {""}),
        signed_in=True,
        name=str(user.get("name") or email or sub),
    )


def sign_in_page() -> None:
    st.title("sam2web")
    st.info("This server keeps each person's workspaces private: sign in to see yours.", icon=":material/lock:")
    if st.button("Sign in", key="auth_login", type="primary", icon=":material/login:"):
        st.login()


def may_open(who: Visitor, ws: Workspace) -> bool:
    """Own workspaces, every one for an admin, and an unowned (older) one, which the opener claims."""
    return who.admin or ws.owner == who.owner or ws.owner == ""
