"""SMS text facts: GSM-7 or UCS-2, length in units, segments, and the opt-out footer."""
from __future__ import annotations

from dataclasses import dataclass

from .text import ascii_digits

__all__ = ["SmsInfo", "sms_info", "with_footer"]

_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = set("^{}\\[~]|€\f")
_GSM_ALL = _GSM_BASIC | _GSM_EXTENSION


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
    if not _GSM_EXTENSION.intersection(text) and _GSM_BASIC.issuperset(text):
        units = len(text)  # the common case, without a per-character loop
        return SmsInfo("GSM-7", units, 0 if not units else 1 if units <= 160 else -(-units // 153))
    if _GSM_ALL.issuperset(text):
        costs = [2 if c in _GSM_EXTENSION else 1 for c in text]
        single, per, encoding = 160, 153, "GSM-7"
    elif text.isascii() or max(text) <= "\uffff":
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


#: digits to ASCII, spaces and zero-width non-joiners dropped: how the footer is recognised in a text
_FOOTER_FORM = str.maketrans({**{chr(c): ascii_digits(chr(c)) for c in range(0x6F0, 0x6FA)},
                              **{chr(c): ascii_digits(chr(c)) for c in range(0x660, 0x66A)}, " ": None, "\u200c": None})


def with_footer(text: str, footer: str) -> str:
    """Append the opt-out footer on its own line unless the text already ends with it."""
    text = text.rstrip()
    if not footer:
        return text
    if text.translate(_FOOTER_FORM).endswith(footer.translate(_FOOTER_FORM)):
        return text
    return f"{text}\n{footer}"
