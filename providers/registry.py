"""Provider types by name: an explicit table, imported lazily, plus an entry-points group.

Third-party adapters register under the ``followup.providers`` entry-points group, e.g.
``[project.entry-points."followup.providers"] mypanel = "mypkg.panel:MyPanel"``.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Mapping

from .base import Provider
from .errors import ProviderConfigError

__all__ = ["BUILTIN", "provider_class", "create_provider", "known_types"]

BUILTIN: dict[str, str] = {
    "file": "providers.file:FileProvider",
    "console": "providers.console:ConsoleProvider",
    "memory": "providers.memory:MemoryProvider",
    "kavenegar": "providers.kavenegar:KavenegarProvider",
    "smsir": "providers.smsir:SmsIrProvider",
    "melipayamak": "providers.melipayamak:MelipayamakProvider",
    "ippanel": "providers.ippanel:IPPanelProvider",
    "ghasedak": "providers.ghasedak:GhasedakProvider",
    "twilio": "providers.twilio:TwilioProvider",
    "smtp": "providers.smtp:SmtpProvider",
    "sendgrid": "providers.sendgrid:SendGridProvider",
    "mailgun": "providers.mailgun:MailgunProvider",
}

GROUP = "followup.providers"


def _third_party() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def known_types() -> list[str]:
    """Every provider type this installation can create."""
    return sorted(set(BUILTIN) | set(_third_party()))


def provider_class(type_name: str) -> type[Provider]:
    """Resolve a provider type name to its class, with a clear error for unknown names."""
    target = BUILTIN.get(type_name) or _third_party().get(type_name)
    if target is None:
        raise ProviderConfigError("type", f"unknown provider type {type_name!r}; known: {', '.join(known_types())}")
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ProviderConfigError("type", f"provider type {type_name!r} ({target}) cannot be loaded: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ProviderConfigError("type", f"{target} is not a providers.base.Provider subclass")
    return cls


def create_provider(settings: Mapping[str, Any]) -> Provider:
    """Build a provider from one entry of ``providers.sms`` / ``providers.email`` in settings."""
    name = settings.get("name")
    if not name:
        raise ProviderConfigError("name", "every provider needs a name (e.g. name: kavenegar-main)")
    cls = provider_class(str(settings.get("type", "")))
    return cls(str(name), settings)
