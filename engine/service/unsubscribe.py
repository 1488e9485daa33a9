"""One-click unsubscribe (RFC 8058): ``POST /u/{token}`` unsubscribes at once; ``GET`` shows a page with a button.

The token (see :mod:`engine.tokens`) is signed with ``settings.secret_key`` and names one contact and
one channel; the page shows neither the address nor the name.
"""
from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ..events import record_event
from ..kinds import INFORMATIONAL, blocks
from ..models import Contact
from ..tokens import read_token
from .context import ServiceContext, get_context
from .pages import templates

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
contacts = Contact.__table__
HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


def _read(ctx: ServiceContext, token: str) -> tuple[int, str] | None:
    secret = ctx.config.settings.secret_key
    return read_token(secret, token) if secret and len(token) < 200 else None


def _page(request: Request, state: str, token: str, channel: str | None, status: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, "unsubscribe.html", {"state": state, "token": token, "channel": channel},
                                      status_code=status, headers=HEADERS)


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, request: Request, ctx: ServiceContext = Depends(get_context)) -> HTMLResponse:
    """A small bilingual page with the unsubscribe button; changes nothing (link scanners GET it)."""
    found = _read(ctx, token)
    if found is None:
        return _page(request, "invalid", token, None, 404)
    return _page(request, "ask", token, found[1])


@router.post("/u/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, request: Request, ctx: ServiceContext = Depends(get_context)) -> HTMLResponse:
    """Unsubscribe the token's contact from its channel at once (the body is ``List-Unsubscribe=One-Click``)."""
    found = _read(ctx, token)
    if found is None:
        return _page(request, "invalid", token, None, 404)
    form = await request.form()
    if form.get("List-Unsubscribe") != "One-Click":
        return _page(request, "ask", token, found[1], 400)
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(_unsubscribe, ctx, *found)
    return _page(request, "done", token, found[1])


def _unsubscribe(ctx: ServiceContext, contact_id: int, channel: str) -> None:
    with ctx.engine.begin() as conn:
        contact = conn.execute(sa.select(contacts).where(contacts.c.id == contact_id)).mappings().first()
        if contact is None or blocks(contact[f"{channel}_suppressed"], INFORMATIONAL):
            return  # gone, or already unsubscribed: a second click changes nothing
        record_event(conn, ctx.config, dict(contact), "unsubscribed", channel=channel, source="link")
