"""Who may call: bearer API keys for the API, a session cookie (or a key) for the dashboard.

A session cookie holds the token of a row in ``sessions`` (see :mod:`engine.sessions`), checked on every request.

Webhooks, ``/u/{token}``, ``/l/{code}`` (short links), ``/leads/{token}`` (a rep's lead page, signed), ``/healthz``
and the login page are the only routes without them.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ..apikeys import find_key, verify_key
from ..db import reading
from ..sessions import check_session, open_session
from .context import ServiceContext, get_context

__all__ = ["require_api_key", "ApiKeyGate", "require_viewer", "LoginRequired", "Login", "check_login",
           "start_session", "same_origin", "SESSION_COOKIE", "csrf_token", "check_form"]

SESSION_COOKIE = "followup_session"


class LoginRequired(Exception):
    """Raised by dashboard routes without a session; the app answers with a redirect to /login."""

    def __init__(self, next_path: str):
        self.next_path = next_path


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _key_name(ctx: ServiceContext, key: str | None) -> str | None:
    if not key:
        return None
    with reading(ctx.engine) as conn:  # a read: on SQLite it does not wait for the write lock
        return verify_key(conn, key)


#: where :class:`ApiKeyGate` leaves the name of the key it checked, in the request's state
CHECKED_KEY = "followup_api_key"


_bearer_scheme = HTTPBearer(auto_error=False, description="an API key from `followup apikey create NAME`")


NO_KEY = ("a valid API key is required: send `Authorization: Bearer KEY` "
          "(create one with `followup apikey create NAME`)")


async def require_api_key(request: Request, ctx: ServiceContext = Depends(get_context),
                          _creds: HTTPAuthorizationCredentials | None = Depends(_bearer_scheme)) -> str:
    """Dependency: the name of the caller's valid API key, else 401 (before anything is written).

    Under ``/api/v1/`` the gate checked the key a moment ago, in this request: its answer is used."""
    name = request.scope.get("state", {}).get(CHECKED_KEY)
    if name is None:
        name = await run_in_threadpool(_key_name, ctx, _bearer(request))
    if name is None:
        raise HTTPException(401, NO_KEY, headers={"WWW-Authenticate": "Bearer"})
    return name


class ApiKeyGate:
    """Pure ASGI middleware: a request under ``/api/v1/`` without a valid key is answered 401 before its body
    is read or parsed (FastAPI parses a route's body before it runs the route's dependencies)."""

    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app, self.ctx = app, ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/v1/"):
            key = _bearer(Request(scope))
            name = await run_in_threadpool(_key_name, self.ctx, key)
            if name is None:
                answer = JSONResponse({"error": NO_KEY, "errors": []}, status_code=401,
                                      headers={"WWW-Authenticate": "Bearer"})
                await answer(scope, receive, send)
                return
            scope.setdefault("state", {})[CHECKED_KEY] = name
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class Login:
    """Who logged in, and with what: the dashboard password, or the API key ``api_key_id``."""

    who: str
    api_key_id: int | None = None
    password: str | None = None


def check_login(ctx: ServiceContext, secret_given: str) -> Login | None:
    """Who logs in with ``secret_given`` (the dashboard password or an API key), or None."""
    password = ctx.options.dashboard_password
    if password and hmac.compare_digest(secret_given.encode(), password.encode()):
        return Login("dashboard", password=password)
    with reading(ctx.engine) as conn:
        found = find_key(conn, secret_given)
    return Login(f"key:{found[1]}", api_key_id=found[0]) if found else None


def start_session(ctx: ServiceContext, login: Login) -> str:
    """Open a server-side session for ``login``; return the cookie value."""
    with ctx.engine.begin() as conn:
        return open_session(conn, login.who, ctx.options.sessions, password=login.password,
                            api_key_id=login.api_key_id)


def same_origin(request: Request, public_url: str | None) -> bool:
    """False for a form another site made the browser post (CSRF), the way Go's CrossOriginProtection decides.

    Browsers send ``Sec-Fetch-Site``; older ones only ``Origin``, which must name this host (as the client
    sees it: Host, X-Forwarded-Host or ``public_url``). A request with neither is not from a browser form.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    ours = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "").split(",")[0].strip(),
            urlsplit(public_url).netloc if public_url else ""}
    return urlsplit(origin).netloc.lower() in {h.lower() for h in ours if h}


def require_viewer(request: Request, ctx: ServiceContext = Depends(get_context)) -> str:
    """Dependency for dashboard and metrics: a session cookie or a bearer API key, else a redirect to /login."""
    who = check_session(ctx.engine, request.cookies.get(SESSION_COOKIE), ctx.options.sessions,
                        ctx.options.dashboard_password)
    if who:
        return who
    name = _key_name(ctx, _bearer(request))
    if name:
        return f"key:{name}"
    raise LoginRequired(request.url.path)


def csrf_token(request: Request) -> str:
    """The token the dashboard's action forms carry: ``HMAC(session token, "csrf")``, so only a page read
    with the session's cookie can know it. Without a session cookie there is none (and no form is accepted)."""
    session = request.cookies.get(SESSION_COOKIE)
    return hmac.new(session.encode(), b"followup-csrf", hashlib.sha256).hexdigest() if session else ""


def check_form(request: Request, ctx: ServiceContext, token: str) -> None:
    """Refuse (403) an action form posted from another site or without this session's CSRF token."""
    if not same_origin(request, ctx.options.public_url):
        raise HTTPException(403, "this form was posted from another site")
    expected = csrf_token(request)
    if not expected or not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(403, "this form's CSRF token is missing or wrong: reload the page and try again")
