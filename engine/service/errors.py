"""One error shape for the API: ``{"error": "...", "errors": [{"field": "[0].phone", "message": "..."}]}``.

Bad input is a 4xx naming the field; an unexpected failure is a bare 500 that leaks nothing.
"""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from ..errors import InputError
from ..text import mask_address
from .auth import LoginRequired
from .limits import too_large

__all__ = ["ApiError", "install_handlers", "field_path", "log_path"]

logger = logging.getLogger("followup.service")


class ApiError(Exception):
    """A 4xx with one or more ``(field, message)`` pairs."""

    def __init__(self, status: int, error: str, errors: list[tuple[str, str]] | None = None):
        super().__init__(error)
        self.status, self.error, self.errors = status, error, errors or []


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """Pydantic's ``("body", 0, "phone")`` → ``[0].phone``; ``("query", "x")`` → ``x``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    # a union of "one or a list" adds the branch name; drop it, the index says enough
    parts = [p for p in parts if not (isinstance(p, str) and (p.startswith("list[") or p in ("ContactIn", "EnrollmentIn", "EventIn")))]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _body(error: str, errors: list[tuple[str, str]]) -> dict[str, Any]:
    return {"error": error, "errors": [{"field": f, "message": m} for f, m in errors]}


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that give every failure its shape."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        seen, errors = set(), []
        for err in _one_branch(exc.errors(), exc.body):
            item = (field_path(err.get("loc", ())), str(err.get("msg", "invalid")))
            if item not in seen:
                seen.add(item)
                errors.append(item)
        return JSONResponse(_body("invalid input", errors), status_code=422)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.error, exc.errors), status_code=exc.status)

    @app.exception_handler(InputError)
    async def _input_error(_request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse(_body(str(exc), []), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413:  # a body counted past its limit as it arrived (see .limits)
            return too_large(request.scope.get(MAX_BODY_SIZE_SCOPE_KEY, 0))
        return JSONResponse({"error": str(exc.detail), "errors": []}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(LoginRequired)
    async def _login(_request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error on %s %s: %s", request.method, log_path(request.scope["path"]),
                     type(exc).__name__, exc_info=exc)
        return JSONResponse({"error": "internal error", "errors": []}, status_code=500)


def _one_branch(errors: list[dict[str, Any]], body: Any) -> list[dict[str, Any]]:
    """For a body that is "one item or a list", the errors of the branch the body took, not of both."""
    def in_list_branch(err: dict[str, Any]) -> bool:
        return any(isinstance(p, str) and p.startswith("list[") for p in err.get("loc", ()))

    if not any(in_list_branch(e) for e in errors):
        return errors
    chosen = [e for e in errors if in_list_branch(e) == isinstance(body, list)]
    return chosen or errors


def log_path(path: str) -> str:
    """A request path (already percent-decoded once, by the server) fit for one log line.

    Unsubscribe tokens and callback secrets are cut and phones and emails (contact keys) masked; then every backslash and every
    character that is not printable (newlines, terminal escapes, bidi controls) is written as its Python
    escape (``\\n``, ``\\x1b``, ``\\u202e``), so a path can neither forge a log line nor drive a terminal.
    """
    if path.startswith("/u/"):
        return "/u/…"
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "webhooks":  # /webhooks/{provider}/{secret}
        path = "/".join(parts[:3]) + "/…"
    return "".join(c if c.isprintable() and c != "\\" else repr(c)[1:-1] for c in mask_address(path))
