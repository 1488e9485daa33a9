"""A contacts CSV's header, read the way exports write it: ``Mobile``, ``موبایل``, ``First Name``, ``ایمیل``…

Each column name is compared case-insensitively, trimmed, without a BOM or zero-width characters, with
Arabic ``ي``/``ك`` read as Persian ``ی``/``ک``, and with spaces, ``_``, ``-`` and ZWNJ alike. The README's
table of column names is :data:`ALIASES`; a test keeps the two the same.
"""
from __future__ import annotations

import re

from .errors import InputError
from .text import fa_letters

__all__ = ["ALIASES", "column_key", "canonical_header"]

#: each column the import reads → the other names it is recognised by (the column's own name is one too);
#: a bare "ID" is not one: row numbers there would be read as external ids, and some as phones
ALIASES: dict[str, tuple[str, ...]] = {
    "phone": ("Mobile", "Mobile Phone", "Cell", "Cellphone", "Phone Number", "Mobile Number", "Tel",
              "Telephone", "موبایل", "تلفن همراه", "شماره", "شماره موبایل", "شماره همراه", "شماره تلفن",
              "تلفن", "همراه"),
    "email": ("E-mail", "Email Address", "Mail", "ایمیل", "پست الکترونیک", "رایانامه"),
    "first_name": ("First Name", "Firstname", "Given Name", "Name", "نام"),
    "last_name": ("Last Name", "Lastname", "Surname", "Family Name", "نام خانوادگی", "فامیلی", "نام فامیلی"),
    "timezone": ("Time Zone", "TZ", "منطقه زمانی"),
    "locale": ("Language", "Lang", "زبان"),
    "tags": ("Tag", "برچسب", "برچسب ها"),
    "external_id": ("External ID", "Customer ID", "CRM ID", "شناسه مشتری"),
}

_SEPARATORS = re.compile(r"[\s_\-\u200c]+")


def column_key(name: str) -> str:
    """A column name as compared: ``" First_Name\\ufeff"`` and ``"first name"`` give the same key."""
    return _SEPARATORS.sub(" ", fa_letters(name).casefold()).strip()


_BY_KEY = {column_key(alias): column for column, aliases in ALIASES.items() for alias in (column, *aliases)}


def canonical_header(header: list[str], where: str) -> list[str]:
    """The header with every recognised name replaced by its column (``Mobile`` → ``phone``); any other name
    is kept, trimmed, for ``attrs``. Two names for one column are an :class:`InputError` naming both."""
    names = [fa_letters(h).strip() for h in header]
    out = [_BY_KEY.get(column_key(name), name) for name in names]
    for column in ALIASES:
        both = [name for name, mapped in zip(names, out) if mapped == column]
        if len(both) > 1:
            raise InputError(f"{where}:1: the columns {', '.join(both)} are all read as {column}; keep one of them, "
                             f"or rename the others (a name not in the README's table goes into attrs)")
    return out
