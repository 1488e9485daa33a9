"""Iranian holidays in the send window: skip_holidays, skip_days: [mourning], holidays.yaml, and what
preview and validate say about them. Time: freezegun and tick()."""
from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from engine.clock import to_utc
from engine.config import load_config
from engine.errors import ConfigError
from engine.offdays import country_days
from engine.preview import preview
from engine.validate import validate

from .conftest import simple_sequence, winter_sequence

UTC = timezone.utc
TEHRAN = ZoneInfo("Asia/Tehran")
SARA = {"phone": "09121234567", "email": "sara@example.com", "first_name": "سارا"}
EVERY_DAY = {"start": "09:00", "end": "21:00", "days": "all"}


def tehran(*args: int) -> datetime:
    return datetime(*args, tzinfo=TEHRAN).astimezone(UTC)


def one_touch(name: str = "promo", **window) -> dict:
    """A sequence whose first touch (t0) is the one looked at: the others come 30 days later."""
    return simple_sequence(name, after="30d", send_window={**EVERY_DAY, **window})


def urgent_after_a_day(**window) -> dict:
    """hello now, reminder 2 h later, the urgent last-chance 22 h after that: 24 h in, 6 h before the deadline."""
    seq = winter_sequence(expires_after="30h")
    seq["send_window"] = {**EVERY_DAY, **window}
    hello, _, reminder, last = seq["touches"]
    seq["touches"] = [hello, {**reminder, "after": "2h"}, {**last, "after": "22h"}]
    return seq


def first_touch_at(world, at: datetime) -> dict:
    """Sara enrolled in promo at ``at`` and one tick: her first message."""
    (sara,) = world.add_contacts(SARA)
    with freeze_time(at):
        world.enroll("promo", sara)
        world.tick()
    return world.messages(touch="t0")[0]


def test_the_package_calendar_names_iranian_holidays_in_persian_and_marks_mourning_days():
    days = country_days("IR", 2027)
    nowruz = days[datetime(2027, 3, 21).date()]
    ashura = days[datetime(2027, 6, 16).date()]
    assert nowruz.name == "جشن نوروز" and not nowruz.mourning
    assert "عاشورا" in ashura.name and "تخمینی" in ashura.name and ashura.mourning  # lunar: estimated
    assert days[datetime(2027, 6, 15).date()].mourning  # Tasua
    assert not days[datetime(2027, 3, 10).date()].mourning  # Eid al-Fitr


def test_skip_holidays_defers_past_nowruz_with_the_holidays_name_as_the_reason(make_world):
    world = make_world([one_touch(skip_holidays="IR")])
    (sara,) = world.add_contacts(SARA)
    with freeze_time(tehran(2027, 3, 21, 10, 0)) as clock:  # Nowruz, a Sunday
        world.enroll("promo", sara)
        world.tick()
        (message,) = world.messages(touch="t0")
        assert message["status"] == "scheduled"
        # 21 to 24 March are Nowruz; the 25th is the first day the window opens
        assert to_utc(message["next_attempt_at"]) == tehran(2027, 3, 25, 9, 0)
        assert message["reason"].startswith("holiday: جشن نوروز (2027-03-21); عیدنوروز (2027-03-22)")
        assert world.log(event="deferred")[0]["reason"] == message["reason"]
        assert world.sent() == []
        clock.move_to(tehran(2027, 3, 25, 9, 0))
        world.tick()
    assert world.sent() == [("t0", "+989121234567")]


def test_skip_holidays_does_not_hold_an_ordinary_day(make_world):
    world = make_world([one_touch(skip_holidays="IR")])
    assert first_touch_at(world, tehran(2027, 3, 15, 10, 0))["status"] == "sent"
    assert world.sent() == [("t0", "+989121234567")]


def test_mourning_days_alone_send_on_nowruz_but_not_on_ashura(make_world):
    world = make_world([one_touch("nowruz", skip_days=["mourning"]), one_touch("ashura", skip_days=["mourning"])])
    (sara,) = world.add_contacts(SARA)
    with freeze_time(tehran(2027, 3, 21, 10, 0)) as clock:
        world.enroll("nowruz", sara)
        world.tick()
        assert [m["status"] for m in world.messages(touch="t0")] == ["sent"]
        clock.move_to(tehran(2027, 6, 15, 10, 0))  # Tasua, then Ashura
        world.enroll("ashura", sara)
        world.tick()
    (ashura,) = world.messages(sequence="ashura", touch="t0")
    assert ashura["status"] == "scheduled"
    assert to_utc(ashura["next_attempt_at"]) == tehran(2027, 6, 17, 9, 0)
    assert ashura["reason"].startswith("mourning day: تاسوعای حسینی (تخمینی) (2027-06-15); "
                                       "عاشورای حسینی (تخمینی) (2027-06-16)")


def test_a_deferral_from_the_night_before_names_the_window_then_the_holiday(make_world):
    world = make_world([one_touch(skip_holidays="IR")])
    message = first_touch_at(world, tehran(2027, 6, 14, 22, 0))
    assert to_utc(message["next_attempt_at"]) == tehran(2027, 6, 17, 9, 0)
    assert message["reason"].startswith("outside the send window 09:00–21:00 every day except IR holidays "
                                        "(Asia/Tehran), then holiday: تاسوعای حسینی")


def test_an_urgent_touch_a_holiday_pushes_past_the_deadline_is_skipped(make_world):
    world = make_world([urgent_after_a_day(skip_holidays="IR")])
    (sara,) = world.add_contacts(SARA)
    with freeze_time(tehran(2027, 3, 19, 12, 0)) as clock:  # Friday; the 20th to the 24th are holidays
        world.enroll("winter", sara)
        world.run(clock, tehran(2027, 3, 20, 13, 0), step=timedelta(hours=1))
    last = world.messages(touch="last-chance")[0]
    assert last["status"] == "skipped"
    assert last["reason"].startswith("offer_expired: holiday: روز ملی شدن صنعت نفت ایران (2027-03-20)")
    assert world.sent() == [("hello", "+989121234567"), ("reminder", "+989121234567")]


def write_holidays(world, text: str) -> None:
    (world.root / "config" / "holidays.yaml").write_text(textwrap.dedent(text), encoding="utf-8")


def test_holidays_yaml_moves_a_lunar_holiday_by_a_day(make_world):
    world = make_world([one_touch(skip_days=["mourning"])])
    write_holidays(world, """\
        # the moon was sighted a day late
        remove:
          - {date: 2027-06-15, why: "Tasua fell on the 16th"}
          - 1406-03-26             # Jalali for 2027-06-16
        add:
          - {date: 1406-03-27, name: "عاشورای حسینی", mourning: true}
        """)
    config = load_config(world.root / "config")
    world.dispatcher.config = config
    (sara,) = world.add_contacts(SARA)
    with freeze_time(tehran(2027, 6, 15, 10, 0)) as clock:
        world.enroll("promo", sara)
        world.tick()
        assert [m["status"] for m in world.messages(touch="t0")] == ["sent"]  # the 15th is no longer Tasua
    window = config.sequences["promo"].send_window
    assert window.holiday(datetime(2027, 6, 16).date()) is None
    assert window.holiday(datetime(2027, 6, 17).date()).name == "عاشورای حسینی"


def test_a_running_enrollment_follows_holidays_yaml_read_by_the_worker(make_world):
    world = make_world([one_touch(skip_holidays="IR")])
    write_holidays(world, "add:\n  - {date: 2027-03-16, name: تعطیل ویژه}\n")
    world.dispatcher.config = load_config(world.root / "config")  # the stored version has no dates of its own
    message = first_touch_at(world, tehran(2027, 3, 16, 10, 0))
    assert message["reason"].startswith("holiday: تعطیل ویژه (2027-03-16); deferred to 2027-03-17T09:00:00+03:30")


@pytest.mark.parametrize("text, where, words", [
    ("add:\n  - {date: 2027-06-40, name: x}\n", "holidays.yaml:2", "add[0].date: is not a date"),
    ("add:\n  - {date: 2027-06-17}\n", "holidays.yaml:2", "needs a name"),
    ("add:\n  - date: 2027-06-17\n    name: x\n    mourning: maybe\n", "holidays.yaml:4", "must be true or false"),
    ("remove:\n  - 2027-06-15\nadd:\n  - {date: 2027-06-15, name: x}\n", "holidays.yaml:2", "both added and removed"),
    ("add: []\nextra: 1\n", "holidays.yaml:2", "extra: unknown key"),
    ("remove:\n  - 1406-12-31\n", "holidays.yaml:2", "is not a Jalali date"),
    ("add:\n  - {date: 2027-06-17, name: x\n", "holidays.yaml:2", ""),
])
def test_a_bad_holidays_yaml_is_refused_at_its_line(make_world, text, where, words):
    world = make_world([one_touch(skip_holidays="IR")])
    write_holidays(world, text)
    with pytest.raises(ConfigError) as err:
        load_config(world.root / "config")
    assert where in str(err.value) and words in str(err.value)
    _, problems = validate(world.root / "config")
    assert any(where in str(p) for p in problems)


@pytest.mark.parametrize("window, words", [
    ({"skip_holidays": "XX"}, "skip_holidays: 'XX' is not a country"),
    ({"skip_days": ["ashura"]}, "skip_days: takes a list of kinds of day"),
])
def test_a_bad_skip_key_is_refused_at_its_line(make_world, window, words):
    world = make_world([one_touch()])
    path = world.root / "config" / "sequences" / "promo.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  days: all\n", "  days: all\n" + "".join(
        f"  {k}: {v if isinstance(v, str) else '[' + ', '.join(v) + ']'}\n" for k, v in window.items())),
        encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(world.root / "config")
    line = next(i for i, t in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if t.startswith("  skip_"))
    assert f"promo.yaml:{line}: send_window.{words}" in str(err.value)


def test_preview_shows_the_holiday_deferral(make_world):
    world = make_world([one_touch(skip_holidays="IR")])
    seq = world.config.sequences["promo"]
    row = preview(world.config, seq, start=tehran(2027, 3, 20, 10, 0))[0]
    assert row.when == tehran(2027, 3, 25, 9, 0)
    assert row.note.startswith("deferred: holiday: روز ملی شدن صنعت نفت ایران (2027-03-20); جشن نوروز (2027-03-21)")


def test_validate_warns_when_a_holiday_pushes_an_urgent_touch_past_its_deadline(make_world):
    world = make_world([urgent_after_a_day(skip_holidays="IR")])
    with freeze_time(tehran(2027, 1, 1, 12, 0)):
        _, problems = validate(world.root / "config")
    warnings = [str(p) for p in problems if p.warning and "last-chance" in str(p)]
    assert len(warnings) == 1
    # 2027-01-05 12:00 + 24h is 2027-01-06, Isra' and Mi'raj: deferred to the 7th, past the 30h deadline
    assert "winter.yaml" in warnings[0] and "enrolled on 2027-01-05" in warnings[0]
    assert "مبعث رسول اکرم" in warnings[0] and "would be skipped" in warnings[0]

    plain = make_world([urgent_after_a_day()])
    with freeze_time(tehran(2027, 1, 1, 12, 0)):
        _, problems = validate(plain.root / "config")
    assert not [p for p in problems if "last-chance" in str(p) and "holiday" in str(p)]


def test_the_dashboard_says_a_holiday_deferral_in_persian():
    from engine.service.i18n import reason_phrases

    said = reason_phrases("fa", "outside the send window 09:00–21:00 every day except IR holidays (Asia/Tehran), "
                                "then holiday: تاسوعای حسینی (2027-06-15); deferred to 2027-06-17T09:00:00+03:30")
    assert said == ("بیرون از بازهٔ ارسال 09:00–21:00 every day جز تعطیلات IR (Asia/Tehran)، سپس تعطیل: "
                    "تاسوعای حسینی (2027-06-15)؛ عقب افتاد تا 2027-06-17T09:00:00+03:30")
    assert reason_phrases("fa", "mourning day: عاشورا (2027-06-16)") == "روز عزا: عاشورا (2027-06-16)"
