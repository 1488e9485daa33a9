"""How long each value a contact brings in may be: one definition, used by the API and the CSV import.

A contact's fields reach templates and so the messages sent; without these limits a 100 KB first name
would make a 1,500-segment SMS.
"""
from __future__ import annotations

__all__ = ["MAX_LENGTH", "MAX_TAG", "MAX_TAGS", "MAX_ATTR_KEY", "MAX_ATTR_VALUE", "MAX_ATTRS", "length_problems"]

#: characters per column
MAX_LENGTH = {"phone": 40, "email": 320, "first_name": 200, "last_name": 200, "timezone": 64, "locale": 8,
              "external_id": 200}
#: characters per tag, and tags per contact
MAX_TAG, MAX_TAGS = 100, 50
#: characters per extra column's name and value (``attrs``), and extra columns per contact
MAX_ATTR_KEY, MAX_ATTR_VALUE, MAX_ATTRS = 100, 1000, 50


def _over(field: str, subject: str, length: int, limit: int) -> str:
    return f"{field}: {subject}{length:,} characters, over the limit of {limit:,}; shorten it"


def length_problems(values: dict[str, str], tags: list[str], attrs: dict[str, str]) -> list[str]:
    """Every value over its limit, as ``"FIELD: … N characters, over the limit of M; shorten it"``."""
    problems = [_over(name, "", len(values[name]), limit) for name, limit in MAX_LENGTH.items()
                if len(values.get(name) or "") > limit]
    long_tag = next((t for t in tags if len(t) > MAX_TAG), None)
    if long_tag is not None:
        problems.append(_over("tags", "a tag of ", len(long_tag), MAX_TAG))
    if len(tags) > MAX_TAGS:
        problems.append(f"tags: {len(tags)} tags, over the limit of {MAX_TAGS}; keep the ones you enroll by")
    if len(attrs) > MAX_ATTRS:
        problems.append(f"attrs: {len(attrs)} extra columns, over the limit of {MAX_ATTRS}; drop the ones "
                        "no template uses")
    for key, value in attrs.items():
        if len(key) > MAX_ATTR_KEY:
            problems.append(_over("attrs", "a column name of ", len(key), MAX_ATTR_KEY))
        elif len(value) > MAX_ATTR_VALUE:
            problems.append(_over("attrs", f"column {key!r}: ", len(value), MAX_ATTR_VALUE))
    return problems
