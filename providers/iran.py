"""What the Iranian SMS panels share: number formats, code mapping, delivery states, the account check.

Each panel module subclasses :class:`IranianPanel`, sets its ``errors`` (vendor code →
error class), ``states`` (vendor delivery state → :class:`DeliveryState`) and
``blocked_states``, and implements ``payload`` (unwrap the vendor's envelope or raise).

Lines: a panel takes ``sender`` (one line), ``lines`` (``[{number, class: promotional|service}]``,
:mod:`providers.lines`) or both. The default sender is ``sender``, else the first promotional line; a
message leaves from :attr:`~providers.base.OutgoingMessage.sender` when the engine names one of the
lines there. Inbound messages are read for every line: an opt-out comes back to the line it answers.
"""
from __future__ import annotations

import re
from functools import lru_cache
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Iterator, Mapping, NoReturn
from zoneinfo import ZoneInfo

import phonenumbers
import requests

from .base import AccountState, DeliveryReport, DeliveryState, OutgoingMessage
from .errors import (
    AmbiguousSendError,
    PermanentContentError,
    PermanentError,
    PermanentRecipientError,
    ProviderBlockedError,
    ProviderConfigError,
    ProviderError,
    TransientError,
)
from .lines import LineClass, parse_lines
from .http import HttpCall, HttpProvider, parse_retry_after

__all__ = ["IranianPanel", "national", "e164", "from_unix", "from_iso", "as_int", "as_float", "as_text", "chunks"]

_NATIONAL_MOBILE = re.compile(r"^9\d{9}$")
_E164_MOBILE = re.compile(r"\+989\d{9}")  # the form contacts are stored in


def national(number: str) -> str:
    """``+989121234567`` → ``09121234567``; anything but an Iranian mobile is a recipient error."""
    if _E164_MOBILE.fullmatch(number):  # stored contacts: no need to parse
        return "0" + number[3:]
    found = _national(number)
    if found is None:
        raise PermanentRecipientError(f"{number!r} is not an Iranian mobile number (+989XXXXXXXXX)")
    return found


@lru_cache(maxsize=4096)  # parsing a number costs more than the rest of building the request
def _national(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, "IR")
    except phonenumbers.NumberParseException:
        parsed = None
    nsn = phonenumbers.national_significant_number(parsed) if parsed else ""
    if parsed is None or parsed.country_code != 98 or not _NATIONAL_MOBILE.match(nsn):
        return None
    return "0" + nsn


def e164(number: str | None) -> str:
    """An inbound sender (``0912…``, ``98912…``, ``912…``) in E.164 where it parses, else as given."""
    text = str(number or "")
    if re.fullmatch(r"9\d{9}", text):  # some panels drop both the 0 and the 98
        text = "0" + text
    elif re.fullmatch(r"989\d{9}", text):
        text = "+" + text
    try:
        parsed = phonenumbers.parse(text, "IR")
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_possible_number(parsed):
        return text
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def from_unix(value: Any) -> datetime | None:
    """A Unix timestamp (seconds, UTC) as an aware datetime; None for missing or junk."""
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc) if value not in (None, "", 0) else None
    except (TypeError, ValueError, OverflowError):
        return None


TEHRAN = ZoneInfo("Asia/Tehran")


def from_iso(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware datetime; one without an offset is Tehran time (the panels' clock)."""
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=TEHRAN)


def as_int(value: Any) -> int | None:
    """Vendor codes arrive as ints or numeric strings; anything else is None."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def as_float(value: Any) -> float | None:
    """Costs and credit as float; None when missing."""
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def as_text(value: Any) -> str | None:
    """Ids as strings; None when missing or empty."""
    return None if value in (None, "") else str(value)


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class IranianPanel(HttpProvider):
    """The base of the Iranian panels: settings, error mapping, delivery reports, account check."""

    channels = frozenset({"sms"})
    required = ("api_key",)
    optional = ("base_url", "sender", "lines")

    #: vendor error code → the error class it means (see providers.md)
    errors: ClassVar[Mapping[Any, type[ProviderError]]] = {}
    #: vendor delivery state → our state; unknown states stay PENDING
    states: ClassVar[Mapping[int, DeliveryState]] = {}
    #: the states that mean "this recipient blocked advertising" (telecom blacklist)
    blocked_states: ClassVar[frozenset[int]] = frozenset()

    @property
    def api_key(self) -> str:
        return str(self.settings["api_key"])

    def validate_settings(self) -> None:
        super().validate_settings()
        self.lines = parse_lines(self.settings.get("lines"))
        if self.settings.get("sender") in (None, "") and not any(
                line.line_class is LineClass.PROMOTIONAL for line in self.lines):
            raise ProviderConfigError("sender", f"is required for a {self.type!r} provider unless lines lists a "
                                                "promotional line (the default sender is then the first one)")

    @property
    def sender(self) -> str:
        """The default sender line: ``sender``, else the first promotional line."""
        given = self.settings.get("sender")
        if given not in (None, ""):
            return str(given)
        return next(line.number for line in self.lines if line.line_class is LineClass.PROMOTIONAL)

    def line(self, message: OutgoingMessage) -> str:
        """The line ``message`` leaves from: the one the engine chose, else the default sender."""
        return message.sender or self.sender

    @property
    def numbers(self) -> list[str]:
        """Every line of the account, the default sender first: inbound is read for each."""
        return list(dict.fromkeys([self.sender, *(line.number for line in self.lines)]))

    # -- the vendor's envelope -----------------------------------------------------
    def payload(self, response: requests.Response, *, sends: bool = True) -> Any:  # pragma: no cover
        """The useful part of a successful reply; raise the mapped error for any other."""
        raise NotImplementedError

    def fetch(self, call: HttpCall) -> Any:
        """Make a call and unwrap its reply."""
        return self.payload(self.request(call), sends=call.sends)

    def fail(self, response: requests.Response, code: Any, text: Any) -> NoReturn:
        """Raise the error class ``errors`` maps ``code`` to."""
        cls = self.errors.get(code)
        reason = f"{self.type} code {code}: {text}"
        if cls is None:
            # Unknown code: be defensive. Never accept it and never retry it blindly, unless
            # the server itself says it failed (5xx), which is a passing fault.
            cls = TransientError if response.status_code >= 500 else PermanentContentError
            reason = f"unknown {reason} (HTTP {response.status_code})"
        extra = {}
        if issubclass(cls, TransientError):
            extra["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
        raise cls(self.mask(reason), code=code, provider=self.name, **extra)

    def unrecognised(self, response: requests.Response, body: Any, *, sends: bool) -> NoReturn:
        """A JSON reply without the vendor's envelope: map the HTTP status, else it may have gone."""
        self.raise_for_status(response)
        reason = self.mask(f"HTTP {response.status_code} with an unexpected body: {str(body)[:120]!r}")
        raise (AmbiguousSendError if sends else TransientError)(reason, provider=self.name)

    # -- delivery reports ----------------------------------------------------------
    def report(self, provider_message_id: Any, state: Any, *, reason: str | None = None,
               at: datetime | None = None, message_id: str | None = None) -> DeliveryReport:
        """A :class:`DeliveryReport` from a vendor delivery state."""
        code = as_int(state)
        ours = self.states.get(code)
        if ours is None:
            # an unknown state is not final: keep polling, and say what came
            ours, reason = DeliveryState.PENDING, f"unknown {self.type} state {state!r}"
        elif ours is DeliveryState.UNTRACKED:
            reason = f"{self.type} no longer reports on this id (state {code}{': ' + reason if reason else ''})"
        return DeliveryReport(
            provider_message_id=as_text(provider_message_id),
            state=ours,
            reason=reason or f"{self.type} state {code}",
            at=at,
            message_id=message_id,
            recipient_blocked=code in self.blocked_states,
        )

    def each_id(self, provider_message_ids: list[str], ask: Callable[[str], DeliveryReport], *,
                gone_code: Any = None) -> list[DeliveryReport]:
        """``ask(id)`` for panels that report one id per call; one id's failure does not sink the others.

        A refused key or account fails the whole poll (every id would fail alike). Any other error becomes
        that id's own report: no longer tracked for the vendor's ``gone_code`` (an id it does not know),
        else carrying the error, so the poller asks about it again at its next step.
        """
        reports = []
        for pid in provider_message_ids:
            try:
                reports.append(ask(pid))
            except ProviderBlockedError:
                raise
            except ProviderError as err:
                if gone_code is not None and err.code == str(gone_code):
                    reports.append(DeliveryReport(pid, DeliveryState.UNTRACKED,
                                                  reason=f"{self.type} no longer reports on this id ({err})"))
                else:
                    reports.append(DeliveryReport(pid, DeliveryState.PENDING, reason=str(err), error=err))
        return reports

    # -- account -------------------------------------------------------------------
    def credit(self) -> float | None:
        """The account's credit; raise the mapped error for a bad key."""
        raise NotImplementedError

    def check(self) -> AccountState:
        """Never raises on a bad key or line; a server that can't be reached raises TransientError."""
        try:
            credit = self.credit()
        except (PermanentError, ProviderBlockedError) as err:
            return AccountState(ok=False, detail=self.mask(str(err)))
        return AccountState(ok=True, detail=f"credit: {credit}", credit=credit)
