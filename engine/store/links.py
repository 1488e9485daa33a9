"""The short links' hot-path write: a claimed batch's new codes in a few multi-row statements."""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from itertools import chain

import sqlalchemy as sa

from .driver import execute

#: the columns of a new link, in the order :func:`insert_links` takes each row's values
LINK_FIELDS = ("code", "message_id", "contact_id", "sequence", "touch", "channel", "url", "target")
#: 200 rows × 8 columns stay well under SQLite's limit of 32,766 parameters per statement
ROWS_PER_INSERT = 200


def insert_links(conn: sa.Connection, rows: list[tuple], created_at: datetime, expires_at: datetime) -> None:
    """Insert ``rows`` (tuples in :data:`LINK_FIELDS` order) into ``links``.

    Driver-level multi-row statements: this runs in the dispatcher's claim, where a Core insert costs more
    than the rest of a link's work."""
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start:start + ROWS_PER_INSERT]
        params = {f"p{i}": value for i, value in enumerate(chain.from_iterable(chunk))}
        execute(conn, _insert_sql(len(chunk)), {**params, "at": created_at, "until": expires_at})


@lru_cache(maxsize=8)
def _insert_sql(rows: int) -> str:
    width = len(LINK_FIELDS)
    values = ", ".join("(" + ", ".join(f":p{r * width + c}" for c in range(width)) + ", :at, :until)"
                       for r in range(rows))
    return f"INSERT INTO links ({', '.join(LINK_FIELDS)}, created_at, expires_at) VALUES {values}"
