"""The dashboard's buttons: pause, resume and stop a sequence, unenroll a contact from one.

Each is a POST form carrying the session's CSRF token (:func:`.auth.csrf_token`) and refused with 403
when the token is missing or wrong or the form comes from another site. Stop asks first: its button opens
a page that says what will end, and only that page's form (``confirm`` = the sequence's name) stops it.
Each action is the :mod:`engine.control` function the CLI and the API run.
"""
from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from .. import control
from ..db import reading
from ..errors import InputError
from .auth import check_form, require_viewer
from .context import ServiceContext, get_context
from .pages import templates

__all__ = ["router", "ACTIONS"]

router = APIRouter(dependencies=[Depends(require_viewer)], include_in_schema=False)
#: the buttons of a sequence: the engine.control function each runs
ACTIONS = {"pause": control.pause, "resume": control.resume, "stop": control.stop}
NO_STORE = {"Cache-Control": "no-store"}


def _known(ctx: ServiceContext, name: str) -> control.SequenceRow:
    with reading(ctx.engine) as conn:
        row = next((r for r in control.list_sequences(conn, ctx.config) if r.name == name), None)
    if row is None:
        raise HTTPException(404, f"no sequence named {name!r}")
    return row


def _done(request: Request, name: str, notice: str, status: int = 200, error: str | None = None):
    if error is not None:
        return templates.TemplateResponse(request, "action.html", {"row": None, "name": name, "error": error},
                                          status_code=status, headers=NO_STORE)
    return RedirectResponse("/dashboard/sequences?" + urlencode({"notice": notice, "name": name}) + "#controls",
                            status_code=303)


@router.get("/dashboard/sequences/{name}/stop", response_class=HTMLResponse)
def confirm_stop(name: str, request: Request, ctx: ServiceContext = Depends(get_context)) -> HTMLResponse:
    """The confirmation page of stop: what will end, and the form that stops it."""
    row = _known(ctx, name)
    return templates.TemplateResponse(request, "action.html", {"row": row, "name": name, "error": None},
                                      headers=NO_STORE)


@router.post("/dashboard/sequences/{name}/{action}")
def act(name: str, action: str, request: Request, csrf: str = Form("", max_length=200),
        confirm: str = Form("", max_length=200), ctx: ServiceContext = Depends(get_context)):
    """Pause, resume or stop (confirmed) the sequence ``name``; back to the sequences page with the outcome."""
    check_form(request, ctx, csrf)
    if action not in ACTIONS:
        raise HTTPException(404, f"no action {action!r}; use {', '.join(ACTIONS)}")
    _known(ctx, name)
    if action == "stop" and confirm != name:
        raise HTTPException(400, f"stopping {name!r} needs its confirmation: open /dashboard/sequences/"
                                 f"{quote(name)}/stop and confirm there")
    try:
        with ctx.engine.begin() as conn:
            ACTIONS[action](conn, ctx.config, name)
    except InputError as err:
        return _done(request, name, action, 409, str(err))
    return _done(request, name, action)


@router.post("/dashboard/contacts/{contact_id}/unenroll")
def unenroll(contact_id: int, request: Request, sequence: str = Form(..., max_length=100),
             csrf: str = Form("", max_length=200), ctx: ServiceContext = Depends(get_context)):
    """Take the contact out of ``sequence``; back to the contact's page."""
    check_form(request, ctx, csrf)
    from ..models import Contact

    table = Contact.__table__
    if not 0 < contact_id < 2**31:
        raise HTTPException(404, "no such contact")
    try:
        with ctx.engine.begin() as conn:
            row = conn.execute(table.select().where(table.c.id == contact_id)).mappings().first()
            if row is None:
                raise HTTPException(404, "no such contact")
            if sequence not in control.known_sequences(conn, ctx.config):
                raise HTTPException(404, f"no sequence named {sequence!r}")
            control.unenroll(conn, ctx.config, sequence, dict(row))
    except InputError as err:
        raise HTTPException(409, str(err)) from None
    return RedirectResponse(f"/dashboard/contacts/{contact_id}", status_code=303)
