"""``followup simulate``: the engine's tick() on a simulated clock in a throwaway database; the configured
database is only read. Each simulation is checked against the same campaign run for real under freezegun."""
from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from click.testing import CliRunner
from freezegun import freeze_time

from engine.cli import State, cli
from engine.clock import now, to_utc
from engine.simulate import contacts_by_tag, simulate

from .conftest import simple_sequence, winter_sequence

UTC = timezone.utc
TEHRAN = ZoneInfo("Asia/Tehran")
SARA = {"phone": "09121234567", "email": "sara@example.com", "first_name": "سارا", "tags": "vip"}
ALI = {"phone": "09351234567", "email": "ali@example.com", "first_name": "علی", "tags": "vip",
       "timezone": "Europe/Berlin"}
NEDA = {"phone": "09191234567", "first_name": "ندا", "tags": "other"}
EVERY_DAY_BUT_FRIDAY = {"start": "09:00", "end": "21:00", "days": ["sat", "sun", "mon", "tue", "wed", "thu"],
                        "skip_holidays": "IR"}


def tehran(*args: int) -> datetime:
    return datetime(*args, tzinfo=TEHRAN).astimezone(UTC)


def winter_with_holidays() -> dict:
    seq = winter_sequence(expires_after="96h")
    seq["send_window"] = EVERY_DAY_BUT_FRIDAY
    return seq


def counts(world) -> dict[str, int]:
    with world.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("contacts", "enrollments", "messages", "delivery_log", "contact_events")}


def test_simulate_tells_what_the_worker_does_and_writes_nothing(make_world):
    world = make_world([winter_with_holidays()])
    ids = world.add_contacts(SARA, ALI, NEDA)
    before = counts(world)
    start = tehran(2027, 3, 18, 10, 0)  # Thursday; Friday, then the oil day and Nowruz to the 24th
    sim = simulate(world.config, "winter", start, 21, rows=contacts_by_tag(world.engine, "vip"))
    assert counts(world) == before
    assert world.sent() == []
    assert [c.label.split()[0] for c in sim.contacts] == ["سارا", "علی"]

    sara = sim.contacts[0]
    assert [(e.touch, e.event, e.at) for e in sara.events] == [
        ("hello", "sent", start.astimezone(TEHRAN)),
        ("value", "deferred", (start + timedelta(days=1)).astimezone(TEHRAN)),
        ("value", "sent", datetime(2027, 3, 25, 9, 0, tzinfo=TEHRAN)),
        ("reminder", "deferred", datetime(2027, 3, 26, 9, 0, tzinfo=TEHRAN)),  # a Friday
        ("reminder", "sent", datetime(2027, 3, 27, 9, 0, tzinfo=TEHRAN)),
        ("last-chance", "skipped", datetime(2027, 3, 27, 21, 0, tzinfo=TEHRAN)),
    ]
    assert "then holiday: روز ملی شدن صنعت نفت ایران (2027-03-20); جشن نوروز (2027-03-21)" in sara.events[1].reason
    assert sara.events[5].reason.startswith("offer_expired")
    assert sim.messages == 6 and sim.sms == 4 and sim.emails == 2 and sim.skipped == 2
    assert sim.segments == sum(e.segments for c in sim.contacts for e in c.events if e.segments)

    # the same campaign, run for real: the simulation said exactly what the worker does
    with freeze_time(start) as clock:
        world.enroll("winter", ids[0], ids[1])
        world.run(clock, tehran(2027, 3, 28, 10, 0), step=timedelta(minutes=30))
    real = {(m["contact_id"], m["touch"]): to_utc(m["sent_at"]) for m in world.messages() if m["status"] == "sent"}
    simulated = {(c.id, e.touch): e.at.astimezone(UTC) for c in sim.contacts for e in c.events if e.event == "sent"}
    assert real == simulated
    assert len(real) == 6


def test_the_frequency_cap_and_the_end_of_the_period_are_shown(make_world):
    world = make_world([simple_sequence("burst", after="1h")], settings={"frequency_cap": {"per_day": 1}})
    start = tehran(2027, 5, 1, 10, 0)  # a Saturday
    sim = simulate(world.config, "burst", start, 1, sample={"first_name": "سارا", "phone": "09121234567"})
    (person,) = sim.contacts
    assert [(e.touch, e.event, e.at) for e in person.events] == [
        ("t0", "sent", datetime(2027, 5, 1, 10, 0, tzinfo=TEHRAN)),
        ("t1", "deferred", datetime(2027, 5, 1, 11, 0, tzinfo=TEHRAN)),
        ("t1", "sent", datetime(2027, 5, 2, 9, 0, tzinfo=TEHRAN))]
    assert person.events[1].reason.startswith("frequency cap: 1 touches already sent on that local day; "
                                              "deferred to 2027-05-02T09:00:00+03:30")
    assert person.pending == [("t2", datetime(2027, 5, 2, 10, 0, tzinfo=TEHRAN))]  # due as the day ends
    assert sim.messages == 2


def test_the_cost_is_the_segments_times_the_price(make_world):
    world = make_world([winter_with_holidays()], settings={"providers": {
        "sms": [{"name": "mem-sms", "type": "memory", "price_per_segment": 250}],
        "email": [{"name": "mem-email", "type": "memory"}]}})
    sim = simulate(world.config, "winter", tehran(2027, 5, 1, 10, 0), 7,
                   sample={"first_name": "سارا", "phone": "09121234567", "email": "s@example.com"})
    assert sim.sms == 3 and sim.segments >= 3
    assert sim.cost == 250 * sim.segments


def _dump_digest(db: Path) -> str:
    """A digest of the database's content (its SQL dump): a WAL checkpoint rewrites the file's bytes, not this."""
    with closing(sqlite3.connect(db)) as conn:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()


def test_the_command_simulates_a_csv_without_importing_it(make_world, tmp_path):
    world = make_world([winter_with_holidays()])
    db = Path(world.config.settings.database_url.removeprefix("sqlite:///"))
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text("phone,first_name\n09121234567,سارا\n09351234567,علی\n", encoding="utf-8")
    before = counts(world)
    digest = _dump_digest(db) if db.is_file() else None
    result = CliRunner().invoke(cli, ["--config", str(world.root / "config"), "simulate", "winter",
                                      "--contacts", str(csv_file), "--start", "2027-03-18 10:00", "--days", "14"],
                                obj=State(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert counts(world) == before
    if digest is not None:
        assert _dump_digest(db) == digest
    lines = result.output.splitlines()
    assert lines[0] == ("winter: simulated 14 days from 2027-03-18 10:00 to 2027-04-01 10:00 (Asia/Tehran); "
                        "nothing was sent or stored")
    assert sum("2027-03-18 Thu 10:00  hello          sms   sent" in line for line in lines) == 2
    assert sum("2027-03-19 Fri 10:00  value          email skipped   no email address for this contact" in line
               for line in lines) == 2
    assert sum("2027-03-20 Sat 10:00  reminder       sms   deferred  holiday: روز ملی شدن صنعت نفت ایران "
               "(2027-03-20); جشن نوروز (2027-03-21)" in line for line in lines) == 2
    assert lines[-1] == "total: 4 message(s) to 2 contact(s): 4 SMS in 4 segment(s), 0 email(s); 4 skipped"
    assert now() > datetime(2026, 1, 1, tzinfo=UTC)  # the simulated clock is gone afterwards
