"""SMS text facts: GSM-7 or UCS-2, length in units, segments, and the opt-out footer."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .text import ascii_digits

__all__ = ["SmsInfo", "sms_info", "with_footer"]

_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsInfo:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # characters as the network counts them
    segments: int

    def describe(self) -> str:
        return f"{self.encoding}, {self.units} units, {self.segments} segment{'s' if self.segments != 1 else ''}"


def sms_info(text: str) -> SmsInfo:
    """How the network will carry ``text``: one non-GSM character makes the whole message UCS-2."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text):
        units = sum(2 if c in _GSM_EXTENSION else 1 for c in text)
        single, per = 160, 153
        encoding = "GSM-7"
    else:
        # UTF-16 code units: astral characters (most emoji) take two
        units = len(text.encode("utf-16-le")) // 2
        single, per = 70, 67
        encoding = "UCS-2"
    segments = 1 if units <= single else math.ceil(units / per)
    return SmsInfo(encoding, units, max(segments, 1) if units else 0)


def with_footer(text: str, footer: str) -> str:
    """Append the opt-out footer on its own line unless the text already ends with it."""
    text = text.rstrip()
    if not footer:
        return text
    normalized = lambda s: ascii_digits(s).replace(" ", "").replace("\u200c", "")  # noqa: E731
    if normalized(text).endswith(normalized(footer)):
        return text
    return f"{text}\n{footer}"
