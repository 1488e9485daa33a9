"""The service's own options, from settings (``service:`` once settings.py accepts it) or the environment."""
from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass

from ..config import Config
from .limits import API_MAX_BYTES

__all__ = ["ServiceOptions", "service_options"]


@dataclass(frozen=True)
class ServiceOptions:
    """What the service needs beyond the engine's settings.

    ``public_url``: the URL providers call us at (e.g. ``https://hooks.shop.example``); Twilio signs
    the full public URL. ``trusted_proxies``: the networks whose X-Forwarded-Proto/Host are believed
    when ``public_url`` is unset (see :mod:`engine.service.webhooks`).
    ``max_body_bytes``: the largest request body the API takes (webhooks and forms have fixed limits).
    """

    dashboard_password: str | None
    public_url: str | None
    session_secret: str
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_body_bytes: int = API_MAX_BYTES

    def __repr__(self) -> str:  # never print secrets
        return f"ServiceOptions(public_url={self.public_url!r}, max_body_bytes={self.max_body_bytes}, dashboard_password={'set' if self.dashboard_password else 'unset'})"


def service_options(config: Config) -> ServiceOptions:
    """``settings.service`` (if the settings have it), overridden by FOLLOWUP_DASHBOARD_PASSWORD / FOLLOWUP_PUBLIC_URL.

    ``trusted_proxies`` were checked when the settings loaded (engine/settings.py).
    """
    raw = getattr(config.settings, "service", None) or {}
    password = os.environ.get("FOLLOWUP_DASHBOARD_PASSWORD") or raw.get("dashboard_password") or None
    public_url = os.environ.get("FOLLOWUP_PUBLIC_URL") or raw.get("public_url") or None
    # sessions signed with the settings' secret survive restarts; without one they last one process
    secret = config.settings.secret_key or secrets.token_hex(32)
    proxies = tuple(ipaddress.ip_network(str(p), strict=False) for p in raw.get("trusted_proxies") or ())
    return ServiceOptions(password, public_url.rstrip("/") if public_url else None, "session:" + secret,
                          trusted_proxies=proxies, max_body_bytes=raw.get("max_body_bytes") or API_MAX_BYTES)
