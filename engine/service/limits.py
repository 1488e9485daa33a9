"""Request body limits, chosen by path before routing.

A ``Content-Length`` over the route's limit is answered 413 at once, before the app runs or a byte of
the body is read. A body without one (chunked) is counted as it arrives by Starlette's
``RequestBodyLimitMiddleware``: the read that passes the limit raises, and the answer is 413.
"""
from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BodyLimit", "API_MAX_BYTES", "WEBHOOK_MAX_BYTES", "FORM_MAX_BYTES", "too_large"]

#: the API's default (``service.max_body_bytes``): 1,000 events or contacts of usual size fit many times over
API_MAX_BYTES = 1024 * 1024
#: provider webhooks: a batch of delivery receipts
WEBHOOK_MAX_BYTES = 2 * 1024 * 1024
#: everything else: the login and unsubscribe forms, and routes that take no body
FORM_MAX_BYTES = 16 * 1024


def too_large(limit: int) -> JSONResponse:
    """The 413 answer for a body over ``limit`` bytes; the connection is closed (the rest is never read)."""
    message = (f"the request body is over this route's limit of {limit:,} bytes; send less per request "
               "(API lists take up to 1,000 items; the API limit is the setting service.max_body_bytes)")
    return JSONResponse({"error": "request body too large", "errors": [{"field": "body", "message": message}]},
                        status_code=413, headers={"Connection": "close"})


class BodyLimit:
    """Pure ASGI middleware: a body over its path's limit is refused with 413 and never buffered."""

    def __init__(self, app: ASGIApp, api_max_bytes: int = API_MAX_BYTES) -> None:
        self.app = app
        self.rules = [(prefix, limit, RequestBodyLimitMiddleware(app, limit)) for prefix, limit in
                      (("/api/v1/", api_max_bytes), ("/webhooks/", WEBHOOK_MAX_BYTES), ("", FORM_MAX_BYTES))]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _, limit, counted = next(rule for rule in self.rules if scope["path"].startswith(rule[0]))
        declared = Headers(scope=scope).get("content-length", "")
        # more than 18 digits is over any limit (and int() of thousands of digits is refused or slow)
        if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
            await too_large(limit)(scope, receive, send)
            return
        await counted(scope, receive, send)
