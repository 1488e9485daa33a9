"""The counts the database keeps for the reports equal the tables counted plainly.

``bucket_counts`` (kept by triggers, per quarter hour): each window's sends, clicks and conversions equal the rows
counted one by one, windows cut inside quarter hours included.

``sequence_counts`` (kept by triggers) after a varied story through the engine: enrollments, sends, receipts,
people's and bots' clicks, credited conversions, sends that fail and are retried, a send that fails for good,
handoffs won and lost, an unsubscribe, an erased contact; folded by the worker, by hand, or not at all; a
database upgraded from before the counts gets them from its tables. ``log_counts``: /metrics starts from it.
"""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from engine.clock import now, to_utc
from engine.models import (COUNTS_AS_SENT, Contact, ContactEvent, DeliveryLog, Engagement, Enrollment, LogCount,
                           Message, SequenceCount)
from engine.reports import TOUCH_COUNTS, funnel
from engine.store import buckets
from engine.store.reports import QUARTER
from engine.store.sources import follow, source_of
from engine.store.rollups import MESSAGE, RUN, counts, fold, message_state, run_state
from providers.errors import PermanentRecipientError, TransientError
from tests.test_kpi import build_touch_shop, hand_off, outcome


def plain(conn: sa.Connection) -> tuple[Counter, Counter]:
    """Each (sequence, touch, counted state) of the messages and (sequence, "", state) of the runs, counted
    from the tables row by row."""
    m, e = Message.__table__, Enrollment.__table__
    messages = Counter((seq, touch, message_state(status))
                       for seq, touch, status in conn.execute(sa.select(m.c.sequence, m.c.touch, m.c.status)))
    runs = Counter((seq, "", run_state(status)) for seq, status in conn.execute(sa.select(e.c.sequence, e.c.status)))
    return messages, runs


KINDS = (buckets.SENDS, buckets.CLICKS, buckets.SALES, buckets.SPEND, buckets.CLICKED, buckets.CREDITED,
         buckets.SOURCED)


def plain_buckets(conn: sa.Connection, start, until) -> dict[str, Counter]:
    """Each kind of :mod:`engine.store.buckets` within the window, counted from the tables row by row."""
    m, g, e = Message.__table__, Engagement.__table__, ContactEvent.__table__
    out = {kind: Counter() for kind in KINDS}

    def add(kind, at, *key, n=1):
        if at is not None and start <= to_utc(at) <= until:
            out[kind][int(to_utc(at).timestamp() // QUARTER), *key] += n

    clicks = Counter(mid for mid, kind in conn.execute(sa.select(g.c.message_id, g.c.kind)) if kind == "clicked")
    sent = {}
    for mid, seq, touch, status, at, provider, channel, segments, source in conn.execute(
            sa.select(m.c.id, m.c.sequence, m.c.touch, m.c.status, m.c.sent_at, m.c.provider, m.c.channel,
                      m.c.segments, m.c.source)):
        if status in COUNTS_AS_SENT:
            sent[mid] = (at, seq, touch)
            add(buckets.SENDS, at, seq, touch, "delivered" if status == "delivered" else "sent")
            units = segments or 1 if channel == "sms" else 1
            add(buckets.SPEND, at, seq, provider or "", channel, n=units)
            add(buckets.SOURCED, at, source or "", provider or "", channel, n=units)
            if clicks[mid]:
                add(buckets.CLICKED, at, seq, touch, "clicked")
    for seq, touch, kind, at in conn.execute(sa.select(g.c.sequence, g.c.touch, g.c.kind, g.c.at)):
        if kind == "clicked":
            add(buckets.CLICKS, at, seq or "", touch or "", "clicked")
    for seq, kind, at, mid in conn.execute(sa.select(e.c.sequence, e.c.type, e.c.at, e.c.message_id)):
        if kind == "converted":
            add(buckets.SALES, at, seq or "", "", "converted")
            if mid in sent:
                add(buckets.CREDITED, *sent[mid], "converted")
    return out


def counted_first_sent() -> sa.ScalarSelect:
    """A run's first send (its messages that count as sent), counted from ``messages`` (what
    ``enrollments.first_sent_at`` keeps)."""
    m, e = Message.__table__.c, Enrollment.__table__.c
    return (sa.select(sa.func.min(m.sent_at))
            .where(m.enrollment_id == e.id, m.sent_at.is_not(None), m.status.in_(COUNTS_AS_SENT))
            .scalar_subquery())


def counted_first_clicked() -> sa.ScalarSelect:
    """A person's first click on one of a run's messages, counted from ``engagements`` and ``messages`` (what
    ``enrollments.first_clicked_at`` keeps)."""
    m, g, e = Message.__table__, Engagement.__table__, Enrollment.__table__.c
    return (sa.select(sa.func.min(g.c.at)).select_from(g.join(m, m.c.id == g.c.message_id))
            .where(m.c.enrollment_id == e.id, g.c.kind == "clicked")
            .scalar_subquery())


def counted_clicks() -> sa.ScalarSelect:
    """A message's clicks by a person, counted from ``engagements`` (what ``messages.clicks`` keeps)."""
    g = Engagement.__table__.c
    return (sa.select(sa.func.count()).where(g.message_id == Message.__table__.c.id, g.kind == "clicked")
            .scalar_subquery())


def counted_credits() -> sa.ScalarSelect:
    """The conversions credited to a message, counted from ``contact_events`` (what ``messages.credits`` keeps)."""
    e = ContactEvent.__table__.c
    return (sa.select(sa.func.count()).where(e.message_id == Message.__table__.c.id, e.type == "converted")
            .scalar_subquery())


def assert_marks_match(world) -> None:
    """PostgreSQL: each run's first send and first click and each message's clicks and credits, as the triggers
    keep them, equal the tables counted (SQLite keeps none: its reports count the tables)."""
    e, m = Enrollment.__table__, Message.__table__
    with world.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            return
        runs = conn.execute(sa.select(e.c.id, e.c.first_sent_at, e.c.first_clicked_at,
                                      counted_first_sent(), counted_first_clicked())).all()
        messages = conn.execute(sa.select(m.c.id, m.c.clicks, m.c.credits, counted_clicks(),
                                          counted_credits())).all()
    assert [(run, kept_sent, kept_click) for run, kept_sent, kept_click, *_ in runs] == \
        [(run, sent, click) for run, _, _, sent, click in runs]
    assert [(mid, clicks, credits) for mid, clicks, credits, *_ in messages] == \
        [(mid, clicks, credits) for mid, _, _, clicks, credits in messages]
    assert any(sent for _, sent, *_ in runs) and any(clicks for _, clicks, *_ in messages)


def assert_buckets_match(world) -> None:
    at = now()
    # whole quarter hours with both edges cut inside one, a window within one quarter hour, all of it
    windows = [(at - timedelta(days=30), at),
               (at - timedelta(days=3, minutes=7, seconds=13), at - timedelta(seconds=1)),
               (at - timedelta(minutes=4), at + timedelta(minutes=3)),
               (at - timedelta(days=400), at + timedelta(days=9))]
    with world.engine.connect() as conn:
        for start, until in windows:
            expected = plain_buckets(conn, start, until)
            for kind, plain_counts in expected.items():
                assert buckets.counts(conn, kind, start, until) == plain_counts, (kind, start, until)
                by_quarter = Counter()
                for (quarter, *_), n in plain_counts.items():
                    by_quarter[quarter,] += n
                assert buckets.counts(conn, kind, start, until, ("quarter",)) == by_quarter
                by_touch = Counter()
                for (_, seq, touch, state), n in plain_counts.items():
                    by_touch[seq, touch, state] += n
                assert buckets.counts(conn, kind, start, until, ("sequence", "touch", "state")) == by_touch


def set_sources(world, attrs: dict[int, dict]) -> None:
    """Contacts' attributes changed as every writer of them does: the copies of their sources follow."""
    contacts = Contact.__table__
    with world.engine.begin() as conn:
        for cid, value in attrs.items():
            conn.execute(sa.update(contacts).where(contacts.c.id == cid).values(attrs=value))
        follow(conn, {cid: source_of(value) for cid, value in attrs.items()})


def sourced(world) -> set[str]:
    """The sources the kept spend by source names, over all time."""
    with world.engine.connect() as conn:
        return {source for source, *_ in buckets.counts(conn, buckets.SOURCED, now() - timedelta(days=999),
                                                       now() + timedelta(days=9), ("sequence", "touch", "state"))}


def assert_counts_match(world) -> None:
    assert_buckets_match(world)
    assert_marks_match(world)
    with world.engine.connect() as conn:
        messages, runs = plain(conn)
        assert counts(conn, MESSAGE) == messages
        assert counts(conn, RUN) == runs
        assert counts(conn, MESSAGE, "coats") == Counter({k: n for k, n in messages.items() if k[0] == "coats"})
        stats = funnel(conn, "coats", ["t0", "t1", "t2"])
    m = Message.__table__
    with world.engine.connect() as conn:
        statuses = Counter(conn.execute(sa.select(m.c.touch, m.c.status).where(m.c.sequence == "coats")).all())
    for touch, bucket in stats["touches"].items():
        expected = dict.fromkeys(TOUCH_COUNTS, 0)
        for (t, status), n in statuses.items():
            if t != touch:
                continue
            state = message_state(status)
            if status in ("sent", "delivered", "undelivered"):
                expected["sent"] += n
            if state == "waiting":
                expected["waiting"] += n
            elif status != "sent":
                expected[status] += n
        assert {k: bucket[k] for k in TOUCH_COUNTS} == expected, touch
    assert (stats["enrolled"], stats["converted"]) == (sum(runs.values()), runs["coats", "", "converted"])


def test_the_kept_counts_equal_the_tables_through_a_varied_story(make_world, frozen):
    world = build_touch_shop(make_world, frozen)  # sends, receipts, clicks, conversions credited
    assert_counts_match(world)
    p, q, r, s = world.ids
    # sources given after the sends: one kept in the counts' key, one longer than it (counted from its index)
    long = "بازاریابی " * 12
    set_sources(world, {p: {"source": "instagram"}, q: {"utm_source": long}})
    assert_counts_match(world)
    assert {"instagram", long, ""} <= sourced(world)
    more = world.add_contacts(*({"phone": f"0912000002{i}"} for i in range(5)))
    set_sources(world, {more[0]: {"source": "google"}, more[1]: {"source": long}})  # sent with their sources
    world.sms.fail_next(TransientError("gateway busy"), times=2)  # retried, then sent
    world.enroll("coats", *more)
    world.tick()
    assert_counts_match(world)
    frozen.tick(timedelta(minutes=10))
    world.tick()
    world.sms.fail_next(PermanentRecipientError("receptor is on the advertising blacklist", code=14))
    frozen.tick(timedelta(days=1))
    world.tick()
    assert_counts_match(world)
    with world.engine.begin() as conn:
        fold(conn)  # PostgreSQL: the rows become one per count, and moves keep coming after it
    assert_counts_match(world)
    set_sources(world, {p: {"source": long}, q: {}, more[0]: {"source": "google", "utm_source": "x"}})
    assert_counts_match(world)
    assert "instagram" not in sourced(world)
    hand_off(world, more[0], "reza")
    hand_off(world, more[1], "mina")
    frozen.tick(timedelta(hours=3))
    outcome(world, more[0], "won", value=2000)
    outcome(world, more[1], "lost", objection="price")
    world.event(more[2], "unsubscribed")
    world.event(more[3], "converted", value=700)
    assert_counts_match(world)
    g, ev, m = Engagement.__table__, ContactEvent.__table__, Message.__table__
    with world.engine.begin() as conn:  # rows changed by hand: a click taken back, a credit undone, a send moved
        first_click = conn.execute(sa.select(sa.func.min(g.c.id)).where(g.c.kind == "clicked")).scalar()
        conn.execute(sa.delete(g).where(g.c.id == first_click))
        conn.execute(sa.update(ev).where(ev.c.contact_id == q, ev.c.type == "converted").values(message_id=None))
        conn.execute(sa.update(m).where(m.c.contact_id == r, m.c.touch == "t0")
                     .values(sent_at=now() - timedelta(days=9, minutes=3)))
    assert_counts_match(world)
    from engine.people import forget

    (late,) = world.add_contacts({"phone": "09120000030"})
    world.enroll("coats", late)
    m, e = Message.__table__, Enrollment.__table__
    with world.engine.begin() as conn:
        contact = dict(conn.execute(sa.select(Contact.__table__).where(Contact.__table__.c.id == more[4]))
                       .mappings().one())
        forget(conn, contact)
        # rows deleted (a shop cleaning up by hand) leave the counts too: a cancelled message, a run not sent yet
        conn.execute(sa.delete(m).where(m.c.contact_id == more[4], m.c.status == "cancelled"))
        conn.execute(sa.delete(m).where(m.c.contact_id == late))
        conn.execute(sa.delete(e).where(e.c.contact_id == late))
    assert_counts_match(world)
    frozen.tick(timedelta(days=2))
    world.tick()  # the worker folds as it ticks
    with world.engine.connect() as conn:
        folded = conn.execute(sa.select(sa.func.count()).select_from(SequenceCount.__table__)
                              .where(SequenceCount.__table__.c.from_status.is_not(None))).scalar()
    assert folded == 0
    assert_counts_match(world)


@pytest.mark.parametrize("before", ["0020_kpi_scale", "0022_kpi_page", "0025_sends_index"])
def test_an_upgraded_database_gets_its_counts_from_its_tables(make_world, frozen, db_url, before):
    from alembic import command

    from engine.db import _alembic_config, make_engine, upgrade

    world = build_touch_shop(make_world, frozen)
    p, q, *_ = world.ids
    long = "بازاریابی " * 12
    set_sources(world, {p: {"source": "instagram"}, q: {"utm_source": long}})
    engine = make_engine(db_url)
    cfg = _alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, before)
    frozen.tick(timedelta(minutes=10))  # the log's rows are settled: the migration counts them
    upgrade(db_url)
    assert_counts_match(world)
    assert {"instagram", long, ""} <= sourced(world)
    engine.dispose()
    if before != "0020_kpi_scale":
        return  # the log's counts are filled by 0021 only
    log, stored = DeliveryLog.__table__, LogCount.__table__
    with engine.connect() as conn:
        whole = Counter({(e, p or ""): n for e, p, n in conn.execute(
            sa.select(log.c.event, log.c.provider, sa.func.count()).group_by(log.c.event, log.c.provider))})
        kept = Counter({(e, p): n for e, p, n in conn.execute(sa.select(stored.c.event, stored.c.provider,
                                                                         stored.c.n))})
    assert kept == whole and sum(n for (event, _), n in kept.items() if event == "sent") == 8


def test_a_fresh_service_counts_the_log_from_the_stored_snapshot(make_world, frozen):
    from engine.service.tally import LogTally
    from tests.conftest import simple_sequence

    world = make_world([simple_sequence("drip")])
    (cid,) = world.add_contacts({"phone": "09121111111"})
    world.enroll("drip", cid)
    world.tick()
    frozen.tick(timedelta(minutes=10))
    world.tick()  # the worker stores the counts of the settled rows
    log = DeliveryLog.__table__
    with world.engine.connect() as conn:
        whole = {(e, p): n for e, p, n in conn.execute(
            sa.select(log.c.event, log.c.provider, sa.func.count()).group_by(log.c.event, log.c.provider))}
        upto = conn.execute(sa.select(sa.func.max(LogCount.__table__.c.upto))).scalar()
        assert upto >= 2  # the enrollment's and the send's rows
    with world.engine.begin() as conn:  # rows only the snapshot can know now: a fresh tally must not read them
        conn.execute(sa.update(log).where(log.c.id <= upto).values(event="renamed"))
        conn.execute(sa.insert(log).values(at=now(), event="late", provider="p"))
    with world.engine.connect() as conn:
        assert LogTally().counts(conn) == {**whole, ("late", "p"): 1}
