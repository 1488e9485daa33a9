"""SmtpProvider against a real aiosmtpd server on 127.0.0.1."""
from __future__ import annotations

import shutil
import ssl
import subprocess
import threading

import pytest

from providers import (
    AmbiguousSendError,
    OutgoingMessage,
    PermanentContentError,
    PermanentRecipientError,
    ProviderBlockedError,
    ProviderConfigError,
    TransientError,
    create_provider,
)
from tests.fakes.smtpserver import FakeSmtpServer, free_port

PASSWORD = "s3cret-smtp-password-xyz"


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (cert file, key file)."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


@pytest.fixture
def server_tls(cert):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert)
    return context


def make(port, **settings):
    base = {"name": "smtp-test", "type": "smtp", "host": "127.0.0.1", "port": port,
            "from": "Shop <news@shop.example>", "timeout": 2, "local_hostname": "client.test"}
    return create_provider({**base, **settings})


def msg(n=1, **kw):
    fields = {"message_id": f"m{n}", "channel": "email", "to": f"user{n}@example.org", "subject": f"Hello {n}",
              "text": f"Plain body {n} — سلام"}
    return OutgoingMessage(**{**fields, **kw})


@pytest.fixture
def server():
    with FakeSmtpServer() as srv:
        yield srv


@pytest.fixture
def provider(server):
    p = make(server.port)
    yield p
    p.close()


def test_many_messages_share_one_connection(server, provider):
    results = [provider.send(msg(n)) for n in range(5)]
    assert server.connections == 1
    assert [m["To"] for m in server.messages] == [f"user{n}@example.org" for n in range(5)]
    assert [r.provider_message_id for r in results] == [f"<m{n}@shop.example>" for n in range(5)]
    assert server.envelopes[0].mail_from == "news@shop.example"


def test_recycles_after_max_messages_per_connection(server):
    p = make(server.port, max_messages_per_connection=2)
    for n in range(5):
        p.send(msg(n))
    p.close()
    assert server.connections == 3
    assert len(server.messages) == 5


def test_one_connection_per_thread(server, provider):
    def work(start):
        for n in range(start, start + 3):
            provider.send(msg(n))

    threads = [threading.Thread(target=work, args=(i * 10,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(server.messages) == 6
    assert server.connections == 2


def test_reconnects_when_the_server_closed_an_idle_connection(server, provider):
    provider.send(msg(1))
    server.drop_connections()
    provider.send(msg(2))
    assert len(server.messages) == 2
    assert server.connections == 2


def test_mime_message_has_headers_and_html_alternative(server, provider):
    headers = {"List-Unsubscribe": "<https://shop.example/u/tok>, <mailto:unsub+tok@shop.example>",
               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    provider.send(msg(7, html="<p>Hi <b>there</b></p>", headers=headers))
    got = server.messages[0]
    assert got["Message-ID"] == "<m7@shop.example>"
    assert got["Subject"] == "Hello 7"
    assert got["From"] == "Shop <news@shop.example>"
    assert got["List-Unsubscribe"].strip() == headers["List-Unsubscribe"]
    assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert got.get_content_type() == "multipart/alternative"
    assert got.get_body(("plain",)).get_content().strip() == "Plain body 7 — سلام"
    assert got.get_body(("html",)).get_content().strip() == "<p>Hi <b>there</b></p>"
    assert all(b < 128 for b in server.envelopes[0].original_content)  # 7-bit safe on the wire


def test_header_with_a_line_break_is_refused_as_content(server, provider):
    with pytest.raises(PermanentContentError):
        provider.send(msg(1, headers={"X-Bad": "a\r\nBcc: victim@example.org"}))
    assert server.messages == []


def test_unsubscribe_headers_built_from_metadata(server, provider):
    provider.send(msg(8, metadata={"unsubscribe_url": "https://shop.example/u/abc",
                                   "unsubscribe_mailto": "unsub+abc@shop.example"}))
    got = server.messages[0]
    assert got["List-Unsubscribe"].strip() == "<https://shop.example/u/abc>, <mailto:unsub+abc@shop.example>"
    assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert got.get_content_type() == "text/plain"


def test_mailto_only_unsubscribe_has_no_one_click_header(server, provider):
    provider.send(msg(9, metadata={"unsubscribe_mailto": "mailto:unsub@shop.example"}))
    got = server.messages[0]
    assert got["List-Unsubscribe"].strip() == "<mailto:unsub@shop.example>"
    assert got["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize("where", ["rcpt", "data"])
def test_4xx_is_transient_then_retry_succeeds_on_the_same_connection(server, provider, where):
    (server.rcpt_replies if where == "rcpt" else server.data_replies).append("451 4.3.0 try again later")
    with pytest.raises(TransientError) as info:
        provider.send(msg(1))
    assert type(info.value) is TransientError and info.value.code == "451"
    provider.send(msg(1))
    assert len(server.messages) == 1
    assert server.connections == 1


@pytest.mark.parametrize("where, reply, error", [
    ("rcpt", "550 5.1.1 no such user", PermanentRecipientError),
    ("rcpt", "553 5.1.3 bad address", PermanentRecipientError),
    ("data", "554 5.7.1 message refused as spam", PermanentContentError),
    ("data", "552 5.3.4 message too big", PermanentContentError),
])
def test_5xx_mapping(server, provider, where, reply, error):
    (server.rcpt_replies if where == "rcpt" else server.data_replies).append(reply)
    with pytest.raises(error) as info:
        provider.send(msg(1))
    assert info.value.code == reply[:3]
    provider.send(msg(2))  # the connection was reset and stays usable
    assert server.connections == 1


@pytest.mark.parametrize("action", ["drop", "wait"])
def test_disconnect_or_timeout_after_data_is_ambiguous(server, action):
    p = make(server.port, timeout=0.3)
    server.data_actions.append(action)
    with pytest.raises(AmbiguousSendError):
        p.send(msg(1))
    p.send(msg(2))  # a fresh connection afterwards
    p.close()
    assert server.connections == 2


def test_connection_refused_is_transient():
    p = make(free_port())
    with pytest.raises(TransientError) as info:
        p.send(msg(1))
    assert type(info.value) is TransientError
    assert p.check().ok is False


def test_starttls_with_login(cert, server_tls):
    with FakeSmtpServer(starttls=server_tls, users={"user": PASSWORD}) as srv:
        p = make(srv.port, starttls=True, ca_file=str(cert[0]), username="user", password=PASSWORD)
        for n in range(3):
            p.send(msg(n))
        assert p.check().ok is True
        p.close()
        assert len(srv.messages) == 3
        assert srv.connections == 1


def test_starttls_rejects_an_untrusted_certificate(server_tls):
    with FakeSmtpServer(starttls=server_tls) as srv:
        p = make(srv.port, starttls=True)  # no ca_file: the self-signed certificate is not trusted
        with pytest.raises(ProviderBlockedError):
            p.send(msg(1))
        assert srv.messages == []


def test_implicit_tls(cert, server_tls):
    with FakeSmtpServer(implicit_tls=server_tls, users={"user": PASSWORD}) as srv:
        p = make(srv.port, ssl=True, ca_file=str(cert[0]), username="user", password=PASSWORD)
        p.send(msg(1))
        p.close()
        assert len(srv.messages) == 1


def test_auth_failure_is_provider_blocked_and_hides_the_password(cert, server_tls):
    wrong = "wrong-password-abcdef"
    with FakeSmtpServer(starttls=server_tls, users={"user": PASSWORD}) as srv:
        p = make(srv.port, starttls=True, ca_file=str(cert[0]), username="user", password=wrong)
        with pytest.raises(ProviderBlockedError) as info:
            p.send(msg(1))
        assert info.value.code == "535"
        state = p.check()
        assert state.ok is False and "535" in state.detail
        for text in (str(info.value), repr(info.value), repr(p), state.detail):
            assert wrong not in text
        assert srv.messages == []


def test_sender_refused_5xx_blocks_the_provider(server):
    p = make(server.port, **{"from": "news@shop.example"})
    server.rcpt_replies.clear()

    async def refuse(*args):
        return "550 5.7.1 sender not allowed"

    server.handle_MAIL = refuse
    with pytest.raises(ProviderBlockedError) as info:
        p.send(msg(1))
    assert info.value.code == "550"


@pytest.mark.parametrize("settings, key", [
    ({"starttls": True, "ssl": True}, "ssl"),
    ({"from": "not an address"}, "from"),
    ({"max_messages_per_connection": 0}, "max_messages_per_connection"),
    ({"api_key": "x"}, "api_key"),
])
def test_bad_settings_fail_at_start_up(settings, key):
    with pytest.raises(ProviderConfigError) as info:
        make(25, **settings)
    assert info.value.key == key
