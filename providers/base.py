"""The provider interface: what the engine hands a provider and what it gets back.

Providers know nothing of the engine. They receive an :class:`OutgoingMessage` carrying
the engine's own message id, send it, and either return a :class:`SendResult` or raise
one of :mod:`providers.errors`.
"""
from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Mapping

from .errors import ProviderConfigError, ProviderError
from .lines import Line

__all__ = [
    "Channel",
    "OutgoingMessage",
    "SendResult",
    "DeliveryState",
    "DeliveryReport",
    "InboundMessage",
    "EngagementEvent",
    "LookupResult",
    "AccountState",
    "Provider",
    "mask_secret",
]

SECRET_KEYS = frozenset({"api_key", "password", "auth_token", "token", "secret", "signing_key", "webhook_key",
                         "webhook_signing_key", "callback_secret"})
#: the shortest ``callback_secret`` accepted: it is the only thing guarding an unsigned callback URL
MIN_CALLBACK_SECRET = 16


class Channel(str, enum.Enum):
    SMS = "sms"
    EMAIL = "email"


@dataclass(frozen=True)
class OutgoingMessage:
    """One message ready to leave. ``message_id`` is ours and stable across retries.

    ``sender``: the line to send it from, one of the provider's :attr:`Provider.lines`, chosen by the
    caller; None sends from the provider's default ``sender``.
    """

    message_id: str
    channel: str
    to: str
    text: str
    subject: str | None = None
    sender: str | None = None
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """An accepted send: the provider's id for it, and its cost and segments where given."""

    provider_message_id: str | None
    cost: float | None = None
    segments: int | None = None


class DeliveryState(str, enum.Enum):
    """Where a sent message stands at the provider.

    ``UNTRACKED``: the provider no longer reports on this id (too old, or an id it does not know).
    It says nothing about the handset: stop polling and keep the state already recorded.

    ``NOT_SENT``: the provider accepted the message but says it never sent it on (IPPanel's bulk states 8
    "insufficient credit" and 9 "system error"). Nothing reached an operator: it may be sent again.
    """

    PENDING = "pending"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    UNTRACKED = "untracked"
    NOT_SENT = "not_sent"


@dataclass(frozen=True)
class DeliveryReport:
    """A delivery receipt for one message, by the provider's id (or ours, where it tracks ours)."""

    provider_message_id: str | None
    state: DeliveryState
    reason: str | None = None
    at: datetime | None = None
    message_id: str | None = None
    #: the provider says this recipient is on the operators' advertising blacklist: no promotional
    #: line reaches them (a service line may)
    recipient_blocked: bool = False
    #: asking about this one id failed (the others in the batch were answered); ``state`` is PENDING
    error: ProviderError | None = None
    #: with ``NOT_SENT``: the account is why (no credit), so the provider should pause as a refused send would
    account_blocked: bool = False


@dataclass(frozen=True)
class InboundMessage:
    """A message a contact sent us (a reply, an opt-out)."""

    sender: str
    text: str
    at: datetime | None = None
    provider_message_id: str | None = None


@dataclass(frozen=True)
class EngagementEvent:
    """A reader opened a message or clicked a link in it, as the provider's own tracking saw it.

    ``kind`` is ``open`` or ``click``; ``event_id`` the provider's id of the event (the same event posted
    twice is recorded once); ``machine``: the provider says a machine did it (Apple Mail's privacy
    protection fetching every image, a link scanner)."""

    kind: str
    provider_message_id: str | None
    message_id: str | None = None
    at: datetime | None = None
    event_id: str | None = None
    machine: bool = False


@dataclass(frozen=True)
class LookupResult:
    """What a provider knows of a message by *our* id, after a crash left its fate unknown."""

    found: bool
    provider_message_id: str | None = None


@dataclass(frozen=True)
class AccountState:
    """What ``followup providers check`` reports: can this account send, and how much credit is left."""

    ok: bool
    detail: str
    credit: float | None = None


def mask_secret(value: str | None) -> str:
    """Show a secret as its first and last two characters, as Kavenegar's own SDK does."""
    if not value:
        return ""
    if len(value) <= 6:
        return "*" * len(value)
    return f"{value[:2]}{'*' * 8}{value[-2:]}"



def _seconds(value: Any) -> float:
    """A number of seconds from a setting (a YAML number, or its text from ``${ENV}``); NaN if it is none."""
    if isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")

class Provider:
    """Base class of every provider.

    Subclasses set ``type`` and ``channels``, list their settings in ``required`` and
    ``optional``, and implement :meth:`send`. The optional capabilities default to
    "not supported" so the engine can ask any provider about them.
    """

    type: ClassVar[str] = ""
    channels: ClassVar[frozenset[str]] = frozenset()
    required: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()
    #: True where :meth:`lookup` can find a message by our own id (safe reconciliation)
    supports_lookup: ClassVar[bool] = False
    #: what the provider can push to us: "receipts" and/or "inbound". A provider with ``callback_secret``
    #: among its settings pushes unsigned (:meth:`parse_callback`), any other signs (:meth:`verify_webhook`)
    pushes: ClassVar[frozenset[str]] = frozenset()
    #: the settings that make its pushes readable (any one of them; the secret of an unsigned callback URL, a
    #: webhook's verification key); empty where the required settings already do
    push_keys: ClassVar[tuple[str, ...]] = ()
    #: why a push the provider's panel offers is not taken (its payload is not documented), or None
    push_unsupported: ClassVar[str | None] = None
    #: the account's sender lines by class (the ``lines`` setting, where the provider takes one)
    lines: tuple[Line, ...] = ()

    COMMON: ClassVar[tuple[str, ...]] = ("name", "type", "rate", "timeout", "price_per_segment", "price_per_email")

    def __init__(self, name: str, settings: Mapping[str, Any]):
        self.name = name
        self.settings = dict(settings)
        self._lock = threading.Lock()
        self.validate_settings()

    # -- settings -------------------------------------------------------------
    def validate_settings(self) -> None:
        """Raise :class:`ProviderConfigError` for a missing or unknown setting."""
        allowed = set(self.COMMON) | set(self.required) | set(self.optional)
        for key in self.required:
            if self.settings.get(key) in (None, ""):
                raise ProviderConfigError(key, f"is required for a {self.type!r} provider")
        for key in self.settings:
            if key not in allowed:
                raise ProviderConfigError(
                    key, f"is not a setting of a {self.type!r} provider (known: {', '.join(sorted(allowed))})"
                )
        secret = self.settings.get("callback_secret")
        if secret is not None and len(str(secret)) < MIN_CALLBACK_SECRET:
            raise ProviderConfigError("callback_secret", f"must be at least {MIN_CALLBACK_SECRET} characters; make one "
                                      "with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        timeout = self.settings.get("timeout")
        if timeout is not None and not 0 < _seconds(timeout) <= 600:
            raise ProviderConfigError("timeout", f"{timeout!r} must be a number of seconds above 0 and at most 600, "
                                                 "e.g. timeout: 10 (the default)")

    @property
    def timeout(self) -> float:
        """Seconds each call may wait for the provider (connect and each read); 10 unless set."""
        return float(self.settings.get("timeout") or 10)

    def __repr__(self) -> str:
        shown = {k: (mask_secret(str(v)) if k in SECRET_KEYS else v) for k, v in self.settings.items()}
        return f"<{type(self).__name__} {self.name!r} {shown}>"

    # -- the one required operation --------------------------------------------
    def send(self, message: OutgoingMessage) -> SendResult:  # pragma: no cover - abstract
        """Send one message; return a :class:`SendResult` or raise a :class:`ProviderError`."""
        raise NotImplementedError

    # -- optional capabilities ------------------------------------------------
    def lookup(self, message_id: str) -> LookupResult:
        """Find a message by our own id. Only called where ``supports_lookup`` is True."""
        raise NotImplementedError(f"{self.type} cannot look messages up by our id")

    def delivery_status(self, provider_message_ids: list[str]) -> list[DeliveryReport]:
        """Poll final delivery states. Providers without polling return an empty list."""
        return []

    def inbound(self) -> list[InboundMessage]:
        """Fetch inbound messages (replies, opt-outs). Providers without it return an empty list."""
        return []

    def check(self) -> AccountState:
        """Ask the account's state (credentials, credit) where the API offers it."""
        return AccountState(ok=True, detail="no account check for this provider type")

    def verify_webhook(self, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        """True when a pushed webhook really comes from this provider (signature checked)."""
        return False

    def webhook_token(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """The single-use token a verified webhook's signature covers, or None where the provider signs none.

        The engine remembers each token for twice :data:`providers.freshness.REPLAY_WINDOW` and refuses
        a webhook whose token it has already seen.
        """
        return None

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryReport | InboundMessage]:
        """Turn a verified webhook body into delivery reports and inbound messages."""
        raise NotImplementedError(f"{self.type} does not push webhooks")

    def parse_callback(self, fields: Mapping[str, str]) -> list[DeliveryReport | InboundMessage]:
        """Turn the fields of a pushed callback (query string and form, merged) into reports and inbound
        messages. The panels sign nothing: the caller has already checked the URL's ``callback_secret``."""
        raise NotImplementedError(f"{self.type} pushes no callbacks")

    def close(self) -> None:
        """Release connections. Called once when the worker stops."""
