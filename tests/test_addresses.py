"""engine.addresses: phone and email normalisation, landlines."""
from __future__ import annotations

import pytest

from engine.addresses import normalize_email, normalize_phone


@pytest.mark.parametrize("raw", [
    "09121234567", "9121234567", "989121234567", "+989121234567", "00989121234567",
    "۰۹۱۲۱۲۳۴۵۶۷", "٠٩١٢١٢٣٤٥٦٧", "۰۹۱۲ ۱۲۳ ۴۵۶۷",
    "0912 123 4567", "0912-123-4567", "(0912) 123-4567", "+98 (912) 123 45 67",
])
def test_normalize_phone_reads_every_iranian_way_of_writing_a_mobile(raw):
    assert normalize_phone(raw) == "+989121234567"


@pytest.mark.parametrize("raw, expected", [
    ("+14155552671", "+14155552671"),
    ("+4915112345678", "+4915112345678"),
    ("0014155552671", "+14155552671"),
])
def test_normalize_phone_keeps_foreign_numbers_with_their_country_code(raw, expected):
    assert normalize_phone(raw, "IR") == expected


@pytest.mark.parametrize("raw, reason", [
    ("", "phone is empty"),
    (None, "phone is empty"),
    ("abc", "is not a phone number"),
    ("0912123456a", "only digits"),
    ("12345", "not a valid phone number for region IR"),
    ("+98912123456", "not a valid phone number"),
    ("091212345678", "country code"),
])
def test_normalize_phone_says_why_a_number_is_unreadable(raw, reason):
    with pytest.raises(ValueError) as caught:
        normalize_phone(raw)
    assert reason in str(caught.value)


def test_normalize_email_lowercases_the_whole_address_and_trims():
    assert normalize_email("  Sara@Example.COM ") == "sara@example.com"


@pytest.mark.parametrize("raw", ["bad@", "no-at-sign", "a@b", "a b@example.com", ""])
def test_normalize_email_rejects_invalid_addresses_with_the_address(raw):
    with pytest.raises(ValueError) as caught:
        normalize_email(raw)
    assert "is not a valid email address" in str(caught.value)


@pytest.mark.parametrize("phone, fixed", [
    ("+989121234567", False),   # an Iranian mobile (the fast path)
    ("+982188776655", True),    # a Tehran landline
    ("+983132221100", True),    # an Isfahan landline
    ("+14155552671", False),    # US numbers may be either: taken as a mobile
    ("+442079460000", True),    # a London landline
    ("", False), (None, False),
])
def test_landline(phone, fixed):
    from engine.addresses import landline

    assert landline(phone) is fixed
