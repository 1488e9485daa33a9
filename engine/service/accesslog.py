"""The access log and the headers every answer carries, as a pure ASGI middleware (a request's body passes
through untouched; Starlette's ``BaseHTTPMiddleware`` would stream it through a task of its own)."""
from __future__ import annotations

import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import log_path

__all__ = ["AccessLog"]

logger = logging.getLogger("followup.service")

#: set on every answer that does not set them itself
HEADERS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"))


class AccessLog:
    """One line per answered request (method, masked path, status, milliseconds), and :data:`HEADERS`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, answer)
        logger.info("%s %s %s %.0fms", scope["method"], log_path(scope["path"]), status,
                    (time.perf_counter() - started) * 1000)
