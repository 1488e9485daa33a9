"""Client references: the id a provider keeps for one of our messages, unique to this database.

A reference is ``prefix * 10**12 + message id``, where the prefix (1..9,000,000) is drawn once when
``followup db upgrade`` creates the ``installation`` row. Kavenegar's ``localid`` must be a number (a
Long), and it dedupes on it: a repeated reference is "accepted" and never sent. With the prefix, a reset
database, a restored backup or a staging database on the same account sends under references of its
own. The largest reference, 9,000,000 * 10**12 + 10**12 - 1, stays below 2**63.

Parsing a reference back accepts only this database's prefix: a receipt for another installation's
message on the same account matches none of ours.
"""
from __future__ import annotations

import secrets

import sqlalchemy as sa

from .clock import now
from .models import Installation

__all__ = ["SPAN", "reference_prefix", "client_reference", "message_id_of", "alert_reference"]

SPAN = 10**12
MAX_PREFIX = 9_000_000
installation = Installation.__table__


def reference_prefix(conn: sa.Connection) -> int:
    """This database's prefix; drawn and stored now where the row is missing (a schema built by hand)."""
    prefix = conn.execute(sa.select(installation.c.reference_prefix).where(installation.c.id == 1)).scalar()
    if prefix is None:
        prefix = secrets.randbelow(MAX_PREFIX) + 1
        conn.execute(sa.insert(installation).values(id=1, reference_prefix=prefix, created_at=now()))
    return int(prefix)


def client_reference(prefix: int, message_id: int) -> str:
    """The reference providers get for our message ``message_id``."""
    return str(prefix * SPAN + int(message_id))


def message_id_of(prefix: int, reference: object) -> int | None:
    """Our message id in a reference of this database; None for anything else."""
    text = str(reference or "")
    if not text.isdigit():
        return None
    value = int(text)
    return value % SPAN if value // SPAN == prefix else None


def alert_reference() -> str:
    """A client reference for an alert to ops: a number above every installation's references, drawn at random.

    It is a number, as Kavenegar's ``localid`` must be; it is fresh for each alert, so a provider that
    dedupes references sends each one; and :func:`message_id_of` matches it to none of our messages.
    """
    floor = (MAX_PREFIX + 1) * SPAN
    return str(floor + secrets.randbelow(2**63 - floor))
