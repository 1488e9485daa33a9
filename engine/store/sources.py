"""A lead's source kept beside the rows the reports group by it.

A contact's source is its ``source`` attribute, else its ``utm_source`` (:func:`source_of`; NULL when it has
neither). ``enrollments.source`` and ``messages.source`` hold a copy of their contact's, written with the row and
rewritten whenever the contact's attributes change it (:func:`follow`), so a report by source groups the window's
rows without reading the contacts table.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..models import Contact, Enrollment, Message
from .driver import chunks

__all__ = ["source_of", "contact_source", "follow", "changed_sources"]

contacts_t = Contact.__table__
enrollments_t = Enrollment.__table__
messages_t = Message.__table__

def source_of(attrs: dict[str, Any] | None) -> str | None:
    """A contact's source from its attributes: ``source``, else ``utm_source``; None when neither is set."""
    value = (attrs or {}).get("source") or (attrs or {}).get("utm_source")
    return str(value) if value else None


def contact_source(conn: sa.Connection, contact_id: int) -> str | None:
    """The stored contact's :func:`source_of`."""
    return source_of(conn.execute(sa.select(contacts_t.c.attrs).where(contacts_t.c.id == contact_id)).scalar())


def changed_sources(before: dict[int, dict | None], after: dict[int, dict | None]) -> dict[int, str | None]:
    """The contacts whose source differs between their attributes ``before`` and ``after``: their new one."""
    return {cid: new for cid, attrs in after.items() if (new := source_of(attrs)) != source_of(before.get(cid))}


def follow(conn: sa.Connection, sources: dict[int, str | None]) -> None:
    """Rewrite the copies of these contacts' sources on their enrollments and messages (a message through its
    enrollment's index), one statement per table, source and :data:`~engine.store.driver.CHUNK` contacts."""
    by_source: dict[str | None, list[int]] = {}
    for cid, source in sources.items():
        by_source.setdefault(source, []).append(cid)
    for source, ids in by_source.items():
        for chunk in chunks(sorted(ids)):
            runs = sa.select(enrollments_t.c.id).where(enrollments_t.c.contact_id.in_(chunk))
            conn.execute(sa.update(messages_t).where(messages_t.c.enrollment_id.in_(runs),
                                                     messages_t.c.source.is_distinct_from(source))
                         .values(source=source))
            conn.execute(sa.update(enrollments_t).where(enrollments_t.c.contact_id.in_(chunk),
                                                        enrollments_t.c.source.is_distinct_from(source))
                         .values(source=source))

