"""Operator hours: a promotional touch on a promotional line waits for the hours the operators allow it.

The hours are the line's (:class:`providers.lines.OperatorHours`, Tehran time, 09:00–21:00 unless the
``lines`` setting says otherwise; the sources are in :mod:`providers.lines`). They apply to a message whose
touch is promotional and that would leave from a line listed as promotional. Informational touches, service
lines, a ``sender`` not listed among the ``lines`` (its class is unknown) and ops alerts (no touch) go out at
any hour. A message outside its line's hours is not dropped: the sender tries the next provider, and when
none can take it now it is deferred to the earliest moment one opens.

This is apart from the send window (:mod:`engine.window`), which is the business's choice in the contact's
timezone; a message must fit both.
"""
from __future__ import annotations

from datetime import datetime

from providers.base import OutgoingMessage, Provider
from providers.lines import Line, LineClass

from .kinds import PROMOTIONAL, sender_line

__all__ = ["line_for", "closed_until"]


def line_for(provider: Provider, kind: str) -> Line | None:
    """The listed line a ``kind`` message leaves ``provider`` from; None when that line is not listed."""
    number = sender_line(provider, kind) or provider.settings.get("sender")
    return next((line for line in provider.lines if line.number == str(number)), None)


def closed_until(provider: Provider, message: OutgoingMessage, at: datetime) -> tuple[datetime, str] | None:
    """When ``message``'s line at ``provider`` opens and why it waits, or None when it may go out at ``at``."""
    if message.metadata.get("kind") != PROMOTIONAL:
        return None
    line = line_for(provider, PROMOTIONAL)
    if line is None or line.line_class is not LineClass.PROMOTIONAL or line.hours is None:
        return None
    opens = line.hours.opens(at)
    if opens is None:
        return None
    return opens, f"operator hours: promotional line {line.number} of {provider.name} sends {line.hours.describe()}"
