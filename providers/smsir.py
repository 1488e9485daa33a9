"""SMS.ir REST API v1: ``https://api.sms.ir/v1``, header ``X-API-KEY``, envelope ``{status, message, data}``.

``status == 1`` is success; HTTP 400 carries a logical error in ``status``; HTTP 429 is a
rate limit whatever the body says. In a bulk reply ``messageIds[i] == 0`` means the
recipient is blacklisted; ``null`` means "an invalid number or an invalid/overlong text"
(sms.ir/rest-api, as transcribed in fstarlike/smsir-agent-skill ``references/sending.md``).
Our numbers are validated before they leave, so a null is read as a fault of this message's
text: the message fails, the contact is not suppressed.

Idempotency: none. SMS.ir takes no key of ours and its reports are by its own ids, so a send
answered with a server error (HTTP 5xx, body status 0) or cut off after the request went out
is recorded ``unknown`` with the reason, never resent.

Delivery is one call per id; an id SMS.ir does not know (status 111) is no longer tracked, and
any other failure for one id waits its next poll without holding up the others.
The status-code and deliveryState tables are a third-party transcription of the official
docs (UNVERIFIED against https://sms.ir/rest-api/).

Lines and the advertising blacklist: ``lineNumber`` is the line the engine chose (``lines`` setting; the API's
``GET line`` lists the account's lines but not their class). SMS.ir says "blacklisted" three ways, all read
as the operators' advertising blacklist: ``messageIds[i] == 0`` in an accepted send and body status 115
"mobile(s) blacklisted" (both :class:`RecipientBlacklistedError`), and ``deliveryState`` 7 "blacklist" in a
receipt (same transcription; providers.md §2). Its service route, ``send/verify`` with an approved template,
reaches blacklisted numbers but "is not for advertising" (3P notes, providers.md §9.2); it is not used here.
"""
from __future__ import annotations

from .base import DeliveryState, InboundMessage, SendResult
from .errors import (
    PermanentContentError as Content,
    PermanentRecipientError,
    ProviderBlockedError as Blocked,
    RateLimitedError,
    RecipientBlacklistedError,
    TransientError,
)
from .http import HttpCall
from .iran import IranianPanel, as_float, as_int, as_text, e164, from_unix, national

__all__ = ["SmsIrProvider"]

#: body ``status`` → outcome (providers.md §2)
ERRORS = {
    0: TransientError,  # "system problem": a poll asks again; a send may have gone (unknown, never resent)
    10: Blocked, 11: Blocked, 12: Blocked, 13: Blocked, 14: Blocked,
    20: RateLimitedError,
    101: Blocked, 102: Blocked, 103: Content, 104: PermanentRecipientError, 105: Content, 106: Content,
    107: Content, 108: Content, 109: Content, 110: Content, 111: Content, 112: Content, 113: Content,
    114: Content, 115: RecipientBlacklistedError, 116: Content, 117: Content, 118: Content,
    119: Blocked, 123: Blocked,
}

P, D, U = DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.UNDELIVERED
#: ``deliveryState`` → delivery state; 7 is the telecom blacklist
STATES = {1: D, 2: U, 3: P, 4: U, 5: P, 6: U, 7: U}


NOT_FOUND = 111  # "send id not found", on GET send/{id}


class SmsIrProvider(IranianPanel):
    type = "smsir"
    default_base_url = "https://api.sms.ir/v1"
    server_error_is_ambiguous = True
    errors = ERRORS
    states = STATES
    blocked_states = frozenset({7})

    def call(self, method: str, path: str, *, sends: bool = False, **kw) -> HttpCall:
        headers = {"X-API-KEY": self.api_key, "Accept": "application/json"}
        return HttpCall(method, path, headers=headers, sends=sends, **kw)

    def payload(self, response, *, sends=True):
        if response.status_code == 429:
            self.raise_for_status(response)  # rate limited, Retry-After honoured
        body = self.decode_json(response, sends=sends)
        status = as_int(body.get("status")) if isinstance(body, dict) else None
        if status is None:
            self.unrecognised(response, body, sends=sends)
        if status != 1:
            self.fail(response, status, body.get("message"))
        return body.get("data")

    # -- send ------------------------------------------------------------------------
    def build_request(self, message):
        line = self.line(message)
        line = int(line) if line.isdigit() else line  # the docs show a number
        body = {"lineNumber": line, "messageText": message.text, "mobiles": [national(message.to)],
                "sendDateTime": None}
        return self.call("POST", "send/bulk", sends=True, json=body)

    def parse_response(self, message, response):
        data = self.payload(response)
        ids = data.get("messageIds") if isinstance(data, dict) else None
        if not isinstance(ids, list) or not ids:
            self.unrecognised(response, data, sends=True)
        if ids[0] is None:
            raise Content("SMS.ir refused this message (messageIds[0] is null: an invalid or overlong text, "
                          "or a number it won't take)", code="null", provider=self.name)
        if as_int(ids[0]) == 0:
            raise RecipientBlacklistedError("SMS.ir: the recipient is blacklisted (messageIds[0] is 0)",
                                            code="0", provider=self.name)
        return SendResult(provider_message_id=str(ids[0]), cost=as_float(data.get("cost")))

    # -- delivery, inbound, account ------------------------------------------------------
    def delivery_status(self, provider_message_ids):
        # the API reports one message per call (GET send/{messageId}); packs need the packId we don't keep
        return self.each_id(list(provider_message_ids), self._delivery, gone_code=NOT_FOUND)

    def _delivery(self, pid: str):
        data = self.fetch(self.call("GET", f"send/{pid}")) or {}
        return self.report(pid, data.get("deliveryState"), at=from_unix(data.get("deliveryDateTime")))

    def inbound(self):
        # receive/latest hands out each message only once: the caller must store what it gets
        rows = self.fetch(self.call("GET", "receive/latest", params={"count": 100})) or []
        return [InboundMessage(sender=e164(r.get("mobile")), text=str(r.get("messageText") or ""),
                               at=from_unix(r.get("receivedDateTime")),
                               provider_message_id=as_text(r.get("receiveReturnId")))
                for r in rows]

    def credit(self):
        return as_float(self.fetch(self.call("GET", "credit")))
