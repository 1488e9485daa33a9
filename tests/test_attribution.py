"""Attribution on a frozen clock: a conversion is credited to one message, by click, else by send, else none."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from engine.engagement import find_link, record_follow
from engine.models import ContactEvent, Link, Message
from tests.service_support import SERVICE_SETTINGS, api_client, auth
from tests.test_link_redirect import PHONE
from tests.test_links import LINKS, SARA, TEMPLATES, link_sequence

ALI = {"phone": "09351234567", "email": "ali@example.com", "first_name": "علی"}


def click(world, touch: str, sequence: str = "coats", agent: str = PHONE, contact: int | None = None) -> int:
    """A person (or ``agent``) follows the short link of ``touch`` (sent to ``contact``); returns its message id."""
    table = Link.__table__
    query = sa.select(table.c.code).where(table.c.touch == touch, table.c.sequence == sequence)
    if contact is not None:
        query = query.where(table.c.contact_id == contact)
    with world.engine.begin() as conn:
        code = conn.execute(query).scalar_one()
        link = find_link(conn, code)
        record_follow(conn, link, method="GET", user_agent=agent)
    return link["message_id"]


def conversion(world) -> dict:
    table = ContactEvent.__table__
    with world.engine.connect() as conn:
        return dict(conn.execute(sa.select(table).where(table.c.type == "converted")
                                 .order_by(table.c.id.desc()).limit(1)).mappings().one())


def set_status(world, message_id: int, status: str) -> None:
    with world.engine.begin() as conn:
        conn.execute(sa.update(Message.__table__).where(Message.__table__.c.id == message_id).values(status=status))


def two_touches_sent(make_world, frozen, **settings):
    world = make_world([link_sequence(exit_on=["replied"])], settings={**LINKS, **settings}, templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()  # t0 now
    frozen.tick(timedelta(days=1))
    world.tick()  # t1 a day later
    return world, sara


def test_the_last_clicked_message_within_five_days_earns_the_sale_over_a_later_delivery(make_world, frozen):
    world, sara = two_touches_sent(make_world, frozen)
    t0 = click(world, "t0")
    frozen.tick(timedelta(hours=20))
    world.event(sara, "converted", value=1_200_000)
    sale = conversion(world)
    assert (sale["message_id"], sale["touch"], sale["sequence"], sale["attributed_by"], sale["value"]) == \
        (t0, "t0", "coats", "click", 1_200_000)


def test_a_click_older_than_the_click_window_falls_back_to_the_last_delivered_within_a_day(make_world, frozen):
    world, sara = two_touches_sent(make_world, frozen)
    click(world, "t0")
    frozen.tick(timedelta(days=5, seconds=1))  # the click is past the 5 days
    world.event(sara, "converted", value=10)
    assert conversion(world)["attributed_by"] is None  # t1 went 5 days ago: outside the SMS send window too
    (t1,) = [m["id"] for m in world.messages(touch="t1")]
    frozen.tick(timedelta(days=1))
    world.tick()  # t2 now
    frozen.tick(timedelta(hours=23))
    world.event(sara, "converted", value=10)
    (t2,) = [m["id"] for m in world.messages(touch="t2")]
    sale = conversion(world)
    assert (sale["message_id"], sale["touch"], sale["attributed_by"]) == (t2, "t2", "send") and t1 != t2


def test_an_sms_a_day_old_earns_nothing_but_an_email_three_days_old_does(make_world, frozen):
    world = make_world([link_sequence(exit_on=["replied"]), link_sequence("mail", channel="email", exit_on=["replied"])],
                       settings=LINKS, templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    frozen.tick(timedelta(days=1, seconds=1))
    world.event(sara, "converted", value=5)
    sale = conversion(world)
    assert (sale["message_id"], sale["attributed_by"], sale["sequence"]) == (None, None, None)  # not attributed
    world.enroll("mail", sara)
    world.tick()
    (mail,) = world.messages(sequence="mail", touch="t0")
    frozen.tick(timedelta(days=2, hours=23))
    world.event(sara, "converted", value=5)
    assert (conversion(world)["message_id"], conversion(world)["attributed_by"]) == (mail["id"], "send")


def test_an_undelivered_message_and_a_bots_click_earn_nothing(make_world, frozen):
    world, sara = two_touches_sent(make_world, frozen)
    for message in world.messages():
        if message["touch"] in ("t0", "t1"):
            set_status(world, message["id"], "undelivered")
    click(world, "t1", agent="WhatsApp/2.23.20.0")
    frozen.tick(timedelta(hours=1))
    world.event(sara, "converted", value=5)
    assert conversion(world)["attributed_by"] is None


def test_the_windows_are_settings(make_world, frozen):
    world, sara = two_touches_sent(make_world, frozen, attribution={"click_window": "1h", "send_window": "30m"})
    click(world, "t0")
    frozen.tick(timedelta(minutes=61))
    world.event(sara, "converted", value=5)
    assert conversion(world)["attributed_by"] is None


def test_a_contact_in_two_sequences_is_credited_to_the_one_that_wrote_to_her(make_world, frozen):
    other = link_sequence("boots", exit_on=["replied"])
    world = make_world([link_sequence(exit_on=["replied"]), other], settings=LINKS, templates=TEMPLATES)
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("coats", sara)
    world.tick()
    frozen.tick(timedelta(hours=2))
    world.enroll("boots", sara)  # the latest sequence she is in, but it has sent her nothing yet
    for message in world.messages(sequence="boots"):
        set_status(world, message["id"], "pending")
    world.event(sara, "converted", value=900_000)
    sale = conversion(world)
    assert (sale["sequence"], sale["touch"], sale["attributed_by"]) == ("coats", "t0", "send")


def test_a_sale_named_for_a_sequence_is_credited_only_within_it(make_world, frozen):
    world = make_world([link_sequence(exit_on=["replied"]), link_sequence("boots", exit_on=["replied"])],
                       settings=LINKS, templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.enroll("boots", sara)
    world.tick()
    click(world, "t0", "coats")
    world.event(sara, "converted", value=1, sequence="boots")
    sale = conversion(world)
    (boots_t0,) = world.messages(sequence="boots", touch="t0")
    assert (sale["sequence"], sale["message_id"], sale["attributed_by"]) == ("boots", boots_t0["id"], "send")


def test_the_api_says_which_message_a_sale_was_credited_to(make_world, frozen):
    world = make_world([link_sequence(exit_on=["replied"])], settings={**SERVICE_SETTINGS, **LINKS},
                       templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    t0 = click(world, "t0")
    client, key = api_client(world)
    sale = {"contact": SARA["phone"], "type": "converted", "value": 1_200_000}
    first = client.post("/api/v1/events", json=sale, headers=auth(key)).json()
    assert first["credited"] == {"message_id": t0, "sequence": "coats", "touch": "t0", "by": "click",
                                  "variant": None}
    frozen.tick(timedelta(days=6))
    later = client.post("/api/v1/events", json=sale, headers=auth(key)).json()
    assert later["credited"] is None  # converted, not attributed


def test_the_conversion_stores_the_variant_of_the_message_it_is_credited_to(make_world, frozen):
    world, sara = two_touches_sent(make_world, frozen)
    t0 = click(world, "t0")
    with world.engine.begin() as conn:  # as the worker records a variant touch's message
        conn.execute(sa.update(Message.__table__).where(Message.__table__.c.id == t0).values(variant="story"))
    world.event(sara, "converted", value=900_000)
    sale = conversion(world)
    assert (sale["message_id"], sale["variant"], sale["attributed_by"]) == (t0, "story", "click")
    frozen.tick(timedelta(days=6))  # past the click window: the last delivered message (no variant) within a day
    world.tick()
    world.event(sara, "converted", value=1)
    assert conversion(world)["variant"] is None
