"""Creating the configured providers: the worker, the HTTP service, ``followup validate`` and the CLI share it."""
from __future__ import annotations

import os

from providers.base import Provider
from providers.errors import ProviderConfigError
from providers.registry import create_provider

from .config import Config
from .errors import ConfigError, Problem

__all__ = ["build_providers"]


def build_providers(config: Config) -> dict[str, list[Provider]]:
    """Create every configured provider; a bad setting is a ConfigError naming file, line and key."""
    out: dict[str, list[Provider]] = {}
    problems = []
    where = os.path.relpath(config.settings.path)
    for channel, entries in config.settings.providers.items():
        out[channel] = []
        for i, entry in enumerate(entries):
            settings = {k: v for k, v in entry.items() if not k.startswith("_")}
            try:
                provider = create_provider(settings)
            except ProviderConfigError as err:
                problems.append(Problem(where, f"providers.{channel}[{i}].{err.key}", err.message, entry.get("_line")))
                continue
            if channel not in provider.channels:
                problems.append(Problem(where, f"providers.{channel}[{i}].type",
                                        f"a {provider.type!r} provider can't send {channel}", entry.get("_line")))
                continue
            out[channel].append(provider)
    if problems:
        raise ConfigError(problems)
    return out
