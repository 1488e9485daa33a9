"""Reading phone numbers and email addresses the way people type them."""
from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from .text import ascii_digits

__all__ = ["normalize_phone", "normalize_email", "looks_like_email", "read_address", "landline"]

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
    """A syntactically valid email address, normalized and lower-cased, local part too. Raises ValueError.

    Mail servers treat the local part as case-sensitive in theory and never in practice, and people type
    ``Mina@Yahoo.com`` for ``mina@yahoo.com``: one address is stored, and looked up, one way.
    """
    # imported here: the worker reads addresses (is a phone a landline?) but never parses an email
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(str(raw).strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as err:
        raise ValueError(f"{raw!r} is not a valid email address: {err}") from None


def looks_like_email(text: str) -> bool:
    return "@" in text


def read_address(text: str, region: str) -> tuple[str, str] | None:
    """``("email", address)`` or ``("phone", E.164)`` when ``text`` reads as one (normalized), else None."""
    try:
        if looks_like_email(text):
            return "email", normalize_email(text)
        return "phone", normalize_phone(text, region)
    except ValueError:
        return None


_IRAN_MOBILE = re.compile(r"\+989\d{9}")
#: kinds of number no SMS reaches (a fixed line, a toll-free or premium line); a number that may be
#: either a fixed line or a mobile (as in the US and Canada) is taken as a mobile
_NOT_SMS = frozenset({phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.TOLL_FREE,
                      phonenumbers.PhoneNumberType.PREMIUM_RATE, phonenumbers.PhoneNumberType.SHARED_COST,
                      phonenumbers.PhoneNumberType.UAN, phonenumbers.PhoneNumberType.VOICEMAIL})


def landline(phone: str | None) -> bool:
    """Whether ``phone`` (E.164, as contacts are stored) is a number no SMS can reach, like ``+982188776655``."""
    if not phone or _IRAN_MOBILE.fullmatch(phone):  # the common case, without parsing
        return False
    return _landline(phone)


@lru_cache(maxsize=4096)
def _landline(phone: str) -> bool:
    try:
        return phonenumbers.number_type(phonenumbers.parse(phone)) in _NOT_SMS
    except phonenumbers.NumberParseException:
        return False
