"""Whether a file given as a contacts CSV is one, checked before anything is written.

Spreadsheets are the usual source, and each way a spreadsheet is saved wrong gets one line naming what
the file is and how to save it right: an Excel workbook, UTF-16 ("Unicode Text"), a header split by
semicolons or tabs (Excel's CSV in regions whose decimal mark is a comma), another encoding.
"""
from __future__ import annotations

import codecs
import csv
from pathlib import Path

from .errors import InputError

__all__ = ["check_readable", "SAVE_AS"]

SAVE_AS = "save it from the spreadsheet as CSV UTF-8 (comma delimited)"

_XLSX = b"PK\x03\x04"  # a zip archive: .xlsx, .ods and .numbers files are zips
_XLS = b"\xd0\xcf\x11\xe0"  # an OLE compound file: Excel 97-2003 .xls


def _every_other_byte_zero(head: bytes) -> bool:
    """UTF-16 without a BOM: ASCII text (a header like ``phone,email``) has a zero beside every letter, so
    three in four bytes at even (or odd) offsets are zero."""
    return len(head) >= 8 and max(head[0::2].count(0), head[1::2].count(0)) * 8 >= len(head) * 3


def _kind(head: bytes) -> str | None:
    """What a file whose first bytes are ``head`` is, when it is not UTF-8 CSV text, else None."""
    if head.startswith(_XLSX):
        return "an Excel workbook (.xlsx) or another zip file, not CSV text"
    if head.startswith(_XLS):
        return "an Excel 97-2003 workbook (.xls), not CSV text"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _every_other_byte_zero(head):
        return "UTF-16 text (Excel's \"Unicode Text\"), not UTF-8"
    return None


def _header_problem(first_line: str) -> str | None:
    if "," in first_line:
        return None
    for mark, name in ((";", "semicolons (;)"), ("\t", "tabs")):
        if mark in first_line:
            return f"the header is separated by {name}, not commas"
    return None


def check_readable(path: Path) -> None:
    """Read the whole file once before anything is written: a broken byte or row late in the file must not
    leave the batches before it imported. Raises :class:`InputError` with what the file is and the fix."""
    with path.open("rb") as fh:
        kind = _kind(fh.read(512))
        if kind:
            raise InputError(f"{path}: the file is {kind}; {SAVE_AS}")
        fh.seek(0)
        for number, raw_line in enumerate(fh, start=1):
            try:
                text = raw_line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(f"{path}:{number}: not UTF-8 text ({err.reason}); {SAVE_AS}") from None
            if number == 1:
                problem = _header_problem(text.lstrip("\ufeff"))
                if problem:
                    raise InputError(f"{path}:1: {problem}; {SAVE_AS}")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for _ in csv.reader(fh):
                pass
    except csv.Error as err:
        raise InputError(f"{path}: not a readable CSV file: {err}") from None
