"""``followup send-test``: one touch through the real configured providers (Kavenegar on a local HTTP server
speaking its wire format, SMTP on a local aiosmtpd server), logged as a test, never counted."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from freezegun import freeze_time

from engine.cli import State, cli
from engine.clock import to_utc
from engine.errors import InputError
from engine.reports import funnel
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.fakes.smtpserver import FakeSmtpServer
from tests.provider_support import load_payload

from .conftest import winter_sequence

UTC = timezone.utc
AT = datetime(2026, 12, 5, 6, 30, tzinfo=UTC)
KEY = "4A6B7A5A3171523444654B6C6F4F"
SARA = {"phone": "09121234567", "email": "sara@example.com", "first_name": "سارا", "external_id": "c-1"}


@pytest.fixture
def kavenegar():
    replies: list[Reply] = []
    with FakeHttpServer(lambda req: replies.pop(0) if replies else Reply(200, load_payload("kavenegar", "send_ok.json"))
                        ) as server:
        server.replies = replies
        yield server


@pytest.fixture
def smtp():
    with FakeSmtpServer() as server:
        yield server


@pytest.fixture
def world(make_world, kavenegar, smtp):
    providers = {"sms": [{"name": "kav", "type": "kavenegar", "api_key": KEY, "sender": "10004346",
                          "base_url": kavenegar.url}],
                 "email": [{"name": "smtp", "type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                            "from": "Shop <news@shop.example>", "timeout": 5}]}
    return make_world([winter_sequence()], settings={"providers": providers})


def send_test(world, *args: str):
    return CliRunner().invoke(cli, ["--config", str(world.root / "config"), "send-test", *args], obj=State())


def test_an_sms_rendered_for_a_real_contact_goes_to_the_test_phone_and_is_not_counted(world, kavenegar):
    (sara,) = world.add_contacts(SARA)
    with freeze_time(AT):
        result = send_test(world, "winter", "hello", "--to", "0935 000 1122", "--as", "c-1")
    assert result.exit_code == 0, result.output
    assert result.output == "test of winter hello sent to +98935***1122 through kav (1 SMS segment(s))\n"
    [req] = kavenegar.requests
    assert req.path == f"/{KEY}/sms/send.json"
    assert req.form["receptor"] == "09350001122"
    assert req.form["message"].startswith("سارا عزیز، کد WINTER20: ۲۰٪ تخفیف پالتو")
    assert req.form["message"].endswith("لغو11")
    assert world.messages() == []
    [log] = world.log()
    assert (log["event"], log["message_id"], log["contact_id"], log["touch"], log["provider"]) == \
        ("test_sent", None, sara, "hello", "kav")
    assert (log["reason"], log["provider_message_id"], to_utc(log["at"])) == ("test to +98935***1122", "8792343", AT)
    with world.engine.connect() as conn:
        stats = funnel(conn, "winter", ["hello", "value", "reminder", "last-chance"])
    assert stats["enrolled"] == 0 and stats["touches"]["hello"]["sent"] == 0


def test_an_email_rendered_for_the_sample_goes_through_smtp_without_an_unsubscribe_link(world, smtp):
    result = send_test(world, "winter", "value", "--to", "Tester@Shop.example")
    assert result.exit_code == 0, result.output
    [message] = smtp.messages
    assert message["To"] == "tester@shop.example"
    assert message["Subject"] == "راهنمای انتخاب پالتو، سارا"  # the sample contact's name
    assert message["List-Unsubscribe"] is None
    [log] = world.log()
    assert (log["event"], log["contact_id"], log["channel"]) == ("test_sent", None, "email")


def test_a_refused_test_is_logged_as_failed_and_suppresses_nobody(world, kavenegar):
    (sara,) = world.add_contacts(SARA)
    kavenegar.replies.append(Reply(200, {"return": {"status": 411, "message": "گیرنده نامعتبر"}, "entries": None}))
    result = send_test(world, "winter", "hello", "--to", "09350001122", "--as", "09121234567")
    assert isinstance(result.exception, InputError)
    assert "test of winter hello to +98935***1122 not sent (failed)" in str(result.exception)
    [log] = world.log()
    assert (log["event"], log["contact_id"]) == ("test_failed", sara)
    with world.engine.connect() as conn:
        suppressed = conn.execute(sa.text("SELECT sms_suppressed FROM contacts WHERE id = :i"), {"i": sara}).scalar()
    assert suppressed is None


@pytest.mark.parametrize("args, words", [
    (("winter", "value", "--to", "09350001122"), "is not an email address, and this touch is an email"),
    (("winter", "hello", "--to", "tester@shop.example"), "is not a phone number, and this touch is an SMS"),
    (("winter", "nope", "--to", "09350001122"), "winter has no touch 'nope' (touches: hello, value, reminder"),
    (("winter", "hello", "--to", "09350001122", "--as", "nobody@example.com"), "no contact matches"),
])
def test_bad_input_sends_and_logs_nothing(world, kavenegar, smtp, args, words):
    result = send_test(world, *args)
    assert isinstance(result.exception, InputError) and words in str(result.exception)
    assert kavenegar.requests == [] and smtp.messages == [] and world.log() == []
