"""The ``alerts`` setting: who ops are, and which conditions they are told about.

::

    alerts:
      to: [{sms: "09121234567"}, {email: ops@shop.example}]
      on: [provider_paused, {credit_below: 100000}, {queue_lag_over: 10m}, {worker_silent_for: 5m}]
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .addresses import normalize_email, normalize_phone
from .durations import format_duration, parse_duration
from .yamlfile import YamlDoc, join_path

__all__ = ["AlertSettings", "Condition", "CONDITIONS", "parse_alerts"]

#: each condition and what its value is (None: it takes none)
CONDITIONS = {"provider_paused": None, "credit_below": "an amount of credit",
              "queue_lag_over": "a duration", "worker_silent_for": "a duration"}
EXAMPLE = ('{to: [{sms: "0912..."}, {email: ops@shop.example}], on: [provider_paused, {credit_below: 100000}, '
           '{queue_lag_over: 10m}, {worker_silent_for: 5m}]}')


@dataclass(frozen=True)
class Condition:
    """One condition to watch: ``kind`` with its threshold (credit in the provider's unit, or a duration)."""

    kind: str
    threshold: float | timedelta | None = None

    def describe(self) -> str:
        """How it is written in settings.yaml, e.g. ``queue_lag_over: 10m``."""
        if self.threshold is None:
            return self.kind
        value = format_duration(self.threshold) if isinstance(self.threshold, timedelta) else f"{self.threshold:g}"
        return f"{self.kind}: {value}"


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go (``(channel, address)`` pairs) and the conditions that send them."""

    to: tuple[tuple[str, str], ...]
    on: tuple[Condition, ...]


def _recipients(doc: YamlDoc, raw: Any, region: str, channels: set[str]) -> list[tuple[str, str]]:
    key = "alerts.to"
    if not isinstance(raw, list) or not raw:
        doc.problem(key, 'must be a non-empty list of recipients, e.g. [{sms: "09121234567"}, {email: ops@shop.example}]')
        return []
    out = []
    for i, item in enumerate(raw):
        ikey = join_path(key, i)
        if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in ("sms", "email"):
            doc.problem(ikey, 'must be one of {sms: "09121234567"} or {email: ops@shop.example}')
            continue
        channel, value = next(iter(item.items()))
        ckey = join_path(ikey, channel)
        value = doc.expand_env(value, ckey)
        try:
            address = normalize_phone(str(value), region) if channel == "sms" else normalize_email(str(value))
        except ValueError as err:
            doc.problem(ckey, str(err))
            continue
        if channel not in channels:
            doc.problem(ckey, f"no {channel} provider is configured to send it; add one under providers.{channel}")
            continue
        out.append((channel, address))
    return out


def _condition(doc: YamlDoc, key: str, item: Any) -> Condition | None:
    kind, value = (item, None) if isinstance(item, str) else (
        next(iter(item.items())) if isinstance(item, dict) and len(item) == 1 else (None, None))
    if kind not in CONDITIONS:
        doc.problem(key, f"{item!r} is not a condition; use provider_paused, {{credit_below: 100000}}, "
                         "{queue_lag_over: 10m} or {worker_silent_for: 5m}")
        return None
    if CONDITIONS[kind] is None:
        if value is not None or isinstance(item, dict):
            doc.problem(key, f"{kind} takes no value; write it alone: {kind}")
            return None
        return Condition(kind)
    vkey = join_path(key, kind)
    if kind == "credit_below":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            doc.problem(vkey, f"{value!r} must be a positive amount, in the unit the provider reports credit in "
                              "(Rial for the Iranian panels), e.g. {credit_below: 100000}")
            return None
        return Condition(kind, float(value))
    try:
        duration = parse_duration(value)
    except ValueError as err:
        doc.problem(vkey, f"{err}, e.g. {{{kind}: 10m}}")
        return None
    if duration < timedelta(minutes=1):
        doc.problem(vkey, f"{value!r} is shorter than a minute, how often alerts are checked; use 1m or more")
        return None
    return Condition(kind, duration)


def parse_alerts(doc: YamlDoc, raw: Any, region: str, channels: set[str]) -> AlertSettings | None:
    """The ``alerts`` mapping → :class:`AlertSettings`, or None when it is absent (problems recorded on ``doc``).

    ``channels``: those with a provider configured, which are the only ones an alert can go out on.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        doc.problem("alerts", f"must be a mapping like {EXAMPLE}")
        return None
    # YAML 1.1, which PyYAML reads, takes a bare `on` for true: the key `on:` arrives as True
    raw = {("on" if key is True else key): value for key, value in raw.items()}
    for extra in sorted(str(k) for k in set(raw) - {"to", "on"}):
        doc.problem(join_path("alerts", extra), "unknown key; alerts takes to and on")
    to = _recipients(doc, raw.get("to"), region, channels)
    on: list[Condition] = []
    conditions = raw.get("on")
    if not isinstance(conditions, list) or not conditions:
        doc.problem("alerts.on", "must be a non-empty list of conditions, e.g. [provider_paused, {queue_lag_over: 10m}]")
        conditions = []
    for i, item in enumerate(conditions):
        condition = _condition(doc, join_path("alerts.on", i), item)
        if condition is None:
            continue
        if any(c.kind == condition.kind for c in on):
            doc.problem(join_path("alerts.on", i), f"{condition.kind} is listed twice; keep one")
            continue
        on.append(condition)
    return AlertSettings(tuple(to), tuple(on))
