"""Short links: ``{{ link("https://…") }}`` in a template becomes ``{links.base_url}/{code}`` for one message.

A code is 10 URL-safe characters of 60 random bits from :mod:`secrets`: unguessable, URL-safe, never
sequential. The target (the address with its UTM parameters) is stored with the code, so a redirect can
only go where the template said.

Codes are made while the dispatcher renders a claimed batch, in the transaction that commits the batch as
``sending`` (:class:`LinkBook`): a message and an address keep the code they were first given, so a message
sent again after a retry or a crash carries the same link, and a crash before the commit leaves no code behind
(the text that carried it never reached a provider). ``preview`` and ``validate`` render with
:class:`SampleLinks`: codes of the same length that are never stored.
"""
from __future__ import annotations

import os
import re
import secrets
import threading
from functools import lru_cache
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape, unescape
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa

from .store.links import insert_links, link_codes
from .models import Link
from .sandbox import plain_call

__all__ = ["new_code", "is_code", "with_utm", "utm_params", "base_url", "LinkBook", "MessageLinks", "SampleLinks",
           "rewrite_email", "CODE_LENGTH", "PIXEL_URL"]

links_t = Link.__table__
#: 10 characters of [A-Za-z0-9_-], 6 random bits each
CODE_LENGTH = 10
_CODE = re.compile(r"^[A-Za-z0-9_-]{8,10}$")
#: the longest address a link takes, in UTF-8 bytes
MAX_URL = 2000
#: the stored address of an open pixel's code: its redirect answers an image, not a redirect
PIXEL_URL = "pixel:open"
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content")


class LinkError(ValueError):
    """A link a template asked for cannot be made (a bad address, no base URL)."""


_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: a random byte → one of the 64 URL-safe characters (its low 6 bits: 256 bytes map 4 each, so uniformly)
_TO_CHAR = bytes(_ALPHABET[b & 63] for b in range(256))
_POOL_CODES = 512
_pools = threading.local()  # each thread's unused codes


def new_code() -> str:
    """A fresh random code: 10 URL-safe characters of 6 random bits each (60 bits) from the OS's CSPRNG
    (:func:`secrets.token_bytes`). Made 512 at a time per thread: one read from the OS and one translation."""
    pool: list[str] | None = getattr(_pools, "codes", None)
    if not pool:
        text = secrets.token_bytes(CODE_LENGTH * _POOL_CODES).translate(_TO_CHAR).decode("ascii")
        pool = _pools.codes = [text[i:i + CODE_LENGTH] for i in range(0, len(text), CODE_LENGTH)]
    return pool.pop()


def is_code(text: str) -> bool:
    """Whether ``text`` has a code's shape (checked before any database read)."""
    return bool(_CODE.match(text))


def base_url(settings: Any) -> str | None:
    """Where short links point: ``links.base_url``, else the service's public URL with ``/l``."""
    if settings.links.base_url:
        return settings.links.base_url
    public = os.environ.get("FOLLOWUP_PUBLIC_URL") or (settings.service or {}).get("public_url")
    return f"{str(public).rstrip('/')}/l" if public else None


def utm_params(sequence: str, touch: str, channel: str, overrides: dict[str, str] | None) -> dict[str, str]:
    """The UTM parameters of a message's links; a sequence's ``utm:`` mapping replaces any of them."""
    params = {"utm_source": "followup", "utm_medium": channel, "utm_campaign": sequence, "utm_content": touch}
    params.update(overrides or {})
    return params


def with_utm(url: str, params: dict[str, str]) -> str:
    """``url`` with each of ``params`` added unless the address has that parameter already."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in query}
    added = [(k, v) for k, v in params.items() if k not in present and v]
    if not added:
        return url
    joined = (parts.query + "&" if parts.query else "") + urlencode(added)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))


@lru_cache(maxsize=1024)
def _target(url: str, sequence: str, touch: str, channel: str, utm: tuple[tuple[str, str], ...]) -> str:
    """The stored target of ``url``: the same for every message of a touch, so worked out once."""
    return with_utm(url, utm_params(sequence, touch, channel, dict(utm)))[:4096]


def _checked(url: Any) -> str:
    if not isinstance(url, str):
        raise LinkError(f"link() takes an address as text, e.g. link(\"https://shop.example/coats\"); got {url!r}")
    return _checked_text(url)


@lru_cache(maxsize=1024)
def _checked_text(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise LinkError(f"link({url[:80]!r}): give a full http(s) address, e.g. link(\"https://shop.example/coats\")")
    if len(url.encode()) > MAX_URL:
        raise LinkError(f"link(): the address is {len(url.encode()):,} bytes long; at most {MAX_URL:,}")
    return url


def _no_base() -> LinkError:
    return LinkError("short links need an address to point at: set links.base_url (e.g. https://s.shop.example) "
                     "or service.public_url in settings.yaml")


@dataclass
class MessageLinks:
    """The short links of one message while it renders; new ones are kept in its :class:`LinkBook`."""

    book: "LinkBook"
    row: dict
    utm: tuple[tuple[str, str], ...] = ()

    @property
    def base(self) -> str | None:
        return self.book.base

    @plain_call
    def link(self, url: Any) -> str:
        """The short URL of ``url`` for this message (the same code each time the message renders)."""
        return self._short(_checked(url))

    def pixel(self) -> str:
        """The address of this message's open pixel."""
        return self._short(PIXEL_URL)

    def _short(self, url: str) -> str:
        book = self.book
        base = book.base
        if not base:
            raise _no_base()
        row = self.row
        key = (row["id"], url)
        code = book.codes.get(key)
        if code is None:
            code = book.codes[key] = new_code()
            target = url if url == PIXEL_URL else _target(url, row["sequence"], row["touch"], row["channel"],
                                                          self.utm)
            book.new.append((code, key[0], row["contact_id"], row["sequence"], row["touch"], row["channel"], url,
                             target))
        return f"{base}/{code}"


@dataclass
class LinkBook:
    """The codes of one claimed batch: those its messages were given before, and those made now.

    :meth:`load` reads the batch's existing codes in one query; :meth:`save` writes the new ones in one
    statement, in the claim's transaction.
    """

    base: str | None
    at: datetime
    expire_after: timedelta
    codes: dict[tuple[int, str], str] = field(default_factory=dict)
    #: the links made since load, as tuples in LINK_FIELDS order (engine.store.links)
    new: list[tuple] = field(default_factory=list)

    @classmethod
    def load(cls, conn: sa.Connection, settings: Any, message_ids: Iterable[int], at: datetime) -> "LinkBook":
        book = cls(base_url(settings), at, settings.links.expire_after)
        book.codes = link_codes(conn, message_ids)
        return book

    def message(self, row: dict, utm: tuple[tuple[str, str], ...] = ()) -> MessageLinks:
        """The links of the message ``row``; ``utm``: the sequence's own UTM parameters, as (name, value) pairs."""
        return MessageLinks(self, row, utm)

    def save(self, conn: sa.Connection, message_ids: set[int] | None = None) -> int:
        """Store the codes made since :meth:`load` (only for ``message_ids`` when given); return how many.

        One multi-row write per batch through the store (:func:`engine.store.links.insert_links`)."""
        rows = self.new if message_ids is None else [r for r in self.new if r[1] in message_ids]
        self.new = []
        insert_links(conn, rows, self.at, self.at + self.expire_after)
        return len(rows)


class SampleLinks:
    """Links for ``preview`` and ``validate``: the real length, a fresh code each time, nothing stored."""

    def __init__(self, settings: Any):
        self.base = base_url(settings)

    def link(self, url: Any) -> str:
        _checked(url)
        return self._short()

    def pixel(self) -> str:
        return self._short()

    def _short(self) -> str:
        if not self.base:
            raise _no_base()
        return f"{self.base}/{new_code()}"


_HREF = re.compile(r"""(\bhref\s*=\s*)(["'])(https?://[^"'<>\s]+)\2""", re.IGNORECASE)
_BARE = re.compile(r"""https?://[^\s<>"'«»]+""")
_TRAILING = ".,;:!?)]}؛،"


def rewrite_email(html: str | None, text: str, links: MessageLinks | SampleLinks, *, keep: Iterable[str] = (),
                  rewrite: bool = True, pixel: bool = False) -> tuple[str | None, str]:
    """With ``rewrite``, the html and text parts with every http(s) link through a short link, except those in
    ``keep`` (the unsubscribe address) and short links already; with ``pixel``, an open pixel at the end of the
    html."""
    keep = {k for k in keep if k}
    short = links.base or "\0"

    def through(url: str) -> str:
        if url in keep or url.startswith(short + "/"):
            return url
        return links.link(url)

    def href(match: re.Match) -> str:
        url = unescape(match.group(3))
        return f"{match.group(1)}{match.group(2)}{escape(through(url))}{match.group(2)}"

    def bare(match: re.Match) -> str:
        url = match.group(0)
        tail = ""
        while url and url[-1] in _TRAILING:
            url, tail = url[:-1], url[-1] + tail
        return through(url) + tail

    if html is not None:
        html = _HREF.sub(href, html) if rewrite else html
        if pixel:
            img = f'<img src="{escape(links.pixel())}" width="1" height="1" alt="" style="display:none">'
            at = html.lower().rfind("</body>")
            html = html[:at] + img + html[at:] if at >= 0 else html + img
    return html, _BARE.sub(bare, text) if rewrite else text
