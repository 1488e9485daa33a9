"""Races: a conversion while a touch is in flight, a sequence edited under a running worker, the same
enrollment requested twice at once, and a lease that runs out while its worker is still sending."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
import yaml

from engine.config import load_config
from engine.dispatch import Dispatcher
from engine.timer import Immediate
from engine.enrollment import enroll
from engine.events import record_event
from engine.provider_setup import build_providers

from .conftest import World, simple_sequence
from .faults import ANYTIME, fault_db_url, outbox_ids  # noqa: F401  (fixture)


def make(tmp_path, url, sequences, **settings) -> World:
    return World(tmp_path / "w", url, sequences, settings={"send_window": ANYTIME, "frequency_cap": {"per_day": 10},
                                                           **settings})


def test_a_conversion_during_the_send_stops_every_later_touch(tmp_path, frozen, fault_db_url):
    world = make(tmp_path, fault_db_url, [simple_sequence("a", after="1h")])
    [cid] = world.add_contacts({"phone": "09127000001", "first_name": "x"})
    world.enroll("a", cid)
    provider, original = world.sms, world.sms.send
    converted = []

    def send_and_convert(message):
        if not converted:  # the lead buys while the panel is taking the first touch
            with world.engine.begin() as conn:
                contact = dict(conn.execute(sa.text("SELECT * FROM contacts WHERE id = :i"), {"i": cid}).mappings().one())
                converted.append(record_event(conn, world.config, contact, "converted", sequence="a"))
        return original(message)

    provider.send = send_and_convert
    for _ in range(6):
        world.dispatcher.tick()
        frozen.tick(timedelta(hours=1))
    assert converted and converted[0].ended == ["a"] and converted[0].cancelled == 2
    assert [m.message_id for m in provider.outbox] == [world.reference(world.messages(touch="t0")[0]["id"])]  # only the one in flight
    assert [m["status"] for m in world.messages()] == ["sent", "cancelled", "cancelled"]
    assert world.enrollment(cid, "a")["status"] == "converted"


def test_a_sequence_edited_while_the_worker_runs(tmp_path, frozen, fault_db_url):
    world = make(tmp_path, fault_db_url, [simple_sequence("a", after="1h")])
    a, b = world.add_contacts({"phone": "09127000011", "first_name": "old"}, {"phone": "09127000012", "first_name": "new"})
    world.enroll("a", a)
    world.dispatcher.tick()  # the running worker (old config) sends a's first touch

    cfg = world.root / "config"
    (world.root / "templates" / "v2.sms.j2").write_text("نسخه دو {{ touch.name }}", encoding="utf-8")
    v2 = {"name": "a", "touches": [{"name": f"u{i}", "after": "0s" if i == 0 else "2h", "channel": "sms",
                                     "template": "v2.sms.j2"} for i in range(4)]}
    (cfg / "sequences" / "a.yaml").write_text(yaml.safe_dump(v2), encoding="utf-8")
    edited = load_config(cfg)  # what `followup enroll` sees after the edit
    with world.engine.begin() as conn:
        assert enroll(conn, edited, "a", [a, b]).already_active == [a]

    for _ in range(16):  # the worker started before the edit keeps running
        frozen.tick(timedelta(minutes=30))
        world.dispatcher.tick()
    old = world.messages(contact_id=a)
    new = world.messages(contact_id=b)
    assert [m["touch"] for m in old] == ["t0", "t1", "t2"] and {m["status"] for m in old} == {"sent"}
    assert [m["touch"] for m in new] == ["u0", "u1", "u2", "u3"] and {m["status"] for m in new} == {"sent"}
    gaps_old = [(m2["sent_at"] - m1["sent_at"]) for m1, m2 in zip(old, old[1:])]
    gaps_new = [(m2["sent_at"] - m1["sent_at"]) for m1, m2 in zip(new, new[1:])]
    assert all(timedelta(hours=1) <= g < timedelta(hours=2) for g in gaps_old), gaps_old
    assert all(g >= timedelta(hours=2) for g in gaps_new), gaps_new
    texts = {m.message_id: m.text for m in world.sms.outbox}
    assert all("نسخه دو" in texts[world.reference(m["id"])] for m in new)
    assert not any("نسخه دو" in texts[world.reference(m["id"])] for m in old)


def _enroll_twice_at_once(world: World, cid: int) -> tuple[list, list]:
    """Two threads enroll the same contact at once; both read 'not active' before either inserts (where the
    database lets them: SQLite's BEGIN IMMEDIATE serialises them, so there the barrier just times out)."""
    barrier = threading.Barrier(2)
    results, errors = [], []

    def hold_before_insert(conn, cursor, sql, *args):
        if sql.startswith("INSERT INTO enrollments"):
            try:
                barrier.wait(timeout=1.5)
            except threading.BrokenBarrierError:
                pass

    sa.event.listen(world.engine, "before_cursor_execute", hold_before_insert)

    def run():
        try:
            with world.engine.begin() as conn:
                results.append(enroll(conn, world.config, "a", [cid]))
        except Exception as err:  # the test reports it
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sa.event.remove(world.engine, "before_cursor_execute", hold_before_insert)
    return results, errors


def test_the_same_enrollment_requested_twice_at_once(tmp_path, fault_db_url, request):
    world = make(tmp_path, fault_db_url, [simple_sequence("a", after="1h")])
    [cid] = world.add_contacts({"phone": "09127000021", "first_name": "x"})
    results, errors = _enroll_twice_at_once(world, cid)
    assert errors == [], errors
    assert sorted(len(r.enrolled) for r in results) == [0, 1]
    assert sorted(len(r.already_active) for r in results) == [0, 1]
    with world.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM enrollments WHERE status = 'active'")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar() == 3


def test_a_lease_that_runs_out_while_its_worker_still_sends(tmp_path, fault_db_url, request):
    """Worker A is slow inside the provider call (rate limit, inline retries) past lease_seconds; worker B
    recovers A's `sending` message, finds nothing at the provider yet, releases and sends it; then A's call
    goes through too. The fence stops A from *recording*, but not from *sending*: the lead gets it twice.
    Real time here (a 1 s lease, a 2.5 s provider call), so a fix that renews leases can make it pass."""
    if request.node.callspec.params.get("fault_db_url") == "sqlite":
        pytest.skip("one worker per SQLite file: there is no second worker to take the lease over")
    outbox = tmp_path / "outbox.jsonl"
    world = make(tmp_path, fault_db_url, [simple_sequence("a", after="1h")], worker={"lease_seconds": 1}, providers={
        "sms": [{"name": "sandbox", "type": "file", "path": str(outbox)}],
        "email": [{"name": "sandbox-mail", "type": "file", "path": str(outbox)}]})
    [cid] = world.add_contacts({"phone": "09127000031", "first_name": "x"})
    world.enroll("a", cid)
    other = Dispatcher(world.config, build_providers(world.config), engine=world.engine, sleep=lambda s: None,
                       timer=Immediate(lambda s: None))
    original, stop = world.sms.send, threading.Event()

    def slow_send(message):
        time.sleep(2.5)  # A waits at the provider longer than its 1 s lease
        return original(message)

    def peer():  # B ticks every 0.2 s meanwhile
        while not stop.wait(0.2):
            other.tick()

    world.sms.send = slow_send
    b = threading.Thread(target=peer)
    b.start()
    try:
        world.dispatcher.tick()
    finally:
        stop.set()
        b.join(timeout=30)
        other.close()
    [t0] = world.messages(touch="t0")
    assert t0["status"] == "sent"
    assert outbox_ids(outbox).count(str(t0["id"])) == 1, "the lead got the first touch twice"
