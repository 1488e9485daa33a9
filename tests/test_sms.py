"""engine.sms: encoding units, segments and the opt-out footer."""
from __future__ import annotations

import pytest

from engine.sms import sms_info, with_footer

FOOTER = "لغو11"


@pytest.mark.parametrize("text, encoding, units, segments", [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("{" * 80, "GSM-7", 160, 1),  # extension characters count 2
    ("€" + "a" * 159, "GSM-7", 161, 2),
    ("[]~|^\\", "GSM-7", 12, 1),
    ("س" * 70, "UCS-2", 70, 1),
    ("س" * 71, "UCS-2", 71, 2),
    ("س" * 134, "UCS-2", 134, 2),
    ("س" * 135, "UCS-2", 135, 3),
    ("سلام، خوش آمدید", "UCS-2", 15, 1),
    ("a" * 159 + "ç", "UCS-2", 160, 3),  # one non-GSM character makes the whole text UCS-2
    ("😀", "UCS-2", 2, 1),  # an emoji is two UTF-16 units
    ("😀" * 35, "UCS-2", 70, 1),
    ("😀" * 36, "UCS-2", 72, 2),
])
def test_sms_info_counts_encoding_units_and_segments(text, encoding, units, segments):
    info = sms_info(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)


def test_sms_info_describe_is_readable():
    assert sms_info("a" * 161).describe() == "GSM-7, 161 units, 2 segments"
    assert sms_info("سلام").describe() == "UCS-2, 4 units, 1 segment"


def test_sms_segments_never_split_an_extension_character():
    # 152 letters fill segment 1 but for one septet: the escape + '{' must move to segment 2,
    # which then holds '{' + 151 letters, and the last letter needs a third segment.
    assert sms_info("a" * 152 + "{" + "a" * 152).segments == 3


@pytest.mark.parametrize("text, expected", [
    ("سلام", "سلام\n" + FOOTER),
    ("سلام  \n", "سلام\n" + FOOTER),
    ("سلام\n" + FOOTER, "سلام\n" + FOOTER),
    ("سلام\nلغو۱۱", "سلام\nلغو۱۱"),  # already ends with it, in Persian digits
    ("سلام لغو 11", "سلام لغو 11"),
])
def test_with_footer_appends_the_opt_out_once(text, expected):
    assert with_footer(text, FOOTER) == expected


def test_with_footer_is_idempotent_and_empty_disables():
    once = with_footer("hi", FOOTER)
    assert with_footer(once, FOOTER) == once
    assert once.count(FOOTER) == 1
    assert with_footer("hi  ", "") == "hi"
