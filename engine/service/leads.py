"""The rep's lead page ``/leads/{token}`` (no login: the signed token of :mod:`engine.leads`) and the API's
``/api/v1/leads/{key}`` (bearer key).

The page shows the lead (name, phone, email, score, why it was handed off), its timeline, and a form
to record the outcome. The form carries a CSRF token bound to the page token and is refused (403) when
posted from another origin; its body is limited like every form (:mod:`.limits`); bad input answers 400
with the page and the reason, nothing written. A forged, revoked or expired token answers 404 (an expired
genuine one says so). The page is in the request's locale (:func:`.pages.page_locale`: Persian by default where
the time zone is Tehran, ``?lang=en`` for English), its refusals ``lead.error.<code>`` of :mod:`.i18n`.
"""
from __future__ import annotations

import hmac
from datetime import date
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..db import reading
from ..contacts import find_contact
from ..errors import InputError
from ..leads import OutcomeError, csrf_for, lead_summary, open_lead_token, record_outcome
from ..models import Contact, Handoff
from .auth import require_api_key, same_origin
from .context import ServiceContext, get_context
from .errors import ApiError
from .i18n import LOCALES
from .pages import templates
from .queries import contact_timeline

__all__ = ["page_router", "api_router"]

page_router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)], tags=["api"])
contacts = Contact.__table__
handoffs = Handoff.__table__
HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Robots-Tag": "noindex",
           "X-Frame-Options": "DENY"}
MAX_TOKEN = 200


def _open(ctx: ServiceContext, token: str) -> tuple[dict | None, str]:
    if len(token) > MAX_TOKEN:
        return None, "invalid"
    with reading(ctx.engine) as conn:
        return open_lead_token(conn, ctx.config.settings.secret_key, token)


def _lang(request: Request) -> str:
    """``lang=..`` of the request's URL, kept on the form's action and the redirect after saving."""
    asked = request.query_params.get("lang")
    return f"lang={asked}" if asked in LOCALES else ""


def _page(request: Request, ctx: ServiceContext, token: str, handoff: dict | None, *, status: int = 200,
          error: tuple[str, dict] | None = None, form: dict | None = None, refused: str = "") -> HTMLResponse:
    code, values = error or ("", {})
    data: dict[str, Any] = {"handoff": handoff, "error": code, "error_values": values, "form": form or {},
                            "token": token, "objections": ctx.config.settings.sales.objections, "saved": False,
                            "refused": refused, "lang": _lang(request)}
    if handoff is not None:
        with reading(ctx.engine) as conn:
            contact = dict(conn.execute(sa.select(contacts).where(contacts.c.id == handoff["contact_id"]))
                           .mappings().one())
            data.update(contact=contact, lead=lead_summary(conn, ctx.config, contact),
                        items=contact_timeline(conn, contact, limit=200)["items"],
                        csrf=csrf_for(ctx.config.settings.secret_key, token),
                        saved=request.query_params.get("saved") == "1")
    return templates.TemplateResponse(request, "lead.html", data, status_code=status, headers=HEADERS)


@page_router.get("/leads/{token}", response_class=HTMLResponse)
def lead_page(token: str, request: Request, ctx: ServiceContext = Depends(get_context)) -> HTMLResponse:
    """The lead, its timeline and the outcome form; changes nothing."""
    handoff, refused = _open(ctx, token)
    return _page(request, ctx, token, handoff, status=200 if handoff else 404, refused=refused)


@page_router.post("/leads/{token}", response_class=HTMLResponse)
async def lead_outcome(token: str, request: Request, ctx: ServiceContext = Depends(get_context)) -> Response:
    """Record the outcome the form says; 303 back to the page when saved."""
    handoff, refused = await run_in_threadpool(_open, ctx, token)
    if handoff is None:
        return await run_in_threadpool(_page, request, ctx, token, None, status=404, refused=refused)
    try:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    except Exception:  # a body that is not a form
        return await run_in_threadpool(_page, request, ctx, token, handoff, status=400, error=("bad_form", {}))
    expected = csrf_for(ctx.config.settings.secret_key, token)
    if not same_origin(request, ctx.options.public_url) or not hmac.compare_digest(form.get("csrf", ""), expected):
        return await run_in_threadpool(_page, request, ctx, token, handoff, status=403, error=("cross_site", {}))
    try:
        value = float(form["value"].replace(",", "").replace("\u066c", "")) if form.get("value", "").strip() else None
    except ValueError:
        return await run_in_threadpool(_page, request, ctx, token, handoff, status=400, form=form,
                                       error=("not_a_number", {}))
    objection = form.get("objection_other", "").strip() or form.get("objection") or None
    try:
        await run_in_threadpool(_record, ctx, handoff, form.get("outcome", ""), value, objection,
                                form.get("follow_up_on") or None, form.get("note") or None)
    except InputError as err:  # an OutcomeError says why in the reader's words, any other in the engine's
        why = (err.code, err.values) if isinstance(err, OutcomeError) else ("input", {"text": str(err)})
        return await run_in_threadpool(_page, request, ctx, token, handoff, status=400, form=form, error=why)
    lang = _lang(request)
    return RedirectResponse(f"/leads/{token}?saved=1" + (f"&{lang}" if lang else ""), status_code=303,
                            headers=HEADERS)


def _record(ctx: ServiceContext, handoff: dict, outcome: str, value, objection, follow_up_on, note) -> None:
    with ctx.engine.begin() as conn:
        record_outcome(conn, ctx.config, handoff, outcome, value=value, objection=objection,
                       follow_up_on=follow_up_on, note=note, by=f"rep {handoff['rep']} (lead page)")


class OutcomeIn(BaseModel):
    """An outcome of a lead handed to sales: won (value), lost (objection) or follow_up_later (follow_up_on)."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal["won", "lost", "follow_up_later"]
    value: float | None = Field(default=None, ge=0)
    objection: str | None = Field(default=None, max_length=300)
    follow_up_on: date | None = None
    note: str | None = Field(default=None, max_length=300)


def _latest(conn: sa.Connection, ctx: ServiceContext, key: str) -> tuple[dict, dict]:
    contact = find_contact(conn, key, ctx.config.settings.default_region)
    if contact is None:
        raise ApiError(404, "no contact matches this key", [("key", "not a known phone, email or external id")])
    row = conn.execute(sa.select(handoffs).where(handoffs.c.contact_id == contact["id"])
                       .order_by(handoffs.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        raise ApiError(404, "this contact was never handed to sales", [("key", "no handoff for this contact")])
    return contact, dict(row)


@api_router.get("/leads/{key}", summary="A contact's lead score and its handoffs to sales")
def get_lead(key: str, ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """The score now (decayed) and every handoff with its rep, why it fired and the outcome recorded."""
    with reading(ctx.engine) as conn:
        contact, _ = _latest(conn, ctx, key)
        return lead_summary(conn, ctx.config, contact)


@api_router.post("/leads/{key}/outcome", summary="Record what became of a lead handed to sales")
def post_outcome(key: str, body: OutcomeIn, ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """Of the contact's latest handoff. ``won`` records a ``converted`` event with the value, credited to
    the handoff; ``lost`` takes an objection of ``sales.objections`` or free text."""
    with ctx.engine.begin() as conn:
        _, handoff = _latest(conn, ctx, key)
        try:
            row = record_outcome(conn, ctx.config, handoff, body.outcome, value=body.value, objection=body.objection,
                                 follow_up_on=body.follow_up_on, note=body.note, by="api")
        except InputError as err:
            raise ApiError(422, str(err), [("body", str(err))]) from None
    return {"handoff": row["id"], "outcome": row["outcome"], "value": row["value"], "objection": row["objection"],
            "follow_up_on": row["follow_up_on"].isoformat() if row["follow_up_on"] else None}
