"""``followup send-test``: one touch, rendered for a real contact (or the sample), sent to a test address.

It goes through the configured providers as a real message would (failover, the sender line for the
touch's kind) and is written to the delivery log as ``test_sent`` or ``test_failed``, with no message
row: stats, the frequency cap and the funnel never see it. The client reference is a fresh number that
matches none of the database's messages, so no delivery receipt is taken for one of them.
"""
from __future__ import annotations

import sqlalchemy as sa

from providers.base import OutgoingMessage

from .addresses import read_address
from .catalog import offer_state
from .clock import now
from .config import Config
from .contacts import find_contact
from .errors import InputError
from .installation import alert_reference
from .store import append_log
from .samples import database_attrs, sample_contact
from .sending import Sender
from .sms import sms_info, with_footer
from .templates import RenderError
from .text import mask_address
from .validate import render_touch_sample

__all__ = ["send_test", "TEST_EVENTS"]

#: the delivery-log events of a test send
TEST_EVENTS = ("test_sent", "test_failed")


def _address(to: str, channel: str, region: str) -> str:
    found = read_address(to, region)
    wanted = "phone" if channel == "sms" else "email"
    if found is None or found[0] != wanted:
        raise InputError(f"--to {to!r} is not {'a phone number' if channel == 'sms' else 'an email address'}, "
                         f"and this touch is {'an SMS' if channel == 'sms' else 'an email'}; give one")
    return found[1]


def build_test(config: Config, conn: sa.Connection, sequence: str, touch_name: str, to: str,
               key: str | None) -> tuple[OutgoingMessage, dict, object]:
    """The message to send, the contact it is rendered for, and the touch."""
    seq = config.sequence(sequence)
    touch = next((t for t in seq.touches if t.name == touch_name), None)
    if touch is None:
        raise InputError(f"{sequence} has no touch {touch_name!r} (touches: {', '.join(t.name for t in seq.touches)})")
    region = config.settings.default_region
    address = _address(to, touch.channel, region)
    if key:
        contact = find_contact(conn, key, region)
        if contact is None:
            raise InputError(f"no contact matches {key!r} (a phone in any format, an email or an external id)")
    else:
        contact = sample_contact(config, seq, database_attrs(config.settings.database_url))
    offer = offer_state(conn, seq.name, seq.offer.code) if seq.offer else None
    try:  # rendered without the contact's id: a test address never gets the contact's unsubscribe link
        rendered = render_touch_sample(config, seq, touch, {**contact, "id": None}, offer_row=offer)
    except RenderError as err:
        raise InputError(f"{touch.template}: {err}; nothing was sent") from None
    metadata = {"kind": touch.kind, "test": True}
    if touch.channel == "sms":
        text = with_footer(rendered.text, config.settings.footer(contact.get("locale")))
        metadata.update(segments=sms_info(text).segments)
        return OutgoingMessage(alert_reference(), "sms", address, text, metadata=metadata), contact, touch
    return (OutgoingMessage(alert_reference(), "email", address, rendered.text, subject=rendered.subject,
                            html=rendered.html, metadata=metadata), contact, touch)


def send_test(config: Config, engine: sa.Engine, sequence: str, touch_name: str, to: str, key: str | None) -> str:
    """Send the test and log it; return what happened in one line (raise :class:`InputError` when it failed)."""
    from .provider_setup import build_providers

    with engine.connect() as conn:
        message, contact, touch = build_test(config, conn, sequence, touch_name, to, key)
    providers = build_providers(config)
    try:
        outcome = Sender(providers, inline_retries=1).send(message, set())
    finally:
        for group in providers.values():
            for provider in group:
                provider.close()
    sent = outcome.kind == "sent"
    shown = mask_address(message.to)
    reason = f"test to {shown}" + ("" if sent else f": {outcome.reason}")
    with engine.begin() as conn:
        append_log(conn, [dict(at=now(), message_id=None, contact_id=contact.get("id") or None, sequence=sequence,
                               touch=touch.name, channel=touch.channel, provider=outcome.provider,
                               event=TEST_EVENTS[0] if sent else TEST_EVENTS[1], reason=reason, attempt=0,
                               provider_message_id=outcome.result.provider_message_id if outcome.result else None,
                               worker=None)])
    if not sent:
        raise InputError(f"test of {sequence} {touch.name} to {shown} not sent ({outcome.kind}): {outcome.reason}")
    return f"test of {sequence} {touch.name} sent to {shown} through {outcome.provider}" + (
        f" ({message.metadata['segments']} SMS segment(s))" if touch.channel == "sms" else "")
