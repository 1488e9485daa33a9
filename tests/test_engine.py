"""The engine end to end, in-process: freezegun drives time, tick() does the work."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from engine.clock import to_utc
from engine.journal import LOG_FIELDS
from engine.models import Offer, ProviderState
from providers.errors import PermanentContentError, PermanentRecipientError, ProviderBlockedError, TransientError

from .conftest import simple_sequence, winter_sequence

UTC = timezone.utc
T0 = datetime(2026, 12, 5, 6, 30, tzinfo=UTC)  # Saturday 10:00 in Tehran
SARA = {"phone": "09121234567", "email": "sara@example.com", "first_name": "سارا"}
ALI = {"phone": "09351234567", "email": "ali@example.com", "first_name": "علی"}


def sent_at(world, touch: str) -> datetime:
    (row,) = [m for m in world.messages() if m["touch"] == touch]
    return to_utc(row["sent_at"])


def test_whole_four_touch_sequence(make_world, frozen):
    world = make_world([winter_sequence()])
    (sara,) = world.add_contacts(SARA)
    world.enroll("winter", sara)
    world.run(frozen, T0 + timedelta(days=4))

    assert sorted(world.sent()) == sorted([("hello", "+989121234567"), ("value", "sara@example.com"),
                                          ("reminder", "+989121234567"), ("last-chance", "+989121234567")])
    assert sent_at(world, "hello") == T0
    assert sent_at(world, "value") == T0 + timedelta(days=1)
    assert sent_at(world, "reminder") == T0 + timedelta(days=2)
    # 12h after the reminder is 22:00 in Tehran: deferred to 09:00 Tuesday, still before the 72h deadline
    assert sent_at(world, "last-chance") == datetime(2026, 12, 8, 5, 30, tzinfo=UTC)
    deferred = world.log(touch="last-chance", event="deferred")
    assert deferred and "send window" in deferred[0]["reason"]
    last = world.sms.outbox[-1].text
    assert "۱ ساعت" in last and "۵ عدد" in last  # the real time left and the real stock
    assert last.endswith("\nلغو11")
    assert world.email.outbox[0].subject == "راهنمای انتخاب پالتو، سارا"
    assert world.enrollment(sara, "winter")["status"] == "completed"
    assert {m["status"] for m in world.messages()} == {"sent"}


def test_every_state_change_is_logged_in_order(make_world, frozen):
    world = make_world([winter_sequence()])
    (sara,) = world.add_contacts(SARA)
    world.enroll("winter", sara)
    world.tick()
    first = [r["event"] for r in world.log(touch="hello")]
    assert first == ["scheduled", "sending", "sent"]
    assert [r["event"] for r in world.log(touch="value")] == ["pending", "scheduled"]


@pytest.mark.parametrize("kind", ["converted", "replied", "unsubscribed"])
def test_event_between_touches_stops_the_rest(make_world, frozen, kind):
    world = make_world([winter_sequence()])
    (sara,) = world.add_contacts(SARA)
    world.enroll("winter", sara)
    world.tick()
    frozen.move_to(T0 + timedelta(hours=3))
    result = world.event(sara, kind)
    assert result.ended == ["winter"] and result.cancelled == 3
    world.run(frozen, T0 + timedelta(days=4), step=timedelta(hours=1))
    assert [t for t, _ in world.sent()] == ["hello"]
    assert [m["status"] for m in world.messages()] == ["sent", "cancelled", "cancelled", "cancelled"]
    cancelled = world.log(event="cancelled")
    assert len(cancelled) == 3 and all(f"contact {kind}" in r["reason"] for r in cancelled)
    assert world.enrollment(sara, "winter")["status"] == kind


def test_conversion_takes_stock_and_templates_show_the_real_number(make_world, frozen):
    world = make_world([winter_sequence()])
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("winter", sara, ali)
    world.tick()
    world.event(ali, "converted", sequence="winter", value=1_200_000)
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(Offer.__table__.c.redeemed)).scalar_one() == 1
    world.run(frozen, T0 + timedelta(days=4), step=timedelta(hours=1))
    last = [m.text for m in world.sms.outbox if "عدد" in m.text]
    assert len(last) == 1 and "۴ عدد" in last[0]  # 5 in stock, one sold


def test_sms_opt_out_skips_sms_but_email_goes_on(make_world, frozen):
    world = make_world([winter_sequence()])
    (sara,) = world.add_contacts(SARA)
    world.enroll("winter", sara)
    world.tick()
    world.event(sara, "unsubscribed", channel="sms")
    world.run(frozen, T0 + timedelta(days=4), step=timedelta(hours=1))
    assert [t for t, _ in world.sent()] == ["hello", "value"]
    skipped = world.log(event="skipped")
    assert [r["touch"] for r in skipped] == ["reminder", "last-chance"]
    assert all("suppressed on sms" in r["reason"] for r in skipped)


@pytest.mark.parametrize("expires_after, why", [
    ("60h", "the deadline passed before the touch was due"),
    ("66h", "deferring past the night would pass the deadline"),
])
def test_urgent_touch_is_never_sent_after_its_deadline(make_world, frozen, expires_after, why):
    world = make_world([winter_sequence(expires_after=expires_after)])
    (sara,) = world.add_contacts(SARA)
    world.enroll("winter", sara)
    world.run(frozen, T0 + timedelta(days=4), step=timedelta(hours=1))
    assert "last-chance" not in [t for t, _ in world.sent()], why
    (skip,) = world.log(touch="last-chance", event="skipped")
    assert skip["reason"].startswith("offer_expired")
    assert world.enrollment(sara, "winter")["status"] == "completed"


def test_urgent_touch_is_skipped_when_sold_out(make_world, frozen):
    world = make_world([winter_sequence(stock=1)])
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("winter", sara, ali)
    world.tick()
    world.event(ali, "converted", sequence="winter")  # the only item is gone
    world.run(frozen, T0 + timedelta(days=4), step=timedelta(hours=1))
    assert "last-chance" not in [t for t, _ in world.sent()]
    (skip,) = world.log(touch="last-chance", event="skipped")
    assert skip["reason"].startswith("sold_out")


def test_sent_at_is_when_the_attempt_went_out_and_the_log_has_the_answers_time(make_world, frozen):
    """The message's sent_at is the moment it was handed to the provider (what the window and the cap
    judged); the provider's answer, 3 s later here, is the time of the `sent` row in the delivery log."""
    world = make_world([simple_sequence("s")])
    world.enroll("s", *world.add_contacts(SARA))
    world.sms.fail_when(lambda message: frozen.tick(timedelta(seconds=3)) and None)  # a slow provider
    world.tick()
    (message,) = world.messages(status="sent")
    assert to_utc(message["sent_at"]) == T0
    events = {r["event"]: to_utc(r["at"]) for r in world.log(message_id=message["id"])}
    assert events["sending"] == T0 and events["sent"] == T0 + timedelta(seconds=3)
    assert to_utc(world.messages(touch="t1")[0]["due_at"]) == T0 + timedelta(seconds=3) + timedelta(hours=1)


def test_night_in_tehran_defers_to_nine_and_later_touches_move_with_it(make_world, frozen):
    world = make_world([winter_sequence()])
    frozen.move_to(datetime(2026, 12, 6, 19, 30, tzinfo=UTC))  # Sunday 23:00 in Tehran
    (sara,) = world.add_contacts(SARA)
    world.enroll("winter", sara)
    world.run(frozen, datetime(2026, 12, 9, 6, 0, tzinfo=UTC))
    monday_nine = datetime(2026, 12, 7, 5, 30, tzinfo=UTC)
    assert sent_at(world, "hello") == monday_nine
    assert sent_at(world, "value") == monday_nine + timedelta(days=1)
    (deferred,) = world.log(touch="hello", event="deferred")
    assert "2026-12-07T09:00:00+03:30" in deferred["reason"]


def test_friday_is_not_a_send_day_in_tehran(make_world, frozen):
    world = make_world([simple_sequence("a")])
    frozen.move_to(datetime(2026, 12, 3, 18, 30, tzinfo=UTC))  # Thursday 22:00 in Tehran
    (sara,) = world.add_contacts(SARA)
    world.enroll("a", sara)
    world.run(frozen, datetime(2026, 12, 5, 12, 0, tzinfo=UTC), step=timedelta(hours=1))
    assert sent_at(world, "t0") == datetime(2026, 12, 5, 5, 30, tzinfo=UTC)  # Saturday 09:00


def test_frequency_cap_holds_across_two_sequences(make_world, frozen):
    world = make_world([simple_sequence("a"), simple_sequence("b")], settings={"frequency_cap": {"per_day": 2}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("a", sara)
    world.enroll("b", sara)
    world.run(frozen, T0 + timedelta(days=4))
    from zoneinfo import ZoneInfo

    tehran = ZoneInfo("Asia/Tehran")
    days = [to_utc(m["sent_at"]).astimezone(tehran).date() for m in world.messages(status="sent")]
    assert len(days) == 6
    assert max(days.count(d) for d in set(days)) == 2
    assert any("frequency cap" in (r["reason"] or "") for r in world.log(event="deferred"))


def test_contact_in_another_timezone_gets_their_own_morning(make_world, frozen):
    world = make_world([winter_sequence()])
    (john,) = world.add_contacts({"phone": "+14155552671", "first_name": "John", "timezone": "America/Toronto"})
    world.enroll("winter", john)  # 01:30 in Toronto
    world.run(frozen, T0 + timedelta(hours=12))
    assert sent_at(world, "hello") == datetime(2026, 12, 5, 14, 0, tzinfo=UTC)  # 09:00 EST


def test_dst_change_in_the_contacts_zone(make_world, frozen):
    world = make_world([simple_sequence("a")], settings={"send_window": {"start": "09:00", "end": "21:00", "days": "all"}})
    frozen.move_to(datetime(2026, 3, 8, 3, 0, tzinfo=UTC))  # Saturday 22:00 EST; clocks spring forward at 02:00
    (john,) = world.add_contacts({"phone": "+14155552671", "first_name": "John", "timezone": "America/Toronto"})
    world.enroll("a", john)
    world.run(frozen, datetime(2026, 3, 8, 18, 0, tzinfo=UTC))
    assert sent_at(world, "t0") == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)  # 09:00 EDT, not 09:00 EST


def test_transient_failures_are_retried_inline_then_rescheduled(make_world, frozen):
    world = make_world([simple_sequence("a")])
    (sara,) = world.add_contacts(SARA)
    world.sms.fail_next(TransientError("gateway busy"), times=2)
    world.enroll("a", sara)
    world.tick()
    assert len(world.sms.attempts) == 3 and len(world.sms.outbox) == 1
    assert len(world.sleeps) == 2  # tenacity waited twice, through the injected sleep
    assert world.messages(touch="t0")[0]["attempt"] == 1

    world.sms.fail_next(TransientError("gateway busy"), times=3)
    frozen.move_to(T0 + timedelta(hours=1))
    world.tick()
    (row,) = world.messages(touch="t1")
    assert row["status"] == "scheduled" and to_utc(row["next_attempt_at"]) == T0 + timedelta(hours=1, seconds=60)
    (retry,) = world.log(touch="t1", event="retry")
    assert "gateway busy" in retry["reason"]
    frozen.move_to(T0 + timedelta(hours=1, seconds=61))
    world.tick()
    (row,) = world.messages(touch="t1")
    assert row["status"] == "sent" and row["attempt"] == 2


def test_retries_end_in_failed_with_the_reason(make_world, frozen):
    world = make_world([simple_sequence("a")], settings={"worker": {"max_attempts": 2, "inline_retries": 1}})
    (sara,) = world.add_contacts(SARA)
    world.sms.fail_when(lambda m: TransientError("HTTP 503"))
    world.enroll("a", sara)
    world.run(frozen, T0 + timedelta(minutes=10), step=timedelta(minutes=1))
    row = world.messages(touch="t0")[0]
    assert row["status"] == "failed" and "retries exhausted after 2 attempts" in row["reason"]
    assert len(world.sms.attempts) >= 2 and not world.sms.outbox


def test_permanent_content_error_is_not_retried_and_the_sequence_goes_on(make_world, frozen):
    world = make_world([simple_sequence("a")])
    (sara,) = world.add_contacts(SARA)
    world.sms.fail_next(PermanentContentError("link in text restricted", code=420))
    world.enroll("a", sara)
    world.tick()
    assert len(world.sms.attempts) == 1 and world.sleeps == []
    first = world.messages(touch="t0")[0]
    assert first["status"] == "failed" and "link in text restricted" in first["reason"]
    assert world.messages(touch="t1")[0]["status"] == "scheduled"


def test_permanent_recipient_error_suppresses_the_contact_on_that_channel(make_world, frozen):
    world = make_world([simple_sequence("a")])
    (sara,) = world.add_contacts(SARA)
    world.sms.fail_next(PermanentRecipientError("receptor is on the advertising blacklist", code=14))
    world.enroll("a", sara)
    world.run(frozen, T0 + timedelta(hours=3))
    assert len(world.sms.attempts) == 1
    assert [m["status"] for m in world.messages()] == ["failed", "skipped", "skipped"]
    assert "blacklist" in world.log(event="skipped")[0]["reason"]


def test_blocked_provider_is_paused_and_the_failover_sends(make_world, frozen):
    world = make_world([simple_sequence("a")], settings={"providers": {
        "sms": [{"name": "primary", "type": "memory"}, {"name": "backup", "type": "memory"}],
        "email": [{"name": "mem-email", "type": "memory"}]}})
    primary, backup = world.providers["sms"]
    primary.fail_when(lambda m: ProviderBlockedError("insufficient credit", code=418))
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("a", sara)
    world.tick()
    world.enroll("a", ali)
    world.tick()
    assert len(backup.outbox) == 2 and len(primary.attempts) == 1  # paused after the first refusal
    assert {m["provider"] for m in world.messages(status="sent")} == {"backup"}
    with world.engine.connect() as conn:
        state = conn.execute(sa.select(ProviderState.__table__)).mappings().one()
    assert state["name"] == "primary" and state["state"] == "paused" and "credit" in state["reason"]


def first_touch_renders(make_world, name: str, source: str):
    """A world with sequence ``a`` whose first touch renders template ``name`` (``source``)."""
    seq = simple_sequence("a")
    seq["touches"][0]["template"] = name
    return make_world([seq], templates={name: source})


def test_a_broken_template_fails_that_touch_only(make_world, frozen):
    world = first_touch_renders(make_world, "broken.sms.j2", "{{ contact.nickname }}")
    (sara,) = world.add_contacts(SARA)
    world.enroll("a", sara)
    world.run(frozen, T0 + timedelta(hours=3))
    statuses = [m["status"] for m in world.messages()]
    assert statuses == ["failed", "sent", "sent"]
    assert world.messages(touch="t0")[0]["reason"].startswith("template: broken.sms.j2")


def test_a_contact_without_a_column_the_template_reads_is_skipped_with_the_column_named(make_world, frozen):
    world = first_touch_renders(make_world, "city.sms.j2", "سلام\n{{ contact.attrs.city }}")
    sara, ali = world.add_contacts({**SARA, "city": "تهران"}, ALI)
    world.enroll("a", sara, ali)
    world.run(frozen, T0 + timedelta(hours=3))
    first = {m["contact_id"]: m for m in world.messages(touch="t0")}
    assert first[sara]["status"] == "sent" and first[ali]["status"] == "skipped"
    assert first[ali]["reason"] == ("template: city.sms.j2:2: contact has no attrs.city; "
                                    "add it or use | default(...)")
    assert [m["status"] for m in world.messages() if m["contact_id"] == ali] == ["skipped", "sent", "sent"]
    assert world.sms.outbox[0].text.startswith("سلام\nتهران")


def test_a_missing_column_with_a_default_renders_the_default(make_world, frozen):
    world = first_touch_renders(make_world, "city.sms.j2", "سلام {{ contact.attrs.city | default('دوست') }}")
    (ali,) = world.add_contacts(ALI)
    world.enroll("a", ali)
    world.tick()
    assert world.messages(touch="t0")[0]["status"] == "sent"
    assert world.sms.outbox[0].text.startswith("سلام دوست")


HOSTILE_TEMPLATES = {
    # a million loop steps: without a budget it renders (slowly) and is sent
    "loops": ("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}hi", "too much work"),
    # 1.7 million bits: without a check it is computed, then sent
    "power": ("{% set n = 9 ** (9 ** 6) %}hi", "more than 4096 bits"),
    # folded at compile time without the sandbox's own operators: a MemoryError as the worker starts
    "repeat": ('{% set s = "a" * 10 ** 18 %}hi', "more than 200,000 characters"),
    # a RecursionError out of the tick without a guard
    "recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "calls itself without end"),
}


@pytest.mark.parametrize("kind", list(HOSTILE_TEMPLATES))
def test_a_hostile_template_fails_its_message_with_the_reason_and_other_sequences_still_send(make_world, frozen,
                                                                                            kind):
    source, says = HOSTILE_TEMPLATES[kind]
    evil = simple_sequence("evil")
    evil["touches"][0]["template"] = "evil.sms.j2"
    world = make_world([evil, simple_sequence("good")], templates={"evil.sms.j2": source})  # the worker starts
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("evil", sara)
    world.enroll("good", ali)
    world.tick()
    (bad,) = world.messages(sequence="evil", touch="t0")
    assert bad["status"] == "failed" and bad["reason"].startswith("template: evil.sms.j2") and says in bad["reason"]
    assert [m["status"] for m in world.messages(sequence="good", touch="t0")] == ["sent"]
    assert [to for _, to in world.sent()] == ["+989351234567"]


@pytest.mark.parametrize("limit", [None, 2])
def test_an_sms_over_max_sms_segments_is_skipped_with_its_reason_and_the_sequence_goes_on(make_world, frozen,
                                                                                       limit):
    seq = simple_sequence("a", **({"max_sms_segments": limit} if limit else {}))
    # a name at the field limit (200 characters), printed five times (16 segments) or once (4 segments)
    name = "{{ contact.first_name }}" * (5 if limit is None else 1)
    world = make_world([seq], templates={"plain.sms.j2": f"سلام {name}، {{{{ touch.name }}}}"})
    sara, ali = world.add_contacts(SARA, ALI)
    with world.engine.begin() as conn:
        conn.execute(sa.text("UPDATE contacts SET first_name = :n WHERE id = :i"), {"n": "س" * 200, "i": sara})
    world.enroll("a", sara, ali)
    world.tick()
    (skipped,) = world.messages(contact_id=sara, touch="t0")
    segments = 16 if limit is None else 4
    assert (skipped["status"], skipped["reason"]) == (
        "skipped", f"SMS would be {segments} segments, over max_sms_segments {limit or 4}")
    assert [to for _, to in world.sent()] == ["+989351234567"]
    assert world.messages(contact_id=sara, touch="t1")[0]["status"] == "scheduled"


def test_enrolling_twice_is_a_no_op_and_opted_out_contacts_are_refused(make_world, frozen):
    world = make_world([simple_sequence("a")])
    sara, ali = world.add_contacts(SARA, ALI)
    assert world.enroll("a", sara).enrolled == [sara]
    world.event(ali, "unsubscribed")
    report = world.enroll("a", sara, ali)
    assert report.already_active == [sara] and report.enrolled == []
    assert report.refused[0][0] == ali and "unsubscribed" in report.refused[0][1]
    assert len(world.messages()) == 3


def test_a_landline_gets_no_sms_but_its_email_touches_go_and_the_sequence_goes_on(make_world, frozen):
    world = make_world([winter_sequence()])
    office = {"phone": "021-8877 6655", "email": "office@example.com", "first_name": "دفتر"}  # a Tehran landline
    (contact,) = world.add_contacts(office)
    assert world.enroll("winter", contact).enrolled == [contact]  # reachable by email
    world.run(frozen, T0 + timedelta(days=4), step=timedelta(hours=1))
    assert [t for t, _ in world.sent()] == ["value"]  # the email touch only; no panel was asked
    skipped = {r["touch"]: r["reason"] for r in world.log(event="skipped")}
    assert set(skipped) == {"hello", "reminder", "last-chance"}
    assert all("landline" in why for why in skipped.values())
    assert world.enrollment(contact, "winter")["status"] == "completed"


def test_a_landline_is_refused_by_a_sequence_of_sms_only(make_world, frozen):
    world = make_world([simple_sequence("a")])
    (office,) = world.add_contacts({"phone": "02188776655", "first_name": "دفتر"})
    report = world.enroll("a", office)
    assert report.enrolled == [] and report.refused[0][0] == office
    assert "sms: a landline, no SMS reaches it" in report.refused[0][1]
    assert world.messages() == []


def test_the_worker_echoes_every_log_row_as_one_json_line(make_world, frozen, caplog):
    """One record per statement, a JSON line per row: the lines are the delivery log, in its order."""
    world = make_world([winter_sequence()])
    ids = world.add_contacts(SARA, ALI, {"phone": "09121112233", "first_name": "مریم"})
    world.enroll("winter", *ids)
    before = max(r["id"] for r in world.log())  # what enrolling logged
    with caplog.at_level(logging.INFO, logger="followup.delivery"):
        world.tick()
    records = [r for r in caplog.records if r.name == "followup.delivery"]
    lines = [json.loads(line) for r in records for line in r.getMessage().split("\n")]
    rows = [r for r in world.log() if r["id"] > before]
    assert len(records) < len(lines) == len(rows) >= 9  # sending, sent, next scheduled: three contacts
    for line, row in zip(lines, rows):
        assert line == {**{k: row[k] for k in LOG_FIELDS if k not in ("worker", "at")},
                        "at": to_utc(row["at"]).isoformat().replace("+00:00", "Z")}


def test_editing_expires_after_later_never_extends_a_told_deadline(make_world, frozen):
    world = make_world([winter_sequence(expires_after="72h")])
    (sara,) = world.add_contacts(SARA)
    world.enroll("winter", sara)
    before = to_utc(world.enrollment(sara, "winter")["offer_expires_at"])
    assert before == T0 + timedelta(hours=72)
    world2 = make_world([winter_sequence(expires_after="240h")])  # same database, the file edited
    world2.enroll("winter", sara)  # already active: nothing changes
    assert to_utc(world2.enrollment(sara, "winter")["offer_expires_at"]) == before


def test_a_provider_rate_is_shared_by_the_send_threads(make_world, frozen):
    world = make_world([simple_sequence("a")], settings={"providers": {
        "sms": [{"name": "mem-sms", "type": "memory", "rate": "10/s"}],
        "email": [{"name": "mem-email", "type": "memory"}]}})
    ids = world.add_contacts(*({"phone": f"0912000000{i}"} for i in range(5)))
    world.enroll("a", *ids)
    world.tick()
    assert len(world.sms.outbox) == 5
    # five sends at once: each reserved the next 100 ms slot, so they waited about 0.1, 0.2, 0.3, 0.4 s
    assert sorted(world.sleeps) == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=0.03)


def test_the_opt_out_footer_can_follow_the_contacts_locale(make_world, frozen):
    world = make_world([simple_sequence("a")], settings={"sms_opt_out_footer": {"fa": "لغو11", "en": "Reply STOP to opt out"}})
    sara, john = world.add_contacts(SARA, {"phone": "+14155552671", "first_name": "John", "locale": "en",
                                           "timezone": "Asia/Tehran"})
    world.enroll("a", sara, john)
    world.tick()
    texts = {m.to: m.text for m in world.sms.outbox}
    assert texts["+989121234567"].endswith("\nلغو11")
    assert texts["+14155552671"].endswith("\nReply STOP to opt out")


def test_preview_counts_the_offer_deadline_from_enrollment(make_world, frozen):
    from engine.preview import preview

    world = make_world([winter_sequence(expires_after="72h")])
    rows = preview(world.config, world.config.sequences["winter"], start=T0)
    last = rows[-1]
    assert last.touch == "last-chance" and last.when == datetime(2026, 12, 8, 9, 0, tzinfo=last.when.tzinfo)
    # sent Tuesday 09:00 Tehran, 71 of the 72 hours after enrollment: one hour is left, not three days
    assert "۱ ساعت" in last.rendered.text


def test_the_migrations_build_the_schema_the_models_describe(fresh_db_url):
    """What `followup db upgrade` creates is what the code expects: no table, column or index differs.

    The models are what the worker's statements are written against; a migration that forgets an index
    (or drops one the models still declare) would pass every other test and only show as a slow query.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from engine.db import make_engine, upgrade
    from engine.models import metadata

    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("delivery_log")}
    assert "ix_delivery_log_message_id" not in indexes and "ix_log_contact" in indexes


# -- re-entry ------------------------------------------------------------------------------------
def _enrollments(world, contact_id: int, sequence: str) -> list[dict]:
    with world.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "SELECT * FROM enrollments WHERE contact_id = :c AND sequence = :s ORDER BY id"),
            {"c": contact_id, "s": sequence}).mappings()]


def test_a_contact_who_converted_is_not_enrolled_again_and_the_report_says_when_and_why(make_world, frozen):
    world = make_world([winter_sequence()])
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("winter", sara, ali)
    world.tick()
    world.event(sara, "converted")
    frozen.tick(timedelta(days=30))
    report = world.enroll("winter", sara, ali)
    assert report.enrolled == [] and report.already_active == [ali]
    ((cid, why),) = report.finished
    assert cid == sara
    assert why == ("already enrolled, converted on 2026-12-05 06:30 UTC (contact converted); "
                   "this sequence's reentry is never")
    assert len(_enrollments(world, sara, "winter")) == 1
    assert len(world.messages(contact_id=sara)) == 4  # no new touches


@pytest.mark.parametrize("status", ["completed", "replied", "unsubscribed", "stopped", "unenrolled"])
def test_every_way_an_enrollment_ends_keeps_the_contact_out_by_default(make_world, frozen, status):
    world = make_world([simple_sequence("a")])
    (sara,) = world.add_contacts(SARA)
    world.enroll("a", sara)
    with world.engine.begin() as conn:
        conn.execute(sa.text("UPDATE enrollments SET status = :s, ended_at = :at"), {"s": status, "at": T0})
    report = world.enroll("a", sara)
    assert report.enrolled == [] and report.finished[0][1].startswith(f"already enrolled, {status} on 2026-12-05")


def test_reentry_after_lets_a_contact_back_with_the_deadline_first_given_for_the_offer(make_world, frozen):
    world = make_world([winter_sequence(expires_after="72h")])
    (sara,) = world.add_contacts(SARA)
    world.enroll("winter", sara)
    first_deadline = to_utc(_enrollments(world, sara, "winter")[0]["offer_expires_at"])
    assert first_deadline == T0 + timedelta(hours=72)
    world.event(sara, "converted")
    frozen.tick(timedelta(hours=1))
    assert world.enroll("winter", sara).enrolled == []  # reentry: never
    again = make_world([{**winter_sequence(expires_after="72h"), "reentry": {"after": "1s"}}])  # the same database
    report = again.enroll("winter", sara)
    assert report.enrolled == [sara]
    first, second = _enrollments(again, sara, "winter")
    assert second["status"] == "active" and to_utc(second["offer_expires_at"]) == first_deadline


def test_reentry_after_counts_from_the_end_of_the_last_enrollment(make_world, frozen):
    world = make_world([simple_sequence("a", reentry={"after": "90d"})])
    (sara,) = world.add_contacts(SARA)
    world.enroll("a", sara)
    frozen.tick(timedelta(days=10))
    world.event(sara, "replied")
    frozen.tick(timedelta(days=89))
    (finished,) = world.enroll("a", sara).finished
    assert finished[1].endswith("may enroll again from 2027-03-15 06:30 UTC")
    frozen.tick(timedelta(days=1))
    assert world.enroll("a", sara).enrolled == [sara]


@pytest.mark.parametrize("value, message", [
    ("always", "write `reentry: never` (the default) or `reentry: {after: 90d}`"),
    ({"after": "soon"}, "is not a duration"),
])
def test_a_bad_reentry_names_the_key(tmp_path, value, message):
    from engine.errors import ConfigError
    from engine.sequences import load_sequences

    (tmp_path / "sequences").mkdir()
    import yaml
    (tmp_path / "sequences" / "a.yaml").write_text(yaml.safe_dump(simple_sequence("a", reentry=value)))
    with pytest.raises(ConfigError) as err:
        load_sequences(tmp_path)
    assert "reentry" in str(err.value) and message in str(err.value)


# -- pause, resume, stop, unenroll, orphaned -------------------------------------------------------
def _control(world, action, *args):
    from engine import control

    with world.engine.begin() as conn:
        return getattr(control, action)(conn, world.config, *args)


def test_a_paused_sequence_holds_its_due_messages_and_resume_sends_them(make_world, frozen):
    world = make_world([simple_sequence("a"), simple_sequence("b")])
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("a", sara)
    world.enroll("b", ali)
    _control(world, "pause", "a")
    world.tick()
    (held,) = world.messages(contact_id=sara, touch="t0")
    assert (held["status"], held["reason"]) == ("scheduled", "sequence paused")
    assert to_utc(held["next_attempt_at"]) == T0 + timedelta(hours=1)
    assert [r["reason"] for r in world.log(contact_id=sara, event="deferred")] == ["sequence paused"]
    assert [to for _, to in world.sent()] == ["+989351234567"]  # b goes on
    frozen.tick(timedelta(hours=3))
    world.tick()  # still paused: held again, nothing dropped
    assert [m["status"] for m in world.messages(contact_id=sara)] == ["scheduled", "pending", "pending"]
    assert "+989121234567" not in [to for _, to in world.sent()]
    assert "1 held message(s) due now" in _control(world, "resume", "a")
    world.tick()
    assert [t for t, to in world.sent() if to == "+989121234567"] == ["t0"]


def test_stop_ends_every_enrollment_and_cancels_its_messages_with_the_reason(make_world, frozen):
    world = make_world([simple_sequence("a")])
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("a", sara, ali)
    assert _control(world, "stop", "a") == "a: stopped; 2 enrollment(s) ended, 6 pending message(s) cancelled"
    assert {(m["status"], m["reason"]) for m in world.messages()} == {("cancelled", "sequence stopped")}
    assert world.enrollment(sara, "a")["status"] == "stopped"
    world.tick()
    assert world.sent() == []
    from engine.errors import InputError
    with pytest.raises(InputError, match="is stopped; `followup sequences resume a`"):
        world.enroll("a", sara)


def test_unenroll_ends_one_contacts_enrollment_only(make_world, frozen):
    world = make_world([simple_sequence("a")])
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("a", sara, ali)
    with world.engine.connect() as conn:
        contact = dict(conn.execute(sa.text("SELECT * FROM contacts WHERE id = :i"), {"i": sara}).mappings().one())
    assert "3 pending message(s) cancelled" in _control(world, "unenroll", "a", contact)
    assert world.enrollment(sara, "a")["status"] == "unenrolled"
    world.tick()
    assert [to for _, to in world.sent()] == ["+989351234567"]
    from engine.errors import InputError
    with pytest.raises(InputError, match="no active enrollment"):
        _control(world, "unenroll", "a", contact)


def test_an_unknown_sequence_name_is_an_input_error(make_world, frozen):
    from engine.errors import InputError

    world = make_world([simple_sequence("a")])
    with pytest.raises(InputError, match=r"no sequence named 'nope' \(known: a\)"):
        _control(world, "pause", "nope")


def test_a_sequence_whose_file_is_gone_is_orphaned_its_messages_held_and_the_worker_warns(make_world, frozen,
                                                                                          caplog):
    from engine.control import list_sequences
    from engine.worker import run_worker

    world = make_world([simple_sequence("a"), simple_sequence("b")])
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("a", sara)
    world.enroll("b", ali)
    (world.root / "config" / "sequences" / "a.yaml").unlink()
    gone = make_world([simple_sequence("b")])  # the same database, the config without a.yaml
    gone.tick()
    (held,) = gone.messages(contact_id=sara, touch="t0")
    assert (held["status"], held["reason"]) == ("scheduled", "sequence orphaned: its file is gone from config/sequences")
    assert [to for _, to in gone.sent()] == ["+989351234567"]
    with gone.engine.connect() as conn:
        rows = {r.name: r for r in list_sequences(conn, gone.config)}
    assert (rows["a"].state, rows["a"].active, rows["a"].due_24h) == ("orphaned", 1, 1)
    assert rows["a"].next_due == T0 + timedelta(hours=1) and rows["a"].version == world.config.sequences["a"].hash
    assert (rows["b"].state, rows["b"].active, rows["b"].due_24h) == ("active", 1, 1)  # t1, in an hour
    with caplog.at_level(logging.WARNING, logger="followup.worker"):
        assert run_worker(gone.config, once=True) == 0
    assert any(r.getMessage().startswith("sequence a is orphaned (its file is gone from config/sequences): 1 active")
               for r in caplog.records)
