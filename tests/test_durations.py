"""engine.durations: reading and writing the durations marketers write (1d, 2h30m, ...)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from engine.durations import format_duration, parse_duration


@pytest.mark.parametrize("text, expected", [
    ("30s", timedelta(seconds=30)),
    ("15m", timedelta(minutes=15)),
    ("2h", timedelta(hours=2)),
    ("1d12h", timedelta(days=1, hours=12)),
    ("۲h", timedelta(hours=2)),
    ("۱d۱۲h", timedelta(days=1, hours=12)),
    (" 2H ", timedelta(hours=2)),
    ("0s", timedelta(0)),
])
def test_parse_duration_reads_what_marketers_write(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text, hint", [
    ("5", "like 30m"),
    (5, "5s, 5m, 5h or 5d"),
    ("1x", "like 30m"),
    ("1d1d", "write each unit once"),
    ("-1h", "whole numbers"),
    ("", "like 30m"),
    ("1.5h", "whole numbers"),
    (None, "like 30m"),
])
def test_parse_duration_rejects_with_a_fix_hint(text, hint):
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert hint in str(caught.value)
    assert repr(text) in str(caught.value)  # the message quotes what was written


@pytest.mark.parametrize("delta, text", [
    (timedelta(seconds=30), "30s"),
    (timedelta(hours=36), "1d12h"),
    (timedelta(days=2, hours=3, minutes=4, seconds=5), "2d3h4m5s"),
    (timedelta(0), "0s"),
])
def test_format_duration_is_the_inverse_of_parse(delta, text):
    assert format_duration(delta) == text
    assert parse_duration(format_duration(delta)) == delta
