"""The service's own options, from settings (``service:``) or the environment."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from ..config import Config
from .limits import API_MAX_BYTES
from ..sessions import SessionPolicy

__all__ = ["ServiceOptions", "service_options", "PASSWORD_ENV"]

PASSWORD_ENV = "FOLLOWUP_DASHBOARD_PASSWORD"


@dataclass(frozen=True)
class ServiceOptions:
    """What the service needs beyond the engine's settings.

    ``public_url``: the URL providers call us at (e.g. ``https://hooks.shop.example``); Twilio signs
    the full public URL. ``trusted_proxies``: the networks whose X-Forwarded-Proto/Host are believed
    when ``public_url`` is unset (see :mod:`engine.service.webhooks`).
    ``max_body_bytes``: the largest request body the API takes (webhooks and forms have fixed limits).
    ``locale``: the dashboard's language, ``fa`` (right-to-left, Jalali dates) or ``en``; by default fa where
    the settings' timezone is Asia/Tehran, else en.
    ``password_source`` says where ``dashboard_password`` came from: the environment variable, the
    settings, or None when there is none (the dashboard then takes only API keys).
    """

    dashboard_password: str | None
    public_url: str | None
    password_source: str | None = None
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_body_bytes: int = API_MAX_BYTES
    locale: str = "en"

    def __repr__(self) -> str:  # never print secrets
        return f"ServiceOptions(public_url={self.public_url!r}, max_body_bytes={self.max_body_bytes}, dashboard_password={'set' if self.dashboard_password else 'unset'})"


def service_options(config: Config) -> ServiceOptions:
    """``settings.service``, with FOLLOWUP_DASHBOARD_PASSWORD / FOLLOWUP_PUBLIC_URL taking precedence.

    ``trusted_proxies`` were checked when the settings loaded (engine/settings.py).
    """
    raw = getattr(config.settings, "service", None) or {}
    if os.environ.get(PASSWORD_ENV):
        password, source = os.environ[PASSWORD_ENV], f"the environment variable {PASSWORD_ENV}"
    elif raw.get("dashboard_password"):
        password, source = str(raw["dashboard_password"]), f"service.dashboard_password in {config.settings.path}"
    else:
        password, source = None, None
    public_url = os.environ.get("FOLLOWUP_PUBLIC_URL") or raw.get("public_url") or None
    default = SessionPolicy()
    policy = SessionPolicy(idle=raw.get("session_idle") or default.idle, max=raw.get("session_max") or default.max)
    proxies = tuple(ipaddress.ip_network(str(p), strict=False) for p in raw.get("trusted_proxies") or ())
    locale = raw.get("locale") or ("fa" if config.settings.timezone.key == "Asia/Tehran" else "en")
    return ServiceOptions(password, public_url.rstrip("/") if public_url else None, source, policy,
                          trusted_proxies=proxies, max_body_bytes=raw.get("max_body_bytes") or API_MAX_BYTES,
                          locale=locale)
