"""Melipayamak (ملی پیامک) console API: ``https://console.melipayamak.com/api/{op}/{token}``.

The token is a path segment (masked in every text). Replies carry no machine-readable
error code: ``{"recId": <number>, "status": "<free text>"}`` and success is a positive
recId. A console error-code list is UNVERIFIED; where ``recId`` is a small number we read
it with the legacy REST return values (providers.md §3B), which is also UNVERIFIED.

Idempotency: none. The console API takes no key of ours and has no list of recent sends to
reconcile against, so a send answered with a server error (HTTP 5xx, or the legacy "system
error" code) or cut off after the request went out is recorded ``unknown``, never resent.

Lines and the advertising blacklist: ``from`` is the line the engine chose (``lines`` setting). The
shared service line (legacy ``BaseServiceNumber``, console ``send/shared``) "sends to the telecom
blacklist" (https://www.melipayamak.com/api/sendbybasenumber2/, providers.md §3B) but only with an
approved pattern (``bodyId``), so it is not a ``lines`` entry for ``send/simple``. Blacklist signals are
third-party only (UNVERIFIED): return code 35 "recipient in the telecom blacklist"
(:class:`RecipientBlacklistedError`) and delivery code 27 "recipient blocked" (``recipient_blocked``).

Inbound SMS: ``POST receive/messages/{token}`` with ``{"type": "in", "number": <line>, "index": 0,
"count": 100}`` → ``{"messages": [..], "status"}`` (the console's own page for the method, and the
third-party SDK ``HRashidi/melipayamak`` ``src/config.ts``/``src/types.ts``). The docs leave the message
fields out; ``sender``, ``body`` and ``sendDate`` are what third-party clients read, and the id field
(``msgID``, as in the legacy ``GetMessages``) is UNVERIFIED: without one, the sender, time and text
make the id, so a message read again on the next poll counts once.
"""
from __future__ import annotations

import hashlib

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
from .iran import IranianPanel, as_int, as_text, chunks, e164, from_iso, national

__all__ = ["MelipayamakProvider"]

#: legacy ``SendSMS`` return values, applied to a small console ``recId`` (UNVERIFIED there)
ERRORS = {
    0: Blocked, 2: Blocked, 3: RateLimitedError, 4: RateLimitedError, 5: Blocked, 6: TransientError,
    7: Content, 9: Blocked, 10: Blocked,
    11: Content,  # "not sent": semantics UNVERIFIED, never retried blindly
    12: Blocked, 14: Content, 15: Content,
    # third-party maps only (UNVERIFIED)
    16: PermanentRecipientError, 17: Content, 18: PermanentRecipientError,
    35: RecipientBlacklistedError,  # "recipient in the telecom blacklist"
}
#: real recIds are large; anything at or below this is a code, not an id
LARGEST_CODE = 1000

P, D, U = DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.UNDELIVERED
#: ``resultsAsCode`` → delivery state: the common Iranian-panel scheme (Opilo), UNVERIFIED for Melipayamak
STATES = {0: P, 1: D, 2: U, 8: P, 16: U, 27: U}


class MelipayamakProvider(IranianPanel):
    type = "melipayamak"
    default_base_url = "https://console.melipayamak.com/api"
    server_error_is_ambiguous = True
    errors = ERRORS
    states = STATES
    blocked_states = frozenset({27})  # "recipient blocked" (UNVERIFIED)

    def call(self, method: str, op: str, *, sends: bool = False, json=None) -> HttpCall:
        return HttpCall(method, f"{op}/{self.api_key}", json=json, headers={"Accept": "application/json"},
                        sends=sends)

    def payload(self, response, *, sends=True):
        body = self.decode_json(response, sends=sends)
        if not isinstance(body, dict):
            self.unrecognised(response, body, sends=sends)
        if not response.ok:
            self.raise_for_status(response, reason=f"HTTP {response.status_code}: {body.get('status')}")
        return body

    # -- send ------------------------------------------------------------------------
    def build_request(self, message):
        body = {"from": self.line(message), "to": national(message.to), "text": message.text}
        return self.call("POST", "send/simple", sends=True, json=body)

    def parse_response(self, message, response):
        body = self.payload(response)
        rec_id = as_int(body.get("recId"))
        if rec_id is not None and rec_id > LARGEST_CODE:
            return SendResult(provider_message_id=str(rec_id))
        if rec_id is None and not body.get("status"):
            self.unrecognised(response, body, sends=True)
        self.fail(response, rec_id, body.get("status"))

    # -- delivery, account -----------------------------------------------------------
    def delivery_status(self, provider_message_ids):
        reports = []
        for batch in chunks(list(provider_message_ids), 100):  # UNVERIFIED batch limit
            body = self.fetch(self.call("POST", "receive/status", json={"recIds": batch}))
            codes, texts = body.get("resultsAsCode") or [], body.get("results") or []
            for i, pid in enumerate(batch):  # the answer is positional
                text = texts[i] if i < len(texts) else None
                reports.append(self.report(pid, codes[i] if i < len(codes) else None, reason=text))
        return reports

    def inbound(self):
        found = []
        for line in self.numbers:
            body = self.fetch(self.call("POST", "receive/messages",
                                        json={"type": "in", "number": line, "index": 0, "count": 100}))
            rows = body.get("messages")
            if not isinstance(rows, list) and body.get("status"):  # ``status`` carries the error text
                raise TransientError(self.mask(f"melipayamak inbox: {body['status']}"), provider=self.name)
            found += [InboundMessage(sender=e164(r.get("sender")), text=str(r.get("body") or ""),
                                     at=from_iso(r.get("sendDate")), provider_message_id=_inbound_id(r))
                      for r in rows or [] if isinstance(r, dict)]
        return found

    def credit(self):
        response = self.request(self.call("GET", "receive/credit"))
        body = self.payload(response, sends=False)
        if body.get("amount") is None:
            self.fail(response, None, body.get("status"))
        return float(body["amount"])


def _inbound_id(row: dict) -> str:
    """The panel's id of an inbound message, else a digest of who sent what when."""
    given = as_text(row.get("msgID"))
    if given:
        return given
    seen = "\x1f".join(str(row.get(k) or "") for k in ("sender", "sendDate", "body"))
    return "h" + hashlib.sha256(seen.encode("utf-8")).hexdigest()[:24]
