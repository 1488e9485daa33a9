"""engine.journal and engine.text: the delivery log's JSON lines, masking, and its batched insert."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from engine.journal import LOG_FIELDS, log_line
from engine.text import mask_address, mask_phone

UTC = timezone.utc


def test_mask_phone():
    assert mask_phone("+989121234567") == "+98912***4567"
    assert mask_phone("") == ""
    assert mask_phone(None) == ""


def test_log_line_masks_phones_and_emails_in_reasons():
    row = {k: None for k in LOG_FIELDS}
    row.update(at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), message_id=7, contact_id=3, event="failed",
               reason="rejected +989121234567 and sara@example.com", worker="w-1")
    data = json.loads(log_line(row))
    assert data["reason"] == "rejected +98912***4567 and s***@example.com"
    assert data["at"] == "2026-01-02T03:04:05Z"
    assert "worker" not in data
    assert set(data) == set(LOG_FIELDS) - {"worker"}


def test_log_lines_are_json_whatever_the_reason_holds():
    from engine.journal import log_lines as _log_lines

    at = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    reasons = ['پنل گفت: "شماره 09121234567 مسدود است"\nخط دوم \\ \t', None, "", "rejected", "rejected",
               "50% off ended: %s %(x)s %%"]
    rows = [(at, i, i + 100, "زمستان", "t0", "sms", "kave", "failed", reason, 1, f'id "{i}" \\' if i else None, "w-1")
            for i, reason in enumerate(reasons)]
    rows.append((at, 6, 106, "٪۵۰ %s", "t0", "sms", "kave", "sent", None, 1, "id %d %s", "w-1"))
    lines = _log_lines(rows).split("\n")
    assert len(lines) == len(rows)
    parsed = [json.loads(line) for line in lines]
    assert parsed[0]["reason"] == 'پنل گفت: "شماره 0912***4567 مسدود است"\nخط دوم \\ \t'
    assert [p["reason"] for p in parsed[1:]] == [None, "", "rejected", "rejected", "50% off ended: %s %(x)s %%", None]
    assert [p["message_id"] for p in parsed] == [0, 1, 2, 3, 4, 5, 6] and parsed[0]["at"] == "2026-01-02T03:04:05.600000Z"
    assert [p["provider_message_id"] for p in parsed] == [None, *(f'id "{i}" \\' for i in range(1, 6)), "id %d %s"]
    assert parsed[6]["sequence"] == "٪۵۰ %s" and parsed[6]["event"] == "sent"
    assert parsed[0]["sequence"] == "زمستان" and "\\u" not in lines[0]  # Persian as itself, not \u escapes


def test_mask_address_hides_the_middle_of_national_numbers_too():
    assert mask_address("receptor 09121234567 is blocked") == "receptor 0912***4567 is blocked"


@pytest.mark.parametrize("url", ["sqlite", "postgresql"])
def test_append_log_writes_every_value_and_null_back_as_given(tmp_path, url):
    """Columns empty in a whole chunk are written as NULL literals, the rest bound: the rows read back the same."""
    import os

    from engine.db import make_engine, upgrade
    from engine.store import LOG_ROWS_PER_INSERT, append_log

    if url == "postgresql":
        if not os.environ.get("FOLLOWUP_TEST_POSTGRES_URL"):
            pytest.skip("FOLLOWUP_TEST_POSTGRES_URL is not set")
        from .faults import reset_postgres

        url = reset_postgres(os.environ["FOLLOWUP_TEST_POSTGRES_URL"])
    else:
        url = f"sqlite:///{tmp_path}/log.db"
    upgrade(url)
    at = datetime(2026, 11, 26, 9, 30, 0, 123456, tzinfo=UTC)
    rows = [dict(at=at, message_id=i, contact_id=i % 7 or None, sequence="welcome-fa", touch="first", channel="sms",
                 provider=None, event="sent", reason="ضرب‌الاجل: ۳ روز" if i == 3 else None, attempt=1,
                 provider_message_id=None, worker="w1") for i in range(LOG_ROWS_PER_INSERT + 5)]
    rows.append(dict(at=at, message_id=None, contact_id=None, sequence=None, touch=None, channel=None,
                     provider="kavenegar", event="provider_paused", reason="HTTP 403", attempt=0,
                     provider_message_id=None, worker=None))
    engine = make_engine(url)
    with engine.begin() as conn:
        append_log(conn, rows)
    with engine.connect() as conn:
        got = [dict(r) for r in conn.execute(sa.text(f"SELECT {', '.join(LOG_FIELDS)} FROM delivery_log "
                                                     "ORDER BY id")).mappings()]
    for row in got:
        row["at"] = row["at"] if isinstance(row["at"], datetime) else datetime.fromisoformat(row["at"])
        row["at"] = row["at"].replace(tzinfo=UTC) if row["at"].tzinfo is None else row["at"]
    assert got == rows
    engine.dispose()
