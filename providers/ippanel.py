"""IPPanel Edge: ``https://edge.ippanel.com/v1``, header ``Authorization``, E.164 numbers.

Envelope ``{"data": .., "meta": {"status": bool, "message", "message_code", "errors"}}``.
The Edge docs (github ippanelcom/Edge-Document, ``docs/send/webservice.md``) document two error
codes: "400-1" credentials on HTTP 401, "400-2" validation on HTTP 422. Whether the server wants
``Authorization: <key>`` or ``Bearer <key>`` is UNVERIFIED: ``auth_scheme``.

No credit: the Edge docs name no send error for it; their outbox report
(``docs/report/outbox-report.md``) lists bulk ``state_id`` 8 "Insufficient credit for sending",
and IPPanel's own SDKs name the refusal ``ErrCreditNotEnough`` = "10006" (github
ippanel/php-rest-sdk ``src/IPPanel/Errors/ResponseCodes.php``, as of commit 62f2397; its HEAD 040c1e0 keeps
only HTTP codes). A send refused with that code, or
with an HTTP 402, pauses the provider (:class:`ProviderBlockedError`) so the message fails over;
it is never dropped as a content error. Other unknown refusals map by HTTP status.

Delivery: ``GET /api/report/recipients?bulk_id=`` → ``data[].message_status``: "0" sent to the operator, "1"
operator received, "2" delivered, "3" not delivered, "4" blacklisted (``docs/report/bulk-recipient.md``; the
per-recipient states appear "if the message status is finalized"). Until one of 2-4 shows, the bulk's own
state is read, ``GET /api/report/by_bulk?messages_outbox_id=`` → ``data.state_id``
(``docs/report/outbox-report-id.md``; the values in ``docs/report/outbox-report.md``): 0 being created, 1 in
the monitoring queue, 2 being sent, 5 in the send queue, 6 sent (all pending here); 3 rejected by the
monitoring system, 4 recipients invalid, 7 canceled (undelivered: it will never go); 8 "Insufficient credit
for sending" and 9 "not sent due to a system error" (``NOT_SENT``: it never left, so the engine sends it
again; for 8 with ``account_blocked``, which pauses the provider as a send refused for credit does). A bulk
IPPanel accepted and then held for want of credit is therefore sent again, through another provider while
this one is paused, and never recorded as undelivered or held against the contact. IPPanel's SDKs enumerate no
bulk states (ippanel/php-rest-sdk ``src/IPPanel/Models/Message.php`` keeps ``state`` as free text;
ippanelcom/python-sdk only sends), so the Edge docs are the source.

Idempotency: none. IPPanel takes no key of ours, and its outbox report lists bulks by text and
time but not by recipient, so it cannot tell our message from another with the same text. A
send answered with a server error or cut off after the request went out is recorded ``unknown``,
never resent.

Lines and the advertising blacklist: ``from_number`` is the line the engine chose (``lines`` setting), in
E.164. The Edge docs name no line classes; a blacklisted recipient shows up in the recipients report as
``message_status`` 4 "blacklisted" (``docs/report/bulk-recipient.md``), read as ``recipient_blocked``. The
official SDKs' ``ErrItsTimeToSleep`` = "10019" "send time is 8-23" is the operators' hours on a line
(providers.md §4, §9.3); a promotional line's ``hours`` (:mod:`providers.lines`) keep promotional sends
inside them. Whether Edge answers with that code is UNVERIFIED; it is not mapped.

Inbound SMS: ``POST /api/report/messages-inbox`` with ``{"page", "per_page", "filters": {"from_id"}}``
→ ``data[]`` of ``{messages_inbox_id, from, number, message, type, time, seen}``, newest first,
``meta.last_page`` for paging (``ippanelcom/Edge-Document`` ``docs/report/inbox-report.md``).
The report covers every line of the account: only messages to our lines (``sender`` and ``lines``, by
``number``) are kept, as the other panels' inbox calls filter by line. ``from_id`` asks for the messages after that id; the
adapter keeps the highest id it has seen, and starts (and restarts) with the newest page: the id makes a
message read twice count once.
"""
from __future__ import annotations

from .base import DeliveryReport, DeliveryState, InboundMessage, SendResult
from .errors import PermanentContentError, ProviderBlockedError, ProviderConfigError
from .http import HttpCall
from .iran import IranianPanel, as_float, as_int, as_text, e164, from_unix, national

__all__ = ["IPPanelProvider"]

CREDIT_NOT_ENOUGH = "10006"
#: ``meta.message_code`` → outcome
ERRORS = {"400-1": ProviderBlockedError, "400-2": PermanentContentError,
          CREDIT_NOT_ENOUGH: ProviderBlockedError}

P, D, U = DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.UNDELIVERED
#: ``message_status`` → delivery state; 4 is the telecom blacklist
STATES = {0: P, 1: P, 2: D, 3: U, 4: U}
NO_CREDIT = 8
#: a bulk's ``state_id`` that says its recipients will get nothing → (state, what the docs call it)
BULK_STATES = {3: (U, "rejected by the monitoring system"), 4: (U, "recipients entered incorrectly or not valid"),
               7: (U, "sending canceled"), NO_CREDIT: (DeliveryState.NOT_SENT, "insufficient credit for sending"),
               9: (DeliveryState.NOT_SENT, "not sent due to a system error")}
AUTH_SCHEMES = ("raw", "bearer")
INBOX_PAGE, INBOX_PAGES = 100, 10


def _e164_line(line: str) -> str:
    """A line in E.164, as the docs want it ("+983000505"); a bare number is read as an Iranian one
    (UNVERIFIED)."""
    if line.startswith("+"):
        return line
    return "+" + line if line.startswith("98") else "+98" + line.lstrip("0")


class IPPanelProvider(IranianPanel):
    type = "ippanel"
    default_base_url = "https://edge.ippanel.com/v1"
    server_error_is_ambiguous = True
    optional = IranianPanel.optional + ("auth_scheme",)
    errors = ERRORS
    states = STATES
    blocked_states = frozenset({4})
    #: the highest inbox id read so far (``from_id`` of the next inbox call)
    _inbox_last_id: int | None = None

    def validate_settings(self):
        super().validate_settings()
        if self.settings.get("auth_scheme", "raw") not in AUTH_SCHEMES:
            raise ProviderConfigError("auth_scheme", f"must be one of {', '.join(AUTH_SCHEMES)}")

    @property
    def from_number(self) -> str:
        """The default sender in E.164."""
        return _e164_line(self.sender)

    def build_request(self, message):
        to = "+98" + national(message.to)[1:]  # E.164; refuses what is not an Iranian mobile
        body = {"sending_type": "webservice", "from_number": _e164_line(self.line(message)), "message": message.text,
                "params": {"recipients": [to]}}
        return self.call("POST", "api/send", sends=True, json=body)


    def call(self, method: str, path: str, *, sends: bool = False, **kw) -> HttpCall:
        bearer = self.settings.get("auth_scheme") == "bearer"
        headers = {"Authorization": f"Bearer {self.api_key}" if bearer else self.api_key,
                   "Accept": "application/json"}
        return HttpCall(method, path, headers=headers, sends=sends, **kw)

    def payload(self, response, *, sends=True):
        body = self.decode_json(response, sends=sends)
        meta = body.get("meta") if isinstance(body, dict) else None
        if not isinstance(meta, dict) or "status" not in meta:
            self.unrecognised(response, body, sends=sends)
        if meta["status"] is not True:
            code, text = meta.get("message_code"), f"{meta.get('message')} {meta.get('errors') or ''}".strip()
            if response.status_code == 402:  # Payment Required: the account, not the message
                raise ProviderBlockedError(self.mask(f"ippanel: HTTP 402 [{code}]: {text}"), code=code or 402,
                                           provider=self.name)
            if code not in self.errors and not response.ok:
                self.raise_for_status(response, reason=f"HTTP {response.status_code} [{code}]: {text}", code=code)
            self.fail(response, code, text)
        return body.get("data")

    # -- send ------------------------------------------------------------------------
    def parse_response(self, message, response):
        data = self.payload(response)
        ids = data.get("message_outbox_ids") if isinstance(data, dict) else None
        if not isinstance(ids, list) or not ids or not ids[0]:
            self.unrecognised(response, data, sends=True)
        return SendResult(provider_message_id=str(ids[0]))

    # -- delivery, account -----------------------------------------------------------
    def delivery_status(self, provider_message_ids):
        # one bulk per call; per-recipient states appear once the bulk is final
        return self.each_id(list(provider_message_ids), self._delivery)

    def _delivery(self, pid: str):
        rows = self.fetch(self.call("GET", "api/report/recipients",
                                    params={"bulk_id": pid, "page": 1, "per_page": 10})) or []
        row = rows[0] if rows and isinstance(rows[0], dict) else {}
        if self.states.get(as_int(row.get("message_status"))) not in (None, P):
            return self.report(pid, row.get("message_status"))
        bulk = self.fetch(self.call("GET", "api/report/by_bulk", params={"messages_outbox_id": pid})) or {}
        state_id = as_int(bulk.get("state_id")) if isinstance(bulk, dict) else None
        if state_id in BULK_STATES:
            state, meaning = BULK_STATES[state_id]
            return DeliveryReport(pid, state, reason=f"ippanel bulk state {state_id}: {meaning}",
                                  account_blocked=state_id == NO_CREDIT)
        return self.report(pid, row.get("message_status", 0),
                           reason=None if row else f"no recipient report yet (bulk state {state_id})")

    def inbound(self):
        """Messages to our line since the last one seen (the newest page on the first call)."""
        found: list[InboundMessage] = []
        ours = {_e164_line(line) for line in self.numbers}
        last = self._inbox_last_id
        newest = last or 0
        for page in range(1, INBOX_PAGES + 1):
            body = {"page": page, "per_page": INBOX_PAGE, **({"filters": {"from_id": last}} if last else {})}
            response = self.request(self.call("POST", "api/report/messages-inbox", json=body))
            rows = self.payload(response, sends=False) or []
            rows = [r for r in rows if isinstance(r, dict)]
            seen = [as_int(r.get("messages_inbox_id")) for r in rows]
            newest = max([i for i in seen if i is not None] + [newest])
            found += [InboundMessage(sender=e164(r.get("from")), text=str(r.get("message") or ""),
                                     at=from_unix(r.get("time")), provider_message_id=as_text(r.get("messages_inbox_id")))
                      for r in rows if r.get("number") in ours]
            meta = response.json().get("meta") or {}
            if last is None or not rows or page >= (as_int(meta.get("last_page")) or page):
                break
        self._inbox_last_id = newest or None
        return found

    def credit(self):
        data = self.fetch(self.call("GET", "api/payment/credit/mine")) or {}
        return as_float(data.get("credit"))
