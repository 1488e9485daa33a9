"""The JSON API through the ASGI test client: upserts, all-or-nothing batches, idempotency, auth on every route."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from freezegun import freeze_time
from starlette.routing import Route

from engine.cli import cli
from engine.service.app import ROUTERS
from engine.models import ApiKey, Contact, ContactEvent, Enrollment
from tests.conftest import simple_sequence, winter_sequence
from tests.service_support import SERVICE_SETTINGS, api_client, auth

UTC = timezone.utc
PUBLIC = {"/webhooks/{provider_name}", "/webhooks/{provider_name}/{secret}", "/u/{token}", "/healthz", "/login",
          "/fonts/{name}", "/l/{code}", "/leads/{token}"}
PUBLIC_ANSWERS = {("POST", "/webhooks/{provider_name}"): 400,  # unsigned
                  ("POST", "/webhooks/{provider_name}/{secret}"): 404,  # no such secret
                  ("GET", "/u/{token}"): 404, ("POST", "/u/{token}"): 404,  # forged token
                  ("GET", "/healthz"): 200, ("GET", "/login"): 200, ("POST", "/login"): 401,
                  ("GET", "/fonts/{name}"): 404,  # only the shipped font files
                  ("GET", "/l/{code}"): 404,  # no such short link
                  ("GET", "/leads/{token}"): 404, ("POST", "/leads/{token}"): 404}  # forged lead page token


@pytest.fixture
def world(make_world):
    return make_world([winter_sequence(), simple_sequence("drip")], settings=SERVICE_SETTINGS)


@pytest.fixture
def api(world):
    client, key = api_client(world)
    client.headers.update(auth(key))
    return client


def count(world, table) -> int:
    with world.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table.__table__)).scalar_one()


def test_contacts_are_upserted_like_the_csv_import(world, api):
    body = {"phone": "۰۹۱۲۱۲۳۴۵۶۷", "first_name": "سارا", "tags": ["winter"], "attrs": {"city": "Tehran"}}
    first = api.post("/api/v1/contacts", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["created"] == 1
    again = api.post("/api/v1/contacts", json={**body, "phone": "+989121234567"})
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 1, "duplicates": [],
                            "contact_ids": first.json()["contact_ids"],
                            "warnings": []}
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(Contact.__table__)).mappings().one()
    assert (row["phone"], row["tags"], row["attrs"]) == ("+989121234567", ";winter;", {"city": "Tehran"})


@pytest.mark.parametrize("tags", ["winter; vip", "winter,vip", ["winter", "vip"]])
def test_tags_are_a_list_or_one_string_split_as_the_csv_does(world, api, tags):
    response = api.post("/api/v1/contacts", json={"phone": "09121234567", "tags": tags})
    assert response.status_code == 200, response.text
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(Contact.__table__.c.tags)).scalar_one() == ";vip;winter;"


def test_a_bad_item_gets_one_error_per_problem_not_one_per_union_branch(world, api):
    one = api.post("/api/v1/contacts", json={"phone": "09121234567", "tags": 7})
    assert one.status_code == 422
    assert [e["field"] for e in one.json()["errors"]] == ["tags"], one.json()
    many = api.post("/api/v1/contacts", json=[{"phone": "09121234567", "tags": 7}])
    assert [e["field"] for e in many.json()["errors"]] == ["[0].tags"], many.json()


def test_a_landline_is_written_with_a_warning_that_names_the_field(world, api):
    response = api.post("/api/v1/contacts", json=[{"phone": "09121234567"}, {"phone": "02188776655"}])
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 2
    [warning] = response.json()["warnings"]
    assert warning["field"] == "[1].phone" and "landline" in warning["message"]


def test_a_list_with_one_bad_contact_writes_nothing_and_names_the_field(world, api):
    response = api.post("/api/v1/contacts", json=[{"email": "a@example.com"}, {"phone": "12"},
                                                  {"email": "c@example.com", "timezone": "Mars/Base"}])
    assert response.status_code == 422
    fields = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert set(fields) == {"[1].phone", "[2].timezone"}
    assert "timezone" in fields["[2].timezone"] or "IANA" in fields["[2].timezone"]
    assert count(world, Contact) == 0


def test_a_conflicting_contact_rolls_the_whole_batch_back(world, api):
    api.post("/api/v1/contacts", json=[{"external_id": "A", "phone": "09121111111"},
                                       {"external_id": "B", "phone": "09122222222"}])
    response = api.post("/api/v1/contacts", json=[{"email": "new@example.com"},
                                                  {"external_id": "A", "phone": "09122222222"}])
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "[1].contact"
    assert "another contact" in response.json()["errors"][0]["message"]
    assert count(world, Contact) == 2


@pytest.mark.parametrize("body, field", [
    ({"phone": "09121234567", "color": "red"}, "color"),
    ({"phone": 9121234567}, "phone"),
    ([], "body"),
    ({"phone": "0912\x001234567"}, "phone"),
    ("not json at all", "body"),
])
def test_malformed_bodies_get_a_422_naming_the_field(world, api, body, field):
    response = api.post("/api/v1/contacts", json=body)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.json()["errors"]}, response.json()
    assert count(world, Contact) == 0


def test_enrollments_all_or_nothing_and_per_item_outcome(world, api):
    api.post("/api/v1/contacts", json=[{"phone": "09121111111"}, {"email": "b@example.com"}])
    bad = api.post("/api/v1/enrollments", json=[{"sequence": "winter", "contact": "09121111111"},
                                                {"sequence": "nope", "contact": "missing@example.com"}])
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"[1].sequence", "[1].contact"}
    assert count(world, Enrollment) == 0
    good = api.post("/api/v1/enrollments", json=[{"sequence": "winter", "contact": "+989121111111"},
                                                 {"sequence": "winter", "contact": "b@example.com"}])
    assert good.status_code == 200
    statuses = [(r["status"], bool(r["reason"])) for r in good.json()["results"]]
    assert statuses == [("enrolled", False), ("enrolled", False)]
    again = api.post("/api/v1/enrollments", json={"sequence": "winter", "contact": "09121111111"})
    assert again.json()["results"][0]["status"] == "already_active"


def test_the_same_event_twice_with_one_idempotency_key_is_recorded_once(world, api):
    api.post("/api/v1/contacts", json={"phone": "09121111111"})
    api.post("/api/v1/enrollments", json={"sequence": "winter", "contact": "09121111111"})
    event = {"contact": "09121111111", "type": "converted", "sequence": "winter", "value": 1250000,
             "idempotency_key": "order-77"}
    first = api.post("/api/v1/events", json=event)
    assert first.status_code == 200, first.text
    assert first.json()["recorded"] is True and first.json()["ended"] == ["winter"]
    assert first.json()["cancelled"] == 4
    second = api.post("/api/v1/events", json=event)
    assert second.json()["recorded"] is False
    assert count(world, ContactEvent) == 1
    stats = api.get("/api/v1/sequences/winter/stats").json()
    assert (stats["converted"], stats["revenue"], stats["offer"]["stock_left"]) == (1, 1250000.0, 4)


@pytest.mark.parametrize("event, field", [
    ({"contact": "09121111111", "type": "Cart Abandoned"}, "type"),  # any name, but lowercase_with_underscores
    ({"contact": "09121111111", "type": "converted", "channel": "fax"}, "channel"),
    ({"contact": "09121111111", "type": "converted", "sequence": "nope"}, "sequence"),
    ({"contact": "nobody@example.com", "type": "converted"}, "contact"),
    ({"type": "converted"}, "contact"),
])
def test_bad_events_are_refused_with_the_field(world, api, event, field):
    api.post("/api/v1/contacts", json={"phone": "09121111111"})
    response = api.post("/api/v1/events", json=event)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.json()["errors"]}
    assert count(world, ContactEvent) == 0


def test_timeline_shows_the_reason_of_a_skipped_urgent_touch(make_world):
    world = make_world([winter_sequence(expires_after="48h")], settings=SERVICE_SETTINGS)
    with freeze_time("2026-12-05 06:30:00", tz_offset=0) as frozen:
        (cid,) = world.add_contacts({"phone": "09121111111", "first_name": "سارا", "email": "sara@example.com"})
        world.enroll("winter", cid)
        world.run(frozen, datetime(2026, 12, 9, 12, 0, tzinfo=UTC))
    client, key = api_client(world)
    timeline = client.get("/api/v1/contacts/09121111111/timeline", headers=auth(key)).json()
    last = [m for m in timeline["messages"] if m["touch"] == "last-chance"][0]
    assert last["status"] == "skipped" and "offer" in last["reason"]
    assert any(i["event"] == "skipped" and i["touch"] == "last-chance" and i["reason"] for i in timeline["items"])
    assert [i["at"] for i in timeline["items"]] == sorted(i["at"] for i in timeline["items"])
    assert client.get("/api/v1/contacts/09129999999/timeline", headers=auth(key)).status_code == 404


def test_stats_of_an_unknown_sequence_is_404(api):
    response = api.get("/api/v1/sequences/nope/stats")
    assert response.status_code == 404 and response.json()["errors"][0]["field"] == "name"


def test_openapi_is_served_under_api_v1_and_lists_the_api(api):
    spec = api.get("/api/v1/openapi.json").json()
    assert set(spec["paths"]) == {"/api/v1/contacts", "/api/v1/enrollments", "/api/v1/events",
                                  "/api/v1/contacts/{key}/timeline", "/api/v1/sequences/{name}/stats",
                                  "/api/v1/sequences", "/api/v1/sequences/{name}/pause", "/api/v1/sequences/{name}/resume",
                                  "/api/v1/sequences/{name}/stop", "/api/v1/sequences/{name}/unenroll",
                                  "/api/v1/leads/{key}", "/api/v1/leads/{key}/outcome", "/api/v1/kpi"}


def _sample_path(path: str) -> str:
    return path.replace("{provider_name}", "mem-sms").replace("{token}", "x").replace("{secret}", "x" * 32).replace("{key}", "1").replace("{name}", "winter")


def test_every_route_needs_auth_except_webhooks_unsubscribe_healthz_and_login(world):
    client, _key = api_client(world)
    seen = set()
    routes = [r for r in client.app.routes if isinstance(r, Route)] + [r for router in ROUTERS for r in router.routes]
    for route in routes:
        for method in route.methods - {"HEAD"}:
            seen.add(route.path)
            for headers in ({}, {"Authorization": "Bearer fu_not-a-key"}, {"Cookie": "followup_session=1.2.3.4"}):
                response = client.request(method, _sample_path(route.path), headers=headers, follow_redirects=False)
                if route.path in PUBLIC:  # answered on their own terms, never sent to log in
                    assert response.status_code == PUBLIC_ANSWERS[(method, route.path)], (method, route.path)
                elif route.path.startswith(("/api/", "/metrics")):
                    assert response.status_code == 401, (method, route.path, response.status_code)
                else:
                    assert response.status_code == 303 and response.headers["location"].startswith("/login"), \
                        (method, route.path, response.status_code)
    assert {"/api/v1/contacts", "/api/v1/openapi.json", "/dashboard", "/dashboard/log", "/metrics"} <= seen
    assert PUBLIC <= seen
    assert count(world, Contact) == 0 and count(world, ContactEvent) == 0


def test_a_revoked_key_gets_401_and_writes_nothing(world):
    runner = CliRunner()
    config = str(world.config.dir)
    created = runner.invoke(cli, ["--config", config, "apikey", "create", "crm"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("fu_")
    with world.engine.connect() as conn:
        stored = conn.execute(sa.select(ApiKey.__table__)).mappings().one()
    assert stored["key_hash"] != key and key not in str(dict(stored))
    client, _ = api_client(world)
    assert client.post("/api/v1/contacts", json={"phone": "09121111111"}, headers=auth(key)).status_code == 200
    assert runner.invoke(cli, ["--config", config, "apikey", "create", "crm"]).exit_code != 0
    assert runner.invoke(cli, ["--config", config, "apikey", "revoke", "crm"]).exit_code == 0
    response = client.post("/api/v1/contacts", json={"phone": "09122222222"}, headers=auth(key))
    assert response.status_code == 401 and key not in response.text
    assert count(world, Contact) == 1


def test_metrics_count_the_log_without_reading_it_all_again(world, frozen):
    """The log's counts are kept across scrapes: rows settled for five minutes are read once, newer rows at every
    scrape (on PostgreSQL a lower id can commit after a higher one), and the sum always matches the log."""
    from datetime import timedelta

    from engine.models import DeliveryLog
    from engine.service.tally import LogTally

    log = DeliveryLog.__table__
    tally = LogTally()

    def whole_log() -> dict:
        with world.engine.connect() as conn:
            return {(e, p): n for e, p, n in conn.execute(
                sa.select(log.c.event, log.c.provider, sa.func.count()).group_by(log.c.event, log.c.provider))}

    def counts() -> dict:
        with world.engine.connect() as conn:
            return tally.counts(conn)

    def add(row_id: int, event: str) -> None:
        with world.engine.begin() as conn:
            conn.execute(sa.insert(log).values(id=row_id, at=datetime.now(timezone.utc), event=event, provider="p"))

    (cid,) = world.add_contacts({"phone": "09121111111"})
    world.enroll("drip", cid)
    world.tick()
    assert counts() == whole_log() and counts()[("sent", "mem-sms")] == 1
    add(1000, "late")
    assert counts() == whole_log()
    add(990, "late")  # a lower id that commits after a higher one was counted: still counted
    assert counts() == whole_log() and counts()[("late", "p")] == 2
    frozen.tick(timedelta(minutes=6))
    assert counts() == whole_log()  # everything has settled now, and is counted once
    with world.engine.begin() as conn:  # what settled is not read again (the log is never edited but here)
        conn.execute(sa.delete(log).where(log.c.id == 990))
    add(1001, "late")
    assert counts()[("late", "p")] == 3 and counts()[("sent", "mem-sms")] == 1


def test_healthz_says_the_database_answers_and_when_the_worker_ticked(world):
    client, _ = api_client(world)
    assert client.get("/healthz").json()["last_tick_at"] is None
    world.tick()
    body = client.get("/healthz").json()
    assert body["database"] == "ok" and body["last_tick_at"].endswith("Z")


def test_reads_answer_while_the_worker_holds_sqlites_write_lock(world, api):
    """Health, metrics, the stats and the dashboard read a snapshot: a worker's long write does not hold them up."""
    if world.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write lock")
    answers: dict[str, int] = {}

    def read_all() -> None:
        for path in ("/healthz", "/metrics", "/api/v1/sequences/drip/stats", "/api/v1/kpi", "/dashboard",
                     "/dashboard/sequences", "/dashboard/log"):
            answers[path] = api.get(path).status_code

    with world.engine.begin() as writer:  # BEGIN IMMEDIATE: the write lock, as a worker's batch holds it
        writer.execute(sa.update(Contact.__table__).values(first_name="x"))
        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        reader.join(timeout=20)  # a read that waited for the lock would wait the 30 s busy timeout
        assert not reader.is_alive(), f"waiting on the write lock after {list(answers)}"
    assert set(answers.values()) == {200}, answers


def test_metrics_expose_counters_and_gauges(world, api, frozen):  # frozen: inside the send window
    (cid,) = world.add_contacts({"phone": "09121111111"})
    world.enroll("drip", cid)
    world.tick()
    text = api.get("/metrics").text
    assert 'followup_messages_total{event="sent",provider="mem-sms"} 1.0' in text
    for name in ("followup_queue_due", "followup_queue_deferred", "followup_queue_lag_seconds",
                 'followup_provider_paused{channel="sms",provider="mem-sms"} 0.0',
                 "followup_worker_last_tick_timestamp_seconds"):
        assert name in text


# -- sequences: list, pause, resume, stop, unenroll ---------------------------------------------------
def test_enrolling_a_contact_who_converted_answers_finished_with_when_and_why(world, api):
    api.post("/api/v1/contacts", json={"phone": "09121111111"})
    api.post("/api/v1/enrollments", json={"sequence": "winter", "contact": "09121111111"})
    api.post("/api/v1/events", json={"contact": "09121111111", "type": "converted", "sequence": "winter"})
    again = api.post("/api/v1/enrollments", json={"sequence": "winter", "contact": "09121111111"})
    (result,) = again.json()["results"]
    assert (result["status"], again.json()["enrolled"]) == ("finished", 0)
    assert result["reason"].startswith("already enrolled, converted on ") and "reentry is never" in result["reason"]
    assert count(world, Enrollment) == 1


def test_sequences_are_listed_and_paused_resumed_and_stopped_through_the_api(world, api):
    api.post("/api/v1/contacts", json=[{"phone": "09121111111"}, {"phone": "09122222222"}])
    api.post("/api/v1/enrollments", json=[{"sequence": "drip", "contact": "09121111111"},
                                          {"sequence": "drip", "contact": "09122222222"}])
    listed = {s["name"]: s for s in api.get("/api/v1/sequences").json()["sequences"]}
    assert set(listed) == {"winter", "drip"}
    assert (listed["drip"]["state"], listed["drip"]["active_enrollments"], listed["drip"]["due_next_24h"]) == (
        "active", 2, 2)
    assert api.post("/api/v1/sequences/drip/pause").status_code == 200
    assert {s["name"]: s["state"] for s in api.get("/api/v1/sequences").json()["sequences"]}["drip"] == "paused"
    assert "active" in api.post("/api/v1/sequences/drip/resume").json()["note"]
    out = api.post("/api/v1/sequences/drip/unenroll", json={"contact": "+989121111111"})
    assert out.status_code == 200 and "unenrolled from drip; 3 pending" in out.json()["note"], out.text
    stop = api.post("/api/v1/sequences/drip/stop")
    assert stop.json()["note"] == "drip: stopped; 1 enrollment(s) ended, 3 pending message(s) cancelled"
    assert api.post("/api/v1/sequences/drip/pause").status_code == 409  # stopped: resume first
    refused = api.post("/api/v1/enrollments", json={"sequence": "drip", "contact": "09121111111"})
    assert 400 <= refused.status_code < 500 and "is stopped" in refused.text


@pytest.mark.parametrize("path, body", [
    ("/api/v1/sequences/nope/pause", None), ("/api/v1/sequences/nope/resume", None),
    ("/api/v1/sequences/nope/stop", None), ("/api/v1/sequences/nope/unenroll", {"contact": "09121111111"}),
    ("/api/v1/sequences/drip/unenroll", {"contact": "nobody@example.com"}),
])
def test_an_unknown_sequence_or_contact_is_a_404(world, api, path, body):
    api.post("/api/v1/contacts", json={"phone": "09121111111"})
    response = api.post(path, json=body) if body else api.post(path)
    assert response.status_code == 404, response.text


def test_unenroll_without_a_contact_is_a_422(world, api):
    assert api.post("/api/v1/sequences/drip/unenroll", json={}).status_code == 422
    assert api.post("/api/v1/sequences/drip/unenroll", json={"contact": "x", "extra": 1}).status_code == 422


def test_contacts_get_persian_letters_and_a_repeated_contact_is_a_duplicate_with_a_warning(world, api):
    response = api.post("/api/v1/contacts", json=[
        {"phone": "٠٩١٢١٢٣٤٥٦٧", "first_name": "علي\u200b", "last_name": "كريمي\u200cها"},
        {"phone": "+989121234567", "first_name": "Ali", "tags": ["vip"]}])
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["duplicates"]) == (1, [1])
    assert body["warnings"] == [{"field": "[1].contact", "message": "a duplicate of an earlier row for the same contact: "
                                 "its first_name differs, and the earlier row's value is kept"}]
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(Contact.__table__)).mappings().one()
    assert (row["phone"], row["first_name"], row["last_name"], row["tags"]) == (
        "+989121234567", "علی", "کریمی\u200cها", ";vip;")
