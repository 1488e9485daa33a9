"""Days a send window skips: a country's official holidays (the ``holidays`` package) and mourning days.

``send_window: {skip_holidays: IR}`` skips every official holiday of Iran: the Persian solar ones and the
Islamic lunar ones, which the package marks as estimated since they move with the moon sighting.
``skip_days: [mourning]`` skips the mourning days alone (Tasua, Ashura, Arbaeen, the martyrdom days and
the deaths commemorated as holidays), for a business that sends on Nowruz but not on Ashura.
``config/holidays.yaml`` (:mod:`engine.holiday_overrides`) adds dates or removes the package's.

A holiday's name is the deferral reason, in Persian where the package has the country's names in Persian.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

__all__ = ["Holiday", "HolidayOverrides", "NO_OVERRIDES", "MOURNING", "off_day", "known_country", "country_days"]

#: the ``skip_days`` value for mourning days
MOURNING = "mourning"
#: a holiday is a mourning day when its English name (the package's en_US names) holds one of these
_MOURNING_WORDS = ("tasua", "ashura", "arbaeen", "martyrdom", "death of")


@dataclass(frozen=True)
class Holiday:
    """One day off: its name (Persian where the package has it) and whether it is a mourning day."""

    day: date
    name: str
    mourning: bool = False


@dataclass(frozen=True)
class HolidayOverrides:
    """What ``config/holidays.yaml`` says: holidays added, and package holidays removed, by date."""

    added: tuple[Holiday, ...] = ()
    removed: frozenset[date] = field(default_factory=frozenset)

    def lookup(self, day: date) -> Holiday | None:
        for holiday in self.added:
            if holiday.day == day:
                return holiday
        return None


NO_OVERRIDES = HolidayOverrides()


def known_country(code: str) -> bool:
    """Whether the ``holidays`` package has a calendar for ``code`` (ISO 3166 alpha-2, e.g. IR)."""
    import holidays  # here, not at the top: about 0.2 s of imports, needed only where a window skips holidays

    return code.upper() in holidays.list_supported_countries()


@lru_cache(maxsize=64)
def country_days(code: str, year: int) -> dict[date, Holiday]:
    """The official holidays of ``code`` in ``year``, named in Persian where the package can."""
    import holidays

    cls = holidays.country_holidays(code.upper()).__class__
    languages = getattr(cls, "supported_languages", ()) or ()
    local = cls(years=year, language="fa_IR") if "fa_IR" in languages else cls(years=year)
    english = cls(years=year, language="en_US") if "en_US" in languages else local
    days = {}
    for day in local:
        names = local.get_list(day)
        words = " ".join(english.get_list(day)).lower()
        days[day] = Holiday(day, "، ".join(names) if "fa_IR" in languages else ", ".join(names),
                            mourning=any(w in words for w in _MOURNING_WORDS))
    return days


def off_day(day: date, country: str | None, mourning: bool, overrides: HolidayOverrides = NO_OVERRIDES
            ) -> Holiday | None:
    """The holiday that closes ``day`` for a window skipping ``country``'s holidays and/or mourning days."""
    if not country and not mourning:
        return None
    holiday = overrides.lookup(day)
    if holiday is None and day not in overrides.removed:
        holiday = country_days(country or "IR", day.year).get(day)
    if holiday is None:
        return None
    if country or holiday.mourning:
        return holiday
    return None
