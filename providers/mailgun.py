"""Mailgun Messages API and webhooks (providers.md §10.5).

Webhook events → report (``reason`` is the :class:`~providers.email.EmailEvent` value):
``accepted`` → PENDING (queued); ``delivered`` → DELIVERED; ``failed`` with ``severity:
permanent`` and ``rejected`` → UNDELIVERED + ``recipient_blocked`` (bounced); ``failed``
with ``severity: temporary`` → PENDING (deferred: Mailgun retries itself);
``complained``/``unsubscribed`` → UNDELIVERED + ``recipient_blocked`` with reason
``complained``/``unsubscribed``, as in :mod:`providers.sendgrid`; ``opened``/``clicked`` →
:class:`~providers.base.EngagementEvent` (the event's ``id`` its id). Others are ignored.

Provider message ids are kept without angle brackets: the send reply says
``<id@domain>``, events say ``id@domain``.

Webhooks follow Mailgun's "Securing Webhooks" page: the body's ``signature`` block holds
``timestamp``, ``token`` and ``signature``, the hex HMAC-SHA256 of ``timestamp + token`` with the
account's *webhook signing key* (``webhook_signing_key``; not the API key). Events of a subaccount's
domain also carry ``parent-signature``, the same HMAC with the primary account's key, so either
account's key verifies them. The signature does not cover the event: a webhook is accepted only within
:data:`~providers.freshness.REPLAY_WINDOW` of its timestamp, and the engine refuses a token seen before.

UNVERIFIED, coded around: the success text ("Queued. Thank you.") is not read, only
``id``; a 400 saying "not a valid address" is taken as a bad recipient; 404 is taken as
an unknown sending domain (a setup fault, so the provider is blocked); Mailgun's retries of a
webhook are taken to carry a fresh timestamp and token (a retry signed over 5 minutes earlier
is refused).
"""
from __future__ import annotations

import hashlib
import hmac
import json

from .base import EngagementEvent, SendResult
from .email import EmailEvent, email_report, list_headers, sender_address, utc_from_timestamp
from .errors import AmbiguousSendError, PermanentRecipientError, ProviderBlockedError, ProviderConfigError
from .freshness import fresh
from .http import HttpCall, HttpProvider

__all__ = ["MailgunProvider"]

ENGAGEMENTS = {"opened": "open", "clicked": "click"}
REGIONS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}

EVENTS = {
    "accepted": EmailEvent.QUEUED,
    "delivered": EmailEvent.DELIVERED,
    "rejected": EmailEvent.BOUNCED,
    "complained": EmailEvent.COMPLAINED,
    "unsubscribed": EmailEvent.UNSUBSCRIBED,
}


class MailgunProvider(HttpProvider):
    """Email through ``POST /v3/{domain}/messages`` with basic auth ``api:<api_key>``."""

    type = "mailgun"
    channels = frozenset({"email"})
    pushes = frozenset({"receipts"})  # signed webhooks
    push_keys = ("webhook_signing_key", "webhook_key")
    required = ("api_key", "domain", "from")
    optional = ("region", "base_url", "webhook_signing_key", "webhook_key")

    def validate_settings(self) -> None:
        super().validate_settings()
        if self.settings.get("webhook_signing_key") and self.settings.get("webhook_key"):
            raise ProviderConfigError("webhook_key", "is another name for webhook_signing_key; set only "
                                                     "webhook_signing_key")
        sender_address(self.settings["from"])
        if (self.settings.get("region") or "us") not in REGIONS:
            raise ProviderConfigError("region", f"must be one of {', '.join(REGIONS)}, "
                                                f"not {self.settings['region']!r}")

    @property
    def base_url(self) -> str:
        return str(self.settings.get("base_url") or REGIONS[self.settings.get("region") or "us"]).rstrip("/")

    def build_request(self, message) -> HttpCall:
        data = {"from": self.settings["from"], "to": message.to, "subject": message.subject or "",
                "text": message.text}
        if message.html:
            data["html"] = message.html
        data.update({f"h:{name}": value for name, value in list_headers(message).items()})
        data["v:followup_id"] = message.message_id
        return HttpCall("POST", f"v3/{self.settings['domain']}/messages", data=data,
                        auth=("api", str(self.settings["api_key"])))

    def parse_response(self, message, response) -> SendResult:
        if response.ok:
            body = self.decode_json(response)
            if isinstance(body, dict) and body.get("id"):
                return SendResult(provider_message_id=str(body["id"]).strip("<>"))
            raise AmbiguousSendError(self.mask(f"HTTP {response.status_code} without a message id: "
                                               f"{response.text[:120]!r}"), provider=self.name)
        try:
            text = str(response.json().get("message") or response.text[:200])
        except (ValueError, AttributeError):
            text = response.text[:200]
        reason = self.mask(f"HTTP {response.status_code}: {text}")
        if response.status_code == 400 and "not a valid address" in text:
            raise PermanentRecipientError(reason, code=400, provider=self.name)
        if response.status_code == 404:
            raise ProviderBlockedError(reason, code=404, provider=self.name)
        self.raise_for_status(response, reason)

    # -- webhooks -------------------------------------------------------------------
    @property
    def signing_key(self) -> str | None:
        """The webhook signing key (``webhook_signing_key``, or its alias ``webhook_key``); never the API key."""
        key = self.settings.get("webhook_signing_key") or self.settings.get("webhook_key")
        return str(key) if key else None

    def verify_webhook(self, url, headers, body) -> bool:
        """Hex HMAC-SHA256 of ``timestamp + token`` with the signing key, as ``signature`` or
        ``parent-signature``, and a timestamp within :data:`~providers.freshness.REPLAY_WINDOW`."""
        key = self.signing_key
        try:
            sig = json.loads(body)["signature"]
            signed = f"{sig['timestamp']}{sig['token']}".encode()
            given = [str(sig[field]) for field in ("signature", "parent-signature") if sig.get(field)]
        except (ValueError, KeyError, TypeError):
            return False
        if not key or not fresh(sig["timestamp"]):
            return False
        expected = hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()
        return any(hmac.compare_digest(expected, candidate) for candidate in given)

    def webhook_token(self, headers, body) -> str | None:
        """The signature's ``token``: Mailgun makes a new one for every webhook."""
        return str(json.loads(body)["signature"]["token"])

    def parse_webhook(self, headers, body):
        """One webhook carries one event; see the module docstring for the mapping."""
        event = json.loads(body).get("event-data") or {}
        message_id = (event.get("message") or {}).get("headers", {}).get("message-id")
        if event.get("event") in ENGAGEMENTS:
            return [EngagementEvent(ENGAGEMENTS[event["event"]], str(message_id).strip("<>") if message_id else None,
                                    (event.get("user-variables") or {}).get("followup_id"),
                                    utc_from_timestamp(event.get("timestamp")), event.get("id"))]
        kind = EVENTS.get(event.get("event"))
        if event.get("event") == "failed":
            kind = EmailEvent.BOUNCED if event.get("severity") == "permanent" else EmailEvent.DEFERRED
        if kind is None:
            return []
        return [email_report(kind, provider_message_id=str(message_id).strip("<>") if message_id else None,
                             message_id=(event.get("user-variables") or {}).get("followup_id"),
                             at=utc_from_timestamp(event.get("timestamp")))]
