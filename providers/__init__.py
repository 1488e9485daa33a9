"""Message providers: SMS panels, email services and the sandbox ones.

This package imports nothing from ``engine``: a provider receives an
:class:`OutgoingMessage` and returns a :class:`SendResult` or raises a
:class:`ProviderError` subclass.
"""
from .base import (
    AccountState,
    Channel,
    DeliveryReport,
    DeliveryState,
    InboundMessage,
    LookupResult,
    OutgoingMessage,
    Provider,
    SendResult,
    mask_secret,
)
from .errors import (
    AmbiguousSendError,
    PermanentContentError,
    PermanentError,
    PermanentRecipientError,
    ProviderBlockedError,
    ProviderConfigError,
    ProviderError,
    ProviderSetupError,
    RateLimitedError,
    RecipientBlacklistedError,
    TransientError,
)
from .lines import Line, LineClass
from .registry import create_provider, known_types, provider_class

__all__ = [
    "AccountState",
    "AmbiguousSendError",
    "Channel",
    "DeliveryReport",
    "DeliveryState",
    "InboundMessage",
    "Line",
    "LineClass",
    "LookupResult",
    "OutgoingMessage",
    "PermanentContentError",
    "PermanentError",
    "PermanentRecipientError",
    "Provider",
    "ProviderBlockedError",
    "ProviderConfigError",
    "ProviderError",
    "ProviderSetupError",
    "RateLimitedError",
    "RecipientBlacklistedError",
    "SendResult",
    "TransientError",
    "create_provider",
    "known_types",
    "mask_secret",
    "provider_class",
]
