"""The driver-level path: statements sent through the DB-API cursor of a SQLAlchemy connection.

The hot path (claim, record, log) runs thousands of rows a second; SQLAlchemy's execution context, its
per-row parameter processing and its row objects cost more than the database work there, so those
statements go to the driver directly. Everything here stays inside :mod:`engine.store`.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

__all__ = ["execute", "run", "is_in", "sqlite_text", "is_sqlite", "dialect_insert", "chunks", "CHUNK"]

_NAMED = re.compile(r"(?<!:):(\w+)")


def is_sqlite(conn: sa.Connection | sa.Engine) -> bool:
    return conn.dialect.name == "sqlite"


def dialect_insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The connection's dialect's ``INSERT`` into ``table``, which has ``on_conflict_do_nothing``/``_update``."""
    return (sqlite_insert if is_sqlite(conn) else pg_insert)(table)


#: values in one IN list, well under SQLite's limit of 32,766 parameters per statement
CHUNK = 500


def chunks(values: Iterable[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    """``values`` without repeats, in their order, ``size`` at a time (one IN list per statement)."""
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), size):
        yield unique[start:start + size]


def sqlite_text(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite ``DateTime`` writes and reads back (values are UTC by contract)."""
    v = value.astimezone(timezone.utc) if value.tzinfo else value
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)


def execute(conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[tuple]:
    """Run one ``sql`` (``:name`` placeholders) straight through the driver; the rows it returns, as tuples."""
    if is_sqlite(conn):
        params = {k: sqlite_text(v) if isinstance(v, datetime) else v for k, v in params.items()}
    else:
        sql = _NAMED.sub(r"%(\1)s", sql)
    return run(conn, sql, params)


def run(conn: sa.Connection, sql: str, params: Any) -> list[tuple]:
    """Run ``sql`` in the driver's own paramstyle, in the connection's transaction."""
    if not conn.in_transaction():
        conn.begin()  # what SQLAlchemy's first statement would do (on SQLite: the BEGIN of engine.db)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []
    except conn.dialect.loaded_dbapi.Error as err:
        # the exception SQLAlchemy itself would raise, without the parameters (they hold phone numbers)
        raise sa.exc.DBAPIError.instance(sql, None, err, conn.dialect.loaded_dbapi.Error,
                                         hide_parameters=True) from err
    finally:
        cursor.close()


def is_in(conn: sa.Connection, column: str, name: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """``column IN (…)`` and its one parameter, whatever the number of values: the text stays the same, so the
    database parses it once.

    PostgreSQL gets ``column = ANY(:name)`` with one array; SQLite ``column IN (SELECT value FROM
    json_each(:name))`` with one JSON array (SQLite binds a named placeholder by searching the statement's list
    of them, so hundreds of ``:name0, :name1, …`` cost it a search each).
    """
    if not is_sqlite(conn):
        return f"{column} = ANY(:{name})", {name: list(values)}
    return f"{column} IN (SELECT value FROM json_each(:{name}))", {name: json.dumps(list(values))}
