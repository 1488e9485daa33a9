"""The dashboard: overview, delivery log, sequences (with the buttons of :mod:`.controls`) and one contact's timeline.

Server-rendered Jinja pages with inlined CSS and the app's own fonts (nothing is loaded from outside), in
Persian (right-to-left, Jalali dates) or English: ``service.locale``, switched per browser at
``/dashboard/lang/{fa,en}`` (see :mod:`.pages`). Login takes the
dashboard password (FOLLOWUP_DASHBOARD_PASSWORD) or an API key and opens a server-side session (its
token in an HttpOnly, SameSite=strict cookie); failed logins are throttled (:mod:`.throttle`) and a form
posted from another site is refused.
"""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from ..db import reading
from ..contacts import find_contact
from ..control import list_sequences
from ..models import MessageStatus
from ..transitions import Event
from ..preview import preview, sms_text
from ..sessions import end_session
from ..webhook_admin import endpoint_rows
from .auth import SESSION_COOKIE, check_login, require_viewer, same_origin, start_session
from .context import ServiceContext, get_context
from .controls import ACTIONS
from .i18n import LOCALES, translate
from .pages import FONTS, LANG_COOKIE, page_locale, templates
from ..leads import lead_summary
from .queries import (contact_labels, contact_timeline, log_page, provider_overview, queue_state, recent_counts,
                      sequence_stats, since, worker_ticks)

__all__ = ["router", "login_router"]

router = APIRouter(dependencies=[Depends(require_viewer)], include_in_schema=False)
login_router = APIRouter(include_in_schema=False)
logger = logging.getLogger("followup.service")
LOG_EVENTS = sorted({s.value for s in MessageStatus} | {Event.DEFERRED.value, Event.RETRY.value, "recovered"})
NO_STORE = {"Cache-Control": "no-store"}


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/") and not value.startswith("//") and "\\" not in value \
        else "/dashboard"


@login_router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/dashboard") -> HTMLResponse:  # noqa: A002 - the usual name
    """The login form: dashboard password or API key."""
    return templates.TemplateResponse(request, "login.html", {"next": _safe_next(next), "error": None},
                                      headers=NO_STORE)


def _login_form(request: Request, next_path: str, error: str, status: int, headers: dict | None = None, **values):
    error = translate(page_locale(request), error, **values)
    return templates.TemplateResponse(request, "login.html", {"next": _safe_next(next_path), "error": error},
                                      status_code=status, headers={**NO_STORE, **(headers or {})})


@login_router.post("/login", response_class=HTMLResponse)
def login(request: Request, secret: str = Form("", max_length=500), next: str = Form("/dashboard", max_length=500),  # noqa: A002
          ctx: ServiceContext = Depends(get_context)):
    """Check the secret (throttled per address and in all); on success open a session and go on to ``next``."""
    if not same_origin(request, ctx.options.public_url):
        return _login_form(request, next, "login.cross_site", 403)
    address = request.client.host if request.client else "unknown"
    wait = ctx.login_throttle.wait(address)
    if wait:
        logger.warning("login from %s refused for %ds: too many failed logins", address, wait)
        return _login_form(request, next, "login.throttled", 429, {"Retry-After": str(wait)}, wait=wait)
    login_as = check_login(ctx, secret) if secret else None
    if login_as is None:
        failures = ctx.login_throttle.failed(address)
        logger.warning("login failed from %s (%d failures from it in 15 min)", address, failures)
        return _login_form(request, next, "login.wrong", 401)
    ctx.login_throttle.succeeded(address)
    response = RedirectResponse(_safe_next(next), status_code=303)
    https = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(SESSION_COOKIE, start_session(ctx, login_as), httponly=True, samesite="strict",
                        secure=https, path="/")
    return response


@login_router.get("/fonts/{name}")
def font(name: str) -> FileResponse:
    """The dashboard's font files (public, like the login page that uses them); any other name is a 404."""
    if name not in FONTS:
        raise HTTPException(404, "no such font")
    return FileResponse(FONTS[name], media_type="font/woff2",
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})


@router.get("/dashboard/lang/{code}")
def switch_language(code: str, next: str = Query("/dashboard", max_length=500)) -> RedirectResponse:  # noqa: A002
    """Show the dashboard in ``code`` (fa or en) in this browser from now on, then go back to ``next``."""
    if code not in LOCALES:
        raise HTTPException(404, f"no dashboard language {code!r}; use one of {', '.join(LOCALES)}")
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, httponly=True, samesite="lax", path="/")
    return response


@router.post("/logout")
def logout(request: Request, ctx: ServiceContext = Depends(get_context)) -> RedirectResponse:
    """End the session (its row is deleted) and forget the cookie."""
    if not same_origin(request, ctx.options.public_url):
        raise HTTPException(403, "this form was posted from another site")
    with ctx.engine.begin() as conn:
        end_session(conn, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=303)


@router.get("/dashboard", response_class=HTMLResponse)
def overview(request: Request, ctx: ServiceContext = Depends(get_context)) -> HTMLResponse:
    """Sent / delivered / failed / skipped in the last hour and day, the queue, and each provider's state."""
    with reading(ctx.engine) as conn:
        data = {"hour": recent_counts(conn, since(1)), "day": recent_counts(conn, since(24)),
                "queue": queue_state(conn), "providers": provider_overview(conn, ctx.config, since(1)),
                "ticks": worker_ticks(conn), "webhooks": endpoint_rows(conn, ctx.config)}
    return templates.TemplateResponse(request, "overview.html", data, headers=NO_STORE)


@router.get("/dashboard/log", response_class=HTMLResponse)
def delivery_log(request: Request, ctx: ServiceContext = Depends(get_context),
                 sequence: str = Query("", max_length=100), touch: str = Query("", max_length=100),
                 channel: str = Query("", max_length=10), provider: str = Query("", max_length=100),
                 event: str = Query("", max_length=30), contact: str = Query("", max_length=320),
                 before: int = Query(0, ge=0, le=2**62)) -> HTMLResponse:
    """The delivery log, newest first, filtered, 50 rows a page (keyset by id: ``before``)."""
    filters = {"sequence": sequence, "touch": touch, "channel": channel, "provider": provider, "event": event}
    error, rows, next_before = None, [], None
    with reading(ctx.engine) as conn:
        contact_id = None
        if contact:
            found = find_contact(conn, contact, ctx.config.settings.default_region)
            if found is None:
                error = translate(page_locale(request), "log.no_contact")
            contact_id = found["id"] if found else None
        if error is None:
            rows, next_before = log_page(conn, filters=filters, contact_id=contact_id, before_id=before or None)
        contacts = contact_labels(conn, {r["contact_id"] for r in rows if r["contact_id"]})
    query = {k: v for k, v in filters.items() if v} | ({"contact": contact} if contact else {})
    data: dict[str, Any] = {"rows": rows, "contacts": contacts, "filters": filters, "contact_key": contact, "error": error,
                            "sequences": sorted(ctx.config.sequences), "events": LOG_EVENTS,
                            "next_before": next_before,
                            "older_url": "/dashboard/log?" + urlencode({**query, "before": next_before or 0})}
    return templates.TemplateResponse(request, "log.html", data, headers=NO_STORE)


def _previews(ctx: ServiceContext, seq) -> list[dict[str, Any]]:
    out = []
    try:
        rows = preview(ctx.config, seq)
    except Exception as err:  # noqa: BLE001 - a broken template must not take the page down
        return [{"touch": "(all)", "channel": "", "note": "", "error": f"preview failed: {type(err).__name__}"}]
    for row in rows:
        text = subject = None
        if row.rendered is not None:
            text = sms_text(ctx.config, row.rendered) if row.channel == "sms" else row.rendered.text
            subject = row.rendered.subject if row.channel == "email" else None
        out.append({"touch": row.touch, "channel": row.channel, "note": row.note, "error": row.error,
                    "text": text, "subject": subject})
    return out


@router.get("/dashboard/sequences", response_class=HTMLResponse)
def sequences(request: Request, ctx: ServiceContext = Depends(get_context)) -> HTMLResponse:
    """Each sequence's funnel, its offer's deadline and stock, and every touch rendered for a sample contact."""
    with reading(ctx.engine) as conn:
        items = [{"stats": sequence_stats(conn, ctx.config, name)} for name in sorted(ctx.config.sequences)]
        controls = list_sequences(conn, ctx.config)
    for item in items:
        item["previews"] = _previews(ctx, ctx.config.sequences[item["stats"]["sequence"]])
    notice = request.query_params.get("notice")
    notice = {"action": notice, "name": request.query_params.get("name", "")} if notice in ACTIONS else None
    return templates.TemplateResponse(request, "sequences.html", {"sequences": items, "controls": controls,
                                                                  "notice": notice}, headers=NO_STORE)


@router.get("/dashboard/contact")
def contact_search(key: str = Query("", max_length=320)) -> RedirectResponse:
    """The header's search box: go to the contact page for KEY."""
    from urllib.parse import quote

    return RedirectResponse(f"/dashboard/contacts/{quote(key.strip(), safe='')}" if key.strip() else "/dashboard",
                            status_code=303)


def _is_row_id(key: str) -> bool:
    """Whether ``key`` can be a contact's id: ASCII digits only (``str.isdigit`` also takes ``²`` and ``٣``)
    that fit the id column (a 32-bit INTEGER on PostgreSQL); anything else is looked up as a KEY."""
    return key.isascii() and key.isdigit() and len(key) <= 10 and int(key) < 2**31


@router.get("/dashboard/contacts/{key}", response_class=HTMLResponse)
def contact_page(key: str, request: Request, ctx: ServiceContext = Depends(get_context)) -> HTMLResponse:
    """One contact: enrollments, messages with reasons, and the whole timeline."""
    with reading(ctx.engine) as conn:
        found = find_contact(conn, key, ctx.config.settings.default_region)
        if found is None and _is_row_id(key):
            from ..models import Contact

            table = Contact.__table__
            row = conn.execute(table.select().where(table.c.id == int(key))).mappings().first()
            found = dict(row) if row else None
        if found is None:
            return templates.TemplateResponse(request, "log.html", {
                "rows": [], "contacts": {}, "filters": {}, "contact_key": key,
                "error": translate(page_locale(request), "log.no_contact"),
                "sequences": sorted(ctx.config.sequences), "events": LOG_EVENTS, "next_before": None},
                status_code=404, headers=NO_STORE)
        timeline = {**contact_timeline(conn, found), **lead_summary(conn, ctx.config, found)}
        label = contact_labels(conn, {found["id"]})[found["id"]]
    return templates.TemplateResponse(request, "contact.html", {"tl": timeline, "label": label}, headers=NO_STORE)
