"""API keys: created once and shown once, stored as a SHA-256 hash, revoked by name.

Keys are 256 random bits, so a plain SHA-256 is enough (no slow hash needed: nothing to brute-force).
"""
from __future__ import annotations

import hashlib
import re
import secrets

import sqlalchemy as sa

from .clock import now
from .errors import InputError
from .models import ApiKey
from .sessions import end_key_sessions

__all__ = ["create_key", "revoke_key", "verify_key", "find_key", "hash_key", "PREFIX"]

PREFIX = "fu_"
api_keys = ApiKey.__table__
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8", errors="replace")).hexdigest()


def create_key(conn: sa.Connection, name: str) -> str:
    """Create the key NAME and return it (the only time it is ever shown).

    A revoked name may be created again (it gets a new key); an active one may not.
    """
    if not _NAME.match(name):
        raise InputError(f"{name!r} is not a key name; use letters, digits, '.', '_' or '-' (up to 100)")
    key = PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(sa.select(api_keys).where(api_keys.c.name == name)).mappings().first()
    if row and row["revoked_at"] is None:
        raise InputError(f"an API key named {name!r} already exists; revoke it first with `followup apikey revoke {name}`")
    values = {"key_hash": hash_key(key), "created_at": now(), "revoked_at": None}
    if row:
        conn.execute(sa.update(api_keys).where(api_keys.c.id == row["id"]).values(**values))
    else:
        conn.execute(sa.insert(api_keys).values(name=name, **values))
    return key


def revoke_key(conn: sa.Connection, name: str) -> None:
    """Revoke the key NAME at once: requests with it get 401 from then on, and the dashboard sessions opened
    with it end."""
    row = conn.execute(sa.select(api_keys).where(api_keys.c.name == name)).mappings().first()
    if row is None:
        raise InputError(f"no API key named {name!r}")
    if row["revoked_at"] is None:
        conn.execute(sa.update(api_keys).where(api_keys.c.id == row["id"]).values(revoked_at=now()))
    end_key_sessions(conn, row["id"])


def find_key(conn: sa.Connection, key: str | None) -> tuple[int, str] | None:
    """The id and name of the active key ``key``, or None."""
    if not key or not key.startswith(PREFIX) or len(key) > 200:
        return None
    row = conn.execute(sa.select(api_keys.c.id, api_keys.c.name).where(api_keys.c.key_hash == hash_key(key),
                                                                        api_keys.c.revoked_at.is_(None))).first()
    return (row.id, row.name) if row else None


def verify_key(conn: sa.Connection, key: str | None) -> str | None:
    """The name of the active key ``key``, or None."""
    found = find_key(conn, key)
    return found[1] if found else None
