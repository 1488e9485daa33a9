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


#: a line as ``json.dumps`` writes it, with ``%s`` holes: the values a batch's rows share are filled in once
#: per distinct set of them, leaving ``%%s`` for the ids, the attempt and the provider's id, which differ
#: row by row; the worker's name is the line's source, not part of it
_FORM = "{" + ", ".join(f'"{k}": ' + ("%%s" if k in ("message_id", "contact_id", "attempt", "provider_message_id")
                                     else "%s") for k in LOG_FIELDS[:-1]) + "}"


def log_lines(rows: list[tuple]) -> str:
    """The JSON lines of log rows (in ``LOG_FIELDS`` order), one per row.

    A batch's rows share most of their values (the time, the sequence, the event, often the reason): each
    set of those is encoded once (a reason masked once) into a line with blanks for the values that differ
    row by row, which are written as the numbers (or string) they are. A ``json`` encode of each row gives
    the same bytes and costs a whole tick of 4,000 messages 9-21% more CPU: the medians of five interleaved
    A/B runs of 7-9 rounds were +12% to +21%, and one tick's own lines run again took 116 ms against 15 ms,
    9% of the tick's CPU (``python -m bench.plain_ab --only log_lines``, SQLite, on a shared machine).
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
