"""Single-use webhook tokens: each is remembered until its replay window has passed, and refused when seen again.

A provider whose signature covers a token (Mailgun) names it through ``Provider.webhook_token``. The
token is claimed in the transaction that applies the webhook, so a webhook that fails (a 500, which the
provider retries) leaves its token unclaimed; two deliveries at once meet at the primary key.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

import sqlalchemy as sa

from providers.freshness import REPLAY_WINDOW

from .clock import now
from .models import WebhookToken

__all__ = ["TokenReused", "claim_token", "KEEP_FOR"]

tokens = WebhookToken.__table__
#: a token signed up to REPLAY_WINDOW in the future stays acceptable until twice the window from now
KEEP_FOR = timedelta(seconds=2 * REPLAY_WINDOW)


class TokenReused(Exception):
    """This provider's webhook token was already used: the request is a replay."""


def claim_token(conn: sa.Connection, provider: str, token: str) -> None:
    """Record ``token`` as used by ``provider`` (forgetting expired ones), or raise :class:`TokenReused`.

    Raising leaves the transaction to be rolled back by the caller's ``engine.begin()`` block.
    """
    at = now()
    conn.execute(sa.delete(tokens).where(tokens.c.expires_at < at))
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    try:
        conn.execute(sa.insert(tokens).values(provider=provider, token=digest, expires_at=at + KEEP_FOR))
    except sa.exc.IntegrityError as err:
        raise TokenReused(f"{provider}: webhook token already used") from err
