"""Telling a rep of a lead: a message like any other, through the engine's own providers.

The rep is a contact (found by phone or email, else created with the external id ``sales:NAME`` and the
tag ``sales``) enrolled in the built-in sequence ``_sales`` once per handoff (its event key
``handoff-ID``, so never twice). Its touches are one informational SMS (``templates/_sales/notify.sms.j2``)
when the rep has a phone and one email (``_sales/notify.email.j2``) when they have an email; they go
through the send protocol of :mod:`engine.dispatch` like every message, in the settings' send window and
without a frequency cap. The templates read the lead as ``event.data``: ``name``, ``phone``, ``score``,
``fired_by``, ``clicked`` (the touches it clicked), ``replied`` (when it replied), ``sequence``, ``url``
(the rep's lead page).
"""
from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa

from .clock import now, to_utc
from .config import Config
from .control import SALES_SEQUENCE
from .store import append_log
from .store.sources import contact_source
from .kinds import INFORMATIONAL
from .lead_tokens import lead_url
from .models import Contact, ContactEvent, Engagement, Enrollment, EnrollmentStatus, Message, MessageStatus, \
    SequenceVersion
from .sales_settings import Rep

__all__ = ["SALES_SEQUENCE", "TEMPLATES", "notify", "definition"]

TEMPLATES = {"sms": "_sales/notify.sms.j2", "email": "_sales/notify.email.j2"}
contacts = Contact.__table__
enrollments = Enrollment.__table__
messages = Message.__table__
versions = SequenceVersion.__table__
engagements_t = Engagement.__table__
events_t = ContactEvent.__table__


def definition(rep: Rep) -> dict:
    """The ``_sales`` sequence for this rep's channels, as a stored version holds it."""
    channels = [c for c, address in (("sms", rep.phone), ("email", rep.email)) if address]
    return {"name": SALES_SEQUENCE, "description": "a lead handed to a sales rep", "exit_on": [],
            "frequency_cap": {"per_day": None}, "send_window": None, "max_sms_segments": 10,
            "touches": [{"index": i, "name": f"notify-{c}", "after": "0s", "channel": c, "template": TEMPLATES[c],
                         "urgent": False, "kind": INFORMATIONAL} for i, c in enumerate(channels)]}


def _version(conn: sa.Connection, rep: Rep) -> tuple[str, dict]:
    data = definition(rep)
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    if conn.execute(sa.select(versions.c.hash).where(versions.c.hash == digest)).first() is None:
        conn.execute(sa.insert(versions).values(hash=digest, name=SALES_SEQUENCE, definition=text, file="",
                                                loaded_at=now()))
    return digest, data


def _rep_contact(conn: sa.Connection, rep: Rep) -> int:
    for column, value in (("phone", rep.phone), ("email", rep.email), ("external_id", f"sales:{rep.name}")):
        if value:
            found = conn.execute(sa.select(contacts.c.id).where(contacts.c[column] == value)).scalar()
            if found is not None:
                return found
    stamp = now()
    return conn.execute(sa.insert(contacts).values(
        external_id=f"sales:{rep.name}", phone=rep.phone, email=rep.email, first_name=rep.name, last_name="",
        tags=";sales;", attrs={}, created_at=stamp, updated_at=stamp).returning(contacts.c.id)).scalar_one()


def lead_data(conn: sa.Connection, config: Config, handoff: dict, lead: dict) -> dict:
    """What the rep's message says of the lead (``event.data`` in the ``_sales`` templates)."""
    clicked = list(dict.fromkeys(t for (t,) in conn.execute(
        sa.select(engagements_t.c.touch).where(engagements_t.c.contact_id == lead["id"],
                                               engagements_t.c.kind == "clicked", engagements_t.c.touch.is_not(None))
        .order_by(engagements_t.c.at))))
    replied = [to_utc(at).astimezone(config.settings.timezone).strftime("%Y-%m-%d %H:%M") for (at,) in conn.execute(
        sa.select(events_t.c.at).where(events_t.c.contact_id == lead["id"], events_t.c.type == "replied")
        .order_by(events_t.c.at))]
    name = " ".join(p for p in (lead.get("first_name"), lead.get("last_name")) if p)
    return {"name": name or "-", "phone": lead.get("phone") or "-", "email": lead.get("email") or "-",
            "score": f"{handoff['score']:g}", "fired_by": handoff["fired_by"], "sequence": handoff["sequence"],
            "clicked": ", ".join(clicked) or "-", "replied": ", ".join(replied) or "-",
            "url": lead_url(config, handoff) or "-"}


def notify(conn: sa.Connection, config: Config, handoff: dict, rep: Rep, lead: dict) -> int | None:
    """Enroll the rep in ``_sales`` for this handoff; the enrollment's id (None: already told)."""
    digest, data = _version(conn, rep)
    rep_id = _rep_contact(conn, rep)
    source = contact_source(conn, rep_id)
    stamp = now()
    key = f"handoff-{handoff['id']}"
    if conn.execute(sa.select(enrollments.c.id).where(enrollments.c.sequence == SALES_SEQUENCE,
                                                      enrollments.c.event_key == key)).first():
        return None
    enrollment_id = conn.execute(sa.insert(enrollments).values(
        contact_id=rep_id, sequence=SALES_SEQUENCE, sequence_hash=digest, status=EnrollmentStatus.ACTIVE.value,
        enrolled_at=stamp, event_key=key, event_data=lead_data(conn, config, handoff, lead), source=source)
        .returning(enrollments.c.id)).scalar_one()
    rows = [dict(enrollment_id=enrollment_id, contact_id=rep_id, sequence=SALES_SEQUENCE, touch_index=t["index"],
                 touch=t["name"], channel=t["channel"], urgent=False,
                 status=(MessageStatus.SCHEDULED if t["index"] == 0 else MessageStatus.PENDING).value,
                 due_at=stamp if t["index"] == 0 else None, next_attempt_at=stamp if t["index"] == 0 else None,
                 attempt=0, polls=0, updated_at=stamp, source=source) for t in data["touches"]]
    inserted = conn.execute(sa.insert(messages).returning(messages.c.id, messages.c.touch, messages.c.channel,
                                                          messages.c.status), rows).mappings().all()
    append_log(conn, [dict(at=stamp, message_id=m["id"], contact_id=rep_id, sequence=SALES_SEQUENCE, touch=m["touch"],
                           channel=m["channel"], provider=None, event=m["status"],
                           reason=f"lead #{lead['id']} handed to {rep.name}" if m["status"] == MessageStatus.SCHEDULED
                           else "waits for the previous touch", attempt=0, provider_message_id=None, worker=None)
                      for m in inserted])
    return enrollment_id
