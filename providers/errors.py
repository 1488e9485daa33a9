"""The one error taxonomy every provider speaks.

Each reply from a provider maps to exactly one outcome: an accepted send returns a
:class:`~providers.base.SendResult`; everything else raises one of these::

    ProviderError                      a send did not go through
    ├── TransientError                 try again soon (5xx, connection refused, connect timeout)
    │   └── RateLimitedError           try again after ``retry_after`` seconds (HTTP 429, "too many calls")
    ├── PermanentError                 never retry this message
    │   ├── PermanentRecipientError    the recipient can't get it: suppress them on this channel
    │   │   └── RecipientBlacklistedError  on the operators' advertising blacklist: no promotional
    │   │                                  line reaches them, a service line may
    │   └── PermanentContentError      the text is refused: fix the template; the sequence goes on
    ├── ProviderBlockedError           the account can't send (credit, key, line, IP): pause the provider
    │   └── ProviderSetupError         our settings don't fit the provider (sender/route refused, endpoint
    │                                  moved): pause it and fail over until someone fixes the settings
    └── AmbiguousSendError             the request left and its fate is unknown: never resend blindly

:class:`ProviderConfigError` stands outside the tree on purpose: a bad setting is found
at start-up and is never retried or swallowed as a send failure.
"""
from __future__ import annotations

__all__ = [
    "ProviderError",
    "TransientError",
    "RateLimitedError",
    "PermanentError",
    "PermanentRecipientError",
    "RecipientBlacklistedError",
    "PermanentContentError",
    "ProviderBlockedError",
    "ProviderSetupError",
    "AmbiguousSendError",
    "ProviderConfigError",
]


class ProviderError(Exception):
    """A send did not go through. ``code`` is the provider's own code, kept for ops."""

    #: the outcome name stored in the delivery log
    outcome = "error"

    def __init__(self, reason: str, *, code: str | int | None = None, provider: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.code = None if code is None else str(code)
        self.provider = provider

    def __str__(self) -> str:
        head = f"[{self.code}] " if self.code else ""
        return f"{head}{self.reason}"


class TransientError(ProviderError):
    """A passing fault: retry with backoff. ``retry_after`` is a hint in seconds, if the provider gave one."""

    outcome = "transient"

    def __init__(self, reason: str, *, retry_after: float | None = None, **kw):
        super().__init__(reason, **kw)
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    """The provider asked us to slow down; wait ``retry_after`` seconds when given."""

    outcome = "rate_limited"


class PermanentError(ProviderError):
    """Retrying this message can never succeed."""

    outcome = "permanent"


class PermanentRecipientError(PermanentError):
    """The recipient can't receive on this channel (invalid, opted out, blacklisted)."""

    outcome = "permanent_recipient"


class RecipientBlacklistedError(PermanentRecipientError):
    """The recipient is on the operators' advertising blacklist (MCI 8999, Irancell 5005, ``*800#``):
    no promotional line can reach them; informational text from a service line still may."""

    outcome = "recipient_blacklisted"


class PermanentContentError(PermanentError):
    """The provider refused the content (too long, banned word or link, missing opt-out text)."""

    outcome = "permanent_content"


class ProviderBlockedError(ProviderError):
    """The account can't send at all right now (no credit, bad key, bad line, IP not allowed)."""

    outcome = "provider_blocked"


class ProviderSetupError(ProviderBlockedError):
    """The provider refuses the way we send, not this message or recipient: a sender or route it won't
    use for this destination, or an endpoint that redirects elsewhere. Another provider may still send."""

    outcome = "provider_setup"


class AmbiguousSendError(ProviderError):
    """The request was sent but its fate is unknown: a read timeout or reset after POST, or a server error
    from a provider that has no idempotency key (a resend could deliver twice).

    ``looked_up``: the adapter already asked the provider for this message by our id and the answer
    settled nothing (a "duplicate" it cannot find), so looking it up again tells nothing new.
    """

    outcome = "ambiguous"

    def __init__(self, reason: str, *, looked_up: bool = False, **kw):
        super().__init__(reason, **kw)
        self.looked_up = looked_up


class ProviderConfigError(ValueError):
    """A provider's settings are wrong. ``key`` names the setting; the message says how to fix it."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message
