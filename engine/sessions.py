"""Dashboard sessions: one row per login, checked on every request, ended by logout, key revocation or a new
password.

The cookie holds a random token; the row stores only its SHA-256 (a 256-bit token needs no slow hash). A session
opened with the dashboard password also stores ``HMAC(token, password)``: once the password changes the check
fails, across restarts, and the database alone does not give the password away. A session opened with an API key
names that key; revoking the key deletes it (:func:`end_key_sessions`). Idle time is measured from ``last_seen_at``, which is
written at most once a minute (:data:`TOUCH_EVERY`) so that reading a page is not a write.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from .clock import now, to_utc
from .db import reading
from .models import DashboardSession

__all__ = ["SessionPolicy", "open_session", "check_session", "end_session", "end_key_sessions", "TOUCH_EVERY"]

sessions = DashboardSession.__table__
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives: ``idle`` since it was last used, ``max`` since it was opened."""

    idle: timedelta = timedelta(hours=8)
    max: timedelta = timedelta(days=7)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


def _password_check(token: str, password: str) -> str:
    return hmac.new(token.encode(), password.encode(), hashlib.sha256).hexdigest()


def open_session(conn: sa.Connection, who: str, policy: SessionPolicy, *, password: str | None = None,
                 api_key_id: int | None = None) -> str:
    """Store a new session for ``who`` and return its token (the cookie value). Expired rows are removed."""
    at = now()
    conn.execute(sa.delete(sessions).where(sa.or_(sessions.c.expires_at < at,
                                                  sessions.c.last_seen_at < at - policy.idle)))
    token = secrets.token_urlsafe(32)
    conn.execute(sa.insert(sessions).values(
        id=_hash(token), who=who, api_key_id=api_key_id,
        password_check=_password_check(token, password) if password is not None else None,
        created_at=at, last_seen_at=at, expires_at=at + policy.max))
    return token


def check_session(engine: sa.Engine, token: str | None, policy: SessionPolicy, password: str | None) -> str | None:
    """Who the session ``token`` belongs to, or None if it is unknown, ended, expired or its key or password
    changed. ``password`` is the dashboard password in force now. Reads only, unless last_seen is due."""
    if not token or len(token) > 100:
        return None
    query = sa.select(sessions).where(sessions.c.id == _hash(token))
    with reading(engine) as conn:
        row = conn.execute(query).mappings().first()
    if row is None or not _alive(row, token, policy, password):
        return None
    at = now()
    if at - to_utc(row["last_seen_at"]) >= TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(sa.update(sessions).where(sessions.c.id == row["id"]).values(last_seen_at=at))
    return row["who"]


def _alive(row: sa.RowMapping, token: str, policy: SessionPolicy, password: str | None) -> bool:
    at = now()
    if to_utc(row["expires_at"]) <= at or to_utc(row["last_seen_at"]) + policy.idle <= at:
        return False
    if row["password_check"] is not None:
        return password is not None and hmac.compare_digest(row["password_check"], _password_check(token, password))
    return row["api_key_id"] is not None


def end_session(conn: sa.Connection, token: str | None) -> None:
    """End the session ``token`` (logout); an unknown token is ignored."""
    if token:
        conn.execute(sa.delete(sessions).where(sessions.c.id == _hash(token)))


def end_key_sessions(conn: sa.Connection, api_key_id: int) -> int:
    """End every session opened with the API key ``api_key_id``; return how many."""
    return conn.execute(sa.delete(sessions).where(sessions.c.api_key_id == api_key_id)).rowcount
