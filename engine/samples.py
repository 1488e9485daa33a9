"""The sample contact ``validate`` and ``preview`` render templates against.

Its extra columns (``contact.attrs``) are those real contacts have: every column seen in the most recent
:data:`RECENT_CONTACTS` contacts, each with the value of the most recent contact that has it, when the
database is reachable and migrated; plus the sequence's own ``sample:`` mapping, which wins.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, TypeVar

import sqlalchemy as sa

from .config import Config
from .db import SessionLimits, check_schema, make_engine, reading
from .errors import FollowupError
from .models import Contact
from .sequences import Sequence

__all__ = ["RECENT_CONTACTS", "database_attrs", "read_existing", "sample_contact"]

T = TypeVar("T")

#: how many of the newest contacts the sample's columns are taken from
RECENT_CONTACTS = 1000
#: a database that does not answer within this many seconds gives the sample no columns
_WAIT = SessionLimits(lock_timeout=5, statement_timeout=10, connect_timeout=5)


def read_existing(url: str, read: Callable[[sa.Connection], T]) -> T | None:
    """``read(conn)`` on the database at ``url``; None when it is not there yet (no file is ever created just to
    look into it), cannot be reached or is not migrated, so ``validate`` still checks everything else."""
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).is_file():
            return None
    try:
        engine = make_engine(url) if url.startswith("sqlite") else make_engine(url, _WAIT)
        check_schema(engine)
        with reading(engine) as conn:
            return read(conn)
    except (FollowupError, sa.exc.SQLAlchemyError, OSError, ValueError):
        return None


def database_attrs(url: str) -> dict[str, str]:
    """Each extra column of the most recent contacts with a value of it; ``{}`` when the database can't be read."""
    def read(conn: sa.Connection) -> dict[str, str]:
        column = Contact.__table__.c
        rows = conn.execute(sa.select(column.attrs).order_by(column.id.desc()).limit(RECENT_CONTACTS)).scalars()
        found: dict[str, str] = {}
        for attrs in rows:
            if isinstance(attrs, str):
                attrs = json.loads(attrs)
            for key, value in (attrs or {}).items():
                if value not in (None, ""):
                    found.setdefault(str(key), str(value))
        return found

    return read_existing(url, read) or {}


def sample_contact(config: Config, seq: Sequence | None = None, attrs: dict[str, str] | None = None) -> dict:
    """A made-up contact with ``attrs`` (from :func:`database_attrs`) and the sequence's ``sample:`` columns."""
    fa = config.settings.locale == "fa"
    return {"id": 0, "first_name": "سارا" if fa else "Sara", "last_name": "رضایی" if fa else "Smith",
            "phone": "+989121234567", "email": "sara@example.com", "timezone": config.settings.timezone.key,
            "locale": config.settings.locale, "tags": ";sample;",
            "attrs": {**(attrs or {}), **(seq.sample if seq else {})}}
