"""Small text helpers shared across the engine: digits, masking."""
from __future__ import annotations

import re

__all__ = ["ascii_digits", "fa_digits", "mask_phone", "mask_email", "mask_address", "grouped"]

_TO_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_TO_FA = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def ascii_digits(text: str) -> str:
    """Persian (۰–۹) and Arabic-Indic (٠–٩) digits to ASCII."""
    return str(text).translate(_TO_ASCII)


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
