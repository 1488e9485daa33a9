"""The ``links`` and ``attribution`` settings: short links, tracked email, and which message earns a sale.

::

    links:
      base_url: https://s.shop.example   # default: service.public_url
      track_email: true                  # rewrite the links of email html and text (default false)
      track_opens: false                 # an open pixel in email html (default false)
      expire_after: 90d                  # a short link answers 404 after this (default 90d)
    attribution:
      click_window: 5d                   # the last clicked message within this earns a conversion
      send_window: {sms: 1d, email: 3d}  # else the last delivered message within this (one duration for both)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .durations import parse_duration
from .yamlfile import YamlDoc, join_path

__all__ = ["LinkSettings", "AttributionSettings", "parse_links", "parse_attribution", "setting_mapping",
           "setting_duration"]

LINK_KEYS = ("base_url", "track_email", "track_opens", "expire_after")
ATTRIBUTION_KEYS = ("click_window", "send_window")


@dataclass(frozen=True)
class LinkSettings:
    """How short links are made; ``base_url`` None means the service's ``public_url``."""

    base_url: str | None = None
    track_email: bool = False
    track_opens: bool = False
    expire_after: timedelta = timedelta(days=90)


@dataclass(frozen=True)
class AttributionSettings:
    """The windows of :func:`engine.attribution.credit`."""

    click_window: timedelta = timedelta(days=5)
    send_window: dict[str, timedelta] = field(default_factory=lambda: {"sms": timedelta(days=1),
                                                                       "email": timedelta(days=3)})


def setting_mapping(doc: YamlDoc, key: str, raw: Any, keys: tuple[str, ...], example: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        doc.problem(key, f"must be a mapping, e.g. {example}")
        return {}
    for extra in sorted(set(raw) - set(keys), key=str):
        doc.problem(join_path(key, str(extra)), f"unknown key; {key} takes {', '.join(keys)}")
    return raw


def setting_duration(doc: YamlDoc, key: str, raw: Any, default: timedelta) -> timedelta:
    if raw is None:
        return default
    try:
        value = parse_duration(raw)
    except ValueError as err:
        doc.problem(key, str(err))
        return default
    if not value:
        doc.problem(key, "must be longer than 0s")
        return default
    return value


def _flag(doc: YamlDoc, key: str, raw: Any) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        doc.problem(key, f"{raw!r} must be true or false")
        return False
    return raw


def parse_links(doc: YamlDoc, raw: Any) -> LinkSettings:
    """``links:`` → :class:`LinkSettings` (problems recorded on ``doc``)."""
    raw = setting_mapping(doc, "links", raw, LINK_KEYS, "{base_url: https://s.shop.example, track_email: true}")
    base = doc.expand_env(raw.get("base_url"), "links.base_url")
    if base is not None and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", str(base)):
        doc.problem("links.base_url", f"{base!r} must be an http(s) address without a query, "
                                      "e.g. https://s.shop.example (short links are BASE/CODE)")
        base = None
    return LinkSettings(base_url=str(base).rstrip("/") if base else None,
                        track_email=_flag(doc, "links.track_email", raw.get("track_email")),
                        track_opens=_flag(doc, "links.track_opens", raw.get("track_opens")),
                        expire_after=setting_duration(doc, "links.expire_after", raw.get("expire_after"),
                                               LinkSettings.expire_after))


def parse_attribution(doc: YamlDoc, raw: Any) -> AttributionSettings:
    """``attribution:`` → :class:`AttributionSettings` (problems recorded on ``doc``)."""
    raw = setting_mapping(doc, "attribution", raw, ATTRIBUTION_KEYS,
                          "{click_window: 5d, send_window: {sms: 1d, email: 3d}}")
    default = AttributionSettings()
    click = setting_duration(doc, "attribution.click_window", raw.get("click_window"), default.click_window)
    sends = dict(default.send_window)
    given = raw.get("send_window")
    if isinstance(given, dict):
        for channel, value in given.items():
            key = join_path("attribution.send_window", str(channel))
            if channel not in sends:
                doc.problem(key, "unknown channel; send_window takes sms and email")
                continue
            sends[channel] = setting_duration(doc, key, value, sends[channel])
    elif given is not None:
        one = setting_duration(doc, "attribution.send_window", given, timedelta(0))
        if one:
            sends = {channel: one for channel in sends}
    return AttributionSettings(click_window=click, send_window=sends)
