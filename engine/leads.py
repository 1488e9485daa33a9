"""The outcomes a rep records for a lead handed to them (the page's token: :mod:`engine.lead_tokens`).

Outcomes: ``won`` (with a value) records a ``converted`` event credited to the handoff (``attributed_by``
``handoff``); ``lost`` takes an objection from ``sales.objections`` or free text; ``follow_up_later`` a date.
Each outcome queues a ``lead_outcome`` webhook event (outcome, value, objection, rep) in the same transaction.
"""
from __future__ import annotations

import math
from datetime import date

import sqlalchemy as sa

from .clock import now, to_utc
from .config import Config
from .errors import InputError
from .lead_tokens import csrf_for, lead_url, make_lead_token, open_lead_token, read_lead_token, renew, revoke
from .models import Contact, ContactEvent, Handoff, LeadOutcome
from .outbox import emit

__all__ = ["make_lead_token", "read_lead_token", "open_lead_token", "csrf_for", "record_outcome", "revoke", "renew",
           "lead_url", "OUTCOMES", "OutcomeError"]

handoffs = Handoff.__table__
contacts = Contact.__table__
events_t = ContactEvent.__table__
OUTCOMES = tuple(o.value for o in LeadOutcome)
MAX_TEXT = 300
MAX_VALUE = 1e13


class OutcomeError(InputError):
    """An outcome refused, saying why in English; ``code`` and ``values`` let a page say it in its reader's words
    (the lead page's ``lead.error.<code>``)."""

    def __init__(self, code: str, message: str, **values: object):
        super().__init__(message)
        self.code = code
        self.values = values


def _text(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if "\x00" in value or len(value) > MAX_TEXT:
        raise OutcomeError("too_long", f"the {what} must be at most {MAX_TEXT} characters, without NUL",
                           what=what, limit=MAX_TEXT)
    return value or None


def record_outcome(conn: sa.Connection, config: Config, handoff: dict, outcome: str, *, value: float | None = None,
                   objection: str | None = None, follow_up_on: date | str | None = None, note: str | None = None,
                   by: str = "cli") -> dict:
    """Record what the rep says became of the lead, in the caller's transaction; the updated handoff row.

    Raises :class:`InputError` saying what is wrong (nothing is written then)."""
    if outcome not in OUTCOMES:
        raise OutcomeError("not_an_outcome", f"{outcome!r} is not an outcome; use {', '.join(OUTCOMES)}")
    note = _text(note, "note")
    values: dict = {"outcome": outcome, "value": None, "objection": None, "follow_up_on": None, "note": note,
                    "outcome_at": now(), "outcome_by": by[:120]}
    if outcome == LeadOutcome.WON.value:
        if value is None or isinstance(value, bool) or not math.isfinite(value) or not 0 <= value <= MAX_VALUE:
            raise OutcomeError("needs_value", "a won lead needs its value: a number from 0 (e.g. --value 1200000)")
        values["value"] = float(value)
    elif outcome == LeadOutcome.LOST.value:
        objection = _text(objection, "objection")
        if not objection:
            listed = ", ".join(config.settings.sales.objections)
            raise OutcomeError("needs_objection", f"a lost lead needs its objection: one of {listed} or your own words")
        values["objection"] = objection
    else:
        if isinstance(follow_up_on, str):
            try:
                follow_up_on = date.fromisoformat(follow_up_on.strip())
            except ValueError:
                raise OutcomeError("not_a_date", f"{follow_up_on!r} is not a date; write it as YYYY-MM-DD, "
                                   "e.g. 2026-12-20", value=follow_up_on) from None
        today = now().astimezone(config.settings.timezone).date()
        if not isinstance(follow_up_on, date) or follow_up_on < today:
            raise OutcomeError("date_from_today", f"follow_up_later needs a date from today ({today.isoformat()}) on, "
                               "as YYYY-MM-DD", today=today.isoformat())
        values["follow_up_on"] = follow_up_on
    if handoff.get("outcome") == LeadOutcome.WON.value and outcome == LeadOutcome.WON.value:
        raise OutcomeError("already_won", "this lead is already recorded as won; its sale is counted once")
    conn.execute(sa.update(handoffs).where(handoffs.c.id == handoff["id"]).values(**values))
    if outcome == LeadOutcome.WON.value:
        _credit_won(conn, config, handoff, values["value"], by)
    emit(conn, config, "lead_outcome", handoff["contact_id"],
         {"outcome": outcome, "value": values["value"], "objection": values["objection"], "rep": handoff["rep"]})
    return dict(conn.execute(sa.select(handoffs).where(handoffs.c.id == handoff["id"])).mappings().one())


def _credit_won(conn: sa.Connection, config: Config, handoff: dict, value: float, by: str) -> None:
    """A won lead is a ``converted`` event of its contact, credited to the handoff."""
    from .events import record_event

    contact = dict(conn.execute(sa.select(contacts).where(contacts.c.id == handoff["contact_id"])).mappings().one())
    key = f"handoff:{handoff['id']}:won"
    record_event(conn, config, contact, "converted", value=value, idempotency_key=key, source="lead")
    conn.execute(sa.update(events_t).where(events_t.c.idempotency_key == key).values(
        sequence=handoff["sequence"], message_id=None, touch=None, attributed_by="handoff"))


def lead_summary(conn: sa.Connection, config: Config, contact: dict) -> dict:
    """A contact's lead score now and its handoffs with their outcomes (for the timeline, API and pages)."""
    from .scoring import kept_score

    rows = conn.execute(sa.select(handoffs).where(handoffs.c.contact_id == contact["id"])
                        .order_by(handoffs.c.id)).mappings().all()
    return {"score": kept_score(contact, config.settings.scoring),
            "handoffs": [{"id": h["id"], "sequence": h["sequence"], "rep": h["rep"], "fired_by": h["fired_by"],
                          "score": h["score"], "at": to_utc(h["at"]), "outcome": h["outcome"],
                          "value": h["value"], "objection": h["objection"],
                          "follow_up_on": h["follow_up_on"].isoformat() if h["follow_up_on"] else None,
                          "note": h["note"]} for h in rows]}


__all__ += ["lead_summary"]
