"""Webhook delivery in lanes: POSTs to different contacts at once, each contact's events still in order; a contact
whose events fail holds back only its own; outcomes lost before they are recorded mean a repeat, never a loss."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from engine import webhook_delivery
from engine.models import WebhookOutbox
from engine.store import outbox as store_outbox
from engine.outbox import emit
from engine.webhook_delivery import Deliverer, backoff
from engine.webhook_http import Poster
from tests.conftest import simple_sequence
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.webhook_receiver import Receiver, receiver, settings_for, webhook_secret  # noqa: F401 (fixtures)

outbox_t = WebhookOutbox.__table__


def world_with_events(make_world, url: str, contacts: int, per_contact: int):
    """``contacts`` contacts with ``per_contact`` events each, written interleaved (contact by contact, step by
    step), each event's ``step`` its place in its contact's order."""
    world = make_world([simple_sequence("a")], settings=settings_for(url))
    ids = world.add_contacts(*({"phone": f"0912{i:07d}"} for i in range(contacts)))
    with world.engine.begin() as conn:
        for step in range(per_contact):
            for contact in ids:
                emit(conn, world.config, "replied", contact, {"step": step})
    return world, ids


def arrivals(receiver: Receiver) -> dict[int, list[int]]:
    """Each contact's steps, in the order their first copies arrived."""
    out: dict[int, list[int]] = {}
    for body in receiver.accepted:
        out.setdefault(body["data"]["contact"]["id"], []).append(body["data"]["step"])
    return out


def outbox(world) -> list[dict]:
    with world.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(outbox_t).order_by(outbox_t.c.id)).mappings()]


def test_lanes_post_to_different_contacts_at_once_and_each_contact_in_order(make_world, frozen, receiver):
    world, ids = world_with_events(make_world, receiver.url, contacts=12, per_contact=4)
    receiver.gather = threading.Barrier(4)  # answered only once four POSTs are in flight together
    report = Deliverer(world.config, world.engine, sleep=lambda s: None, concurrency=4).run()
    assert (report.delivered, report.failed) == (48, 0)
    assert not receiver.gather and len(set(receiver.gathered)) == 4  # four contacts at once, never one twice
    assert receiver.rejected == [] and receiver.repeats == []
    assert arrivals(receiver) == {c: [0, 1, 2, 3] for c in ids}
    assert {r["status"] for r in outbox(world)} == {"delivered"}


def test_a_contact_still_in_a_lane_is_not_taken_again(make_world, frozen, receiver, monkeypatch):
    world, ids = world_with_events(make_world, receiver.url, contacts=12, per_contact=5)
    monkeypatch.setattr(store_outbox, "CHAIN_ROWS", 2)  # each contact's five events are taken in three parts
    receiver.hold.set()  # the first POST is answered only once the 55 events of the other contacts are in
    receiver.release_after = 1 + 55
    report = Deliverer(world.config, world.engine, sleep=lambda s: None, concurrency=4, batch=4).run()
    assert (report.delivered, report.failed) == (60, 0)
    assert receiver.repeats == []  # taken many times meanwhile, the held contact never went to a second lane
    assert arrivals(receiver) == {c: [0, 1, 2, 3, 4] for c in ids}


def test_a_failing_contact_holds_back_only_its_own_events(make_world, frozen, receiver):
    world, (bad, *good) = world_with_events(make_world, receiver.url, contacts=6, per_contact=3)
    receiver.fail_contacts = {bad}
    sleeps: list[float] = []
    report = Deliverer(world.config, world.engine, sleep=sleeps.append, concurrency=4).run()
    assert (report.delivered, report.failed) == (15, 1)
    assert arrivals(receiver) == {c: [0, 1, 2] for c in good}
    head, *behind = [r for r in outbox(world) if r["contact_id"] == bad]
    assert (head["status"], head["attempts"], head["last_error"]) == ("pending", 1, "HTTP 503")
    assert [(r["status"], r["attempts"]) for r in behind] == [("pending", 0), ("pending", 0)]
    receiver.fail_contacts = set()
    frozen.tick(backoff(1))
    assert Deliverer(world.config, world.engine, sleep=sleeps.append).run().delivered == 3
    assert arrivals(receiver)[bad] == [0, 1, 2]


def test_posts_not_yet_recorded_when_the_worker_dies_are_sent_again_in_order(make_world, frozen, receiver,
                                                                              monkeypatch):
    world, ids = world_with_events(make_world, receiver.url, contacts=8, per_contact=3)

    def crash(*args, **kwargs):
        raise RuntimeError("the worker died before recording what went out")

    with monkeypatch.context() as patch, pytest.raises(RuntimeError):
        patch.setattr(webhook_delivery, "mark_delivered", crash)
        Deliverer(world.config, world.engine, sleep=lambda s: None, concurrency=4).run()
    sent_before = {b["id"] for b in receiver.accepted}
    assert sent_before and {r["status"] for r in outbox(world)} == {"pending"}
    report = Deliverer(world.config, world.engine, sleep=lambda s: None, concurrency=4).run()
    assert report.delivered == 24 and {r["status"] for r in outbox(world)} == {"delivered"}
    assert sorted(b["id"] for b in receiver.accepted) == sorted(r["event_id"] for r in outbox(world))  # none lost
    assert set(receiver.repeats) <= sent_before and len(set(receiver.repeats)) == len(receiver.repeats)
    assert arrivals(receiver) == {c: [0, 1, 2] for c in ids}


def test_a_connection_the_server_closed_is_opened_again():
    with FakeHttpServer(lambda req: Reply(204, headers={"Connection": "close"})) as server:
        poster = Poster()
        try:
            statuses = [poster.post(server.url + "/hooks", b"{}", {"content-type": "application/json"})
                        for _ in range(3)]
        finally:
            poster.close()
    assert statuses == [204, 204, 204] and len(server.requests) == 3


def test_one_worker_delivers_at_a_time_and_another_takes_over_when_its_lease_ends(make_world, frozen, receiver):
    world, ids = world_with_events(make_world, receiver.url, contacts=3, per_contact=2)
    first = Deliverer(world.config, world.engine, owner="w1", sleep=lambda s: None)
    second = Deliverer(world.config, world.engine, owner="w2", sleep=lambda s: None)
    assert first.run().delivered == 6
    with world.engine.begin() as conn:
        for contact in ids:
            emit(conn, world.config, "replied", contact, {"step": 2})
    assert second.run().delivered == 0  # the first still holds the lease: nothing goes out twice
    assert [r["status"] for r in outbox(world)][-3:] == ["pending"] * 3
    frozen.tick(timedelta(seconds=webhook_delivery.LEASE_SECONDS + 1))  # the first worker is gone
    assert second.run().delivered == 3
    assert first.run().delivered == 0
    assert receiver.repeats == [] and arrivals(receiver) == {c: [0, 1, 2] for c in ids}


def test_a_worker_that_loses_the_lease_stops_after_the_post_in_flight(make_world, frozen, receiver, monkeypatch):
    world, (contact,) = world_with_events(make_world, receiver.url, contacts=1, per_contact=5)
    first = Deliverer(world.config, world.engine, owner="w1", sleep=lambda s: None, concurrency=1)
    lost = threading.Event()
    real_lease = Deliverer._lease

    def noting(self) -> bool:  # the real lease, noting when it was refused
        held = real_lease(self)
        if not held:
            lost.set()
        return held

    monkeypatch.setattr(Deliverer, "_lease", noting)
    receiver.hold.set()  # the first POST is taken, its answer waits
    run = threading.Thread(target=lambda: setattr(first, "report", first.run()), daemon=True)
    run.start()
    assert receiver.holding.wait(30)
    frozen.tick(timedelta(seconds=webhook_delivery.LEASE_SECONDS + 1))  # a stalled worker's lease ends...
    assert webhook_delivery.cluster_lease(world.engine, "webhooks", "w2", webhook_delivery.LEASE_SECONDS)
    assert lost.wait(30)  # ...and it finds another holds it
    receiver.release.set()
    run.join(30)
    assert not run.is_alive() and first.report.delivered == 1  # the POST in flight is recorded, nothing more
    second = Deliverer(world.config, world.engine, owner="w2", sleep=lambda s: None)
    assert second.run().delivered == 4
    assert receiver.repeats == [] and arrivals(receiver) == {contact: [0, 1, 2, 3, 4]}


def test_two_workers_running_at_once_deliver_each_event_once(make_world, receiver):
    world, ids = world_with_events(make_world, receiver.url, contacts=8, per_contact=5)
    workers = [Deliverer(world.config, world.engine, owner=f"w{i}", sleep=lambda s: None) for i in (1, 2)]
    reports: list = []
    threads = [threading.Thread(target=lambda d=d: reports.append(d.run())) for d in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.delivered for r in reports) == [0, 40]
    assert receiver.repeats == [] and arrivals(receiver) == {c: [0, 1, 2, 3, 4] for c in ids}


def test_a_worker_stopping_cleanly_hands_the_lease_on_at_once(make_world, frozen, receiver):
    from engine import store

    world, ids = world_with_events(make_world, receiver.url, contacts=2, per_contact=1)
    first = Deliverer(world.config, world.engine, owner="w1", sleep=lambda s: None)
    assert first.run().delivered == 2
    with world.engine.begin() as conn:
        emit(conn, world.config, "replied", ids[0], {"step": 1})
        store.retire(conn, "w1")  # what a worker does on SIGTERM, after its last run
    assert Deliverer(world.config, world.engine, owner="w2", sleep=lambda s: None).run().delivered == 1
