"""``config/holidays.yaml``: dates added to or removed from the holidays calendar, every problem at its line.

The lunar holidays move with the moon sighting, so the calendar's estimate can be a day off::

    add:                                   # days off the calendar does not have (or not on that date)
      - {date: 2027-06-17, name: "تعطیل به مناسبت عاشورا", mourning: true}
    remove:                                # calendar dates that are not days off this year
      - {date: 2027-06-15, why: "Tasua fell on the 16th"}

A date is Gregorian (2027-06-17) or Jalali (1406-03-27). The file is optional.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from .deadlines import JALALI_YEARS
from .errors import ConfigError, Problem
from .offdays import NO_OVERRIDES, Holiday, HolidayOverrides
from .yamlfile import YamlDoc, join_path, load_yaml

__all__ = ["FILE_NAME", "load_overrides"]

FILE_NAME = "holidays.yaml"
_ITEM_KEYS = {"add": {"date", "name", "mourning"}, "remove": {"date", "why"}}
_EXAMPLE = {"add": '{date: 2027-06-17, name: "تعطیل به مناسبت عاشورا", mourning: true}',
            "remove": '{date: 2027-06-15, why: "Tasua fell on the 16th"}'}


def _date(doc: YamlDoc, key: str, value: Any) -> date | None:
    """A YAML date (YAML reads 2027-06-17 and 1406-03-27 alike as dates), Jalali when its year says so."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            value = None
    if not isinstance(value, date):
        doc.problem(key, "is not a date; write it as YYYY-MM-DD, Gregorian (2027-06-17) or Jalali (1406-03-27)")
        return None
    if value.year in JALALI_YEARS:
        import jdatetime  # here, not at the top: only a Jalali date needs it

        try:
            return jdatetime.date(value.year, value.month, value.day).togregorian()
        except ValueError as err:
            doc.problem(key, f"{value.isoformat()} is not a Jalali date: {err}")
            return None
    return value


def _items(doc: YamlDoc, section: str, raw: Any) -> list[tuple[str, dict]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        doc.problem(section, f"must be a list of dates, e.g. {section}: [{_EXAMPLE[section]}]")
        return []
    items = []
    for i, item in enumerate(raw):
        key = join_path(section, i)
        if section == "remove" and not isinstance(item, dict):
            item = {"date": item}
        if not isinstance(item, dict):
            doc.problem(key, f"must be a mapping, e.g. {_EXAMPLE[section]}")
            continue
        for extra in sorted(set(item) - _ITEM_KEYS[section], key=str):
            doc.problem(join_path(key, str(extra)), f"unknown key; an entry of {section} takes "
                                                    f"{', '.join(sorted(_ITEM_KEYS[section]))}")
        items.append((key, item))
    return items


def load_overrides(config_dir: Path) -> HolidayOverrides:
    """Read ``holidays.yaml`` in ``config_dir`` (none: no overrides); raise :class:`ConfigError` listing every
    problem with its line."""
    path = config_dir / FILE_NAME
    if not path.exists():
        return NO_OVERRIDES
    doc = load_yaml(path)
    raw = doc.data if doc.data is not None else {}
    if not isinstance(raw, dict):
        doc.problems.append(Problem(doc.display, "", "must be a mapping with add and remove lists, e.g. "
                                                     f"add: [{_EXAMPLE['add']}]", 1))
        raise ConfigError(doc.problems)
    for key in sorted(set(raw) - set(_ITEM_KEYS), key=str):
        doc.problem(str(key), "unknown key; holidays.yaml takes add and remove")
    added: dict[date, Holiday] = {}
    for key, item in _items(doc, "add", raw.get("add")):
        day = _date(doc, join_path(key, "date"), item.get("date"))
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            doc.problem(join_path(key, "name") if "name" in item else key,
                        "needs a name, said as the reason of each deferral, e.g. name: \"تعطیل به مناسبت عاشورا\"")
            continue
        mourning = item.get("mourning", False)
        if not isinstance(mourning, bool):
            doc.problem(join_path(key, "mourning"), f"{mourning!r} must be true or false")
            continue
        if day is None:
            continue
        if day in added:
            doc.problem(join_path(key, "date"), f"{day.isoformat()} is added twice; keep one entry")
        added[day] = Holiday(day, name.strip(), mourning)
    removed: set[date] = set()
    for key, item in _items(doc, "remove", raw.get("remove")):
        day = _date(doc, join_path(key, "date"), item.get("date"))
        if day is not None and day in added:
            doc.problem(join_path(key, "date"), f"{day.isoformat()} is both added and removed; keep one")
        elif day is not None:
            removed.add(day)
    if doc.problems:
        raise ConfigError(doc.problems)
    return HolidayOverrides(tuple(sorted(added.values(), key=lambda h: h.day)), frozenset(removed))
