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

__all__ = ["Change", "apply", "append_log", "executemany", "LOG_FIELDS", "log_line"]

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


def executemany(conn: sa.Connection, sql: str, params: list[dict[str, Any]]) -> None:
    """Run ``sql`` (with ``:name`` placeholders) once per params dict, straight through the driver.

    The hot path records thousands of rows a second; SQLAlchemy's per-row parameter processing
    would cost more than the database work, so these statements go to the DB-API directly.
    """
    if not params:
        return
    if conn.dialect.name == "sqlite":
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
    else:
        sql = _NAMED.sub(r"%(\1)s", sql)
    conn.exec_driver_sql(sql, params)


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
    if fence is not None:
        ids = [c.message["id"] for c in changes]
        held = set()
        for chunk in range(0, len(ids), 900):
            part = ids[chunk:chunk + 900]
            query = sa.select(messages.c.id).where(messages.c.id.in_(part), messages.c.lease_token == fence)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            held.update(conn.execute(query).scalars())
        changes = [c for c in changes if c.message["id"] in held]
    # changes that set the very same values (a batch going to `sending`) become one UPDATE ... IN;
    # the rest are grouped by the columns they set and sent as one executemany per group
    same: dict[tuple, list[int]] = {}
    for change in changes:
        values = {**change.values, "updated_at": at}
        same.setdefault(tuple(sorted(values.items())), []).append(change.message["id"])
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for items, ids in same.items():
        values = dict(items)
        if len(ids) > 1:
            for start in range(0, len(ids), 900):
                conn.execute(sa.update(messages).where(messages.c.id.in_(ids[start:start + 900])).values(**values))
            continue
        groups.setdefault(tuple(sorted(values)), []).append({"_id": ids[0], **values})
    for keys, params in groups.items():
        sets = ", ".join(f"{k} = :{k}" for k in keys)
        executemany(conn, f"UPDATE messages SET {sets} WHERE id = :_id", params)
    append_log(conn, [c.log_row(at, worker) for c in changes])
    return changes
