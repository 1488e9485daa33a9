"""Kavenegar (کاوه‌نگار): ``https://api.kavenegar.com/v1/{API_KEY}/{scope}/{method}.json``.

The key is a path segment, so every text that carries a URL goes through ``self.mask``.
The JSON body is the authority on any HTTP status (``return.status``); its 429 is an IP
restriction, not a rate limit, and 451 is the rate limit. We send ``localid`` = our client
reference (a number, unique to the database), so :meth:`lookup` can find a message after an ambiguous send.

Push callbacks (set both URLs in the panel to ``/webhooks/{name}/{callback_secret}``; polling stays as the
fallback). The "Status Callback URL" gets ``messageid`` and ``status`` (the ``entries[].status`` codes
below) for each state change; "Receive via Callback URL" gets ``messageid``, ``from``, ``to`` and
``message`` for each SMS to the line (Kavenegar REST docs, the notes under Status and Receive, as the
provider audit read them). Whether they arrive as a form body or a query string is UNVERIFIED: both are
read. An inbound message pushed and then polled (``sms/receive``) has the same ``messageid``, so it counts once.

Lines and the advertising blacklist: the API does not say a line's class; the ``lines`` setting does, and
``sms/send`` takes the chosen line as ``sender``. A send to a number on the operators' advertising blacklist
is accepted and shows up only in its receipt: ``entries[].status`` 14 "filtered" (official SDKs: .NET
``MessageStatus.cs``, Go ``enums/message/status/type.go``; providers.md §1), read as ``recipient_blocked``.
Kavenegar's service route to blacklisted numbers is ``verify/lookup`` with an approved template
(providers.md §9.2), which this adapter does not use: a ``service`` line here is an account's own service line.
"""
from __future__ import annotations

from .base import DeliveryState, InboundMessage, LookupResult, SendResult
from .errors import (
    PermanentContentError as Content,
    PermanentRecipientError as Recipient,
    ProviderBlockedError as Blocked,
    RateLimitedError,
    TransientError,
)
from .http import HttpCall
from .iran import IranianPanel, as_float, as_int, as_text, chunks, e164, from_unix, national

__all__ = ["KavenegarProvider"]

#: ``return.status`` → outcome (providers.md §1)
ERRORS = {
    400: Content, 401: Blocked, 402: TransientError, 403: Blocked, 404: Content, 405: Content,
    406: Content, 407: Blocked, 409: TransientError, 411: Recipient, 412: Blocked, 413: Content,
    414: Content, 415: Content, 416: Blocked, 417: Content, 418: Blocked, 419: Content, 420: Content,
    422: Content, 424: Content, 426: Blocked, 427: Blocked, 428: Content,
    429: Blocked,  # IP restricted: NOT a rate limit here
    431: Content, 432: Content,
    451: RateLimitedError,  # too many calls in the time window
    501: Blocked, 607: Content,
}

P, D, U = DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.UNDELIVERED
INVALID_ID = 100
#: ``entries[].status`` → delivery state; 14 is "filtered" (telecom blacklist). 100 is what Kavenegar
#: answers for any message older than 48 hours and for an id it does not know (REST docs, "Status"
#: notes and Table 2, copied in FardaDev/kavenegar-for-laravel ``docs/api-endpoints.md``): it says
#: nothing about the handset, so polling stops and the recorded state stays.
STATES = {1: P, 2: P, 4: P, 5: P, 6: U, 10: D, 11: U, 13: U, 14: U, INVALID_ID: DeliveryState.UNTRACKED}


class KavenegarProvider(IranianPanel):
    type = "kavenegar"
    default_base_url = "https://api.kavenegar.com/v1"
    supports_lookup = True
    pushes = frozenset({"receipts", "inbound"})
    push_keys = ("callback_secret",)
    optional = IranianPanel.optional + ("callback_secret",)
    errors = ERRORS
    states = STATES
    blocked_states = frozenset({14})

    def call(self, method: str, sends: bool = False, **fields) -> HttpCall:
        return HttpCall("POST", f"{self.api_key}/{method}.json", data=fields,
                        headers={"Accept": "application/json"}, sends=sends)

    def payload(self, response, *, sends=True):
        body = self.decode_json(response, sends=sends)
        ret = body.get("return") if isinstance(body, dict) else None
        status = as_int(ret.get("status")) if isinstance(ret, dict) else None
        if status is None:
            self.unrecognised(response, body, sends=sends)
        if status != 200:
            self.fail(response, status, ret.get("message"))
        return body.get("entries") or []

    # -- send ------------------------------------------------------------------------
    def build_request(self, message):
        return self.call("sms/send", sends=True, receptor=national(message.to), message=message.text,
                         sender=self.line(message), localid=message.message_id)

    def parse_response(self, message, response):
        entries = self.payload(response)
        entry = entries[0] if entries and isinstance(entries[0], dict) else {}
        if not entry.get("messageid"):
            self.unrecognised(response, entries, sends=True)
        return SendResult(provider_message_id=str(entry["messageid"]), cost=as_float(entry.get("cost")))

    # -- reconciliation and delivery ---------------------------------------------------
    def lookup(self, message_id):
        # UNVERIFIED: the shape of an unknown localid (we read status 100 or messageid 0 as "not found")
        for entry in self.fetch(self.call("sms/statuslocalmessageid", localid=message_id)):
            if entry.get("messageid") and as_int(entry.get("status")) != INVALID_ID:
                return LookupResult(found=True, provider_message_id=str(entry["messageid"]))
        return LookupResult(found=False)

    def delivery_status(self, provider_message_ids):
        reports = []
        for batch in chunks(list(provider_message_ids), 100):  # UNVERIFIED batch limit; 100 is conservative
            for entry in self.fetch(self.call("sms/status", messageid=",".join(batch))):
                reports.append(self.report(entry.get("messageid"), entry.get("status"),
                                           reason=entry.get("statustext")))
        return reports

    def inbound(self):
        entries = [e for line in self.numbers
                   for e in self.fetch(self.call("sms/receive", linenumber=line, isread=0))]
        return [InboundMessage(sender=e164(e.get("sender")), text=str(e.get("message") or ""),
                               at=from_unix(e.get("date")), provider_message_id=as_text(e.get("messageid")))
                for e in entries]

    def parse_callback(self, fields):
        if fields.get("message") is not None and fields.get("from"):
            return [InboundMessage(sender=e164(fields["from"]), text=str(fields["message"]),
                                   provider_message_id=as_text(fields.get("messageid")))]
        if fields.get("messageid") and as_int(fields.get("status")) is not None:
            return [self.report(fields["messageid"], fields["status"])]
        raise ValueError("neither a status (messageid, status) nor a received SMS (from, message)")

    def credit(self):
        entries = self.fetch(self.call("account/info"))
        info = entries if isinstance(entries, dict) else (entries[0] if entries else {})
        return as_float(info.get("remaincredit"))
