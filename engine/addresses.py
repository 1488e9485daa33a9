"""Reading phone numbers and email addresses the way people type them."""
from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from .text import ascii_digits

__all__ = ["normalize_phone", "normalize_email", "looks_like_email"]

_SEPARATORS = re.compile(r"[\s\-().\u200c\u200e\u200f]")


def normalize_phone(raw: str, region: str = "IR") -> str:
    """Any common way of writing a mobile number → E.164.

    For Iran ``۰۹۱۲…``, ``0912…``, ``912…``, ``98912…``, ``+98912…`` and ``0098912…`` all give ``+98912…``.
    Raises ValueError saying why a number can't be read.
    """
    text = _SEPARATORS.sub("", ascii_digits(str(raw or "")))
    if not text:
        raise ValueError("phone is empty")
    if text.startswith("00"):
        text = "+" + text[2:]
    if not re.fullmatch(r"\+?\d{4,17}", text):
        raise ValueError(f"{raw!r} is not a phone number (only digits, spaces, dashes and a leading + are allowed)")
    candidates = [text] if text.startswith("+") else [text, "+" + text]
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise ValueError(f"{raw!r} is not a valid phone number for region {region} "
                     "(write it with its country code, e.g. +98912…, if it is from elsewhere)")


def normalize_email(raw: str) -> str:
    """A syntactically valid email address, normalized (domain lowercased). Raises ValueError."""
    try:
        return validate_email(str(raw).strip(), check_deliverability=False).normalized
    except EmailNotValidError as err:
        raise ValueError(f"{raw!r} is not a valid email address: {err}") from None


def looks_like_email(text: str) -> bool:
    return "@" in text
