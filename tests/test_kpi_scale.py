"""The KPIs as the database sums them equal the KPIs of every row read plainly, on a shop the reports bench
fills (three sequences, sends in every final state, clicks, handoffs with outcomes, repeat purchases), with
contacts whose source attributes are odd (empty, a number, Persian, only a utm_source)."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bench.reports import fill, write_config
from engine.clock import now, to_utc
from engine.config import load_config
from engine.db import make_engine
from engine.engagement import HUMAN_KINDS
from engine.kpi import BY, NONE, _figures, _prices, _source, kpi_report
from engine.kpi_series import daily, funnels
from engine.models import COUNTS_AS_SENT, Contact, ContactEvent, Engagement, Enrollment, Handoff, Message
from engine.store.sources import follow, source_of

#: the last one longer than the cost's kept counts by source keep (engine.store.buckets.KEPT_SOURCE)
ODD = {1: {"source": "", "utm_source": "google"}, 2: {"source": 5}, 3: {"source": None, "utm_source": "x"},
       4: {"source": "اینستاگرام", "utm_source": "google"}, 5: {"utm_source": ""}, 6: {"source": "بازار " * 30}}


@pytest.fixture
def shop(db_url, tmp_path):
    fill(db_url, 1200)
    engine = make_engine(db_url)
    contacts = Contact.__table__
    with engine.begin() as conn:
        for cid, attrs in ODD.items():
            conn.execute(sa.update(contacts).where(contacts.c.id == cid).values(attrs=attrs))
        follow(conn, {cid: source_of(attrs) for cid, attrs in ODD.items()})  # as every writer of attrs does
        # their runs and sends fall inside the 30-day window too
        at = now() - timedelta(days=2)
        for table in (Enrollment.__table__, Message.__table__):
            stamp = "enrolled_at" if table is Enrollment.__table__ else "sent_at"
            conn.execute(sa.update(table).where(table.c.contact_id.in_(list(ODD))).values({stamp: at}))
    config = load_config(write_config(tmp_path, db_url))
    yield config, engine
    engine.dispose()


def plain_report(conn: sa.Connection, config, *, since: timedelta, by: str | None, until):
    """The report from every row in Python: each message's cost added one by one, each contact's attributes."""
    start = until - since
    e, h, ev, m = (Enrollment.__table__, Handoff.__table__, ContactEvent.__table__, Message.__table__)
    attrs = {cid: a or {} for cid, a in conn.execute(sa.select(Contact.__table__.c.id, Contact.__table__.c.attrs))}
    enrollments = conn.execute(sa.select(e.c.contact_id, e.c.sequence, e.c.enrolled_at)
                               .where(e.c.enrolled_at >= start, e.c.enrolled_at <= until, e.c.sequence != "_sales")
                               .order_by(e.c.id)).all()
    handoffs = [dict(r) for r in conn.execute(sa.select(h).where(h.c.at <= until).order_by(h.c.at, h.c.id))
                .mappings()]
    events = [dict(r) for r in conn.execute(sa.select(ev).where(ev.c.type == "converted", ev.c.at <= until)
                                            .order_by(ev.c.at, ev.c.id)).mappings()]
    for row in handoffs + events:
        row["at"], row["outcome_at"] = to_utc(row["at"]), to_utc(row.get("outcome_at"))
    rep_of = {r["contact_id"]: r["rep"] for r in handoffs}
    loyalty = {t for s in config.sequences.values() if (t := getattr(s, "on_converted", None))}

    def key(cid, sequence, at):
        return {"source": lambda: _source(attrs.get(cid, {})), "sequence": lambda: sequence or NONE,
                "rep": lambda: rep_of.get(cid, NONE), "month": lambda: f"{at:%Y-%m}"}.get(by, lambda: "all")()

    groups = defaultdict(lambda: defaultdict(list))
    first, loyalty_starts = {}, {}
    for cid, sequence, at in enrollments:
        at = to_utc(at)
        slot = (key(cid, sequence, at), cid)
        first[slot] = min(first.get(slot, at), at)
        if sequence in loyalty:
            loyalty_starts.setdefault(cid, at)
    sales = defaultdict(list)
    for row in events:
        sales[row["contact_id"]].append(row)
    for (k, cid), at in first.items():
        groups[k]["leads"] = (groups[k]["leads"] or 0) + 1
        after = [s["at"] for s in sales[cid] if s["at"] >= at]
        if after:
            groups[k]["converted"] = (groups[k]["converted"] or 0) + 1
            groups[k]["days"].append((min(after) - at).total_seconds() / 86400)
    for row in events:
        if row["at"] >= start:
            groups[key(row["contact_id"], row["sequence"], row["at"])]["conversions"].append(row)
    for row in handoffs:
        if row["outcome"] == "lost" and row["outcome_at"] and start <= row["outcome_at"] <= until:
            groups[key(row["contact_id"], row["sequence"], row["outcome_at"])]["objections"].append(
                row["objection"] or NONE)
        if row["at"] >= start:
            groups[key(row["contact_id"], row["sequence"], row["at"])]["handoffs"].append(row)
    prices = _prices(config)
    for row in conn.execute(sa.select(m).where(m.c.status.in_(COUNTS_AS_SENT), m.c.sent_at >= start,
                                               m.c.sent_at <= until)).mappings():
        per_segment, per_email = prices.get(row["provider"], (0.0, 0.0))
        cost = (row["segments"] or 1) * per_segment if row["channel"] == "sms" else per_email
        groups[key(row["contact_id"], row["sequence"], to_utc(row["sent_at"]))]["costs"].append(cost)
    purchases = Counter({cid: len(rows) for cid, rows in sales.items()})
    lifetime = {cid: sum(row["value"] or 0 for row in rows) for cid, rows in sales.items()}
    return [_figures(k, g, purchases, lifetime, loyalty_starts).as_dict() for k, g in sorted(groups.items())]


@pytest.mark.parametrize("days", [30, 400])
def test_every_grouping_of_the_report_equals_the_plain_read_of_every_row(shop, days):
    config, engine = shop
    until = now()
    with engine.connect() as conn:
        for by in (None, *BY):
            expected = plain_report(conn, config, since=timedelta(days=days), by=by, until=until)
            got = [g.as_dict() for g in kpi_report(conn, config, since=timedelta(days=days), by=by, until=until)]
            assert got == expected, by
            assert sum(g["leads"] for g in got) >= 1 and any(g["cost"] for g in got)
    with engine.connect() as conn:
        sources = {g.group for g in kpi_report(conn, config, by="source", until=until)}
    assert {"google", "5", "x", "اینستاگرام", "بازار " * 30, NONE} <= sources


@pytest.mark.parametrize("zone", ["Asia/Tehran", "Asia/Kathmandu", "America/St_Johns"])
def test_the_daily_series_counts_each_send_click_and_sale_on_its_local_day(shop, zone):
    config, engine = shop
    tz, until = ZoneInfo(zone), now()
    start = until - timedelta(days=30)
    m, g, ev = Message.__table__, Engagement.__table__, ContactEvent.__table__
    with engine.connect() as conn:
        got = daily(conn, start, until, tz)
        plain = {name: Counter(to_utc(at).astimezone(tz).date() for (at,) in conn.execute(query)) for name, query in {
            "sends": sa.select(m.c.sent_at).where(m.c.status.in_(COUNTS_AS_SENT), m.c.sent_at.between(start, until)),
            "clicks": sa.select(g.c.at).where(g.c.kind.in_(HUMAN_KINDS[:1]), g.c.at.between(start, until)),
            "conversions": sa.select(ev.c.at).where(ev.c.type == "converted", ev.c.at.between(start, until)),
        }.items()}
    assert {name: [(d, plain[name][d]) for d, _ in days] for name, days in got.items()} == got
    assert all(sum(n for _, n in days) for days in got.values())


def plain_funnels(conn, start, until) -> dict:
    """Each sequence's funnel from every row read plainly: the window's runs, those with a send (counted as sent)
    and a person's click on one of their messages by the window's end, and those whose (sequence, contact) has a
    conversion within the window."""
    e, m, g, ev = Enrollment.__table__, Message.__table__, Engagement.__table__, ContactEvent.__table__
    runs = [(run, seq, cid) for run, seq, cid, at in conn.execute(
        sa.select(e.c.id, e.c.sequence, e.c.contact_id, e.c.enrolled_at)) if start <= to_utc(at) <= until]
    run_of = dict(conn.execute(sa.select(m.c.id, m.c.enrollment_id)).all())
    sent = {run for run, status, at in conn.execute(sa.select(m.c.enrollment_id, m.c.status, m.c.sent_at))
            if status in COUNTS_AS_SENT and at is not None and to_utc(at) <= until}
    clicked = {run_of.get(mid) for mid, kind, at in conn.execute(sa.select(g.c.message_id, g.c.kind, g.c.at))
               if kind == "clicked" and to_utc(at) <= until}
    converted = {(seq, cid) for seq, cid, kind, at in conn.execute(sa.select(ev.c.sequence, ev.c.contact_id, ev.c.type,
                                                                             ev.c.at))
                 if kind == "converted" and start <= to_utc(at) <= until}
    steps = {seq: Counter() for _, seq, _ in runs}
    for run, seq, cid in runs:
        steps[seq].update({"enrolled": 1, "sent": run in sent, "clicked": run in clicked,
                           "converted": (seq, cid) in converted})
    return {seq: [(step, found[step]) for step in ("enrolled", "sent", "clicked", "converted")]
            for seq, found in sorted(steps.items())}


def test_each_sequences_funnel_counts_the_runs_a_plain_read_finds(shop):
    config, engine = shop
    at = now()
    e = Enrollment.__table__
    with engine.begin() as conn:  # contact 1 enrolled in its sequence again: its second run counts too
        first = conn.execute(sa.select(e).where(e.c.contact_id == 1)).mappings().first()
        conn.execute(sa.insert(e).values(contact_id=1, sequence=first["sequence"], sequence_hash="again",
                                         status="completed", enrolled_at=at - timedelta(days=1)))
    # the window to now, and one ending before the odd contacts' runs sent (and cut inside a quarter hour)
    windows = [(at - timedelta(days=30), at), (at - timedelta(days=40, minutes=7), at - timedelta(days=2, hours=1))]
    with engine.connect() as conn:
        for start, until in windows:
            assert funnels(conn, start, until) == plain_funnels(conn, start, until), (start, until)
        got = funnels(conn, *windows[0])
    assert list(got) == ["abandoned-cart", "welcome-en", "winter-sale"] and all(n for _, n in got["winter-sale"])


def test_the_pages_revenue_by_source_is_the_reports_for_each_source_with_sales(shop):
    from engine.kpi import revenue_by_source, sources_revenue

    config, engine = shop
    until = now()
    with engine.connect() as conn:
        report = kpi_report(conn, config, by="source", until=until)
        got = revenue_by_source(conn, since=timedelta(days=30), until=until)
    assert got == sources_revenue(report) == [(g.group, g.figures["revenue"]) for g in report
                                              if g.figures["conversions"]]
    assert len(got) >= 3


def test_the_page_by_source_draws_the_revenue_chart_of_the_page_without(shop):
    """By source, the page takes each source's revenue from the report's groups instead of reading it again:
    the chart is the one the page without ``by`` draws from its own read."""
    from fastapi.testclient import TestClient
    from freezegun import freeze_time

    from engine.apikeys import create_key
    from engine.service import create_app
    from engine.service.options import ServiceOptions

    config, engine = shop
    with engine.begin() as conn:
        key = create_key(conn, "revenue")
    app = create_app(config, engine=engine, options=ServiceOptions(dashboard_password=None, public_url=None))
    heading = "<h2>Revenue by source</h2>"
    charts = []
    with freeze_time(now()), TestClient(app) as client:
        for path in ("/dashboard/kpi?lang=en", "/dashboard/kpi?lang=en&by=source"):
            page = client.get(path, headers={"Authorization": f"Bearer {key}"}).text
            charts.append(page[page.index(heading):page.index("<h2>", page.index(heading) + len(heading))])
    assert charts[0] == charts[1] and charts[0].count('<g class="row">') >= 3 and "google" in charts[0]


def test_on_sqlite_the_report_pages_find_the_rows_of_messages_and_runs_through_an_index(shop):
    """SQLite keeps no counts: each statement of the KPI page and the sequences page reads ``messages`` and
    ``enrollments`` through the index its WHERE can use (a window's time, a sequence, the scheduled), never
    walking the whole table; and a window's sends by touch and by quarter hour come from the index alone."""
    from fastapi.testclient import TestClient

    from engine.apikeys import create_key
    from engine.service import create_app
    from engine.service.options import ServiceOptions

    config, engine = shop
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL counts these pages from its rollups")
    with engine.begin() as conn:
        key = create_key(conn, "plans")
    statements: list[tuple[str, object]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    app = create_app(config, engine=engine, options=ServiceOptions(dashboard_password=None, public_url=None))
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        with TestClient(app) as client:
            for path in ("/dashboard/kpi", "/dashboard/kpi?by=source", "/dashboard/sequences"):
                assert client.get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    plans = {}
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            plans[" ".join(statement.split())] = plan
    walked = {s: step for s, plan in plans.items() for step in plan
              if step.startswith(("SCAN messages", "SCAN enrollments")) and "COVERING INDEX" not in step
              and "ix_messages_due" not in step}  # the partial index holds the scheduled messages alone
    assert walked == {}
    by_touch = [plan for s, plan in plans.items() if "FROM messages WHERE messages.status IN" in s
                and "sent_at" in s and "GROUP BY messages.sequence, messages.touch" in s]
    by_quarter = [plan for s, plan in plans.items() if "strftime(?, messages.sent_at)" in s]
    sends = by_touch + by_quarter
    assert len(sends) >= 2 and all(any("COVERING INDEX ix_messages_sent_at" in step for step in plan)
                                   for plan in sends), sends
