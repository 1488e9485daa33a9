"""Finding a contact by the key a user gives (a phone, an email or an external id), through the API.

A key that reads as a phone or an email matches that field before any external id, so a contact whose
external id is someone else's phone never takes that person's unsubscribe; emails are stored and looked
up lower-cased.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from alembic import command

from engine.db import _alembic_config, current_revision, make_engine, upgrade
from engine.models import Contact
from tests.conftest import winter_sequence
from tests.service_support import SERVICE_SETTINGS, api_client, auth

contacts = Contact.__table__
BLANK = {"first_name": "", "last_name": "", "tags": "", "attrs": {},
         "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc), "updated_at": datetime(2026, 1, 1, tzinfo=timezone.utc)}


@pytest.fixture
def world(make_world):
    return make_world([winter_sequence()], settings=SERVICE_SETTINGS)


@pytest.fixture
def api(world):
    client, key = api_client(world)
    client.headers.update(auth(key))
    return client


def insert(world, **columns) -> int:
    """A contact written as an older followup could have stored it (no check on the way in)."""
    with world.engine.begin() as conn:
        return conn.execute(sa.insert(contacts).values(**{**BLANK, **columns}).returning(contacts.c.id)).scalar_one()


def contact(world, cid: int) -> dict:
    with world.engine.connect() as conn:
        return dict(conn.execute(sa.select(contacts).where(contacts.c.id == cid)).mappings().one())


def test_an_unsubscribe_by_phone_reaches_the_phone_owner_not_a_contact_whose_external_id_is_that_phone(world, api):
    other = insert(world, external_id="09121111111", phone="+989122222222", first_name="Other")
    owner = insert(world, phone="+989121111111", first_name="Owner")
    response = api.post("/api/v1/events", json={"contact": "0912 111 1111", "type": "unsubscribed", "channel": "sms"})
    assert response.status_code == 200, response.text
    assert contact(world, owner)["sms_suppressed"] and not contact(world, other)["sms_suppressed"]
    assert api.get("/api/v1/contacts/09121111111/timeline").json()["contact"]["id"] == owner
    # a phone no contact has still finds an external id stored before such ids were refused
    assert api.get("/api/v1/contacts/+989122222222/timeline").json()["contact"]["id"] == other


def test_an_email_key_matches_the_email_before_an_external_id(world, api):
    other = insert(world, external_id="sara@example.com", phone="+989122222222")
    owner = insert(world, email="sara@example.com")
    timeline = api.get("/api/v1/contacts/Sara@Example.com/timeline")
    assert timeline.status_code == 200 and timeline.json()["contact"]["id"] == owner, timeline.text
    assert other != owner


@pytest.mark.parametrize("external_id, reads_as", [("09121234567", "a phone"), ("+1 415 555 2671", "a phone"),
                                                    ("ali@example.com", "an email")])
def test_an_external_id_that_reads_as_a_phone_or_email_is_a_422_naming_the_field(world, api, external_id, reads_as):
    response = api.post("/api/v1/contacts", json=[{"phone": "09121111111"},
                                                  {"phone": "09122222222", "external_id": external_id}])
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "[1].external_id" and f"reads as {reads_as}" in error["message"], error
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(contacts)).scalar_one() == 0


@pytest.mark.parametrize("external_id", ["crm-09121234567", "12345", "user@localhost", "A-77"])
def test_an_external_id_that_is_neither_is_kept_and_found(world, api, external_id):
    response = api.post("/api/v1/contacts", json={"phone": "09121111111", "external_id": external_id})
    assert response.status_code == 200, response.text
    assert api.get(f"/api/v1/contacts/{external_id}/timeline").json()["contact"]["phone"] == "+989121111111"


def test_emails_are_stored_lower_cased_and_found_in_any_case(world, api):
    response = api.post("/api/v1/contacts", json={"email": "Mina@Yahoo.com"})
    assert response.status_code == 200, response.text
    [cid] = response.json()["contact_ids"]
    assert contact(world, cid)["email"] == "mina@yahoo.com"
    again = api.post("/api/v1/contacts", json={"email": "MINA@yahoo.com", "first_name": "Mina"})
    assert again.json()["updated"] == 1 and again.json()["contact_ids"] == [cid]
    for key in ("mina@yahoo.com", "Mina@Yahoo.com", "MINA@YAHOO.COM"):
        timeline = api.get(f"/api/v1/contacts/{key}/timeline")
        assert timeline.status_code == 200 and timeline.json()["contact"]["id"] == cid, key
    enrolled = api.post("/api/v1/enrollments", json={"sequence": "winter", "contact": "Mina@Yahoo.COM"})
    assert enrolled.status_code == 200 and enrolled.json()["enrolled"] == 1, enrolled.text


def test_the_upgrade_lower_cases_stored_emails_and_names_the_pairs_it_cannot(tmp_path, caplog):
    url = f"sqlite:///{tmp_path}/old.db"
    engine = make_engine(url)
    with engine.begin() as conn:
        cfg = _alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
    with engine.begin() as conn:
        rows = [{"email": "Mina@yahoo.com"}, {"email": "ali@example.com"}, {"email": "Ali@example.com"},
                {"email": "RezA@example.com"}, {"email": "REZA@example.com"}, {"email": None}]
        ids = [conn.execute(sa.insert(contacts).values(**BLANK, **row).returning(contacts.c.id)).scalar_one()
               for row in rows]
    with caplog.at_level(logging.WARNING, logger="followup.migrations"):
        upgrade(url)
    assert current_revision(engine) != "0003"
    with engine.connect() as conn:
        emails = dict(conn.execute(sa.select(contacts.c.id, contacts.c.email)).all())
    assert [emails[i] for i in ids] == ["mina@yahoo.com", "ali@example.com", "Ali@example.com",
                                        "reza@example.com", "REZA@example.com", None]
    warnings = [r.getMessage() for r in caplog.records if r.name == "followup.migrations"]
    assert warnings == [f"contact {ids[2]} keeps its email as it is: contact {ids[1]} has the same address in "
                        "lower case; merge the two by hand",
                        f"contact {ids[4]} keeps its email as it is: contact {ids[3]} has the same address in "
                        "lower case; merge the two by hand"]
    assert not any("@" in w for w in warnings)  # the log names contacts by id, not by address
