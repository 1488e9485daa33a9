"""SMS text facts: GSM-7 or UCS-2, length in units, segments, and the opt-out footer."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .text import ascii_digits

__all__ = ["SmsInfo", "sms_info", "with_footer", "DEFAULT_MAX_SEGMENTS", "over_max_segments"]

#: a sequence's ``max_sms_segments`` when it names none: a longer SMS is skipped, not sent
DEFAULT_MAX_SEGMENTS = 4

_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = set("^{}\\[~]|€\f")
_GSM_ALL = _GSM_BASIC | _GSM_EXTENSION
_ASTRAL = re.compile("[\U00010000-\U0010FFFF]")  # a character UTF-16 writes as a surrogate pair (emoji)


@dataclass(frozen=True)
class SmsInfo:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # characters as the network counts them
    segments: int

    def describe(self) -> str:
        return f"{self.encoding}, {self.units} units, {self.segments} segment{'s' if self.segments != 1 else ''}"


def sms_info(text: str) -> SmsInfo:
    """How the network will carry ``text``: one non-GSM character makes the whole message UCS-2.

    A 2-unit character (a GSM escape like ``{``, or an emoji's surrogate pair) is never split
    across two segments, so a long message may need one more segment than units / 153.
    """
    if _GSM_BASIC.issuperset(text):
        units = len(text)  # the common case, without a per-character loop
        return SmsInfo("GSM-7", units, 0 if not units else 1 if units <= 160 else -(-units // 153))
    if _GSM_ALL.issuperset(text):
        costs = [2 if c in _GSM_EXTENSION else 1 for c in text]
        single, per, encoding = 160, 153, "GSM-7"
    elif _ASTRAL.search(text) is None:
        units = len(text)  # UCS-2 with no surrogate pairs: one unit per character
        return SmsInfo("UCS-2", units, 0 if not units else 1 if units <= 70 else -(-units // 67))
    else:
        costs = [2 if ord(c) > 0xFFFF else 1 for c in text]  # UTF-16 code units
        single, per, encoding = 70, 67, "UCS-2"
    units = sum(costs)
    if units == 0:
        return SmsInfo(encoding, 0, 0)
    if units <= single:
        return SmsInfo(encoding, units, 1)
    segments, used = 1, 0
    for cost in costs:
        if used + cost > per:
            segments, used = segments + 1, 0
        used += cost
    return SmsInfo(encoding, units, segments)


def over_max_segments(info: SmsInfo, limit: int) -> str | None:
    """Why an SMS of ``info`` is not sent under a sequence's ``max_sms_segments`` (None: it may go)."""
    if info.segments <= limit:
        return None
    return f"SMS would be {info.segments} segments, over max_sms_segments {limit}"


_SKIPPED = " \u200c"  # spaces and zero-width non-joiners do not count when the footer is recognised


def with_footer(text: str, footer: str) -> str:
    """Append the opt-out footer on its own line unless the text already ends with it.

    "Already ends with it" ignores spaces and zero-width non-joiners and reads Persian digits as
    ASCII ones, so «لغو ۱۱» at the end counts as the footer «لغو11».
    """
    text = text.rstrip()
    if not footer:
        return text
    if _ends_with(text, _footer_form(footer)):
        return text
    return f"{text}\n{footer}"


@lru_cache(maxsize=32)
def _footer_form(footer: str) -> str:
    return "".join(c for c in ascii_digits(footer) if c not in _SKIPPED)


def _ends_with(text: str, form: str) -> bool:
    # walks back from the end over as many characters as the footer has: no copy of the whole text
    i = len(text)
    for want in reversed(form):
        while i and text[i - 1] in _SKIPPED:
            i -= 1
        if not i or ascii_digits(text[i - 1]) != want:
            return False
        i -= 1
    return True
