"""SendGrid v3 Mail Send and the Event Webhook (providers.md §10.4).

Event webhook → report (``reason`` is the :class:`~providers.email.EmailEvent` value):

* ``processed``/``deferred`` → PENDING; ``delivered`` → DELIVERED;
* ``bounce``/``dropped`` → UNDELIVERED, ``recipient_blocked`` (a ``bounce`` of ``type: blocked``,
  SendGrid's soft block, is not a recipient fault and does not suppress);
* ``spamreport`` → UNDELIVERED + ``recipient_blocked`` with reason ``complained``, and
  ``unsubscribe``/``group_unsubscribe`` the same with reason ``unsubscribed``: the engine then
  unsubscribes the contact through its one state-change path;
* ``open`` and ``click`` → :class:`~providers.base.EngagementEvent` (``sg_event_id`` its id; an open with
  ``sg_machine_open: true``, Apple Mail's privacy protection, is a machine's);
* ``group_resubscribe`` and unknown events are ignored.

UNVERIFIED, coded around:

* the message id comes in the ``X-Message-Id`` header of the 202; absent → ``provider_message_id=None``;
* ``sg_message_id`` in events starts with that id followed by ``.filter…``; we keep the part before
  the first dot (reports also carry our id from ``custom_args.followup_id``, which is reliable);
* ``X-RateLimit-Reset`` (a Unix time) on a 429 without ``Retry-After``;
* a 400 whose error ``field`` is ``personalizations.N.to…`` means a bad recipient address.

The Signed Event Webhook follows SendGrid's own helper (sendgrid-python
``sendgrid/helpers/eventwebhook/__init__.py``): headers ``X-Twilio-Email-Event-Webhook-Signature``
(base64 DER ECDSA) and ``…-Timestamp``, signed over ``timestamp + body`` with SHA-256 on P-256;
``webhook_key`` is the base64 DER public key from the SendGrid console (a PEM block works too).
Beyond the helper, a timestamp outside :data:`~providers.freshness.REPLAY_WINDOW` is refused.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import time

from requests.structures import CaseInsensitiveDict

from .base import EngagementEvent, SendResult
from .email import EmailEvent, email_report, list_headers, sender_address, utc_from_timestamp
from .errors import PermanentRecipientError, RateLimitedError
from .freshness import fresh
from .http import HttpCall, HttpProvider

__all__ = ["SendGridProvider"]

logger = logging.getLogger("followup.providers")

EVENTS = {
    "processed": EmailEvent.QUEUED,
    "deferred": EmailEvent.DEFERRED,
    "delivered": EmailEvent.DELIVERED,
    "bounce": EmailEvent.BOUNCED,
    "dropped": EmailEvent.BOUNCED,
    "spamreport": EmailEvent.COMPLAINED,
    "unsubscribe": EmailEvent.UNSUBSCRIBED,
    "group_unsubscribe": EmailEvent.UNSUBSCRIBED,
}

_RECIPIENT_FIELD = re.compile(r"^personalizations\.\d+\.to\b")


class SendGridProvider(HttpProvider):
    """Email through SendGrid's ``POST /v3/mail/send`` with a Bearer API key."""

    type = "sendgrid"
    channels = frozenset({"email"})
    pushes = frozenset({"receipts"})  # the signed Event Webhook
    push_keys = ("webhook_key",)
    required = ("api_key", "from")
    optional = ("base_url", "webhook_key")
    default_base_url = "https://api.sendgrid.com"

    def validate_settings(self) -> None:
        super().validate_settings()
        sender_address(self.settings["from"])

    def build_request(self, message) -> HttpCall:
        name, address = sender_address(self.settings["from"])
        content = [{"type": "text/plain", "value": message.text}]
        if message.html:
            content.append({"type": "text/html", "value": message.html})
        payload = {
            "personalizations": [{"to": [{"email": message.to}]}],
            "from": {"email": address, **({"name": name} if name else {})},
            "subject": message.subject or "",
            "content": content,
            "custom_args": {"followup_id": message.message_id},
        }
        headers = list_headers(message)
        if headers:
            payload["headers"] = headers
        return HttpCall("POST", "v3/mail/send", json=payload,
                        headers={"Authorization": f"Bearer {self.settings['api_key']}"})

    def parse_response(self, message, response) -> SendResult:
        if response.ok:  # 202: queued; the body is empty and not read
            return SendResult(provider_message_id=response.headers.get("X-Message-Id") or None)
        errors = _errors(response)
        reason = f"HTTP {response.status_code}: " + ("; ".join(e.get("message", "") for e in errors)
                                                     or response.text[:200])
        if response.status_code == 400 and any(_RECIPIENT_FIELD.match(str(e.get("field") or "")) for e in errors):
            raise PermanentRecipientError(self.mask(reason), code=400, provider=self.name)
        reset = response.headers.get("X-RateLimit-Reset")
        if response.status_code == 429 and not response.headers.get("Retry-After") and reset:
            try:
                wait = max(0.0, float(reset) - time.time())
            except ValueError:
                wait = None
            raise RateLimitedError(self.mask(reason), retry_after=wait, code=429, provider=self.name)
        self.raise_for_status(response, reason)

    # -- event webhook --------------------------------------------------------------
    def verify_webhook(self, url, headers, body) -> bool:
        """Check the ECDSA signature of the Signed Event Webhook and that its timestamp is fresh.

        False without a key, with a stale timestamp (:mod:`providers.freshness`), or without the
        ``cryptography`` package (a runtime dependency; its absence is logged as an error).
        """
        key = self.settings.get("webhook_key")
        headers = CaseInsensitiveDict(headers)
        signature = headers.get("X-Twilio-Email-Event-Webhook-Signature")
        timestamp = headers.get("X-Twilio-Email-Event-Webhook-Timestamp")
        if not (key and signature and timestamp) or not fresh(timestamp):
            return False
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec
        except ImportError:
            logger.error("provider %s: SendGrid event signatures need the 'cryptography' package, which is "
                         "not installed; every SendGrid event is refused until it is (pip install cryptography)",
                         self.name)
            return False
        try:
            if "BEGIN PUBLIC KEY" in key:
                public = serialization.load_pem_public_key(key.encode())
            else:
                public = serialization.load_der_public_key(base64.b64decode(key))
            public.verify(base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError, TypeError, AttributeError):
            return False
        return True

    def parse_webhook(self, headers, body):
        """Delivery, suppression, open and click events of a JSON event array; see the module docstring."""
        events = json.loads(body)
        reports = []
        for event in events if isinstance(events, list) else [events]:
            if not isinstance(event, dict):
                continue
            provider_id = str(event.get("sg_message_id") or "").split(".")[0] or None
            ours = event.get("followup_id") or (event.get("custom_args") or {}).get("followup_id")
            at = utc_from_timestamp(event.get("timestamp"))
            if event.get("event") in ("open", "click"):
                reports.append(EngagementEvent(event["event"], provider_id, ours, at, event.get("sg_event_id"),
                                               machine=event.get("sg_machine_open") is True))
                continue
            kind = EVENTS.get(event.get("event"))
            if kind is None:
                continue
            blocked = False if event.get("event") == "bounce" and event.get("type") == "blocked" else None
            reports.append(email_report(kind, provider_message_id=provider_id, message_id=ours, at=at,
                                        blocked=blocked))
        return reports


def _errors(response) -> list[dict]:
    """The ``errors`` list of an error body (``[]`` when the body is not the documented JSON)."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
