"""Short links: ``GET /l/{code}`` redirects to the link's stored target and queues the click (written within a
second, off the request path: :mod:`engine.service.clicks`).

No auth (a reader's phone follows it), but bounded: a path that is not a code's shape is answered 404
without a database read; an address that asked for too many unknown codes lately
(:class:`~engine.service.throttle.Misses`) is answered 429 (guessing codes from one address goes nowhere);
the body limit is the forms' (16 KiB).
A ``HEAD`` is answered like a ``GET`` and recorded as a bot's. An open pixel's code answers a 1×1 GIF.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..clock import now, to_utc
from ..db import reading
from ..engagement import find_link, follow_row
from ..links import PIXEL_URL, is_code
from .context import ServiceContext, get_context
from .pages import templates
from .webhooks import from_trusted_proxy

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
#: a transparent 1×1 GIF
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


def _client(request: Request, ctx: ServiceContext) -> str:
    """The reader's address: behind a trusted proxy the one it forwarded (the last in X-Forwarded-For)."""
    address = request.client.host if request.client else "unknown"
    if from_trusted_proxy(request, ctx.options):
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
        address = forwarded or address
    return address


def _gone(request: Request, status: int = 404) -> HTMLResponse:
    return templates.TemplateResponse(request, "link.html", {}, status_code=status, headers=HEADERS)


@router.api_route("/l/{code}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def follow(code: str, request: Request, ctx: ServiceContext = Depends(get_context)) -> Response:
    """302 to the code's target (a GIF for a pixel); an unknown or expired code: a small page, 404."""
    address = _client(request, ctx)
    misses = ctx.link_misses
    if misses.blocked(address):
        return _gone(request, 429)
    if not is_code(code):
        misses.missed(address)
        return _gone(request)
    at = now()
    with reading(ctx.engine) as conn:  # on SQLite a snapshot read: no wait for the worker's write lock
        link = find_link(conn, code)
    if link is not None and link["expires_at"] is not None and to_utc(link["expires_at"]) <= at:
        link = None
    if link is not None:
        # queued, written within a second by the service's click writer (engine.service.clicks)
        ctx.clicks.add(follow_row(link, method=request.method, user_agent=request.headers.get("user-agent"), at=at))
    if link is None:
        misses.missed(address)
        return _gone(request)
    if link["url"] == PIXEL_URL:
        return Response(PIXEL, media_type="image/gif", headers=HEADERS)
    return RedirectResponse(link["target"], status_code=302, headers=HEADERS)
