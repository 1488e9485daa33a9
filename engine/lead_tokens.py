"""The rep's lead page token: ``ID.EXPIRES.SIGNATURE``, the handoff's id, the Unix time it expires, and an
HMAC-SHA256 (the settings' ``secret_key``) over both and the handoff's ``token_nonce``. Clearing the nonce revokes
it; a new nonce (``followup lead link KEY --renew``) makes a new token and voids the old one. The page's form
carries a CSRF token derived from the page token, so a form posted from elsewhere is refused."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

import sqlalchemy as sa

from .clock import now, to_utc
from .config import Config
from .models import Handoff

__all__ = ["make_lead_token", "read_lead_token", "open_lead_token", "csrf_for", "revoke", "renew", "lead_url"]

handoffs = Handoff.__table__


def _sign(secret: str, text: str) -> str:
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()


def make_lead_token(secret: str, handoff_id: int, nonce: str, expires_at: datetime) -> str:
    """The page token of one handoff (one lead and its rep)."""
    stamp = int(to_utc(expires_at).timestamp())
    return f"{handoff_id}.{stamp}.{_sign(secret, f'lead:{handoff_id}:{stamp}:{nonce}')}"


def read_lead_token(conn: sa.Connection, secret: str | None, token: str) -> dict | None:
    """The handoff row a token opens, or None: forged, damaged, revoked or expired all read the same."""
    return open_lead_token(conn, secret, token)[0]


def open_lead_token(conn: sa.Connection, secret: str | None, token: str) -> tuple[dict | None, str]:
    """The handoff row a token opens and ``""``, or None and why: ``expired`` (a genuine token past its time:
    only its holder learns that) or ``invalid`` (forged, damaged or revoked read the same)."""
    parts = token.split(".")
    if not secret or len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or len(parts[0]) > 12:
        return None, "invalid"
    row = conn.execute(sa.select(handoffs).where(handoffs.c.id == int(parts[0]))).mappings().first()
    if row is None or not row["token_nonce"]:
        return None, "invalid"
    if not hmac.compare_digest(parts[2], _sign(secret, f"lead:{parts[0]}:{parts[1]}:{row['token_nonce']}")):
        return None, "invalid"
    expires = to_utc(row["token_expires_at"])
    if int(parts[1]) != int(expires.timestamp()):
        return None, "invalid"
    if expires <= now():
        return None, "expired"
    return dict(row), ""


def csrf_for(secret: str, token: str) -> str:
    """The form token bound to one page token."""
    return _sign(secret, f"csrf:{token}")


def lead_url(config: Config, handoff: dict) -> str | None:
    """The rep's page of a handoff (None without ``secret_key``); absolute when a public URL is set."""
    import os

    secret = config.settings.secret_key
    if not secret or not handoff.get("token_nonce"):
        return None
    token = make_lead_token(secret, handoff["id"], handoff["token_nonce"], handoff["token_expires_at"])
    base = os.environ.get("FOLLOWUP_PUBLIC_URL") or (config.settings.service or {}).get("public_url") or ""
    return f"{base.rstrip('/')}/leads/{token}"


def revoke(conn: sa.Connection, handoff_id: int) -> None:
    """The handoff's page token stops working."""
    conn.execute(sa.update(handoffs).where(handoffs.c.id == handoff_id).values(token_nonce=None))


def renew(conn: sa.Connection, config: Config, handoff_id: int) -> dict:
    """A new page token (the old one stops working), valid for ``sales.page_expires_after``; the row."""
    conn.execute(sa.update(handoffs).where(handoffs.c.id == handoff_id).values(
        token_nonce=secrets.token_hex(16), token_expires_at=now() + config.settings.sales.page_expires_after))
    return dict(conn.execute(sa.select(handoffs).where(handoffs.c.id == handoff_id)).mappings().one())
