"""The short links' hot-path statements: a claimed batch's existing codes, and its new ones.

Both run in the dispatcher's claim, where a Core statement costs more than the rest of a link's work, so
they go through the driver: positional parameters (SQLite looks each ``:name`` up among all of a statement's
placeholders, so a statement of many rows binds far faster by position), and on PostgreSQL one statement of
one array per column. psycopg writes an array element by element in Python, so there the columns a link
copies from its message (contact, sequence, touch, channel) are read from the message's row by the same
statement instead of sent: four arrays, not eight.
"""
from __future__ import annotations

from datetime import datetime
from itertools import chain
from typing import Iterable

import sqlalchemy as sa

from .driver import execute, is_in, is_sqlite, run, sqlite_text

__all__ = ["LINK_FIELDS", "link_codes", "insert_links"]

#: the columns of a new link, in the order :func:`insert_links` takes each row's values
LINK_FIELDS = ("code", "message_id", "contact_id", "sequence", "touch", "channel", "url", "target")
_INSERT = f"INSERT INTO links ({', '.join(LINK_FIELDS)}, created_at, expires_at) VALUES "
_ONE_ROW = "(" + ", ".join(["?"] * (len(LINK_FIELDS) + 2)) + ")"
_INSERT_UNNEST = (f"INSERT INTO links ({', '.join(LINK_FIELDS)}, created_at, expires_at) SELECT u.code, m.id, "
                  "m.contact_id, m.sequence, m.touch, m.channel, u.url, u.target, %s, %s FROM unnest(%b::text[], "
                  "%b::integer[], %b::text[], %b::text[]) AS u(code, message_id, url, target) "
                  "JOIN messages m ON m.id = u.message_id")
#: the positions in a row (LINK_FIELDS order) of the arrays of _INSERT_UNNEST
_UNNEST_FIELDS = tuple(LINK_FIELDS.index(k) for k in ("code", "message_id", "url", "target"))
#: 200 rows × 10 columns stay well under SQLite's limit of 32,766 parameters per statement
ROWS_PER_INSERT = 200


def link_codes(conn: sa.Connection, message_ids: Iterable[int]) -> dict[tuple[int, str], str]:
    """The codes the messages were given before: (message_id, url) → code."""
    ids = list(message_ids)
    if not ids:
        return {}
    where, params = is_in(conn, "message_id", "m", ids)
    return {(m, u): c for m, u, c in execute(conn, f"SELECT message_id, url, code FROM links WHERE {where}", params)}


def insert_links(conn: sa.Connection, rows: list[tuple], created_at: datetime, expires_at: datetime) -> None:
    """Insert ``rows`` (tuples in :data:`LINK_FIELDS` order) into ``links``; their messages are stored (on
    PostgreSQL a link's contact, sequence, touch and channel are read from its message's row)."""
    if not rows:
        return
    if is_sqlite(conn):
        at, until = sqlite_text(created_at), sqlite_text(expires_at)
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start:start + ROWS_PER_INSERT]
            run(conn, _INSERT + ", ".join([_ONE_ROW] * len(chunk)),
                list(chain.from_iterable(r + (at, until) for r in chunk)))
    else:
        columns = list(zip(*rows))
        run(conn, _INSERT_UNNEST, (created_at, expires_at, *(list(columns[i]) for i in _UNNEST_FIELDS)))
