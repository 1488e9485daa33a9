"""The delivery log: every state change of every message, appended in batches and echoed as JSON lines.

All state changes of a message go through :func:`apply`, which updates the row and appends
the log row in the same transaction, so the log can never disagree with the table.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

import sqlalchemy as sa

from .clock import now
from .models import DeliveryLog, Message
from .text import mask_address

__all__ = ["Change", "apply", "apply_to_touch", "append_log", "execute", "executemany", "in_list", "LOG_FIELDS",
           "log_line"]

logger = logging.getLogger("followup.delivery")
messages = Message.__table__
delivery_log = DeliveryLog.__table__
LOG_FIELDS = ("at", "message_id", "contact_id", "sequence", "touch", "channel", "provider", "event", "reason",
              "attempt", "provider_message_id", "worker")


@dataclass
class Change:
    """One state change: ``values`` to set on the message row, and the log row that records it."""

    message: dict[str, Any]  # the row as read (id, contact_id, sequence, touch, channel, attempt, ...)
    event: str
    values: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None

    def log_row(self, at: datetime, worker: str | None) -> dict[str, Any]:
        m = self.message
        return {
            "at": at, "message_id": m["id"], "contact_id": m["contact_id"], "sequence": m["sequence"],
            "touch": m["touch"], "channel": m["channel"],
            "provider": self.provider or self.values.get("provider") or m.get("provider"),
            "event": self.event, "reason": self.reason,
            "attempt": self.values.get("attempt", m.get("attempt", 0)),
            "provider_message_id": self.provider_message_id or self.values.get("provider_message_id"),
            "worker": worker,
        }


def log_line(row: dict[str, Any]) -> str:
    """The JSON line the worker writes for one log row, with phones and emails masked."""
    out = {k: row.get(k) for k in LOG_FIELDS if k != "worker"}
    out["at"] = row["at"].isoformat().replace("+00:00", "Z") if isinstance(row["at"], datetime) else row["at"]
    if out.get("reason"):
        out["reason"] = mask_address(out["reason"])
    return json.dumps(out, ensure_ascii=False)


#: datetime columns of messages and delivery_log (converted by hand on the driver-level path)
DATETIME_COLUMNS = frozenset({"at", "due_at", "next_attempt_at", "lease_until", "sent_at", "poll_at", "updated_at"})


def _sqlite_text(value: datetime) -> str:
    # the text form SQLAlchemy's SQLite DateTime writes and reads back (values are UTC by contract)
    v = value.astimezone(timezone.utc) if value.tzinfo else value
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)


def _driver_params(conn: sa.Connection, sql: str, params: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """``sql`` and ``params`` as the DB-API driver takes them: SQLite gets datetimes as its text form."""
    if conn.dialect.name != "sqlite":
        return _NAMED.sub(r"%(\1)s", sql), params
    keys = [k for k in params[0] if k in DATETIME_COLUMNS]
    if keys:
        seen: dict[datetime, str] = {}
        params = [dict(p) for p in params]
        for p in params:
            for k in keys:
                v = p[k]
                if v is not None:
                    text = seen.get(v)
                    if text is None:
                        text = seen[v] = _sqlite_text(v)
                    p[k] = text
    return sql, params


def executemany(conn: sa.Connection, sql: str, params: list[dict[str, Any]]) -> None:
    """Run ``sql`` (with ``:name`` placeholders) once per params dict, straight through the driver.

    The hot path records thousands of rows a second; SQLAlchemy's per-row parameter processing
    would cost more than the database work, so these statements go to the DB-API directly.
    """
    if params:
        conn.exec_driver_sql(*_driver_params(conn, sql, params))


def execute(conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[tuple]:
    """Run one ``sql`` (``:name`` placeholders) straight through the driver; the rows it returns, as tuples."""
    if conn.dialect.name == "sqlite":
        params = {k: _sqlite_text(v) if isinstance(v, datetime) else v for k, v in params.items()}
    else:
        sql = _NAMED.sub(r"%(\1)s", sql)
    result = conn.exec_driver_sql(sql, params)
    return [tuple(r) for r in result] if result.returns_rows else []


def in_list(prefix: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """``(:p0, :p1, …)`` and its parameters, for an ``IN`` on the driver-level path."""
    params = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(":" + k for k in params) + ")", params


_NAMED = re.compile(r"(?<!:):(\w+)")


def append_log(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Append log rows in one statement and echo each as a JSON line."""
    if not rows:
        return
    executemany(conn, _INSERT_LOG, rows)
    if logger.isEnabledFor(logging.INFO):
        for row in rows:
            logger.info(log_line(row))


_INSERT_LOG = (f"INSERT INTO delivery_log ({', '.join(LOG_FIELDS)}) "
               f"VALUES ({', '.join(':' + f for f in LOG_FIELDS)})")


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
    # changes that set the same columns form a group; what the whole group sets alike is one
    # `UPDATE … WHERE id IN (…) [AND lease_token = fence] RETURNING id` (the fence and the row lock
    # in the same statement), and only the columns that differ go row by row
    groups: dict[frozenset[str], list[Change]] = {}
    for change in changes:
        groups.setdefault(frozenset(change.values), []).append(change)
    held: set[int] = set()
    for keys, group in groups.items():
        first = group[0].values
        common = {k: v for k, v in first.items() if all(c.values[k] == v for c in group)}
        varying = [k for k in keys if k not in common]
        sets = ", ".join([f"{k} = :v_{k}" for k in common] + ["updated_at = :v_updated_at"])
        values = {**{f"v_{k}": v for k, v in common.items()}, "v_updated_at": at}
        ids = [c.message["id"] for c in group]
        for start in range(0, len(ids), 900):
            ids_sql, params = in_list("i", ids[start:start + 900])
            if fence is None:
                execute(conn, f"UPDATE messages SET {sets} WHERE id IN {ids_sql}", {**params, **values})
                held.update(ids[start:start + 900])
            else:
                held.update(r[0] for r in execute(
                    conn, f"UPDATE messages SET {sets} WHERE id IN {ids_sql} AND lease_token = :fence RETURNING id",
                    {**params, **values, "fence": fence}))
        if varying:
            executemany(conn, f"UPDATE messages SET {', '.join(f'{k} = :{k}' for k in varying)} WHERE id = :_id",
                        [{"_id": c.message["id"], **{k: c.values[k] for k in varying}} for c in group
                         if c.message["id"] in held])
    changes = [c for c in changes if c.message["id"] in held]
    append_log(conn, [c.log_row(at, worker) for c in changes])
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
        ids_sql, params = in_list("e", enrollment_ids[start:start + 900])
        sets = ", ".join(f"{k} = :v_{k}" for k in values)
        rows = execute(conn, f"UPDATE messages SET {sets}, updated_at = :v_updated_at WHERE touch_index = :ti "
                             f"AND status = 'pending' AND enrollment_id IN {ids_sql} "
                             f"RETURNING id, contact_id, sequence, touch, channel, provider, attempt",
                       {**params, **{f"v_{k}": v for k, v in values.items()}, "v_updated_at": at, "ti": touch_index})
        append_log(conn, [{"at": at, "message_id": r[0], "contact_id": r[1], "sequence": r[2], "touch": r[3],
                           "channel": r[4], "provider": r[5], "event": event, "reason": reason, "attempt": r[6],
                           "provider_message_id": None, "worker": worker} for r in rows])
        changed += len(rows)
    return changed
