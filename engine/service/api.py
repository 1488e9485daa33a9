"""The JSON API under ``/api/v1``. Every route needs a bearer API key.

A list body is all-or-nothing: every item is checked first, and one bad item rejects the whole
request with a 4xx naming it (``[3].phone``); nothing is written.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from .. import control
from ..db import reading
from ..contacts import KNOWN_COLUMNS, ImportReport, find_contact, find_contacts, parse_row, upsert_contacts
from ..enrollment import enroll
from ..errors import InputError
from ..events import Event, EventResult, record_events
from .auth import require_api_key
from .context import ServiceContext, get_context
from .errors import ApiError
from ..leads import lead_summary
from .queries import contact_timeline, sequence_stats
from .schemas import Batch, ContactIn, EnrollmentIn, EventIn, UnenrollIn

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)], tags=["api"])


def _items(body: Any) -> tuple[list[Any], bool]:
    return (body, True) if isinstance(body, list) else ([body], False)


def _where(many: bool, i: int, field: str) -> str:
    return f"[{i}].{field}" if many else field


def _reasons(text: str, other: str = "phone") -> list[tuple[str, str]]:
    """parse_row's ``"phone: ...; email: ..."`` → ``[("phone", "..."), ("email", "...")]``; a part naming no
    column is put on ``other``."""
    out = []
    for part in re.split(r"; (?=(?:" + "|".join(KNOWN_COLUMNS) + r"): |needs )", text):
        field, sep, message = part.partition(": ")
        out.append((field, message) if sep and field in KNOWN_COLUMNS else (other, part))
    return out


@router.post("/contacts", summary="Create or update contacts (one or a list, all-or-nothing)")
def post_contacts(body: Batch(ContactIn), ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """Upsert by external_id, else phone, else email, exactly as the CSV import does."""
    items, many = _items(body)
    region = ctx.config.settings.default_region
    rows, errors = [], []
    for i, item in enumerate(items):
        raw = item.model_dump(exclude={"attrs", "tags"})
        raw["tags"] = ";".join(item.tags)
        try:
            row = parse_row(raw, region, line=i)
        except ValueError as err:
            errors.extend((_where(many, i, f), m) for f, m in _reasons(str(err)))
            continue
        row.attrs = {k: v for k, v in item.attrs.items() if k not in KNOWN_COLUMNS}
        rows.append(row)
    if errors:
        raise ApiError(422, "invalid contact" + ("s; nothing was written" if many else ""), errors)
    report = ImportReport()
    with ctx.engine.begin() as conn:
        upsert_contacts(conn, rows, report)
        if report.errors:  # raising inside the transaction rolls the whole batch back
            raise ApiError(409, "conflicting contact" + ("s; nothing was written" if many else ""),
                           [(_where(many, line or 0, "contact"), why) for line, why in report.errors])
    return {"created": report.created, "updated": report.updated, "unchanged": report.unchanged,
            "duplicates": report.duplicates, "contact_ids": report.contact_ids,
            "warnings": [{"field": _where(many, line or 0, field), "message": why}
                         for line, text in report.warnings for field, why in _reasons(text, "contact")]}


def _resolve(ctx: ServiceContext, conn: sa.Connection, items: list[Any], many: bool) -> list[dict]:
    """Each item's contact (and sequence, where named); every unknown one is an error."""
    found = find_contacts(conn, [item.contact for item in items], ctx.config.settings.default_region)
    refused = _unknown(ctx, items, many, found)
    if refused:
        raise refused
    return found


def _unknown(ctx: ServiceContext, items: list[Any], many: bool, found: list[dict | None]) -> ApiError | None:
    """The 422 for the items whose contact was not found or whose sequence is unknown, if any."""
    errors = []
    for i, (item, contact) in enumerate(zip(items, found)):
        if getattr(item, "sequence", None) and item.sequence not in ctx.config.sequences:
            known = ", ".join(sorted(ctx.config.sequences)) or "none"
            errors.append((_where(many, i, "sequence"), f"no sequence named {item.sequence!r} (known: {known})"))
        if contact is None:
            errors.append((_where(many, i, "contact"), "no contact matches this key (a phone, an email or an "
                                                       "external id); create it with POST /api/v1/contacts"))
    if errors:
        return ApiError(422, "unknown contact or sequence" + ("; nothing was written" if many else ""), errors)
    return None


@router.post("/enrollments", summary="Enroll contacts in sequences (one or a list, all-or-nothing)")
def post_enrollments(body: Batch(EnrollmentIn), ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """Already-active contacts are a no-op; opted-out ones are refused with the reason; contacts whose
    enrollment ended and whom the sequence's ``reentry`` keeps out are ``finished``, with when and why."""
    items, many = _items(body)
    results: list[dict[str, Any]] = []
    with ctx.engine.begin() as conn:
        contacts = _resolve(ctx, conn, items, many)
        by_sequence: dict[str, list[int]] = {}
        for item, contact in zip(items, contacts):
            by_sequence.setdefault(item.sequence, []).append(contact["id"])
        outcome: dict[tuple[str, int], tuple[str, str | None]] = {}
        for sequence, ids in by_sequence.items():
            report = enroll(conn, ctx.config, sequence, ids)
            outcome.update({(sequence, c): ("enrolled", None) for c in report.enrolled})
            outcome.update({(sequence, c): ("already_active", None) for c in report.already_active})
            outcome.update({(sequence, c): ("refused", why) for c, why in report.refused})
            outcome.update({(sequence, c): ("finished", why) for c, why in report.finished})
        for item, contact in zip(items, contacts):
            status, reason = outcome[(item.sequence, contact["id"])]
            results.append({"sequence": item.sequence, "contact": item.contact, "contact_id": contact["id"],
                            "status": status, "reason": reason})
    return {"enrolled": sum(r["status"] == "enrolled" for r in results), "results": results}


@dataclass(frozen=True)
class _EventWrite:
    """One request's events, as a write of the group writer (:mod:`engine.service.writes`)."""

    ctx: ServiceContext
    items: list[EventIn]
    many: bool

    def __call__(self, conn: sa.Connection) -> list[dict[str, Any]]:
        contacts = _resolve(self.ctx, conn, self.items, self.many)
        return self.answers(contacts, record_events(conn, self.ctx.config, contacts, self.events(), source="api"))

    def events(self) -> list[Event]:
        return [Event(item.type, sequence=item.sequence, channel=item.channel, value=item.value,
                      idempotency_key=item.idempotency_key, key=item.key, data=item.data) for item in self.items]

    def answers(self, contacts: list[dict], results: list[EventResult]) -> list[dict[str, Any]]:
        return [{"contact_id": contact["id"], "recorded": result.recorded, "ended": result.ended,
                 "cancelled": result.cancelled, "note": result.note, "started": [s.as_dict() for s in result.started],
                 **({"credited": result.credited} if item.type == "converted" and result.recorded else {}),
                 **({"warning": result.warning} if result.warning else {})}
                for item, contact, result in zip(self.items, contacts, results)]

    @staticmethod
    def together(conn: sa.Connection, writes: list["_EventWrite"]) -> list[Any]:
        """Several requests' events with one read of their contacts and one :func:`record_events` for all, in
        the order the requests came: a request with an unknown contact or sequence gets its 422 and writes
        nothing; the others get their answers."""
        ctx = writes[0].ctx
        found = find_contacts(conn, [item.contact for w in writes for item in w.items],
                              ctx.config.settings.default_region)
        outcomes: list[Any] = []
        accepted: list[tuple[int, list[dict]]] = []
        start = 0
        for i, write in enumerate(writes):
            contacts, start = found[start:start + len(write.items)], start + len(write.items)
            refused = _unknown(ctx, write.items, write.many, contacts)
            outcomes.append(refused)
            if refused is None:
                accepted.append((i, contacts))
        results = record_events(conn, ctx.config, [c for _, contacts in accepted for c in contacts],
                                [e for i, _ in accepted for e in writes[i].events()], source="api")
        start = 0
        for i, contacts in accepted:
            outcomes[i] = writes[i].answers(contacts, results[start:start + len(contacts)])
            start += len(contacts)
        return outcomes


@router.post("/events", summary="Record what contacts did (one or a list, all-or-nothing)")
async def post_events(body: Batch(EventIn), ctx: ServiceContext = Depends(get_context)) -> JSONResponse:
    """``converted``, ``replied``, ``unsubscribed``, ``resubscribed`` or any event name; ends what it must
    and starts the runs it triggers at once (``started``, one per sequence whose trigger names it).

    With a ``key``, an exit event ends only the run with that key (and enrollments without one), and a
    trigger starts one run per key. The same ``idempotency_key`` twice is recorded once (the second answer
    says ``recorded: false``).

    The request's events are written in a savepoint of a transaction shared with other requests' (group
    commit, :mod:`engine.service.writes`): the answer comes once that transaction is committed.
    """
    items, many = _items(body)
    write = _EventWrite(ctx, items, many)
    try:
        results = await asyncio.wrap_future(ctx.writes.submit(write))
    except sa.exc.IntegrityError:
        # a concurrent request recorded the same idempotency key first: run again, it is now a no-op
        results = await asyncio.wrap_future(ctx.writes.submit(write))
    # plain JSON values: answered as they are, without FastAPI's walk over every value of a 1,000-event list
    return JSONResponse({"results": results} if many else results[0])


@router.get("/contacts/{key}/timeline", summary="Every message and event of one contact")
def get_timeline(key: str, ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """Messages with their current status and reason, and every logged step and event, oldest first."""
    with reading(ctx.engine) as conn:
        contact = find_contact(conn, key, ctx.config.settings.default_region)
        if contact is None:
            raise ApiError(404, "no contact matches this key", [("key", "not a known phone, email or external id")])
        return {**contact_timeline(conn, contact), **lead_summary(conn, ctx.config, contact)}


@router.get("/sequences/{name}/stats", summary="The funnel of one sequence")
def get_stats(name: str, ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """Enrolled, per touch sent/delivered/failed/skipped, converted, conversion rate, revenue and the offer."""
    if name not in ctx.config.sequences:
        raise ApiError(404, f"no sequence named {name!r}", [("name", "unknown sequence")])
    with reading(ctx.engine) as conn:
        return sequence_stats(conn, ctx.config, name)


@router.get("/sequences", summary="Every sequence the database or config knows, with its state")
def get_sequences(ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """Version, state (active, paused, stopped, orphaned), active enrollments, messages due in 24 h, next due."""
    with reading(ctx.engine) as conn:
        return {"sequences": [row.as_dict() for row in control.list_sequences(conn, ctx.config)]}


def _control(ctx: ServiceContext, name: str, action, *args) -> dict[str, Any]:
    """Run one control action on a known sequence: 404 for an unknown name, 409 when the state forbids it."""
    with ctx.engine.begin() as conn:
        if name not in control.known_sequences(conn, ctx.config):
            raise ApiError(404, f"no sequence named {name!r}", [("name", "unknown sequence")])
        try:
            note = action(conn, ctx.config, name, *args)
        except InputError as err:
            raise ApiError(409, str(err), [("name", str(err))]) from None
    return {"sequence": name, "note": note}


@router.post("/sequences/{name}/pause", summary="Hold a sequence's due messages until it is resumed")
def post_pause(name: str, ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """Due messages are deferred with the reason ``sequence paused``; none is dropped."""
    return _control(ctx, name, control.pause)


@router.post("/sequences/{name}/resume", summary="Make a paused or stopped sequence active again")
def post_resume(name: str, ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """Messages held by the pause are due at once."""
    return _control(ctx, name, control.resume)


@router.post("/sequences/{name}/stop", summary="End every enrollment of a sequence and cancel its messages")
def post_stop(name: str, ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """Enrollments end as ``stopped``; pending messages are cancelled with the reason; no new enrollments."""
    return _control(ctx, name, control.stop)


@router.post("/sequences/{name}/unenroll", summary="Take one contact out of a sequence")
def post_unenroll(name: str, body: UnenrollIn, ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """The contact's enrollment ends as ``unenrolled`` and its pending messages are cancelled."""
    with reading(ctx.engine) as conn:
        contact = find_contact(conn, body.contact, ctx.config.settings.default_region)
    if contact is None:
        raise ApiError(404, "no contact matches this key", [("contact", "not a known phone, email or external id")])
    return _control(ctx, name, control.unenroll, contact)
