"""Ghasedak (قاصدک) gateway REST API: ``https://gateway.ghasedak.me/rest/api/v1/WebService/``.

Header ``ApiKey``; envelope ``{"isSuccess", "statusCode", "message", "data"}``. We send
``clientReferenceId`` = our message id, so :meth:`lookup` finds a message by it
(``CheckSmsStatus`` Type=2).

Idempotency: ``clientReferenceId``. A 451 ("DuplicateRequest" in a third-party map; Kavenegar
uses the same code for a rate limit) is a send Ghasedak already has only when the lookup by our
id finds it; otherwise its fate is unknown (:class:`AmbiguousSendError`), never "sent".

Delivery states follow Ghasedak's own Python SDK, the ``SendStatus`` enum in
``ghasedak_sms/enums/send_status.py`` (PyPI ``ghasedak-sms`` 1.0.3, github ghasedakapi/ghasedak_sms_python),
not the third-party docs' 0-8 table. The ``statusCode`` table comes from a third-party map (the
official list is UNVERIFIED); we read the envelope on any HTTP status (UNVERIFIED which status
errors use).

Lines and the advertising blacklist: ``lineNumber`` is the line the engine chose (``lines`` setting); the
gateway also takes "priority" | "fastest" | "cheapest" as ``sender`` and then picks a line of unknown class.
A blacklisted recipient shows up only in the receipt: ``SendStatus`` 12 BLACKLISTED (the telecom blacklist)
and 8 INTERNAL_BLACKLISTED (Ghasedak's own list), both read as ``recipient_blocked`` (the SDK enum above;
the third-party 0-8 table's "2 blacklist" is not followed, provider-audit.md M1). No send-time blacklist
code is documented.

Inbound SMS: ``GET GetReceivedSmses?lineNumber=&isRead=false`` → ``data.items[]`` of
``{id, message, sender, lineNumber, receiveDate}`` (official ``ghasedakapi/ghasedaksms-php``
``src/Constants.php`` and ``ReceivedSmsItemDTO.php``; parameter spelling and the example reply
from the gateway docs' spec, ``negar8223/ghasedak-doc`` ``src/data/latest100ApiSpec.ts``).

Push callbacks: none; receipts and inbound SMS are polled. Ghasedak's panel does offer a "Callback URL
(Webhook)" that is called on each status change (the gateway docs' ``CheckSmsStatus`` description, in
``negar8223/ghasedak-doc`` ``src/data/outboxStatusApiSpec.ts``) and, in the legacy v2 docs, a URL per line for
received SMS (ghasedakapi.com, «دریافت پیام از طریق تنظیم کردن url»), but no source we found documents what
either sends: not the gateway docs, not the official SDKs (ghasedakapi/ghasedak_sms_python, ghasedak-python,
ghasedaksms-php, ghasedak-php, GhasedakSms.Core, GhasedakSms.Framework, ghasedakapi-csharp,
ghasedakapi.net-core, ghasedakapi-go, ghasedak_sms_go, ghasedak_sms_node, ghasedaksms-laravel), nor third-party
packages (misaf/laravel-sms-gateway-ghasedak, mahdi-hejazi/laravel-ghasedak-sms, MrNadimi/GhasedakSMSApi).
A payload we would have to guess is not read: :attr:`push_unsupported` says so in ``followup providers check``.
"""
from __future__ import annotations

from .base import DeliveryState, InboundMessage, LookupResult, SendResult
from .errors import (
    AmbiguousSendError,
    PermanentContentError as Content,
    ProviderBlockedError as Blocked,
    ProviderError,
    TransientError,
)
from .http import HttpCall
from .iran import IranianPanel, as_float, as_int, as_text, chunks, e164, from_iso, national

__all__ = ["GhasedakProvider"]

DUPLICATE = 451
#: ``statusCode`` → outcome (providers.md §5B); 429 is "missed params", NOT a rate limit
ERRORS = {
    400: Content, 401: Blocked, 402: TransientError, 406: Blocked, 412: Blocked, 413: Content,
    416: Blocked, 418: Blocked, 419: Blocked, 420: Content, 422: Content, 426: Blocked, 428: Content,
    429: Content,
    DUPLICATE: AmbiguousSendError,  # "accepted" only when the lookup by our id finds it
    500: TransientError,
}

P, D, U = DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.UNDELIVERED
#: CheckSmsStatus ``status`` → delivery state, by the SDK's ``SendStatus`` enum (names in the comments)
STATES = {
    0: P,   # TO_BE_CONFIRMED
    1: U,   # REJECTED
    2: P,   # TO_BE_SENT
    3: P,   # SENDING
    4: P,   # SENT: handed on, no receipt yet
    5: U,   # DEBUG_MODE: never reaches a handset
    6: U,   # INTERNAL_FAILED
    7: U,   # CANCELED
    8: U,   # INTERNAL_BLACKLISTED: on Ghasedak's own blacklist
    9: P,   # PAUSED
    10: P,  # SENT_TO_PROVIDER
    11: P,  # DELIVERED_TO_PROVIDER
    12: U,  # BLACKLISTED: the telecom blacklist
    13: U,  # NOT_DELIVERED
    14: D,  # DELIVERED
    15: U,  # BLOCKED
    16: U,  # FAILED
    17: P,  # PROCESSING
}
BY_MESSAGE_ID, BY_CLIENT_REFERENCE = 1, 2


class GhasedakProvider(IranianPanel):
    type = "ghasedak"
    default_base_url = "https://gateway.ghasedak.me/rest/api/v1/WebService"
    supports_lookup = True
    errors = ERRORS
    states = STATES
    blocked_states = frozenset({8, 12})
    push_unsupported = "Ghasedak's panel callback is not read: its payload is not documented"

    def call(self, method: str, path: str, *, sends: bool = False, **kw) -> HttpCall:
        return HttpCall(method, path, headers={"ApiKey": self.api_key, "Accept": "application/json"},
                        sends=sends, **kw)

    def payload(self, response, *, sends=True):
        body = self.decode_json(response, sends=sends)
        if not isinstance(body, dict) or ("isSuccess" not in body and "statusCode" not in body):
            self.unrecognised(response, body, sends=sends)
        code = as_int(body.get("statusCode"))
        if body.get("isSuccess") is True and code in (200, None):
            return body.get("data")
        self.fail(response, code, body.get("message"))

    # -- send ------------------------------------------------------------------------
    def build_request(self, message):
        # the gateway's lineNumber: a line, or "priority" | "fastest" | "cheapest"
        body = {"message": message.text, "receptor": national(message.to), "lineNumber": self.line(message),
                "clientReferenceId": message.message_id}
        return self.call("POST", "SendSingleSMS", sends=True, json=body)

    def parse_response(self, message, response):
        try:
            data = self.payload(response)
        except AmbiguousSendError as err:
            if err.code != str(DUPLICATE):
                raise
            return self._already_sent(message.message_id, err)
        if not isinstance(data, dict) or data.get("messageId") in (None, ""):
            self.unrecognised(response, data, sends=True)
        return SendResult(provider_message_id=str(data["messageId"]), cost=as_float(data.get("cost")))

    def _already_sent(self, message_id: str, duplicate: AmbiguousSendError) -> SendResult:
        """451: accepted when Ghasedak has a message with our clientReferenceId; else its fate is unknown."""
        try:
            found = self.lookup(message_id)
        except ProviderError as err:
            raise AmbiguousSendError(f"{duplicate.reason}, and looking it up by our id failed ({err}): "
                                     "fate unknown", code=DUPLICATE, provider=self.name, looked_up=True) from err
        if not found.found:
            raise AmbiguousSendError(f"{duplicate.reason}, but no message has our clientReferenceId "
                                     f"{message_id!r}: fate unknown", code=DUPLICATE, provider=self.name,
                                     looked_up=True)
        return SendResult(provider_message_id=found.provider_message_id)

    # -- reconciliation and delivery ---------------------------------------------------
    def _status(self, ids: list[str], kind: int) -> list[dict]:
        rows = self.fetch(self.call("GET", "CheckSmsStatus", params={"Ids": ",".join(ids), "Type": kind}))
        return [r for r in rows or [] if isinstance(r, dict)]

    def lookup(self, message_id):
        for row in self._status([message_id], BY_CLIENT_REFERENCE):
            if row.get("messageId") and str(row.get("clientReferenceId", message_id)) == message_id:
                return LookupResult(found=True, provider_message_id=str(row["messageId"]))
        return LookupResult(found=False)

    def delivery_status(self, provider_message_ids):
        reports = []
        for batch in chunks(list(provider_message_ids), 100):  # the API takes up to 100 ids
            for row in self._status(batch, BY_MESSAGE_ID):
                reports.append(self.report(row.get("messageId"), row.get("status"),
                                           message_id=as_text(row.get("clientReferenceId"))))
        return reports

    def inbound(self):
        # unread messages of each of our lines; the id makes a message read twice count once
        found = []
        for line in self.numbers:
            data = self.fetch(self.call("GET", "GetReceivedSmses",
                                        params={"lineNumber": line, "isRead": "false"})) or {}
            items = data.get("items") if isinstance(data, dict) else None
            found += [InboundMessage(sender=e164(i.get("sender")), text=str(i.get("message") or ""),
                                     at=from_iso(i.get("receiveDate")), provider_message_id=as_text(i.get("id")))
                      for i in items or [] if isinstance(i, dict)]
        return found

    def credit(self):
        # GetAccountInformation: the official SDK calls it; the field name ``credit`` is UNVERIFIED
        data = self.fetch(self.call("GET", "GetAccountInformation")) or {}
        return as_float(data.get("credit"))
