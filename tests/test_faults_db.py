"""Database faults: PostgreSQL connections killed (between and inside transactions), SQLite locked by
another writer, and an outbox file that can't be written (disk full).

PostgreSQL is not restarted: other test sessions share the server, so the worker's connections are
terminated with ``pg_terminate_backend`` instead — on our own database only (see ``faults.own_database``).
"""
from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from engine.store import driver


from .conftest import PG_URL, World, simple_sequence
from .faults import (ANYTIME, Fleet, add_and_enroll, audit_history, kill_world, reset_postgres, statuses,
                     wait_until_final)

needs_pg = pytest.mark.skipif(not PG_URL, reason="FOLLOWUP_TEST_POSTGRES_URL is not set")


def terminate_backends(url: str) -> int:
    """Terminate every other session on the database of ``url``; return how many."""
    name = sa.engine.make_url(url).database
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            return len(conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"),
                {"d": name}).all())
    finally:
        admin.dispose()


@needs_pg
def test_worker_survives_its_connections_being_killed_again_and_again(tmp_path):
    url = reset_postgres(PG_URL)
    world = kill_world(tmp_path, url, rate="30/s")
    terminated = 0
    with Fleet(world, 1) as fleet:
        fleet.start_all()
        fleet.wait_up()
        add_and_enroll(world, 0, 40)
        try:
            for _ in range(8):
                time.sleep(0.6)
                terminated += terminate_backends(url)
                world.engine.dispose()  # our own pooled connections were terminated too
            assert wait_until_final(world.engine, 90, expected=120), statuses(world.engine)
        finally:
            codes = fleet.stop_all()
    assert terminated >= 8
    log = fleet.logs()
    assert codes == [0], log[-3000:]
    audit = audit_history(world)
    assert not audit.problems, "\n".join(audit.problems[:20])
    assert audit.by_status == {"sent": 120} and audit.duplicates == 0


def _backend_pid(conn) -> int:
    return conn.connection.dbapi_connection.info.backend_pid


@needs_pg
@pytest.mark.parametrize("where, statement", [
    ("claim", "SELECT id, enrollment_id, contact_id"),  # the claim's choice of due messages
    ("sending", "WITH u AS (UPDATE messages"),         # the first update of a tick and its log rows: `sending`
                                                       # rows, in the claim's transaction
    ("record", "WITH u AS (UPDATE messages#2"),        # the second: the provider's results
])
def test_a_connection_killed_inside_a_transaction(tmp_path, frozen, monkeypatch, where, statement):
    """The transaction dies with its connection; nothing half-written, and the next ticks finish the job."""
    url = reset_postgres(PG_URL)
    world = World(tmp_path, url, [simple_sequence("a", after="1h")], settings={
        "send_window": ANYTIME, "worker": {"lease_seconds": 2}})
    ids = world.add_contacts(*({"phone": f"0912300{i:04d}", "first_name": f"n{i}"} for i in range(5)))
    world.enroll("a", *ids)
    text, _, nth = statement.partition("#")
    seen, fired = [0], []

    def kill_mid_transaction(conn, sql):
        if fired or not sql.startswith(text):
            return
        seen[0] += 1
        if seen[0] == int(nth or 1):
            fired.append(True)
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
            with admin.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": _backend_pid(conn)})
            admin.dispose()

    def through_sqlalchemy(conn, cursor, sql, *args):
        kill_mid_transaction(conn, sql)

    def through_the_driver(conn, sql, params):  # the hot path's statements skip SQLAlchemy's events
        kill_mid_transaction(conn, sql)
        return run(conn, sql, params)

    run = driver.run
    monkeypatch.setattr(driver, "run", through_the_driver)
    sa.event.listen(world.engine, "before_cursor_execute", through_sqlalchemy)
    try:
        with pytest.raises(sa.exc.DBAPIError):
            world.dispatcher.tick()
    finally:
        sa.event.remove(world.engine, "before_cursor_execute", through_sqlalchemy)
    assert fired
    t0 = world.messages(touch="t0")
    expected = {"claim": {"scheduled"}, "sending": {"scheduled"}, "record": {"sending"}}[where]
    assert {m["status"] for m in t0} == expected  # the dead transaction changed nothing
    assert len(world.sms.outbox) == (5 if where == "record" else 0)
    for _ in range(3):  # the leases (2 s) expire; the next ticks recover and finish
        frozen.tick(timedelta(seconds=3))
        world.dispatcher.tick()
    assert {m["status"] for m in world.messages(touch="t0")} == {"sent"}
    assert sorted(m.message_id for m in world.sms.outbox) == sorted(world.reference(m["id"]) for m in t0)  # once each


def test_sqlite_locked_by_another_process_the_worker_waits_and_loses_nothing(tmp_path):
    db = tmp_path / "followup.db"
    world = World(tmp_path, f"sqlite:///{db}", [simple_sequence("a", after="1h")], settings={"send_window": ANYTIME})
    ids = world.add_contacts(*({"phone": f"0912400{i:04d}", "first_name": f"n{i}"} for i in range(10)))
    world.enroll("a", *ids)
    locked, release = threading.Event(), threading.Event()

    def hold_write_lock():
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE contacts SET first_name = first_name")
        locked.set()
        release.wait(10)
        time.sleep(2.0)
        other.execute("ROLLBACK")
        other.close()

    holder = threading.Thread(target=hold_write_lock)
    holder.start()
    assert locked.wait(10)
    release.set()
    began = time.monotonic()
    report = world.dispatcher.tick()
    waited = time.monotonic() - began
    holder.join()
    assert waited >= 1.5  # it waited for the lock instead of failing
    assert report.counts.get("sent") == 10
    assert {m["status"] for m in world.messages(touch="t0")} == {"sent"} and len(world.sms.outbox) == 10


@pytest.mark.parametrize("broken", ["disk-full", "not-a-directory"])
def test_outbox_file_unwritable_is_retried_not_lost(tmp_path, frozen, broken):
    """/dev/full answers every write with ENOSPC; a path under a regular file can't be created.

    (The tests run as root, where a read-only directory is still writable, so these stand in for it.) Both
    break after start-up: a path that is unwritable at start is refused by the provider's settings check.
    """
    good = tmp_path / "outbox.jsonl"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bad = "/dev/full" if broken == "disk-full" else str(blocker / "outbox.jsonl")
    world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a", after="1h")], settings={
        "send_window": ANYTIME,
        "providers": {"sms": [{"name": "sandbox", "type": "file", "path": str(good)}],
                      "email": [{"name": "sandbox-mail", "type": "file", "path": str(good)}]},
    })
    world.sms.settings["path"] = bad
    ids = world.add_contacts(*({"phone": f"0912500{i:04d}", "first_name": f"n{i}"} for i in range(3)))
    world.enroll("a", *ids)
    world.dispatcher.tick()
    t0 = world.messages(touch="t0")
    assert {m["status"] for m in t0} == {"scheduled"}
    reason = t0[0]["reason"]
    assert "cannot append to the outbox file" in reason
    assert ("No space left on device" in reason) if broken == "disk-full" else ("File exists" in reason)
    world.sms.settings["path"] = str(good)  # space freed / directory fixed
    frozen.tick(timedelta(minutes=2))
    world.dispatcher.tick()
    assert {m["status"] for m in world.messages(touch="t0")} == {"sent"}
    lines = good.read_text().splitlines()
    assert len(lines) == 3
