"""Sequence versions: a changed file is a new version, running enrollments keep theirs, ``validate`` counts
them (and warns of orphaned sequences), and ``followup sequences migrate NAME`` moves them where touches
match by name."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from engine.cli import cli
from engine.config import load_config
from engine.dispatch import Dispatcher
from engine.models import Enrollment
from engine.validate import validate
from engine.versions import migrate

UTC = timezone.utc
SETTINGS = {"send_window": {"start": "00:00", "end": "24:00", "days": "all"}, "frequency_cap": {"per_day": 10}}


def drip(*touches: tuple[str, str]) -> dict:
    return {"name": "drip", "touches": [{"name": n, "after": a, "channel": "sms", "template": "plain.sms.j2"}
                                        for n, a in touches]}


V1 = drip(("hello", "0s"), ("tips", "1h"), ("bye", "1h"))


def change_file(world, sequence: dict) -> None:
    """Write a new version of the sequence's file and reload the config, as a restarted worker would."""
    path = world.config.dir / "sequences" / f"{sequence['name']}.yaml"
    path.write_text(yaml.safe_dump(sequence, allow_unicode=True), encoding="utf-8")
    world.dispatcher.close()
    world.config = load_config(world.config.dir)
    world.dispatcher = Dispatcher(world.config, world.providers, engine=world.engine, sleep=world.sleeps.append)


def by_touch(world, contact_id: int) -> dict[str, dict]:
    return {m["touch"]: m for m in world.messages(contact_id=contact_id)}


def sent_touches(world) -> list[str]:
    return [touch for touch, _ in world.sent()]


def warnings(world) -> list[str]:
    _, problems = validate(world.config.dir)
    return [str(p) for p in problems if p.warning]


def test_a_running_enrollment_keeps_its_version_and_validate_counts_it(make_world, frozen):
    world = make_world([V1], settings=SETTINGS)
    [sara] = world.add_contacts({"phone": "09121111111", "first_name": "Sara"})
    world.enroll("drip", sara)
    world.tick()
    change_file(world, drip(("hello", "0s"), ("tips", "3h"), ("bye", "1h"), ("extra", "1h")))
    assert any("1 active enrollment(s) stay on an older version of drip" in w for w in warnings(world))
    world.run(frozen, datetime.now(UTC) + timedelta(hours=6))
    assert sent_touches(world) == ["hello", "tips", "bye"]  # v1's three touches, one hour apart: no "extra"
    assert world.enrollment(sara, "drip")["status"] == "completed"
    assert not any("older version" in w for w in warnings(world))


def test_migrate_keeps_what_was_sent_reschedules_the_next_touch_and_cancels_a_dropped_one(make_world, frozen):
    world = make_world([V1], settings=SETTINGS)
    [sara] = world.add_contacts({"phone": "09121111111", "first_name": "Sara"})
    world.enroll("drip", sara)
    world.tick()
    hello_at = datetime.now(UTC)
    frozen.tick(timedelta(minutes=10))
    change_file(world, drip(("hello", "0s"), ("tips", "3h"), ("extra", "1h")))  # bye dropped, extra new
    with world.engine.begin() as conn:
        report = migrate(conn, world.config, "drip")
    assert (report.moved, report.busy, report.completed) == (1, 0, 0)
    assert dict(report.cancelled) == {"bye": 1} and dict(report.added) == {"extra": 1}
    enrollment = world.enrollment(sara, "drip")
    assert enrollment["sequence_hash"] == world.config.sequences["drip"].hash
    messages = by_touch(world, sara)
    assert [(t, messages[t]["touch_index"], messages[t]["status"]) for t in ("hello", "tips", "extra")] == [
        ("hello", 0, "sent"), ("tips", 1, "scheduled"), ("extra", 2, "pending")]
    assert messages["tips"]["due_at"].replace(tzinfo=UTC) == hello_at + timedelta(hours=3)  # the new `after`
    assert messages["bye"]["status"] == "cancelled" and messages["bye"]["touch_index"] < 0
    assert messages["bye"]["reason"].endswith("which has no touch 'bye'")
    assert [r["event"] for r in world.log(contact_id=sara) if r["message_id"] is None] == ["migrated"]
    world.run(frozen, datetime.now(UTC) + timedelta(hours=6))
    assert sent_touches(world) == ["hello", "tips", "extra"]  # hello is not sent again
    assert world.enrollment(sara, "drip")["status"] == "completed"
    with world.engine.begin() as conn:
        assert migrate(conn, world.config, "drip").moved == 0  # nothing left on an old version


def test_a_touch_that_now_comes_before_where_the_contact_is_is_skipped(make_world, frozen):
    world = make_world([V1], settings=SETTINGS)
    [sara] = world.add_contacts({"phone": "09121111111", "first_name": "Sara"})
    world.enroll("drip", sara)
    world.run(frozen, datetime.now(UTC) + timedelta(hours=1))  # hello and tips sent, bye scheduled
    assert sent_touches(world) == ["hello", "tips"]
    change_file(world, drip(("hello", "0s"), ("survey", "1h"), ("tips", "1h"), ("bye", "2h")))
    with world.engine.begin() as conn:
        report = migrate(conn, world.config, "drip")
    assert dict(report.skipped) == {"survey": 1} and dict(report.added) == {"survey": 1}
    messages = by_touch(world, sara)
    assert messages["survey"]["status"] == "skipped" and "comes before where the contact is now" in messages["survey"]["reason"]
    assert (messages["bye"]["touch_index"], messages["bye"]["status"]) == (3, "scheduled")
    assert messages["bye"]["due_at"].replace(tzinfo=UTC) == messages["tips"]["sent_at"].replace(tzinfo=UTC) + timedelta(hours=2)
    world.run(frozen, datetime.now(UTC) + timedelta(hours=3))
    assert sent_touches(world) == ["hello", "tips", "bye"]


def test_an_enrollment_whose_every_new_touch_is_done_completes(make_world, frozen):
    world = make_world([V1], settings=SETTINGS)
    [sara] = world.add_contacts({"phone": "09121111111", "first_name": "Sara"})
    world.enroll("drip", sara)
    world.run(frozen, datetime.now(UTC) + timedelta(hours=1))  # hello and tips sent, bye scheduled
    change_file(world, drip(("hello", "0s"), ("x", "1h"), ("tips", "1h")))
    with world.engine.begin() as conn:
        report = migrate(conn, world.config, "drip")
    assert (report.moved, report.completed) == (1, 1)
    enrollment = world.enrollment(sara, "drip")
    assert (enrollment["status"], enrollment["ended_reason"]) == ("completed", "every touch done")
    assert {m["touch"]: m["status"] for m in world.messages(contact_id=sara)} == {
        "hello": "sent", "tips": "sent", "x": "skipped", "bye": "cancelled"}
    world.run(frozen, datetime.now(UTC) + timedelta(hours=3))
    assert sent_touches(world) == ["hello", "tips"]


def test_validate_warns_of_an_orphaned_sequence_with_active_enrollments(make_world, frozen):
    world = make_world([V1], settings=SETTINGS)
    [sara] = world.add_contacts({"phone": "09121111111", "first_name": "Sara"})
    world.enroll("drip", sara)
    (world.config.dir / "sequences" / "drip.yaml").unlink()
    found = warnings(world)
    assert any("sequence drip is orphaned (its file is gone from config/sequences): 1 active enrollment(s)" in w
               for w in found), found


def test_the_cli_migrates_and_refuses_an_orphaned_or_unknown_sequence(make_world, frozen):
    world = make_world([V1], settings=SETTINGS)
    [sara] = world.add_contacts({"phone": "09121111111", "first_name": "Sara"})
    world.enroll("drip", sara)
    change_file(world, drip(("hello", "0s"), ("tips", "1h"), ("bye", "2h")))
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(world.config.dir), "sequences", "migrate", "drip"], obj=None)
    assert result.exit_code == 0, result.output
    assert f"drip: 1 enrollment(s) moved to version {world.config.sequences['drip'].hash}" in result.output
    table = Enrollment.__table__
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(table.c.sequence_hash)).scalar() == world.config.sequences["drip"].hash
    unknown = runner.invoke(cli, ["--config", str(world.config.dir), "sequences", "migrate", "nope"])
    assert unknown.exit_code != 0 and "no sequence named 'nope'" in str(unknown.exception)
