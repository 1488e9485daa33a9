"""Group commit of the API's events (engine.service.writes) and a list's events recorded together
(engine.events.record_events), on SQLite and, with FOLLOWUP_TEST_POSTGRES_URL, on PostgreSQL.

* Writes queued while the writer is busy share one transaction; one that raises is rolled back alone (the
  batch runs again, each write in a savepoint), and its future says why; the others of its batch are
  committed.
* A write's future is answered only once its batch is committed (before that, no other connection sees it).
* Writes submitted from many threads at once are all recorded.
* ``record_events`` answers and stores exactly what ``record_event`` one by one does, for a list mixing plain
  events, a trigger, an exit, and an idempotency key given twice.
* Through the API, a list stays all-or-nothing: an event that fails rolls back the ones before it.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

import engine.events
from engine.db import reading
from engine.errors import InputError
from engine.events import Event, record_event, record_events
from engine.models import Contact, ContactEvent, Enrollment
from engine.service.writes import GroupWriter
from tests.conftest import simple_sequence
from tests.service_support import SERVICE_SETTINGS, api_client, auth
from tests.test_event_triggers import CART_TEMPLATES, cart_sequence

PHONES = ["09121111111", "09122222222", "09123333333"]


@pytest.fixture
def world(make_world):
    world = make_world([cart_sequence(), simple_sequence("welcome", exit_on=["order_placed", "converted"])],
                       templates=CART_TEMPLATES, settings=SERVICE_SETTINGS)
    world.add_contacts(*({"phone": p} for p in PHONES))
    return world


def contact(conn: sa.Connection, i: int) -> dict:
    table = Contact.__table__
    return dict(conn.execute(sa.select(table).order_by(table.c.id).offset(i).limit(1)).mappings().one())


def stored(world) -> list[tuple]:
    table = ContactEvent.__table__
    with reading(world.engine) as conn:
        return [tuple(r) for r in conn.execute(sa.select(table.c.contact_id, table.c.type, table.c.key,
                                                         table.c.idempotency_key, table.c.data).order_by(table.c.id))]


def viewed(world, name: str):
    """A write recording one plain event ``name`` of the first contact; it answers its transaction's id."""
    def write(conn: sa.Connection):
        record_events(conn, world.config, [contact(conn, 0)], [Event("product_viewed", key=name)])
        return id(conn.get_transaction())
    return write


def test_a_batch_commits_together_and_a_write_that_fails_is_rolled_back_alone(world):
    writer = GroupWriter(world.engine)
    busy, go = threading.Event(), threading.Event()

    def blocker(conn):
        busy.set()
        go.wait()

    def failing(conn):
        viewed(world, "lost")(conn)
        raise InputError("this one fails")

    first = writer.submit(blocker)
    busy.wait()  # the writer is inside its first batch: the next ones queue for the second
    one, bad, two, worse, three = (writer.submit(viewed(world, "a")), writer.submit(failing),
                                   writer.submit(viewed(world, "b")), writer.submit(failing),
                                   writer.submit(viewed(world, "c")))
    go.set()
    first.result()
    assert one.result() == two.result() == three.result()  # the same transaction
    for failed in (bad, worse):  # the first in the batch's first run, the second in its run with savepoints
        with pytest.raises(InputError, match="this one fails"):
            failed.result()
    writer.close()
    assert [row[2] for row in stored(world)] == ["a", "b", "c"]


def test_a_write_is_answered_only_once_its_batch_is_committed(world):
    writer = GroupWriter(world.engine)
    busy, go, inside, go_on = threading.Event(), threading.Event(), threading.Event(), threading.Event()

    def blocker(conn):
        busy.set()
        go.wait()

    def slow(conn):
        inside.set()
        go_on.wait()

    first = writer.submit(blocker)
    busy.wait()
    recorded, tail = writer.submit(viewed(world, "a")), writer.submit(slow)
    go.set()
    first.result()
    inside.wait()  # "a" is written in the open transaction, not committed
    assert not recorded.done()
    assert stored(world) == []
    go_on.set()
    recorded.result()
    tail.result()
    assert [row[2] for row in stored(world)] == ["a"]
    writer.close()


def test_writes_from_many_threads_at_once_are_all_recorded(world):
    writer = GroupWriter(world.engine)
    with ThreadPoolExecutor(16) as pool:
        futures = list(pool.map(lambda i: writer.submit(viewed(world, f"k{i}")), range(64)))
    for future in futures:
        future.result()
    writer.close()
    assert sorted(row[2] for row in stored(world)) == sorted(f"k{i}" for i in range(64))


def test_a_write_after_close_runs_in_its_callers_thread(world):
    writer = GroupWriter(world.engine)
    writer.close()
    writer.submit(viewed(world, "late")).result()
    assert [row[2] for row in stored(world)] == ["late"]


MIXED = [  # (contact index, event); each run gives the idempotency keys its own prefix
    (0, Event("product_viewed", key="sku-1", data={"sku": "sku-1"}, idempotency_key="v-1")),
    (1, Event("cart_abandoned", key="cart-9", data={"total": 990000})),  # starts a cart run
    (1, Event("product_viewed", key="sku-2")),
    (0, Event("product_viewed", key="sku-1", idempotency_key="v-1")),  # the same key again: not recorded
    (2, Event("order_placed")),  # ends welcome
    (1, Event("order_placed", key="cart-9")),  # ends the run the trigger above started
    (2, Event("product_viewed", sequence="welcome")),
    (0, Event("converted", value=1000.0, idempotency_key="o-1")),
    (0, Event("product_viewed", data={"x": [1, 2]})),
]


def _run(prefix: str) -> list[tuple[int, Event]]:
    return [(i, replace(e, idempotency_key=e.idempotency_key and prefix + e.idempotency_key)) for i, e in MIXED]


def _state(world, contact_ids: list[int]) -> tuple:
    """The events and enrollments of three contacts, each named by its place in ``contact_ids``."""
    which = {c: n for n, c in enumerate(contact_ids)}
    table, events = Enrollment.__table__, ContactEvent.__table__
    with reading(world.engine) as conn:
        runs = [(which[r[0]], *r[1:]) for r in conn.execute(
            sa.select(table.c.contact_id, table.c.sequence, table.c.event_key, table.c.status)
            .where(table.c.contact_id.in_(contact_ids)).order_by(table.c.id))]
        rows = [(which[r[0]], *r[1:]) for r in conn.execute(
            sa.select(events.c.contact_id, events.c.type, events.c.key, events.c.sequence, events.c.data,
                      events.c.value, events.c.source, events.c.idempotency_key.is_(None))
            .where(events.c.contact_id.in_(contact_ids)).order_by(events.c.id))]
    return rows, runs


def _answers(results) -> list[tuple]:
    return [(r.recorded, r.ended, r.cancelled, r.started, r.note.replace("b-", "a-"), r.warning) for r in results]


def test_a_list_recorded_together_does_what_each_event_in_turn_does(make_world):
    world = make_world([cart_sequence(), simple_sequence("welcome", exit_on=["order_placed", "converted"])],
                       templates=CART_TEMPLATES, settings=SERVICE_SETTINGS)
    ids = world.add_contacts(*({"phone": f"0912555000{i}"} for i in range(6)))
    world.enroll("welcome", *ids)
    with world.engine.begin() as conn:
        contacts = [contact(conn, i) for i in range(6)]
        each = [record_event(conn, world.config, contacts[i], e.kind, sequence=e.sequence, channel=e.channel,
                             value=e.value, idempotency_key=e.idempotency_key, source="api", key=e.key, data=e.data)
                for i, e in _run("a-")]
        listed = record_events(conn, world.config, [contacts[3 + i] for i, _ in MIXED], [e for _, e in _run("b-")])
    assert _answers(listed) == _answers(each)
    assert [r.recorded for r in listed] == [True, True, True, False, True, True, True, True, True]
    assert listed[1].started[0].outcome == "enrolled" and listed[5].ended == ["cart (cart-9)", "welcome"]
    assert _state(world, ids[3:]) == _state(world, ids[:3])


@pytest.fixture
def thirteenth_fails(monkeypatch):
    """Recording an event of value 13 raises (after the events before it in its list were written)."""
    real = engine.events.record_event

    def failing(conn, config, contact, kind, **kw):
        if kw.get("value") == 13:
            raise InputError("the thirteenth")
        return real(conn, config, contact, kind, **kw)

    monkeypatch.setattr(engine.events, "record_event", failing)


def test_a_list_through_the_api_is_all_or_nothing_when_an_event_fails(world, thirteenth_fails):
    client, key = api_client(world)
    client.headers.update(auth(key))
    body = [{"contact": PHONES[0], "type": "product_viewed"}, {"contact": PHONES[1], "type": "converted", "value": 13}]
    response = client.post("/api/v1/events", json=body)
    assert response.status_code == 422 and "thirteenth" in response.text
    assert stored(world) == []
    good = client.post("/api/v1/events", json=[{"contact": PHONES[0], "type": "product_viewed", "key": "k"}] * 2)
    assert good.status_code == 200, good.text
    assert [r["recorded"] for r in good.json()["results"]] == [True, True]
    assert [row[:3] for row in stored(world)] == [(1, "product_viewed", "k")] * 2


def test_requests_batched_together_are_answered_each_on_its_own(world, thirteenth_fails):
    from engine.service.api import _EventWrite
    from engine.service.errors import ApiError
    from engine.service.schemas import EventIn

    client, _ = api_client(world)
    ctx = client.app.state.ctx
    def request(*events: dict) -> _EventWrite:
        return _EventWrite(ctx, [EventIn(**e) for e in events], len(events) > 1)

    writer = GroupWriter(world.engine)
    busy, go = threading.Event(), threading.Event()

    def blocker(conn):
        busy.set()
        go.wait()

    first = writer.submit(blocker)
    busy.wait()  # the four requests below queue into one batch
    futures = [writer.submit(request({"contact": PHONES[0], "type": "product_viewed", "key": "a"},
                                     {"contact": PHONES[1], "type": "product_viewed", "key": "b"})),
               writer.submit(request({"contact": "09129999999", "type": "product_viewed", "key": "nobody"})),
               writer.submit(request({"contact": PHONES[2], "type": "product_viewed", "key": "c"},
                                     {"contact": PHONES[2], "type": "converted", "value": 13})),
               writer.submit(request({"contact": PHONES[2], "type": "product_viewed", "key": "d",
                                      "idempotency_key": "once"})),
               writer.submit(request({"contact": PHONES[1], "type": "product_viewed", "key": "e",
                                      "idempotency_key": "once"}))]
    go.set()
    first.result()
    assert [r["recorded"] for r in futures[0].result()] == [True, True]
    with pytest.raises(ApiError) as unknown:
        futures[1].result()
    assert unknown.value.status == 422
    with pytest.raises(InputError, match="thirteenth"):
        futures[2].result()
    assert futures[3].result()[0]["recorded"] is True and futures[4].result()[0]["recorded"] is False
    writer.close()
    assert [row[2] for row in stored(world)] == ["a", "b", "d"]
