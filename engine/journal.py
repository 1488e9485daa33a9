"""The delivery log: every state change of every message, appended in batches and echoed as JSON lines.

All state changes of a message go through :func:`apply` (or :func:`apply_to_touch` for a set
that shares its values), which updates the rows and appends the log rows in the same transaction,
so the log can never disagree with the table. These statements go to the DB-API directly, with
positional rows and one statement per group: the hot path records thousands of rows a second, and
SQLAlchemy's per-row parameter processing would cost more than the database work.
"""
from __future__ import annotations

import json
import logging
import re
from itertools import chain
from operator import itemgetter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterable, Sequence

import sqlalchemy as sa

from .clock import now
from .models import DeliveryLog, Message
from .text import mask_address

__all__ = ["Change", "apply", "apply_to_touch", "append_log", "execute", "is_in", "LOG_FIELDS",
           "log_line"]

logger = logging.getLogger("followup.delivery")
messages = Message.__table__
delivery_log = DeliveryLog.__table__
LOG_FIELDS = ("at", "message_id", "contact_id", "sequence", "touch", "channel", "provider", "event", "reason",
              "attempt", "provider_message_id", "worker")


@dataclass(slots=True)
class Change:
    """One state change: ``values`` to set on the message row, and the log row that records it."""

    message: dict[str, Any]  # the row as read (id, contact_id, sequence, touch, channel, attempt, ...)
    event: str
    values: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None

    def log_row(self, at: datetime, worker: str | None) -> tuple:
        """The log row that records this change, in ``LOG_FIELDS`` order."""
        m = self.message
        values = self.values
        return (at, m["id"], m["contact_id"], m["sequence"], m["touch"], m["channel"],
                self.provider or values.get("provider") or m.get("provider"), self.event, self.reason,
                values.get("attempt", m.get("attempt", 0)),
                self.provider_message_id or values.get("provider_message_id"), worker)


def log_line(row: dict[str, Any]) -> str:
    """The JSON line the worker writes for one log row, with phones and emails masked."""
    return _log_lines([tuple(row.get(k) for k in LOG_FIELDS)])


_JSON = json.JSONEncoder(ensure_ascii=False)  # json.dumps with an option builds a new encoder on every call
#: a line as json.dumps writes it: the values a batch's rows share filled in once per distinct set of them
#: (``%%s`` left for the ids, the attempt and the provider's id, which differ row by row); the worker's name
#: is the line's source, not part of it
_FORM = "{" + ", ".join(f'"{k}": ' + ("%%s" if k in ("message_id", "contact_id", "attempt", "provider_message_id")
                                     else "%s") for k in LOG_FIELDS[:-1]) + "}"


def _log_lines(rows: list[tuple]) -> str:
    """The JSON lines of log rows (in ``LOG_FIELDS`` order), one per row.

    A batch's rows share most of their values (the time, the sequence, the event, often the reason): each
    set of those is encoded once (a reason masked once) into a line with blanks for the ids, the attempt and
    the provider's id, which differ row by row and are written as the numbers (or string) they are.
    """
    forms: dict[tuple, str] = {}

    def form(key: tuple) -> str:
        at, sequence, touch, channel, provider, event, reason = key
        texts = [f'"{at.isoformat().replace("+00:00", "Z")}"' if isinstance(at, datetime) else _JSON.encode(at),
                 *(_JSON.encode(v) for v in (sequence, touch, channel, provider, event)),
                 _JSON.encode(None if reason is None else mask_address(reason))]
        out = forms[key] = _FORM % tuple(t.replace("%", "%%") for t in texts)
        return out

    lines = []
    for at, message_id, contact_id, sequence, touch, channel, provider, event, reason, attempt, pmid, _ in rows:
        key = (at, sequence, touch, channel, provider, event, reason)
        lines.append((forms.get(key) or form(key)) % (
            "null" if message_id is None else message_id, "null" if contact_id is None else contact_id,
            "null" if attempt is None else attempt, "null" if pmid is None else _JSON.encode(pmid)))
    return "\n".join(lines)


def _sqlite_text(value: datetime) -> str:
    # the text form SQLAlchemy's SQLite DateTime writes and reads back (values are UTC by contract)
    v = value.astimezone(timezone.utc) if value.tzinfo else value
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)


def execute(conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[tuple]:
    """Run one ``sql`` (``:name`` placeholders) straight through the driver; the rows it returns, as tuples."""
    if conn.dialect.name == "sqlite":
        params = {k: _sqlite_text(v) if isinstance(v, datetime) else v for k, v in params.items()}
    else:
        sql = _NAMED.sub(r"%(\1)s", sql)
    return _run(conn, sql, params)


def execute_rows(conn: sa.Connection, sql: str, params: Sequence[Any]) -> list[tuple]:
    """Run one ``sql`` with positional placeholders (``?`` on SQLite, ``%s``/``%b`` on PostgreSQL) straight through
    the driver; the rows it returns, as tuples. Times go in as :func:`db_time` gives them. (SQLite looks each
    ``:name`` up among all of a statement's placeholders: a statement of many rows binds far faster by position.)"""
    return _run(conn, sql, params)


def db_time(conn: sa.Connection, value: datetime) -> datetime | str:
    """``value`` as the driver-level statements bind it: on SQLite the text SQLAlchemy stores."""
    return _sqlite_text(value) if conn.dialect.name == "sqlite" else value


def _run(conn: sa.Connection, sql: str, params: Any) -> list[tuple]:
    # the driver's own cursor, in the connection's transaction: SQLAlchemy's execution context and
    # its row objects cost more per statement and per row than the database work on this path
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


def _update_group(conn: sa.Connection, common: dict[str, Any], varying: list[str], rows: list[tuple], *,
                  fence: str | None, at: datetime) -> list[int]:
    """One ``UPDATE`` for a group of rows: the ``common`` values for all, each row's ``varying`` values
    (``rows``: the id, then those values), fenced by the lease token; the ids it changed."""
    if conn.dialect.name != "sqlite":
        return _update_group_pg(conn, common, varying, rows, fence=fence, at=at)
    sets = [f"{k} = ?" for k in common] + [f"{k} = v.column{j + 2}" for j, k in enumerate(varying)]
    one = "(" + ", ".join("?" * (1 + len(varying))) + ")"
    sql = (f"UPDATE messages SET {', '.join(sets + ['updated_at = ?'])} FROM (VALUES {', '.join([one] * len(rows))}) "
           f"AS v WHERE messages.id = v.column1{' AND messages.lease_token = ?' if fence else ''} RETURNING messages.id")
    params = [*common.values(), at, *chain.from_iterable(rows), *([fence] if fence else [])]
    return [r[0] for r in _run(conn, sql, [_sqlite_text(v) if isinstance(v, datetime) else v for v in params])]


def _update_group_pg(conn: sa.Connection, common: dict[str, Any], varying: list[str], rows: list[tuple], *,
                     fence: str | None, at: datetime) -> list[int]:
    # the rows as one array per column (binary): the statement's text stays short and the same
    columns = list(zip(*rows))
    names = ["id", *varying]
    arrays = ", ".join(f"%(a_{n})b::{_pg_type(messages.c[n], conn.dialect)}[]" for n in names)
    sets = [f"{k} = %(c_{k})s" for k in common] + [f"{k} = v.{k}" for k in varying]
    sql = (f"UPDATE messages AS m SET {', '.join(sets + ['updated_at = %(at)s'])} FROM unnest({arrays}) "
           f"AS v({', '.join(names)}) WHERE m.id = v.id{' AND m.lease_token = %(fence)s' if fence else ''} "
           f"RETURNING m.id")
    params = {**{f"c_{k}": v for k, v in common.items()}, **{f"a_{n}": list(c) for n, c in zip(names, columns)},
              "at": at, "fence": fence}
    return [r[0] for r in _run(conn, sql, params)]


@lru_cache(maxsize=None)
def _pg_type(column: sa.Column, dialect: sa.Dialect) -> str:
    """A column's type as the array casts of the batched statements name it."""
    return column.type.compile(dialect=dialect)


def is_in(conn: sa.Connection, column: str, name: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """``column IN (…)`` and its parameters, on the driver-level path.

    PostgreSQL gets ``column = ANY(:name)`` with one array: the query text stays the same whatever the
    number of values, so psycopg parses it once instead of scanning hundreds of placeholders each time.
    """
    if conn.dialect.name != "sqlite":
        return f"{column} = ANY(:{name})", {name: list(values)}
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    return f"{column} IN (" + ", ".join(":" + k for k in params) + ")", params


_NAMED = re.compile(r"(?<!:):(\w+)")


def append_log(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Append log rows in one statement and echo each as a JSON line."""
    _insert_log(conn, [tuple(row[k] for k in LOG_FIELDS) for row in rows])


def _insert_log(conn: sa.Connection, rows: list[tuple]) -> None:
    # positional rows in LOG_FIELDS order ("at" first), many rows per statement: one statement is one
    # step for the driver, which gives up Python's GIL for each step (and waits to get it back)
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        ats = {row[0] for row in rows}  # a batch's rows mostly share one time
        texts = {at: _sqlite_text(at) for at in ats}
        for start in range(0, len(rows), LOG_ROWS_PER_INSERT):
            chunk = rows[start:start + LOG_ROWS_PER_INSERT]
            # a column that is empty in every row of the chunk is written as NULL, not bound row by row
            bound = [k for k in range(len(LOG_FIELDS)) if any(row[k] is not None for row in chunk)]
            one = "(" + ", ".join("?" if k in bound else "NULL" for k in range(len(LOG_FIELDS))) + ")"
            params = list(chain.from_iterable(map(itemgetter(*bound), chunk)))  # at and event: 2 columns or more
            # "at" is each row's first value bound: as the text SQLite stores
            params[0::len(bound)] = ([texts[row[0]] for row in chunk] if len(ats) > 1
                                     else [texts[rows[0][0]]] * len(chunk))
            _run(conn, _INSERT_LOG + ", ".join([one] * len(chunk)), params)
    else:  # one array per column: a short query that psycopg parses once, however many rows
        _run(conn, _INSERT_LOG_UNNEST, tuple(list(column) for column in zip(*rows)))
    if logger.isEnabledFor(logging.INFO):
        # one record for the statement's rows, a JSON line each: a record per row cost more than the rest
        # of the bookkeeping (building it, the handler's lock, a write and a flush each)
        logger.info(_log_lines(rows))


_INSERT_LOG = f"INSERT INTO delivery_log ({', '.join(LOG_FIELDS)}) VALUES "
_LOG_TYPES = ("timestamptz", "integer", "integer", "text", "text", "text", "text", "text", "text", "integer", "text",
              "text")
_INSERT_LOG_UNNEST = (f"INSERT INTO delivery_log ({', '.join(LOG_FIELDS)}) SELECT * FROM unnest("
                      + ", ".join(f"%b::{t}[]" for t in _LOG_TYPES) + ")")  # binary: no per-element quoting
#: 250 rows × 12 columns stay well under SQLite's limit of 32,766 parameters per statement
LOG_ROWS_PER_INSERT = 250


def apply(conn: sa.Connection, changes: Iterable[Change], *, worker: str | None = None,
          fence: str | None = None, at: datetime | None = None) -> list[Change]:
    """Apply state changes and append their log rows, all in the caller's transaction.

    With ``fence`` (a lease token), only rows still leased under that token change: a worker
    whose lease expired can no longer record a result. Returns the changes that applied.
    """
    changes = list(changes)
    if not changes:
        return []
    at = at or now()
    # changes that set the same columns form a group, one `UPDATE … [AND lease_token = fence] RETURNING id`
    # each (the fence and the row lock in the same statement): what the group sets alike is written
    # once, the columns that differ come with each row's id (VALUES on SQLite, arrays on PostgreSQL)
    groups: dict[frozenset[str], list[Change]] = {}
    for change in changes:
        groups.setdefault(frozenset(change.values), []).append(change)
    held: set[int] = set()
    for keys, group in groups.items():
        first = group[0].values
        common = {k: v for k, v in first.items() if [c.values[k] for c in group].count(v) == len(group)}
        varying = [k for k in keys if k not in common]
        for start in range(0, len(group), 900):
            rows = [(c.message["id"], *(c.values[k] for k in varying)) for c in group[start:start + 900]]
            held.update(_update_group(conn, common, varying, rows, fence=fence, at=at))
    changes = [c for c in changes if c.message["id"] in held]
    _insert_log(conn, [c.log_row(at, worker) for c in changes])
    return changes


def apply_to_touch(conn: sa.Connection, enrollment_ids: list[int], touch_index: int, *, event: str,
                   values: dict[str, Any], reason: str, worker: str | None = None, at: datetime | None = None) -> int:
    """Set ``values`` on the still-pending touch ``touch_index`` of each enrollment, and log each change.

    One statement for the whole set (``UPDATE … RETURNING``), for changes that share their values:
    the next touches of a batch that ended together. Returns how many messages changed.
    """
    at = at or now()
    changed = 0
    for start in range(0, len(enrollment_ids), 900):
        ids_sql, params = is_in(conn, "enrollment_id", "e", enrollment_ids[start:start + 900])
        sets = ", ".join(f"{k} = :v_{k}" for k in values)
        rows = execute(conn, f"UPDATE messages SET {sets}, updated_at = :v_updated_at WHERE touch_index = :ti "
                             f"AND status = 'pending' AND {ids_sql} "
                             f"RETURNING id, contact_id, sequence, touch, channel, provider, attempt",
                       {**params, **{f"v_{k}": v for k, v in values.items()}, "v_updated_at": at, "ti": touch_index})
        _insert_log(conn, [(at, r[0], r[1], r[2], r[3], r[4], r[5], event, reason, r[6], None, worker) for r in rows])
        changed += len(rows)
    return changed
