"""What the email providers share: the sender address, list headers and one event vocabulary.

SMTP, SendGrid and Mailgun all need the same three things: the ``from`` setting split
into name and address, the extra headers of a message (RFC 8058 one-click unsubscribe
built from metadata when the engine did not pass the headers itself), and a mapping of
their vendor events onto :class:`EmailEvent`, turned into a :class:`DeliveryReport` by
:func:`email_report`.
"""
from __future__ import annotations

import enum
from datetime import datetime, timezone
from email.utils import parseaddr
from typing import Any

from .base import DeliveryReport, DeliveryState, OutgoingMessage
from .errors import ProviderConfigError

__all__ = ["EmailEvent", "email_report", "list_headers", "sender_address", "utc_from_timestamp"]


class EmailEvent(str, enum.Enum):
    """Vendor email events, normalised (providers.md §10.6). The value is the report's ``reason``."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"


#: event → (delivery state, the recipient must be suppressed on this channel)
_OUTCOME = {
    EmailEvent.QUEUED: (DeliveryState.PENDING, False),
    EmailEvent.DEFERRED: (DeliveryState.PENDING, False),
    EmailEvent.DELIVERED: (DeliveryState.DELIVERED, False),
    EmailEvent.BOUNCED: (DeliveryState.UNDELIVERED, True),
    # a spam complaint or an unsubscribe arrives after delivery; we report it as UNDELIVERED with
    # recipient_blocked so the engine's one state-change path suppresses (unsubscribes) the contact
    EmailEvent.COMPLAINED: (DeliveryState.UNDELIVERED, True),
    EmailEvent.UNSUBSCRIBED: (DeliveryState.UNDELIVERED, True),
}


def email_report(event: EmailEvent, *, provider_message_id: str | None, message_id: str | None,
                 at: datetime | None, blocked: bool | None = None) -> DeliveryReport:
    """One :class:`DeliveryReport` for a normalised event; ``reason`` is the event's value."""
    state, suppress = _OUTCOME[event]
    return DeliveryReport(provider_message_id=provider_message_id, state=state, reason=event.value, at=at,
                          message_id=message_id, recipient_blocked=suppress if blocked is None else blocked)


def sender_address(value: Any) -> tuple[str, str]:
    """The ``from`` setting as ``(display name, address)``; a config error when it has no address."""
    name, address = parseaddr(str(value or ""))
    if "@" not in address:
        raise ProviderConfigError("from", f"{value!r} is not an email address; write it like "
                                          "'Shop <news@example.com>' or news@example.com")
    return name, address


def list_headers(message: OutgoingMessage) -> dict[str, str]:
    """The message's own headers, plus RFC 8058 unsubscribe headers built from metadata if missing.

    The engine either passes ``List-Unsubscribe``/``List-Unsubscribe-Post`` in ``message.headers``
    or ``unsubscribe_url``/``unsubscribe_mailto`` in ``message.metadata``; both work.
    """
    headers = {str(k): str(v) for k, v in message.headers.items()}
    if any(k.lower() == "list-unsubscribe" for k in headers):
        return headers
    url = message.metadata.get("unsubscribe_url")
    mailto = message.metadata.get("unsubscribe_mailto")
    targets = []
    if url:
        targets.append(f"<{url}>")
    if mailto:
        targets.append(f"<{mailto if mailto.startswith('mailto:') else 'mailto:' + mailto}>")
    if targets:
        headers["List-Unsubscribe"] = ", ".join(targets)
    if url:  # one-click needs an HTTP(S) target; with a mailto alone the Post header is ignored
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def utc_from_timestamp(value: Any) -> datetime | None:
    """A Unix timestamp (int, float or numeric string) as an aware UTC datetime; None if absent or bad."""
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
