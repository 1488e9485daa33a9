"""``followup export contacts|messages --csv FILE``: the store as a spreadsheet can open it, safely.

* A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is written with a leading
  ``'`` so a spreadsheet shows it as text instead of running it as a formula (CSV injection). A cell that is
  only a number (``+989121234567``, ``-3``) cannot run anything and is written as it is.
* The file is written next to FILE under a temporary name and renamed over FILE only once every row is
  written: a failure leaves no half-written FILE (and an existing FILE untouched).
* UTF-8 with a byte-order mark, so spreadsheet programs read Persian text right; ``contacts import`` reads it back.
"""
from __future__ import annotations

import csv
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import sqlalchemy as sa

from .clock import to_utc
from .errors import InputError
from .models import Contact, Message

__all__ = ["EXPORTS", "export_csv", "safe_cell"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
CONTACT_FIELDS = ("id", "external_id", "phone", "email", "first_name", "last_name", "timezone", "locale", "tags",
                  "sms_suppressed", "email_suppressed", "created_at", "updated_at")
MESSAGE_FIELDS = ("id", "contact_id", "enrollment_id", "sequence", "touch", "channel", "status", "due_at", "sent_at",
                  "attempt", "provider", "provider_message_id", "segments", "cost", "reason", "updated_at")


def safe_cell(value: Any) -> Any:
    """A value as a CSV cell: dates in ISO UTC, text that a spreadsheet would run as a formula quoted with ``'``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return to_utc(value).isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def _contacts(conn: sa.Connection) -> tuple[list[str], Iterator[list[Any]]]:
    table = Contact.__table__
    keys: set[str] = set()
    for attrs in conn.execute(sa.select(table.c.attrs)).scalars():
        keys.update(attrs or {})
    extra = sorted(keys - set(CONTACT_FIELDS))

    def rows() -> Iterator[list[Any]]:
        for row in conn.execution_options(yield_per=1000).execute(sa.select(table).order_by(table.c.id)).mappings():
            values = [";".join(t for t in row["tags"].split(";") if t) if k == "tags" else row[k]
                      for k in CONTACT_FIELDS]
            yield values + [(row["attrs"] or {}).get(k) for k in extra]

    return list(CONTACT_FIELDS) + extra, rows()


def _messages(conn: sa.Connection) -> tuple[list[str], Iterator[list[Any]]]:
    table = Message.__table__
    query = sa.select(*(table.c[k] for k in MESSAGE_FIELDS)).order_by(table.c.id)
    return list(MESSAGE_FIELDS), (list(r) for r in conn.execution_options(yield_per=1000).execute(query))


#: what ``followup export`` can write: name → (header, rows)
EXPORTS: dict[str, Callable[[sa.Connection], tuple[list[str], Iterable[list[Any]]]]] = {
    "contacts": _contacts, "messages": _messages}


def export_csv(conn: sa.Connection, what: str, path: Path) -> int:
    """Write ``what`` (contacts or messages) to ``path`` atomically; return the number of rows written."""
    if what not in EXPORTS:
        raise InputError(f"nothing called {what!r} to export; use one of {', '.join(EXPORTS)}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{path}: the folder {folder} does not exist; create it or give another path")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file name, e.g. {path / (what + '.csv')}")
    header, rows = EXPORTS[what](conn)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for row in rows:
                writer.writerow([safe_cell(v) for v in row])
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
