"""Helpers for the journey tests: a click or open recorded as the engagement tracker records it."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from engine.models import Engagement, Message


def engage(world, contact_id: int, touch: str, kind: str = "clicked") -> int:
    """``kind`` (clicked, opened, clicked_bot) on the message of ``touch`` sent to ``contact_id``; its id."""
    m = Message.__table__
    with world.engine.begin() as conn:
        msg = conn.execute(sa.select(m).where(m.c.contact_id == contact_id, m.c.touch == touch)).mappings().one()
        conn.execute(sa.insert(Engagement.__table__).values(
            at=datetime.now(timezone.utc), kind=kind, message_id=msg["id"], contact_id=contact_id,
            sequence=msg["sequence"], touch=touch, channel=msg["channel"], source="link"))
    return msg["id"]


def status_of(world, contact_id: int, touch: str) -> tuple[str, str | None]:
    row = next(r for r in world.messages(contact_id=contact_id) if r["touch"] == touch)
    return row["status"], row["reason"]
