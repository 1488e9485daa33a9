"""providers.ratelimit: parsing rates and spacing reservations (a fake clock, no sleeping)."""
from __future__ import annotations

import pytest

from providers.errors import ProviderConfigError
from providers.ratelimit import RateLimiter, parse_rate


@pytest.mark.parametrize("text, per_second", [
    ("20/s", 20.0), ("600/m", 10.0), ("1/2s", 0.5), ("5000/h", 5000 / 3600), (" 10 / s ", 10.0),
    ("1.5/s", 1.5), (None, None), ("", None), (0, None), (5, 5.0),
])
def test_parse_rate(text, per_second):
    if per_second is None:
        assert parse_rate(text) is None
    else:
        assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["fast", "0/s", "10/d", "-1/s", "10"])
def test_parse_rate_rejects_with_an_example(text):
    with pytest.raises(ProviderConfigError) as caught:
        parse_rate(text)
    assert caught.value.key == "rate"
    assert "20/s" in caught.value.message


class FakeClock:
    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_spaces_reservations_without_sleeping():
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    assert [round(limiter.reserve(), 6) for _ in range(4)] == [0.0, 0.1, 0.2, 0.3]
    clock.now += 0.25  # time passes: the queue drains
    assert limiter.reserve() == pytest.approx(0.15)
    clock.now += 10
    assert limiter.reserve() == 0.0


def test_rate_limiter_unlimited_and_acquire_uses_the_given_sleep():
    assert RateLimiter(None).reserve() == 0.0
    slept = []
    limiter = RateLimiter(4, clock=FakeClock())
    for _ in range(3):
        limiter.acquire(sleep=slept.append)
    assert slept == [0.25, 0.5]
