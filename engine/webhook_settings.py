"""The ``webhooks`` setting: where events go out to, which events, and the secret they are signed with.

::

    webhooks:
      - url: https://crm.example/hooks/followup
        events: [handed_off, converted, replied, unsubscribed, clicked, lead_outcome]
        secret: ${CRM_WEBHOOK_SECRET}     # whsec_ and base64, as Standard Webhooks gives them

The secret is never shown: :func:`masked_url` is how a URL appears in the CLI, the dashboard and logs.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .yamlfile import YamlDoc, join_path

__all__ = ["WEBHOOK_EVENTS", "WebhookEndpointSettings", "parse_webhooks", "masked_url"]

#: the events a webhook may subscribe to
WEBHOOK_EVENTS = ("handed_off", "converted", "replied", "unsubscribed", "clicked", "lead_outcome")
KEYS = ("url", "events", "secret")
EXAMPLE = ("{url: https://crm.example/hooks/followup, events: [converted, replied], "
           "secret: ${CRM_WEBHOOK_SECRET}}")


@dataclass(frozen=True)
class WebhookEndpointSettings:
    """One webhook URL, the events it takes, and its signing secret (kept out of ``repr``)."""

    url: str
    events: tuple[str, ...]
    secret: str = field(repr=False)


def masked_url(url: str) -> str:
    """``url`` without what may be a credential: user info and query values are shown as ``***``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = ("***@" if parts.username or parts.password else "") + host + (f":{parts.port}" if parts.port else "")
    query = "&".join(f"{p.split('=', 1)[0]}=***" for p in parts.query.split("&") if p) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _secret_problem(secret: str) -> str | None:
    """Why ``secret`` is not a Standard Webhooks secret (``whsec_`` and at least 16 bytes of base64), or None."""
    body = secret[len("whsec_"):] if secret.startswith("whsec_") else ""
    try:
        size = len(base64.b64decode(body + "=" * (-len(body) % 4), validate=True)) if body else 0
    except binascii.Error:
        size = 0
    if size < 16:
        return ("is not a Standard Webhooks secret; give whsec_ followed by at least 16 bytes in base64 "
                "(e.g. whsec_$(openssl rand -base64 32))")
    return None


def parse_webhooks(doc: YamlDoc, raw: Any) -> tuple[WebhookEndpointSettings, ...]:
    """``webhooks:`` → one :class:`WebhookEndpointSettings` per URL (problems recorded on ``doc``)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        doc.problem("webhooks", f"must be a list of webhooks, e.g. [{EXAMPLE}]")
        return ()
    out: list[WebhookEndpointSettings] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        key = join_path("webhooks", i)
        if not isinstance(entry, dict):
            doc.problem(key, f"must be a mapping like {EXAMPLE}")
            continue
        for extra in sorted(set(entry) - set(KEYS), key=str):
            doc.problem(join_path(key, str(extra)), f"unknown key; a webhook takes {', '.join(KEYS)}")
        url = str(doc.expand_env(entry.get("url") or "", join_path(key, "url"))).strip()
        if not re.match(r"^https?://[^/?#\s]+", url) or any(c.isspace() for c in url):
            doc.problem(join_path(key, "url"), "must be an http(s) address, e.g. https://crm.example/hooks/followup")
            continue
        if url in seen:
            doc.problem(join_path(key, "url"), "is given twice; list each URL once with all its events")
            continue
        seen.add(url)
        events = entry.get("events")
        if not isinstance(events, list) or not events:
            doc.problem(join_path(key, "events"), f"must be a list of events out of {', '.join(WEBHOOK_EVENTS)}")
            continue
        unknown = [str(e) for e in events if e not in WEBHOOK_EVENTS]
        if unknown:
            doc.problem(join_path(key, "events"), f"unknown event {', '.join(unknown)}; use {', '.join(WEBHOOK_EVENTS)}")
            continue
        secret = doc.expand_env(entry.get("secret"), join_path(key, "secret"))
        if not secret and "$" in str(entry.get("secret")):
            continue  # the missing environment variable is the problem already recorded
        if not secret:
            doc.problem(join_path(key, "secret"), "is missing; give the signing secret from the environment, "
                                                  "e.g. secret: ${CRM_WEBHOOK_SECRET}")
            continue
        problem = _secret_problem(str(secret))
        if problem:
            doc.problem(join_path(key, "secret"), problem)
            continue
        out.append(WebhookEndpointSettings(url, tuple(dict.fromkeys(events)), str(secret)))
    return tuple(out)
