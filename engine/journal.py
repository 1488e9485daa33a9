"""The delivery log's rows: a :class:`Change` and the log row that records it, and the JSON line echoed for each.

The statements that write them are :func:`engine.store.apply` and :func:`engine.store.append_log`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .text import mask_address

__all__ = ["Change", "LOG_FIELDS", "log_line", "log_lines"]

LOG_FIELDS = ("at", "message_id", "contact_id", "sequence", "touch", "channel", "provider", "event", "reason",
              "attempt", "provider_message_id", "worker")
_JSON = json.JSONEncoder(ensure_ascii=False)


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
    return log_lines([tuple(row.get(k) for k in LOG_FIELDS)])


def log_lines(rows: list[tuple]) -> str:
    """The JSON lines of log rows (in ``LOG_FIELDS`` order), one per row; the worker's name is the line's
    source, not part of it. A batch's rows share a few times and reasons: each is written (masked) once."""
    times: dict[Any, Any] = {}
    reasons: dict[str, str] = {}

    def time_text(at: Any) -> Any:
        if at not in times:
            times[at] = at.isoformat().replace("+00:00", "Z") if isinstance(at, datetime) else at
        return times[at]

    def masked(reason: str) -> str:
        if reason not in reasons:
            reasons[reason] = mask_address(reason)
        return reasons[reason]

    return "\n".join(_JSON.encode({"at": time_text(at), "message_id": message_id, "contact_id": contact_id,
                                   "sequence": sequence, "touch": touch, "channel": channel, "provider": provider,
                                   "event": event, "reason": None if reason is None else masked(reason),
                                   "attempt": attempt, "provider_message_id": pmid})
                     for at, message_id, contact_id, sequence, touch, channel, provider, event, reason, attempt, pmid, _
                     in rows)

