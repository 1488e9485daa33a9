"""The base of every HTTP provider: the one place that talks ``requests`` and maps its failures.

A vendor module only builds the request and parses the reply; the pipeline is fixed::

    send(message) = parse_response(message, request(build_request(message)))

Transport failures map here and nowhere else:

* connection refused, DNS failure, connect timeout → :class:`TransientError` (nothing left)
* read timeout, or the connection dropped after the request went out → :class:`AmbiguousSendError`
  for a send (the provider may have it), :class:`TransientError` for a read-only call
* :meth:`raise_for_status` maps HTTP codes: 429 → rate limited (``Retry-After`` honoured),
  5xx → transient, 401/403 → provider blocked, other 4xx → permanent content.
* redirects are never followed (``requests`` turns a redirected POST into a GET without its body):
  a 3xx is :class:`ProviderSetupError` naming the ``Location``, so the provider pauses and the
  message fails over until someone points ``base_url`` at the new address.
* a provider without an idempotency key (``server_error_is_ambiguous``) may have taken a send that
  it answered with a server error (5xx, or a vendor "system error" code): that send is
  :class:`AmbiguousSendError`, never resent blindly. A rate limit still means "not taken".
"""
from __future__ import annotations

import logging
import re
from urllib.parse import quote, urlencode
from dataclasses import dataclass, field
from functools import lru_cache
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any, ClassVar, Mapping

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from .base import Provider, SECRET_KEYS, mask_secret
from .errors import (
    AmbiguousSendError,
    PermanentContentError,
    ProviderBlockedError,
    ProviderSetupError,
    RateLimitedError,
    TransientError,
)

__all__ = ["HttpCall", "HttpProvider", "parse_retry_after"]

USER_AGENT = "followup/0.1 (+https://github.com/followup)"


class _SecretsInTransportLogs(logging.Filter):
    """Masks provider secrets in urllib3's own log lines.

    urllib3 logs each request's path at DEBUG and a retried URL at WARNING; Kavenegar's key is part of
    its URL path. The filter runs only for records urllib3 actually emits, so sends pay nothing for it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = text
        for secret in self.secrets:
            masked = masked.replace(secret, mask_secret(secret))
        if masked != text:
            record.msg, record.args = masked, None
        return True


_TRANSPORT_LOG_FILTER = _SecretsInTransportLogs()
logging.getLogger("urllib3.connectionpool").addFilter(_TRANSPORT_LOG_FILTER)


@dataclass
class HttpCall:
    """One HTTP request to make. ``path`` is joined to the provider's ``base_url``."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    #: False for calls that change nothing (status polls): a read timeout is then merely transient
    sends: bool = True


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class HttpProvider(Provider):
    """Owns the session, timeouts, User-Agent, transport-error mapping and secret masking."""

    default_base_url: ClassVar[str] = ""
    #: True where the provider has no idempotency key: a send answered with a server error may have gone
    server_error_is_ambiguous: ClassVar[bool] = False

    def __init__(self, name, settings):
        super().__init__(name, settings)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        # proxies from the environment are read once: the base URL never changes, and requests would
        # otherwise scan os.environ on every send (a fifth of a send's CPU)
        self.session.proxies.update(requests.utils.get_environ_proxies(self.base_url or "https://localhost"))
        self.session.trust_env = False
        # enough pooled connections for the worker's send threads
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=256, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        _TRANSPORT_LOG_FILTER.secrets.update(self.secrets())

    @property
    def base_url(self) -> str:
        return str(self.settings.get("base_url") or self.default_base_url).rstrip("/")

    # -- secrets ----------------------------------------------------------------
    def secrets(self) -> list[str]:
        plain = [str(v) for k, v in self.settings.items() if k in SECRET_KEYS and v]
        # a key in a URL path may appear percent-encoded in errors
        return plain + [q for q in (quote(s, safe="") for s in plain) if q not in plain]

    def mask(self, text: str) -> str:
        """Replace every configured secret in ``text`` by its masked form."""
        for secret in self.secrets():
            text = text.replace(secret, mask_secret(secret))
        return text

    # -- the pipeline -------------------------------------------------------------
    def send(self, message):
        response = self.request(self.build_request(message))
        try:
            return self.parse_response(message, response)
        except RateLimitedError:
            raise
        except TransientError as err:
            if not self.server_error_is_ambiguous:
                raise
            raise AmbiguousSendError(f"{err.reason}; {self.type} has no idempotency key, so the message may "
                                     "have been taken: not resent", code=err.code, provider=self.name) from err

    def build_request(self, message) -> HttpCall:  # pragma: no cover - abstract
        raise NotImplementedError

    def parse_response(self, message, response: requests.Response):  # pragma: no cover - abstract
        raise NotImplementedError

    def request(self, call: HttpCall) -> requests.Response:
        """Make the call; map transport failures and redirects; raise on no other HTTP status."""
        url = f"{self.base_url}/{call.path.lstrip('/')}"
        try:
            response = self.session.send(self._prepare(call, url), timeout=(min(self.timeout, 5.0), self.timeout),
                                         proxies=self.session.proxies, allow_redirects=False)
        except requests.RequestException as err:
            raise self._transport_error(call, err, self.mask(f"{call.method} {url}")) from None  # masked only here
        if 300 <= response.status_code < 400:
            where = response.headers.get("Location") or "(no Location header)"
            raise ProviderSetupError(self.mask(f"{call.method} {url} answered HTTP {response.status_code}, "
                                               f"redirecting to {where}; redirects are not followed: "
                                               f"check the provider's base_url"),
                                     code=response.status_code, provider=self.name)
        return response

    def _prepare(self, call: HttpCall, url: str) -> requests.PreparedRequest:
        """The request as ``Session.request`` would prepare it, minus the per-call merging we never need.

        ``Session.request`` merges the session's cookies, environment and settings into every call and
        encodes a form through ``requests``' generic helpers: about 40% of a send's CPU on the worker's
        hot path. Each step below is ``requests``' own, so the bytes on the wire are the same; the APIs
        are stateless, so a call starts with no cookies (and the session keeps none).
        """
        headers = CaseInsensitiveDict(self.session.headers)
        headers.update(call.headers)
        body = None
        if call.data is not None and call.json is None:
            body = _form(call.data)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        prepared = requests.PreparedRequest()
        prepared.prepare_method(call.method)
        if call.params:
            prepared.prepare_url(url, call.params)
        else:
            prepared.url = _prepared_url(url)
        prepared.prepare_headers(headers)
        prepared.prepare_cookies(requests.cookies.RequestsCookieJar())
        prepared.prepare_body(body, None, call.json)
        prepared.prepare_auth(call.auth or self.session.auth, url)
        return prepared

    def _transport_error(self, call: HttpCall, err: requests.RequestException, where: str) -> Exception:
        """A ``requests`` failure in our taxonomy: after the request left, a send's fate is ambiguous."""
        if isinstance(err, requests.ConnectTimeout):
            return TransientError(f"connect timeout: {where}", provider=self.name)
        if isinstance(err, requests.ReadTimeout):
            if call.sends:
                return AmbiguousSendError(f"no answer within {self.timeout}s after the request was sent: {where}",
                                          provider=self.name)
            return TransientError(f"read timeout: {where}", provider=self.name)
        if isinstance(err, requests.ConnectionError):
            if call.sends and _sent_before_failure(err):
                return AmbiguousSendError(f"connection dropped after the request was sent: {where}",
                                          provider=self.name)
            return TransientError(f"cannot connect: {where}", provider=self.name)
        return TransientError(self.mask(f"request failed: {where}: {type(err).__name__}"), provider=self.name)

    # -- helpers for vendor modules ---------------------------------------------
    def decode_json(self, response: requests.Response, *, sends: bool = True) -> Any:
        """The body as JSON. A 2xx whose body is not JSON is ambiguous for a send (it may have gone)."""
        try:
            return response.json()
        except ValueError:
            snippet = self.mask(response.text[:120])
            reason = f"HTTP {response.status_code} with a body that is not JSON: {snippet!r}"
            if response.ok and sends:
                raise AmbiguousSendError(reason, provider=self.name) from None
            self.raise_for_status(response)
            raise TransientError(reason, provider=self.name) from None

    def raise_for_status(self, response: requests.Response, reason: str | None = None, code=None) -> None:
        """Map a non-2xx HTTP status to the taxonomy; return quietly on 2xx."""
        status = response.status_code
        if status < 300:
            return
        text = self.mask(reason or f"HTTP {status}: {response.text[:200]}")
        code = code if code is not None else status
        if status == 429:
            raise RateLimitedError(text, retry_after=parse_retry_after(response.headers.get("Retry-After")),
                                   code=code, provider=self.name)
        if status >= 500:
            raise TransientError(text, code=code, provider=self.name,
                                 retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if status in (401, 403):
            raise ProviderBlockedError(text, code=code, provider=self.name)
        raise PermanentContentError(text, code=code, provider=self.name)

    def close(self) -> None:
        self.session.close()


@lru_cache(maxsize=256)  # a send's URL is the same for every message: parse and quote it once
def _prepared_url(url: str) -> str:
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    return prepared.url


def _form(data: Mapping[str, Any]) -> str:
    """A form body as ``requests`` encodes one: None values left out, a list repeats its key."""
    pairs = []
    for key, value in data.items():
        if value is None:
            continue
        for item in value if isinstance(value, (list, tuple)) else (value,):
            pairs.append((key, item))
    return urlencode(pairs)


def _sent_before_failure(err: requests.ConnectionError) -> bool:
    """True when the connection failed after the request was written (reset, aborted)."""
    text = repr(err.args[0]) if err.args else repr(err)
    # urllib3 says "Connection aborted" (ProtocolError) when the peer dropped us mid-exchange;
    # refused/unreachable/DNS errors name NewConnectionError or NameResolutionError instead
    if "NewConnectionError" in text or "NameResolutionError" in text:
        return False
    return any(mark in text for mark in ("Connection aborted", "RemoteDisconnected", "ConnectionResetError"))
