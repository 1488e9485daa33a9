"""Provider pauses, for the whole cluster: the one place that says whether a provider is paused now.

A provider is paused while its ``provider_states`` row says ``paused`` and its ``paused_until`` is
unset (until resumed by hand) or still ahead. An expired pause needs no write to end.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..clock import now, to_utc
from ..models import ProviderState
from .log import append_log

__all__ = ["Pause", "active_pauses", "pause_providers", "pause_text", "resume_provider", "PAUSED", "ACTIVE"]

provider_states = ProviderState.__table__
PAUSED = "paused"
ACTIVE = "active"


@dataclass(frozen=True)
class Pause:
    """A provider paused now: until when (None: until resumed by hand) and why."""

    name: str
    until: datetime | None
    reason: str | None


def active_pauses(conn: sa.Connection, at: datetime | None = None) -> dict[str, Pause]:
    """The providers paused at ``at`` (now by default), by name."""
    at = at or now()
    out = {}
    for name, until, reason in conn.execute(sa.select(provider_states.c.name, provider_states.c.paused_until,
                                                      provider_states.c.reason)
                                            .where(provider_states.c.state == PAUSED)):
        until = to_utc(until)
        if until is None or until > at:
            out[name] = Pause(name, until, reason)
    return out


def pause_providers(conn: sa.Connection, blocked: dict[str, str], *, until: datetime, at: datetime,
                    worker: str | None) -> None:
    """Pause each provider of ``blocked`` (name → why) until ``until``, and log each pause."""
    for name, reason in blocked.items():
        values = dict(state=PAUSED, reason=reason[:500], paused_until=until, updated_at=at)
        if conn.execute(sa.update(provider_states).where(provider_states.c.name == name).values(**values)).rowcount == 0:
            conn.execute(sa.insert(provider_states).values(name=name, **values))
        append_log(conn, [dict(at=at, message_id=None, contact_id=None, sequence=None, touch=None, channel=None,
                               provider=name, event="provider_paused", attempt=0, provider_message_id=None,
                               reason=f"{reason}; paused until {until:%Y-%m-%d %H:%M} UTC "
                                      f"(or `followup providers resume {name}`)", worker=worker)])


def resume_provider(conn: sa.Connection, name: str, *, reason: str = "resumed by hand") -> None:
    """Lift the pause on provider ``name`` now."""
    conn.execute(sa.update(provider_states).where(provider_states.c.name == name)
                 .values(state=ACTIVE, paused_until=None, reason=reason, updated_at=now()))


def pause_text(pause: Pause) -> str:
    """``paused until 2026-11-28 09:00 UTC``, or ``paused until resumed`` for a pause without an end."""
    return f"paused until {pause.until:%Y-%m-%d %H:%M} UTC" if pause.until else "paused until resumed"
