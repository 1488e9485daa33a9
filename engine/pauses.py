"""Pausing a provider for the whole cluster: its ``provider_states`` row and a ``provider_paused`` log row.

The dispatcher pauses a provider that refused a send for its account (no credit, a bad key, a refused line);
the delivery poller pauses one whose receipt says an accepted message was never sent for that reason. While
paused, no worker sends through it: messages fail over to the next provider, or wait.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from .journal import append_log
from .models import ProviderState

__all__ = ["pause_providers"]

provider_states = ProviderState.__table__


def pause_providers(conn: sa.Connection, blocked: dict[str, str], *, at: datetime, seconds: float,
                    worker: str | None) -> None:
    """Pause each provider of ``blocked`` (name → why) for ``seconds`` from ``at``, and log each pause."""
    until = at + timedelta(seconds=seconds)
    for name, reason in blocked.items():
        values = dict(state="paused", reason=reason[:500], paused_until=until, updated_at=at)
        if conn.execute(sa.update(provider_states).where(provider_states.c.name == name).values(**values)).rowcount == 0:
            conn.execute(sa.insert(provider_states).values(name=name, **values))
        append_log(conn, [dict(at=at, message_id=None, contact_id=None, sequence=None, touch=None, channel=None,
                               provider=name, event="provider_paused", attempt=0, provider_message_id=None,
                               reason=f"{reason}; paused until {until:%Y-%m-%d %H:%M} UTC "
                                      f"(or `followup providers resume {name}`)", worker=worker)])
