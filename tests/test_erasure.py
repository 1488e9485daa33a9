"""An erased contact (``followup contacts forget``) stays erased: nothing that arrives later for its id (an old
unsubscribe link, a resubscribe, a provider's blacklist receipt) replaces its marker, so nothing is sent to it."""
from __future__ import annotations

import sqlalchemy as sa

from engine.kinds import suppress
from engine.models import Contact
from engine.people import forget, is_erased
from tests.conftest import simple_sequence

contacts = Contact.__table__


def contact(world, contact_id: int) -> dict:
    with world.engine.connect() as conn:
        return dict(conn.execute(sa.select(contacts).where(contacts.c.id == contact_id)).mappings().one())


def test_an_erased_contact_stays_erased_whatever_arrives_for_its_id_later(make_world, frozen):
    world = make_world([simple_sequence("a")])
    sara, ali = world.add_contacts({"phone": "09121111111"}, {"phone": "09122222222"})
    row = contact(world, sara)
    with world.engine.begin() as conn:
        forget(conn, row)
    marker = contact(world, sara)["sms_suppressed"]
    world.event(sara, "unsubscribed", channel="sms", source="link")  # an old link in an SMS she kept
    world.event(sara, "resubscribed")
    world.event(sara, "unsubscribed")
    with world.engine.begin() as conn:
        suppress(conn, sara, "email", "recipient: blacklisted")  # a late receipt of a message sent before
    erased = contact(world, sara)
    assert is_erased(erased) and erased["sms_suppressed"] == erased["email_suppressed"] == marker
    world.enroll("a", sara)
    assert world.messages(contact_id=sara) == []
    # the same events change a contact that was not erased
    world.event(ali, "unsubscribed", channel="sms", source="link")
    assert contact(world, ali)["sms_suppressed"].startswith("unsubscribed (link")
    world.event(ali, "resubscribed")
    assert contact(world, ali)["sms_suppressed"] is None
