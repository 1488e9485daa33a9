"""What the reports group by that SQLite and PostgreSQL write differently: a time's UTC month, its quarter hour,
and a contact attribute's stored JSON text (so the reports group in the database instead of reading rows); and a
column to group by where another index finds the rows (:func:`grouped`)."""
from __future__ import annotations

import sqlalchemy as sa

from .driver import is_sqlite

__all__ = ["utc_month", "quarter_hour", "attr_json", "seconds_between", "grouped", "QUARTER"]

#: seconds in a quarter hour: every time zone's offset from UTC is a whole number of them
QUARTER = 900


def utc_month(conn: sa.Connection, column: sa.ColumnElement) -> sa.ColumnElement:
    """``YYYY-MM`` of a stored time, in UTC."""
    if is_sqlite(conn):
        return sa.func.substr(column, 1, 7)  # SQLite keeps UTC times as text: "YYYY-MM-DD HH:MM:SS.ffffff"
    return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM")


def quarter_hour(conn: sa.Connection, column: sa.ColumnElement) -> sa.ColumnElement:
    """The quarter hour a stored time falls in, as seconds since the epoch ÷ :data:`QUARTER` (rounded down)."""
    if is_sqlite(conn):
        return sa.cast(sa.func.strftime("%s", column), sa.Integer).op("/")(sa.literal_column(str(QUARTER)))
    return sa.cast(sa.func.floor(sa.extract("epoch", column) / QUARTER), sa.BigInteger)


def grouped(column: sa.ColumnElement) -> sa.ColumnElement:
    """A text column that is never NULL, as an expression to GROUP BY when the WHERE has an index of its own.
    Grouped by the bare column, SQLite walks every row in the order of an index that starts with the column, to
    spare a sort, instead of finding the WHERE's few rows through their index and sorting those."""
    return sa.func.coalesce(column, sa.literal_column("''"))


def attr_json(column: sa.ColumnElement, key: str) -> sa.ColumnElement:
    """A JSON column's value under ``key`` as JSON text (NULL or ``null`` when absent), to group by."""
    return sa.cast(column[key], sa.Text)


def seconds_between(conn: sa.Connection, earlier: sa.ColumnElement,
                    later: sa.ColumnElement) -> sa.ColumnElement | None:
    """PostgreSQL: the seconds from ``earlier`` to ``later`` as a float, the exact interval rounded once (the
    float ``timedelta.total_seconds()`` gives); SQLite: None (its times are text: the caller subtracts them)."""
    if is_sqlite(conn):
        return None
    return sa.cast(sa.extract("epoch", later - earlier), sa.Float)
