"""Who may call: bearer API keys for the API, a signed session cookie (or a key) for the dashboard.

Webhooks, ``/u/{token}``, ``/healthz`` and the login page are the only routes without them.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ..apikeys import verify_key
from .context import ServiceContext, get_context

__all__ = ["require_api_key", "ApiKeyGate", "require_viewer", "LoginRequired", "make_session", "read_session",
           "check_login", "SESSION_COOKIE"]

SESSION_COOKIE = "followup_session"
SESSION_SECONDS = 12 * 3600


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
    with ctx.engine.connect() as conn:
        return verify_key(conn, key)


_bearer_scheme = HTTPBearer(auto_error=False, description="an API key from `followup apikey create NAME`")


NO_KEY = ("a valid API key is required: send `Authorization: Bearer KEY` "
          "(create one with `followup apikey create NAME`)")


def require_api_key(request: Request, ctx: ServiceContext = Depends(get_context),
                    _creds: HTTPAuthorizationCredentials | None = Depends(_bearer_scheme)) -> str:
    """Dependency: the name of the caller's valid API key, else 401 (before anything is written)."""
    name = _key_name(ctx, _bearer(request))
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
            if await run_in_threadpool(_key_name, self.ctx, key) is None:
                answer = JSONResponse({"error": NO_KEY, "errors": []}, status_code=401,
                                      headers={"WWW-Authenticate": "Bearer"})
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def make_session(secret: str, who: str, now: float | None = None) -> str:
    """A cookie value ``expiry.nonce.who.signature``; nothing secret inside."""
    expiry = int((now or time.time()) + SESSION_SECONDS)
    body = f"{expiry}.{secrets.token_hex(8)}.{who}"
    return body + "." + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


def read_session(secret: str, value: str | None, now: float | None = None) -> str | None:
    """Who a session cookie belongs to, or None if it is forged, damaged or expired."""
    if not value or value.count(".") < 3:
        return None
    body, _, signature = value.rpartition(".")
    expected = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected):
        return None
    expiry, _, rest = body.partition(".")
    if not expiry.isdigit() or int(expiry) < (now or time.time()):
        return None
    return rest.partition(".")[2] or None


def check_login(ctx: ServiceContext, secret_given: str) -> str | None:
    """Who logs in with ``secret_given`` (the dashboard password or an API key), or None."""
    password = ctx.options.dashboard_password
    if password and hmac.compare_digest(secret_given.encode(), password.encode()):
        return "dashboard"
    name = _key_name(ctx, secret_given)
    return f"key:{name}" if name else None


def require_viewer(request: Request, ctx: ServiceContext = Depends(get_context)) -> str:
    """Dependency for dashboard and metrics: a session cookie or a bearer API key, else a redirect to /login."""
    who = read_session(ctx.options.session_secret, request.cookies.get(SESSION_COOKIE))
    if who:
        return who
    name = _key_name(ctx, _bearer(request))
    if name:
        return f"key:{name}"
    raise LoginRequired(request.url.path)
