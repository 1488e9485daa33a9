"""State changes and the delivery log: every change of a message updates its row and appends a log row in
the same transaction, so the log can never disagree with the table."""
from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache
from itertools import chain
from typing import Any, Iterable

import sqlalchemy as sa

from ..clock import now
from ..journal import LOG_FIELDS, Change, log_lines
from ..models import Message, MessageStatus
from . import driver

__all__ = ["apply", "apply_to_touch", "append_log", "LOG_ROWS_PER_INSERT"]

logger = logging.getLogger("followup.delivery")
messages = Message.__table__
#: rows per UPDATE of :func:`apply`
ROWS_PER_UPDATE = 900
#: 250 rows × 12 columns stay well under SQLite's limit of 32,766 parameters per statement
LOG_ROWS_PER_INSERT = 250
_INSERT_LOG = f"INSERT INTO delivery_log ({', '.join(LOG_FIELDS)}) VALUES "
_LOG_ROW = "(" + ", ".join("?" * len(LOG_FIELDS)) + ")"
_LOG_TYPES = ("timestamptz", "integer", "integer", "text", "text", "text", "text", "text", "text", "integer", "text",
              "text")
#: one array per column, sent in binary: a short statement that psycopg parses once, however many rows
_INSERT_LOG_UNNEST = (f"INSERT INTO delivery_log ({', '.join(LOG_FIELDS)}) SELECT * FROM unnest("
                      + ", ".join(f"%b::{t}[]" for t in _LOG_TYPES) + ")")
#: what differs between the log rows of one update's messages: one named array each
_LOG_VARYING = {"message_id": "integer", "provider": "text", "event": "text", "reason": "text", "attempt": "integer",
                "provider_message_id": "text"}
#: the log rows of the messages an update in a ``WITH u`` changed, in their order: the time and the worker are
#: the same for all, the message's own columns (contact, sequence, touch, channel) come from its updated row
_INSERT_LOG_JOINED = (f"INSERT INTO delivery_log ({', '.join(LOG_FIELDS)}) SELECT %(at)s, l.message_id, "
                      "u.contact_id, u.sequence, u.touch, u.channel, l.provider, l.event, l.reason, l.attempt, "
                      "l.provider_message_id, %(worker)s::text FROM unnest("
                      + ", ".join(f"%(l_{k})b::{t}[]" for k, t in _LOG_VARYING.items())
                      + f") WITH ORDINALITY AS l({', '.join(_LOG_VARYING)}, n) JOIN u ON u.id = l.message_id "
                        "ORDER BY l.n RETURNING message_id")
#: the log rows of the messages an update in a ``WITH u`` changed, each logged alike (``event``, ``reason``)
_TOUCH_LOG = (f"INSERT INTO delivery_log ({', '.join(LOG_FIELDS)}) SELECT :at, id, contact_id, sequence, touch, "
              "channel, provider, :event::text, :reason::text, attempt, NULL, :worker::text FROM u "
              "RETURNING message_id, contact_id, sequence, touch, channel, provider, attempt")


def append_log(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Append log rows (dicts with every ``LOG_FIELDS`` key) and echo each as a JSON line."""
    _insert_log(conn, [tuple(row[k] for k in LOG_FIELDS) for row in rows])


def _insert_log(conn: sa.Connection, rows: list[tuple]) -> None:
    """Append positional log rows (``LOG_FIELDS`` order), many rows per statement, and echo them."""
    if not rows:
        return
    if driver.is_sqlite(conn):
        # "at" is the rows' one time column, and a batch's rows share a few times: each is converted once
        texts = {at: driver.sqlite_text(at) for at in {row[0] for row in rows}}
        for start in range(0, len(rows), LOG_ROWS_PER_INSERT):
            chunk = rows[start:start + LOG_ROWS_PER_INSERT]
            params = list(chain.from_iterable((texts[row[0]], *row[1:]) for row in chunk))
            driver.run(conn, _INSERT_LOG + ", ".join([_LOG_ROW] * len(chunk)), params)
    else:
        driver.run(conn, _INSERT_LOG_UNNEST, tuple(list(column) for column in zip(*rows)))
    _echo(rows)


def _echo(rows: list[tuple]) -> None:
    """Echo log rows (``LOG_FIELDS`` order) as JSON lines: one record for a statement's rows."""
    if rows and logger.isEnabledFor(logging.INFO):
        logger.info(log_lines(rows))


def apply(conn: sa.Connection, changes: Iterable[Change], *, worker: str | None = None,
          fence: str | None = None, at: datetime | None = None) -> list[Change]:
    """Apply state changes and append their log rows, all in the caller's transaction.

    With ``fence`` (a lease token), only rows still leased under that token change: a worker whose lease
    expired can no longer record a result. Returns the changes that applied.

    Changes that set the same columns form a group, one ``UPDATE … RETURNING id`` each: what the group
    sets alike is written once, the columns that differ come with each row's id. On PostgreSQL the group's
    log rows are inserted by the same statement (one round trip); on SQLite by one more.
    """
    changes = list(changes)
    if not changes:
        return []
    at = at or now()
    groups: dict[frozenset[str], list[Change]] = {}
    for change in changes:
        groups.setdefault(frozenset(change.values), []).append(change)
    sqlite = driver.is_sqlite(conn)
    held: set[int] = set()
    for keys, group in groups.items():
        first = group[0].values
        common = {k: v for k, v in first.items() if [c.values[k] for c in group].count(v) == len(group)}
        varying = [k for k in keys if k not in common]
        for start in range(0, len(group), ROWS_PER_UPDATE):
            part = group[start:start + ROWS_PER_UPDATE]
            rows = [(c.message["id"], *(c.values[k] for k in varying)) for c in part]
            if sqlite:
                held.update(_update_group(conn, common, varying, rows, fence=fence, at=at))
            else:
                held.update(_update_group_pg(conn, common, varying, rows, [c.log_row(at, worker) for c in part],
                                             fence=fence, at=at, worker=worker))
    changes = [c for c in changes if c.message["id"] in held]
    if sqlite:
        _insert_log(conn, [c.log_row(at, worker) for c in changes])
    else:
        _echo([c.log_row(at, worker) for c in changes])
    return changes


def _update_group(conn: sa.Connection, common: dict[str, Any], varying: list[str], rows: list[tuple], *,
                  fence: str | None, at: datetime) -> list[int]:
    """SQLite: one ``UPDATE`` for a group of rows (``rows``: the id, then the ``varying`` values, as ``VALUES``),
    fenced by the lease token; the ids it changed."""
    sets = [f"{k} = ?" for k in common] + [f"{k} = v.column{j + 2}" for j, k in enumerate(varying)]
    one = "(" + ", ".join("?" * (1 + len(varying))) + ")"
    sql = (f"UPDATE messages SET {', '.join(sets + ['updated_at = ?'])} FROM (VALUES {', '.join([one] * len(rows))}) "
           f"AS v WHERE messages.id = v.column1{' AND messages.lease_token = ?' if fence else ''} RETURNING messages.id")
    params = [*common.values(), at, *chain.from_iterable(rows), *([fence] if fence else [])]
    return [r[0] for r in driver.run(conn, sql, [driver.sqlite_text(v) if isinstance(v, datetime) else v
                                                 for v in params])]


def _update_group_pg(conn: sa.Connection, common: dict[str, Any], varying: list[str], rows: list[tuple],
                     log_rows: list[tuple], *, fence: str | None, at: datetime, worker: str | None) -> list[int]:
    """PostgreSQL: the ``UPDATE`` of a group of rows and the log rows of those it changed, in ONE statement (the
    update in a ``WITH``, one array for each column that differs row by row); the ids it changed.

    ``log_rows`` (``LOG_FIELDS`` order, logged ``at`` by ``worker``) are the rows' log rows, in the same order as
    ``rows``.
    """
    columns = list(zip(*rows))
    names = ["id", *varying]
    arrays = ", ".join(f"%(a_{n})b::{_pg_type(messages.c[n], conn.dialect)}[]" for n in names)
    sets = [f"{k} = %(c_{k})s" for k in common] + [f"{k} = v.{k}" for k in varying]
    sql = (f"WITH u AS (UPDATE messages AS m SET {', '.join(sets + ['updated_at = %(at)s'])} FROM unnest({arrays}) "
           f"AS v({', '.join(names)}) WHERE m.id = v.id{' AND m.lease_token = %(fence)s' if fence else ''} "
           f"RETURNING m.id, m.contact_id, m.sequence, m.touch, m.channel) {_INSERT_LOG_JOINED}")
    logged = dict(zip(LOG_FIELDS, zip(*log_rows)))
    params = {**{f"c_{k}": v for k, v in common.items()}, **{f"a_{n}": list(c) for n, c in zip(names, columns)},
              **{f"l_{k}": list(logged[k]) for k in _LOG_VARYING}, "at": at, "worker": worker,
              "fence": fence}
    return [r[0] for r in driver.run(conn, sql, params)]


@lru_cache(maxsize=None)
def _pg_type(column: sa.Column, dialect: sa.Dialect) -> str:
    """A column's type as the array casts name it."""
    return column.type.compile(dialect=dialect)


def apply_to_touch(conn: sa.Connection, enrollment_ids: list[int], touch_index: int, *, event: str,
                   values: dict[str, Any], reason: str, worker: str | None = None, at: datetime | None = None) -> int:
    """Set ``values`` on the still-pending touch ``touch_index`` of each enrollment, and log each change.

    One statement for the whole set, for changes that share their values (the next touches of a batch
    that ended together), which on PostgreSQL also inserts their log rows. Returns how many messages changed.
    """
    at = at or now()
    sqlite = driver.is_sqlite(conn)
    changed = 0
    for start in range(0, len(enrollment_ids), ROWS_PER_UPDATE):
        ids_sql, params = driver.is_in(conn, "enrollment_id", "e", enrollment_ids[start:start + ROWS_PER_UPDATE])
        sets = ", ".join(f"{k} = :v_{k}" for k in values)
        update = (f"UPDATE messages SET {sets}, updated_at = :v_updated_at WHERE touch_index = :ti "
                  f"AND status = '{MessageStatus.PENDING.value}' AND {ids_sql} "
                  f"RETURNING id, contact_id, sequence, touch, channel, provider, attempt")
        params.update({f"v_{k}": v for k, v in values.items()}, v_updated_at=at, ti=touch_index)
        if sqlite:
            rows = driver.execute(conn, update, params)
        else:  # the update and its log rows in one statement
            rows = driver.execute(conn, f"WITH u AS ({update}) {_TOUCH_LOG}",
                                  {**params, "at": at, "event": event, "reason": reason, "worker": worker})
        log_rows = [(at, r[0], r[1], r[2], r[3], r[4], r[5], event, reason, r[6], None, worker) for r in rows]
        if sqlite:
            _insert_log(conn, log_rows)
        else:
            _echo(log_rows)
        changed += len(rows)
    return changed
