"""Twilio Programmable Messaging (providers.md §6): send, poll, status callbacks and inbound SMS.

The webhook signature check follows Twilio's own ``RequestValidator`` (twilio-python
``twilio/request_validator.py``): base64 HMAC-SHA1, keyed with the auth token, of the URL Twilio
called followed by each POST parameter's name and value (names sorted, each name's values sorted and
deduplicated); the URL is tried with its port (``:443``/``:80`` added when absent) and without any port;
a JSON body comes with ``bodySHA256`` in the URL's query, the body's SHA-256 hex must equal it, and
the signature then covers the URL alone. Its unit tests' vectors are in tests/data/twilio.

UNVERIFIED, coded around:

* error bodies read as ``{"code", "message", "status"}`` (as third-party clients read them);
* the meanings of 30005, 30007 and 30008 (written from memory in providers.md).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, parse_qsl, urlparse

import phonenumbers
from requests.structures import CaseInsensitiveDict

from .base import AccountState, DeliveryReport, DeliveryState, InboundMessage, SendResult
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
    TransientError,
)
from .http import HttpCall, HttpProvider, parse_retry_after

__all__ = ["TwilioProvider"]

#: Twilio error code → our outcome (HTTP status decides for codes not listed)
ERRORS: dict[int, type[ProviderError]] = {
    20429: RateLimitedError,
    20003: ProviderBlockedError,
    21606: ProviderBlockedError,
    21608: ProviderBlockedError,
    30002: ProviderBlockedError,
    21211: PermanentRecipientError,
    21610: PermanentRecipientError,
    # "cannot be sent with the current combination of 'To' and/or 'From'" (twilio.com/docs/api/errors/21612):
    # the sender or route, not the recipient
    21612: ProviderSetupError,
    21614: PermanentRecipientError,
    21635: PermanentRecipientError,
    30005: PermanentRecipientError,
    30006: PermanentRecipientError,
    30007: PermanentContentError,
    30003: TransientError,
    30008: TransientError,
}

#: message status → delivery state; every other status (queued, sending, sent, accepted, ...) is pending
STATES = {
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.UNDELIVERED,
    "failed": DeliveryState.UNDELIVERED,
    "canceled": DeliveryState.UNDELIVERED,
}


def _with_and_without_port(url: str) -> tuple[str, str]:
    """``url`` with its port (the scheme's default added when it has none) and without any port.

    Twilio's validator tries both because its signing side is inconsistent about the port.
    """
    parsed = urlparse(url)
    if parsed.port:
        return url, parsed._replace(netloc=parsed.netloc.rsplit(":", 1)[0]).geturl()
    default = 443 if parsed.scheme == "https" else 80
    return parsed._replace(netloc=f"{parsed.netloc}:{default}").geturl(), url


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class TwilioProvider(HttpProvider):
    """SMS through Twilio's Messages API, with HTTP basic auth ``account_sid:auth_token``."""

    type = "twilio"
    channels = frozenset({"sms"})
    pushes = frozenset({"receipts", "inbound"})  # signed webhooks: status callbacks and inbound SMS
    required = ("account_sid", "auth_token")
    optional = ("sender", "messaging_service_sid", "status_callback", "base_url", "default_region")
    default_base_url = "https://api.twilio.com"

    def validate_settings(self) -> None:
        super().validate_settings()
        if not (self.settings.get("sender") or self.settings.get("messaging_service_sid")):
            raise ProviderConfigError("sender", "a 'twilio' provider needs sender (a +E.164 number) "
                                                "or messaging_service_sid (MG...)")

    @property
    def _account(self) -> str:
        return f"2010-04-01/Accounts/{self.settings['account_sid']}"

    def _call(self, method: str, path: str, **kw) -> HttpCall:
        auth = (str(self.settings["account_sid"]), str(self.settings["auth_token"]))
        return HttpCall(method, f"{self._account}{path}", auth=auth, **kw)

    def _e164(self, number: str) -> str:
        try:
            parsed = phonenumbers.parse(number, self.settings.get("default_region"))
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not phonenumbers.is_possible_number(parsed):
            raise PermanentRecipientError(f"{number!r} is not a phone number", provider=self.name)
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    # -- send ---------------------------------------------------------------------
    def build_request(self, message) -> HttpCall:
        data = {"To": self._e164(message.to), "Body": message.text}
        if self.settings.get("messaging_service_sid"):
            data["MessagingServiceSid"] = self.settings["messaging_service_sid"]
        else:
            data["From"] = self.settings["sender"]
        if self.settings.get("status_callback"):
            data["StatusCallback"] = self.settings["status_callback"]
        return self._call("POST", "/Messages.json", data=data)

    def parse_response(self, message, response) -> SendResult:
        body = self.decode_json(response)
        body = body if isinstance(body, dict) else {}
        code = _int(body.get("code") or body.get("error_code"))
        failed = body.get("status") in ("failed", "undelivered") and code
        if response.ok and body.get("sid") and not failed:
            price = body.get("price")
            return SendResult(body["sid"], cost=abs(float(price)) if price else None,
                              segments=_int(body.get("num_segments")))
        if response.ok and not code:
            raise AmbiguousSendError(self.mask(f"HTTP {response.status_code} without a message sid: "
                                               f"{response.text[:120]!r}"), provider=self.name)
        reason = f"HTTP {response.status_code}: {body.get('message') or body.get('error_message') or ''}"
        cls = ERRORS.get(code)
        if cls is None:
            self.raise_for_status(response, reason, code)
            cls = PermanentError  # a 2xx that already failed with a code we do not know
        extra = {"retry_after": parse_retry_after(response.headers.get("Retry-After"))} \
            if issubclass(cls, TransientError) else {}
        raise cls(self.mask(reason), code=code, provider=self.name, **extra)

    # -- delivery and inbound -----------------------------------------------------------
    def _report(self, sid: str | None, status: str | None, error_code) -> DeliveryReport:
        code = _int(error_code)
        return DeliveryReport(provider_message_id=sid, state=STATES.get(status or "", DeliveryState.PENDING),
                              reason=str(code) if code else status,
                              recipient_blocked=ERRORS.get(code) is PermanentRecipientError)

    def delivery_status(self, provider_message_ids: list[str]) -> list[DeliveryReport]:
        reports = []
        for sid in provider_message_ids:
            response = self.request(self._call("GET", f"/Messages/{sid}.json", sends=False))
            if response.status_code == 404:
                continue
            self.raise_for_status(response)
            body = self.decode_json(response, sends=False)
            reports.append(self._report(sid, body.get("status"), body.get("error_code")))
        return reports

    def check(self) -> AccountState:
        try:
            response = self.request(self._call("GET", ".json", sends=False))
            if response.status_code in (401, 403, 404):
                return AccountState(ok=False, detail=f"credentials refused (HTTP {response.status_code})")
            self.raise_for_status(response)
            account = self.decode_json(response, sends=False)
            if account.get("status") != "active":
                return AccountState(ok=False, detail=f"account is {account.get('status')!r}")
        except ProviderError as err:
            return AccountState(ok=False, detail=str(err))
        return AccountState(ok=True, detail=f"account {account.get('friendly_name', '')!r} is active",
                            credit=self._credit())

    def _credit(self) -> float | None:
        """The account balance, or None when Twilio does not tell (subaccounts, errors)."""
        try:
            response = self.request(self._call("GET", "/Balance.json", sends=False))
            return float(response.json()["balance"]) if response.ok else None
        except (ProviderError, ValueError, TypeError, KeyError):
            return None

    def verify_webhook(self, url, headers, body) -> bool:
        """Check ``X-Twilio-Signature`` as twilio-python's ``RequestValidator.validate`` does (see the module
        docstring): the URL with and without its port; a ``bodySHA256`` body checked by its hash."""
        signature = CaseInsensitiveDict(headers).get("X-Twilio-Signature")
        if not signature:
            return False
        try:
            candidates = _with_and_without_port(url)
            body_hash = parse_qs(urlparse(url).query).get("bodySHA256")
            if body_hash:
                if not hmac.compare_digest(hashlib.sha256(body).hexdigest().encode(), body_hash[0].encode()):
                    return False
                params: dict[str, set[str]] = {}
            else:
                params = {}
                for name, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
                    params.setdefault(name, set()).add(value)
        except (UnicodeDecodeError, ValueError):
            return False
        given = signature.encode("utf-8")
        return any(hmac.compare_digest(self._signature(candidate, params).encode(), given) for candidate in candidates)

    def _signature(self, url: str, params: dict[str, set[str]]) -> str:
        """Base64 HMAC-SHA1 of the URL + each parameter name and value, names and values sorted, values deduplicated."""
        payload = url + "".join(name + value for name in sorted(params) for value in sorted(params[name]))
        digest = hmac.new(str(self.settings["auth_token"]).encode(), payload.encode("utf-8"), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    def parse_webhook(self, headers, body) -> list[DeliveryReport | InboundMessage]:
        """A status callback becomes a :class:`DeliveryReport`, an incoming SMS an :class:`InboundMessage`."""
        params = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        if "MessageStatus" in params:
            return [self._report(params.get("MessageSid"), params["MessageStatus"], params.get("ErrorCode"))]
        if "Body" in params and "From" in params:
            return [InboundMessage(sender=params["From"], text=params["Body"],
                                   provider_message_id=params.get("MessageSid"))]
        return []

