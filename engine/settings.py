"""``config/settings.yaml``: read, checked at start-up, every problem reported with its line."""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from .alert_settings import AlertSettings, parse_alerts
from .durations import format_duration, parse_duration
from .errors import ConfigError
from .link_settings import AttributionSettings, LinkSettings, parse_attribution, parse_links
from .sales_settings import SalesSettings, ScoringSettings, parse_sales, parse_scoring
from .webhook_settings import WebhookEndpointSettings, parse_webhooks
from .window import WEEKDAYS, FrequencyCap, SendWindow
from .yamlfile import YamlDoc, join_path, load_yaml

__all__ = ["Settings", "WorkerSettings", "load_settings", "parse_window", "parse_cap", "parse_timezone"]

CHANNELS = ("sms", "email")
TOP_KEYS = {
    "database_url", "templates_dir", "timezone", "default_region", "locale", "send_window", "frequency_cap",
    "sms_opt_out_footer", "providers", "unsubscribe_url", "worker", "secret_key", "service", "alerts", "links",
    "attribution", "scoring", "sales", "webhooks",
}
SERVICE_KEYS = ("dashboard_password", "public_url", "trusted_proxies", "max_body_bytes", "session_idle",
                "session_max", "locale")
#: the opt-out line by locale: «لغو11» (reply 11) in Persian; an English one that keeps an SMS in GSM-7
DEFAULT_FOOTER = {"fa": "لغو11", "en": "Reply STOP to opt out"}
SESSION_DEFAULTS = {"session_idle": "8h", "session_max": "7d"}
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker paces itself. All have sane defaults; see README."""

    batch_size: int = 200
    concurrency: int = 16
    lease_seconds: int = 300
    max_attempts: int = 5
    retry_backoff_seconds: int = 60
    inline_retries: int = 3
    provider_pause_seconds: int = 1800
    #: PostgreSQL bounds on the worker's own sessions, in seconds (see :func:`engine.db.make_engine`)
    lock_timeout: int = 10
    statement_timeout: int = 60
    connect_timeout: int = 10
    #: a tick (or delivery poll) running longer than this logs the phase it is in, and again each time as long
    tick_warn_seconds: int = 60
    #: after SIGTERM the worker exits within this many seconds, leaving whatever is stuck to recovery
    drain_seconds: int = 30


@dataclass
class Settings:
    """Everything in settings.yaml, checked and with paths resolved."""

    path: Path
    database_url: str
    templates_dir: Path
    timezone: ZoneInfo
    default_region: str = "IR"
    locale: str = "fa"
    send_window: SendWindow = field(default_factory=SendWindow)
    frequency_cap: FrequencyCap = field(default_factory=FrequencyCap)
    sms_opt_out_footer: str | dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FOOTER))
    providers: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)  # holds secrets
    unsubscribe_url: str | None = None
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    secret_key: str | None = field(default=None, repr=False)
    #: the HTTP service: dashboard_password, public_url, trusted_proxies, max_body_bytes, session_idle and
    #: session_max (timedeltas), locale (see engine/service/options.py)
    service: dict[str, Any] = field(default_factory=dict, repr=False)
    #: who ops are and what they are told about (see :mod:`engine.alerts`); None when not set
    alerts: AlertSettings | None = None
    #: short links and tracked email (see :mod:`engine.link_settings`)
    links: LinkSettings = field(default_factory=LinkSettings)
    #: which message a conversion is credited to (see :mod:`engine.attribution`)
    attribution: AttributionSettings = field(default_factory=AttributionSettings)
    #: points per fact of the lead score (see :mod:`engine.scoring`)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    #: the sales team leads are handed to, and the objections they record (see :mod:`engine.handoff`)
    sales: SalesSettings = field(default_factory=SalesSettings)
    #: where events go out to (see :mod:`engine.webhook_settings`); holds secrets
    webhooks: tuple[WebhookEndpointSettings, ...] = field(default=(), repr=False)

    def footer(self, locale: str | None) -> str:
        """The opt-out footer for a contact's locale (one text for all, or one per locale)."""
        footer = self.sms_opt_out_footer
        if isinstance(footer, str):
            return footer
        return footer.get(locale or self.locale, footer.get("default", footer.get(self.locale, "")))

    def secrets(self) -> list[str]:
        """Every secret value configured (to prove none leaks into logs)."""
        from providers.base import SECRET_KEYS

        found = [str(v) for entries in self.providers.values() for e in entries
                 for k, v in e.items() if k in SECRET_KEYS and v]
        extra = [self.secret_key, self.service.get("dashboard_password"), *(w.secret for w in self.webhooks)]
        return found + [str(v) for v in extra if v]


def parse_timezone(doc: YamlDoc, key: str, value: Any) -> ZoneInfo | None:
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a "name" too long for a file name
        doc.problem(key, f"unknown timezone {value!r}; use an IANA name like Asia/Tehran or Europe/Berlin")
        return None


def _minutes(doc: YamlDoc, key: str, value: Any) -> int | None:
    match = _HHMM.match(str(value)) if value is not None else None
    if not match or int(match.group(2)) > 59 or int(match.group(1)) > 24 or (
            int(match.group(1)) == 24 and int(match.group(2)) != 0):
        doc.problem(key, f"{value!r} is not a time; write it as \"HH:MM\" in quotes, from \"00:00\" to \"24:00\"")
        return None
    return int(match.group(1)) * 60 + int(match.group(2))


def parse_window(doc: YamlDoc, key: str, raw: Any, default: SendWindow | None = None) -> SendWindow | None:
    """A ``send_window`` mapping → :class:`SendWindow` (problems recorded on ``doc``)."""
    if raw is None:
        return default
    if not isinstance(raw, dict):
        doc.problem(key, 'must be a mapping with start, end and days, e.g. {start: "09:00", end: "21:00", days: all}')
        return None
    unknown = set(raw) - {"start", "end", "days", "skip_holidays", "skip_days"}
    for extra in sorted(unknown):
        doc.problem(join_path(key, extra), "unknown key; send_window takes start, end, days, skip_holidays and skip_days")
    start = _minutes(doc, join_path(key, "start"), raw.get("start", "09:00"))
    end = _minutes(doc, join_path(key, "end"), raw.get("end", "21:00"))
    if start is not None and end is not None and start >= end:
        doc.problem(join_path(key, "end"), f"must be later than start ({raw.get('start')}); a window can't wrap past midnight")
    days_raw = raw.get("days", "all")
    days: set[int] = set()
    if days_raw == "all":
        days = set(range(7))
    elif isinstance(days_raw, list) and days_raw:
        for i, name in enumerate(days_raw):
            if str(name).lower()[:3] in WEEKDAYS:
                days.add(WEEKDAYS[str(name).lower()[:3]])
            else:
                doc.problem(join_path(join_path(key, "days"), i),
                            f"{name!r} is not a weekday; use sat, sun, mon, tue, wed, thu, fri")
    else:
        doc.problem(join_path(key, "days"), "must be `all` or a list of weekdays, e.g. [sat, sun, mon, tue, wed, thu]")
    country, mourning = _skips(doc, key, raw)
    if start is None or end is None or not days or country is False:
        return None
    return SendWindow(start=start, end=end, days=frozenset(days), skip_holidays=country, skip_mourning=mourning)


def _skips(doc: YamlDoc, key: str, raw: dict) -> tuple[str | None | bool, bool]:
    """``skip_holidays`` (a country code, None, or False when wrong) and whether ``skip_days`` has mourning."""
    country = raw.get("skip_holidays")
    if country is not None:
        from .offdays import known_country

        if not isinstance(country, str) or not known_country(country):
            doc.problem(join_path(key, "skip_holidays"), f"{country!r} is not a country the holidays calendar "
                                                         "knows; write a two-letter code, e.g. skip_holidays: IR")
            country = False
        else:
            country = country.upper()
    skip_days = raw.get("skip_days", [])
    if not isinstance(skip_days, list) or any(d != "mourning" for d in skip_days):
        doc.problem(join_path(key, "skip_days"), "takes a list of kinds of day; the one known is mourning "
                                                 "(Tasua, Ashura, the martyrdom days): skip_days: [mourning]")
        return False, False
    return country, "mourning" in skip_days


def parse_cap(doc: YamlDoc, key: str, raw: Any, default: FrequencyCap | None = None) -> FrequencyCap | None:
    if raw is None:
        return default
    if not isinstance(raw, dict) or set(raw) - {"per_day"}:
        doc.problem(key, "must be a mapping with per_day, e.g. {per_day: 2}")
        return None
    per_day = raw.get("per_day")
    if per_day is not None and (not isinstance(per_day, int) or isinstance(per_day, bool) or per_day < 1):
        doc.problem(join_path(key, "per_day"), f"{per_day!r} must be a whole number of at least 1 (or leave it out for no cap)")
        return None
    return FrequencyCap(per_day=per_day)


def _database_url(doc: YamlDoc, raw: Any) -> str:
    url = os.environ.get("FOLLOWUP_DATABASE_URL") or raw or "sqlite:///../var/followup.db"
    url = doc.expand_env(str(url), "database_url")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        # relative SQLite paths resolve against the folder of the settings file
        url = "sqlite:///" + str(doc.resolve(url[len("sqlite:///"):]))
    if not re.match(r"^(sqlite|postgresql(\+psycopg)?)://", url):
        doc.problem("database_url", f"{url.split('://')[0]!r} is not supported; use sqlite:///path.db or postgresql+psycopg://user@host/db")
    elif url.startswith("sqlite:") and (url.rstrip("/") == "sqlite:" or ":memory:" in url or "mode=memory" in url):
        doc.problem("database_url", "an in-memory SQLite database lives in one connection of one process, so the "
                                    "worker and the service could not share it; use a file, e.g. "
                                    "sqlite:///../var/followup.db")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _providers(doc: YamlDoc, raw: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {c: [] for c in CHANNELS}
    if raw is None:
        doc.problem("providers", "is missing; add providers.sms and providers.email (see `followup init`)")
        return out
    if not isinstance(raw, dict):
        doc.problem("providers", "must be a mapping with sms and email lists")
        return out
    names: set[str] = set()
    for channel, entries in raw.items():
        key = join_path("providers", channel)
        if channel not in CHANNELS:
            doc.problem(key, "unknown channel; use sms or email")
            continue
        if not isinstance(entries, list) or not entries:
            doc.problem(key, "must be a non-empty list; the first provider is primary, the rest are failover")
            continue
        for i, entry in enumerate(entries):
            ekey = join_path(key, i)
            if not isinstance(entry, dict):
                doc.problem(ekey, "must be a mapping like {name: sandbox-sms, type: file, path: ../var/outbox.jsonl}")
                continue
            entry = {k: doc.expand_env(v, join_path(ekey, k)) for k, v in entry.items()}
            if entry.get("name") in names:
                doc.problem(join_path(ekey, "name"), f"{entry.get('name')!r} is used twice; give each provider its own name")
            names.add(entry.get("name"))
            if entry.get("type") == "file" and entry.get("path"):
                entry["path"] = str(doc.resolve(str(entry["path"])))
            entry["_line"] = doc.line(ekey)
            out[channel].append(entry)
    return out


def _worker(doc: YamlDoc, raw: Any) -> WorkerSettings:
    if raw is None:
        return WorkerSettings()
    defaults = WorkerSettings()
    values = {}
    for k, v in (raw.items() if isinstance(raw, dict) else []):
        if not hasattr(defaults, k):
            doc.problem(join_path("worker", k), f"unknown key; worker takes {', '.join(defaults.__dataclass_fields__)}")
        elif not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "inline_retries" else 1):
            doc.problem(join_path("worker", k), f"{v!r} must be a positive whole number")
        else:
            values[k] = v
    return WorkerSettings(**values)


def _service(doc: YamlDoc, raw: Any) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        doc.problem("service", "must be a mapping like {dashboard_password: ${FOLLOWUP_DASHBOARD_PASSWORD}, "
                               "public_url: https://hooks.shop.example}")
        return {}
    for key in sorted(set(raw) - set(SERVICE_KEYS)):
        doc.problem(join_path("service", key), f"unknown key; service takes {', '.join(SERVICE_KEYS)}")
    service = {k: doc.expand_env(v, join_path("service", k)) for k, v in raw.items() if k in SERVICE_KEYS}
    if service.get("public_url") and not re.match(r"^https?://", str(service["public_url"])):
        doc.problem("service.public_url", "must start with https:// (the URL providers call, e.g. https://hooks.shop.example)")
    if service.get("locale", "fa") not in ("fa", "en"):
        doc.problem("service.locale", f"{service.pop('locale')!r} is not a dashboard language; use fa or en "
                                      "(default: fa where timezone is Asia/Tehran, else en)")
    if "trusted_proxies" in service:
        service["trusted_proxies"] = _trusted_proxies(doc, service["trusted_proxies"])
    size = service.get("max_body_bytes")
    if isinstance(size, str) and size.strip().isascii() and size.strip().isdigit() and len(size) < 19:  # ${ENV}
        size = service["max_body_bytes"] = int(size)
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1024):
        doc.problem("service.max_body_bytes", f"{size!r} must be a whole number of bytes, at least 1024 "
                                              "(the largest API request body; default 1048576)")
        service.pop("max_body_bytes")
    for key, default in SESSION_DEFAULTS.items():
        try:
            service[key] = parse_duration(service.get(key, default))
        except ValueError as err:
            doc.problem(join_path("service", key), f"{err} (default {default})")
            service[key] = parse_duration(default)
        if not service[key]:
            doc.problem(join_path("service", key), f"must be longer than 0s (default {default})")
    if service["session_idle"] > service["session_max"]:
        doc.problem("service.session_idle", f"is longer than service.session_max ({format_duration(service['session_max'])}); "
                                            "a session ends at session_max whatever its idle time")
    return service


def _trusted_proxies(doc: YamlDoc, raw: Any) -> list[str]:
    """``service.trusted_proxies``: IP addresses or CIDR networks, each checked."""
    if not isinstance(raw, list):
        doc.problem("service.trusted_proxies", "must be a list of proxy addresses or networks, e.g. [127.0.0.1, 10.0.0.0/8]")
        return []
    good = []
    for i, item in enumerate(raw):
        key = join_path("service.trusted_proxies", i)
        value = str(doc.expand_env(item, key)).strip()
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            doc.problem(key, f"{item!r} is not an IP address or network; write e.g. 127.0.0.1 or 10.0.0.0/8")
            continue
        good.append(value)
    return good


def load_settings(config_dir: Path) -> Settings:
    """Read and check ``settings.yaml`` in ``config_dir``; raise :class:`ConfigError` listing every problem."""
    doc = load_yaml(config_dir / "settings.yaml")
    raw = doc.data
    if not isinstance(raw, dict):
        doc.problem("", "must be a YAML mapping (see `followup init` for an example)")
        raise ConfigError(doc.problems)
    for key in sorted(set(raw) - TOP_KEYS):
        doc.problem(key, f"unknown key; settings take {', '.join(sorted(TOP_KEYS))}")
    tz = parse_timezone(doc, "timezone", raw.get("timezone", "Asia/Tehran"))
    region = str(raw.get("default_region", "IR")).upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        doc.problem("default_region", f"{region!r} is not a region code; use a two-letter code like IR, DE or US")
    locale = str(raw.get("locale", "fa"))
    if locale not in ("fa", "en"):
        doc.problem("locale", f"{locale!r} is not supported; use fa or en")
    templates = raw.get("templates_dir", "../templates")
    templates_dir = doc.resolve(str(templates))
    try:
        found = templates_dir.is_dir()
    except OSError:  # e.g. a path too long for the file system
        found = False
    if not found:
        doc.problem("templates_dir", f"folder {templates_dir} does not exist; create it or fix the path (relative to this file)")
    footer = raw.get("sms_opt_out_footer", dict(DEFAULT_FOOTER))
    if isinstance(footer, dict):
        bad = [k for k, v in footer.items() if k not in ("fa", "en", "default") or not isinstance(v, str)]
        if bad:
            doc.problem("sms_opt_out_footer", "a per-locale footer takes fa, en and default, each a text, "
                                              'e.g. {fa: "لغو11", en: "Reply STOP to opt out"}')
            footer = ""
    elif not isinstance(footer, str):
        doc.problem("sms_opt_out_footer", 'must be text like "لغو11", "" to disable, or one text per locale')
        footer = ""
    unsubscribe_url = raw.get("unsubscribe_url")
    if unsubscribe_url is not None and not re.match(r"^https?://", str(unsubscribe_url)):
        doc.problem("unsubscribe_url", "must start with https:// (e.g. https://shop.example/u/{token})")
    providers = _providers(doc, raw.get("providers"))
    settings = Settings(
        path=doc.path,
        database_url=_database_url(doc, raw.get("database_url")),
        templates_dir=templates_dir,
        timezone=tz or ZoneInfo("UTC"),
        default_region=region,
        locale=locale,
        send_window=parse_window(doc, "send_window", raw.get("send_window"), SendWindow()) or SendWindow(),
        frequency_cap=parse_cap(doc, "frequency_cap", raw.get("frequency_cap"), FrequencyCap()) or FrequencyCap(),
        sms_opt_out_footer=footer,
        providers=providers,
        unsubscribe_url=unsubscribe_url,
        worker=_worker(doc, raw.get("worker")),
        secret_key=doc.expand_env(raw.get("secret_key"), "secret_key"),
        service=_service(doc, raw.get("service")),
        alerts=parse_alerts(doc, raw.get("alerts"), region if region in phonenumbers.SUPPORTED_REGIONS else "IR",
                            {c for c, entries in providers.items() if entries}),
        links=parse_links(doc, raw.get("links")),
        attribution=parse_attribution(doc, raw.get("attribution")),
        scoring=parse_scoring(doc, raw.get("scoring")),
        sales=parse_sales(doc, raw.get("sales"), region if region in phonenumbers.SUPPORTED_REGIONS else "IR"),
        webhooks=parse_webhooks(doc, raw.get("webhooks")),
    )
    if doc.problems:
        raise ConfigError(doc.problems)
    return settings
