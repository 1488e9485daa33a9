"""Small text helpers shared across the engine: digits, Persian letters, masking."""
from __future__ import annotations

import re

__all__ = ["ascii_digits", "fa_digits", "fa_letters", "mask_phone", "mask_email", "mask_address", "grouped"]

_TO_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_TO_FA = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def ascii_digits(text: str) -> str:
    """Persian (۰–۹) and Arabic-Indic (٠–٩) digits to ASCII."""
    return str(text).translate(_TO_ASCII)


#: Arabic letters keyboards and old systems type for Persian ones (ي ى → ی, ك → ک), and invisible characters
#: that come in with copied text: zero-width space and joiner, direction marks and embeddings, BOM, soft
#: hyphen. ZWNJ (U+200C) is kept: it is part of Persian spelling (می‌خواهم, نام‌خانوادگی).
_FA_LETTERS = str.maketrans({"\u064a": "\u06cc", "\u0649": "\u06cc", "\u0643": "\u06a9",
                             **{ch: None for ch in "\u200b\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                                "\u2060\u2066\u2067\u2068\u2069\ufeff\u00ad"}})


def fa_letters(text: str) -> str:
    """Arabic ``ي``/``ى``/``ك`` as Persian ``ی``/``ک``, without zero-width junk (ZWNJ stays): how names are stored."""
    return str(text).translate(_FA_LETTERS)


def fa_digits(value: object) -> str:
    """ASCII digits to Persian digits (the ``fa_digits`` template filter)."""
    return str(value).translate(_TO_FA)


def grouped(value: float | int | None) -> str:
    """A money or count figure as people read it: ``1200000`` → ``1,200,000``; ``0.5`` → ``0.50``; never ``1.2e+06``."""
    if value is None:
        return ""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def mask_phone(phone: str | None) -> str:
    """``+989121234567`` → ``+98912***4567``."""
    if not phone:
        return ""
    if len(phone) <= 8:
        return phone[:2] + "***"
    return f"{phone[:-7]}***{phone[-4:]}"


def mask_email(email: str | None) -> str:
    """``sara@example.com`` → ``s***@example.com``."""
    if not email or "@" not in email:
        return "***" if email else ""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"\+?\d{10,15}")


def mask_address(text: str) -> str:
    """Mask every phone number and email address found in free text (log lines, reasons)."""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
