"""What a list of events reads and writes at once: its contacts, its idempotency keys already recorded, the
active enrollments of its contacts, and its plain events' rows (see :func:`engine.events.record_events`).

One statement per kind of read for a whole list instead of one per event; values go in chunks well under
SQLite's limit of 32,766 parameters per statement.
"""
from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa

from ..models import Contact, ContactEvent, Enrollment, EnrollmentStatus
from .driver import chunks

__all__ = ["contacts_by", "recorded_keys", "active_enrollments", "insert_events"]

contacts = Contact.__table__
events = ContactEvent.__table__
enrollments = Enrollment.__table__


_VALUES = sa.bindparam("values", expanding=True)
_CONTACTS_BY = {column: sa.select(contacts).where(contacts.c[column].in_(_VALUES))
                for column in ("phone", "email", "external_id")}
_RECORDED = sa.select(events.c.idempotency_key).where(events.c.idempotency_key.in_(_VALUES))
_ACTIVE = (sa.select(enrollments).where(enrollments.c.contact_id.in_(_VALUES),
                                        enrollments.c.status == EnrollmentStatus.ACTIVE.value)
           .order_by(enrollments.c.enrolled_at.desc()))


def contacts_by(conn: sa.Connection, column: str, values: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The contacts whose ``column`` (phone, email or external_id) is one of ``values``: value → contact."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in chunks(values):
        for row in conn.execute(_CONTACTS_BY[column], {"values": chunk}).mappings():
            found.setdefault(row[column], dict(row))
    return found


def recorded_keys(conn: sa.Connection, keys: Iterable[str]) -> set[str]:
    """Those of the idempotency ``keys`` an event already has."""
    seen: set[str] = set()
    for chunk in chunks(keys):
        seen.update(conn.execute(_RECORDED, {"values": chunk}).scalars())
    return seen


def active_enrollments(conn: sa.Connection, contact_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Each contact's active enrollments, the latest enrolled first (contacts without one are absent)."""
    found: dict[int, list[dict[str, Any]]] = {}
    for chunk in chunks(contact_ids):
        for row in conn.execute(_ACTIVE, {"values": chunk}).mappings():
            found.setdefault(row["contact_id"], []).append(dict(row))
    return found


def insert_events(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert event rows (each with the same columns of ``contact_events``), in order, one executemany for
    each run of rows with data and of rows without (those leave ``data`` SQL NULL, not JSON ``null``)."""
    run: list[dict[str, Any]] = []
    for row in rows:
        if run and (row["data"] is None) != (run[0]["data"] is None):
            _insert(conn, run)
            run = []
        run.append(row)
    _insert(conn, run)


_INSERT = sa.insert(events)


def _insert(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    if rows and rows[0]["data"] is None:
        rows = [{k: v for k, v in row.items() if k != "data"} for row in rows]
    if rows:
        conn.execute(_INSERT, rows)
