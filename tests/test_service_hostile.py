"""Hostile input at the service's doors, and secrets that must never reach a page.

* Webhook bodies fuzzed with hypothesis: an unsigned body is 400 and changes nothing; a validly
  signed body of nonsense is answered 200 or 500 (so the provider retries) — never an unhandled crash.
* A full run with real secrets configured: no page, API answer, metric or error body shows one.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import os
import select
import socket
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.apikeys import create_key
from engine.models import DeliveryLog
from engine.service import create_app
from engine.service.options import ServiceOptions
from tests.faults import ANYTIME
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.service_support import (PASSWORD, SECRET, SERVICE_SETTINGS, api_client, auth, followup, free_port, stop,
                                   wait_for_server)
from tests.test_service_webhooks import MAILGUN_KEY, PROVIDERS, TWILIO_TOKEN, webhook_world

from .conftest import simple_sequence

KAVE_KEY = "KAVE-SECRET-4A6B7A5A3171523444654B6C6F4F"
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)


@pytest.fixture
def hooks_world(make_world):
    return webhook_world(make_world)[0]


def log_rows(world) -> int:
    with world.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(DeliveryLog.__table__)).scalar_one()


def strict_client(world):
    """A client that re-raises any exception the app did not turn into a response itself."""
    from fastapi.testclient import TestClient

    options = ServiceOptions(dashboard_password=PASSWORD, public_url=None)
    return TestClient(create_app(world.config, engine=world.engine, options=options), raise_server_exceptions=True)


def test_fuzzed_webhook_bodies_never_crash_and_unsigned_ones_change_nothing(hooks_world):
    client = strict_client(hooks_world)
    before = log_rows(hooks_world)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(provider=st.sampled_from(["tw", "sg", "mg"]), body=st.binary(max_size=300) | json_values.map(
        lambda v: json.dumps(v).encode()), ctype=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]))
    def unsigned(provider, body, ctype):
        response = client.post(f"/webhooks/{provider}", content=body, headers={"Content-Type": ctype})
        assert response.status_code == 400, (provider, body, response.text)
        assert "Traceback" not in response.text

    unsigned()
    assert log_rows(hooks_world) == before


def test_validly_signed_nonsense_is_200_or_500_never_a_crash(hooks_world):
    client = strict_client(hooks_world)
    before = log_rows(hooks_world)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(event_data=json_values, token=st.text(alphabet="abcdef0123456789", min_size=1, max_size=20))
    def signed(event_data, token):
        timestamp = str(int(time.time()))  # within the replay window
        token += os.urandom(8).hex()  # each token once: a reused one is refused as a replay
        signature = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
        body = json.dumps({"signature": {"timestamp": timestamp, "token": token, "signature": signature},
                           "event-data": event_data}).encode()
        response = client.post("/webhooks/mg", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code in (200, 500), response.text

    signed()
    assert log_rows(hooks_world) == before  # nonsense names no message of ours: nothing changed


def test_no_secret_reaches_a_page_an_answer_or_a_metric(make_world, monkeypatch):
    monkeypatch.setenv("KAVENEGAR_API_KEY", KAVE_KEY)

    def kavenegar(req):  # out of credit, and careless enough to echo the URL with the key in it
        return Reply(418, {"return": {"status": 418, "message": f"credit ran out for {req.path}"}, "entries": None})

    with FakeHttpServer(kavenegar) as server:
        # open all day: the tick runs on the wall clock, which may be night in Tehran or a Friday
        world = make_world([simple_sequence("drip")], settings={**SERVICE_SETTINGS, "send_window": ANYTIME, "providers": {
            "sms": [{"name": "kave", "type": "kavenegar", "api_key": "${KAVENEGAR_API_KEY}", "sender": "10004346",
                     "base_url": server.url + "/v1"},
                    {"name": "backup", "type": "memory"}],
            "email": [{"name": "mail", "type": "memory"}]}})
        (cid,) = world.add_contacts({"phone": "09121234567", "email": "sara@example.com", "first_name": "سارا"})
        world.enroll("drip", cid)
        world.tick()
    assert [m["provider"] for m in world.messages(status="sent")] == ["backup"]  # failed over: the run was real
    client, key = api_client(world)
    pages = []
    login = client.post("/login", data={"secret": PASSWORD, "next": "/dashboard"}, follow_redirects=False)
    assert login.status_code == 303
    for path in ("/dashboard", "/dashboard/log", "/dashboard/log?event=provider_paused", "/dashboard/sequences",
                 "/dashboard/contacts/09121234567", "/login"):
        response = client.get(path)
        assert response.status_code == 200, path
        pages.append((path, response.text))
    for path in ("/api/v1/contacts/09121234567/timeline", "/api/v1/sequences/drip/stats", "/metrics",
                 "/api/v1/openapi.json", "/healthz"):
        response = client.get(path, headers=auth(key))
        assert response.status_code == 200, path
        pages.append((path, response.text))
    pages.append(("bad login", client.post("/login", data={"secret": "nope"}).text))
    pages.append(("bad webhook", client.post("/webhooks/kave", content=b"{").text))
    assert any("provider_paused" in text or "paused" in text for _, text in pages)
    for secret in (KAVE_KEY, SECRET, PASSWORD, TWILIO_TOKEN, key):
        for path, text in pages:
            assert secret not in text, f"{secret[:6]}… shows on {path}"
    log_page = dict(pages)["/dashboard/log"]
    assert "+989121234567" not in log_page  # the delivery log masks numbers in its reasons


# -- body limits, the key before the body, 4xx for odd paths and bodies, log lines --------------------------

MiB = 1024 * 1024
CHUNK = 64 * 1024


def asgi_call(app, method: str, path: str, headers: dict[str, str], chunks=()) -> tuple[int, bytes, int]:
    """Send one request straight to the ASGI app, its body as ``chunks``; return (status, body, bytes the
    app pulled from the body)."""
    chunks, pulled, sent = iter(chunks), 0, []

    async def receive():
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.disconnect"}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"), pulled


def endless(total: int = 64 * MiB):
    """A body of ``total`` bytes in 64 KiB chunks, made as it is pulled."""
    return itertools.repeat(b"[" * CHUNK, total // CHUNK)


@pytest.fixture
def api_world(make_world):
    return make_world([simple_sequence("drip")], settings={**SERVICE_SETTINGS, "providers": PROVIDERS})


def test_no_key_gets_401_before_the_body_is_read_or_parsed(api_world):
    client, key = api_client(api_world)
    for headers in ({}, auth("fu_wrong"), {"Authorization": "Basic abc"}):
        response = client.post("/api/v1/contacts", content=b"{not json", headers={**headers, "Content-Type": "application/json"})
        assert response.status_code == 401, (headers, response.text)
        assert "followup apikey create" in response.json()["error"]
    status, _, pulled = asgi_call(client.app, "POST", "/api/v1/events", {"content-type": "application/json"}, endless())
    assert (status, pulled) == (401, 0)
    assert client.post("/api/v1/contacts", content=b"{not json", headers={**auth(key), "Content-Type": "application/json"}).status_code == 422


@pytest.mark.parametrize("path, limit", [("/api/v1/contacts", MiB), ("/webhooks/mg", 2 * MiB), ("/login", 16 * 1024),
                                         ("/u/sometoken", 16 * 1024)])
def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read(api_world, path, limit):
    client, key = api_client(api_world)
    headers = {**auth(key), "content-type": "application/json", "content-length": str(limit + 1)}
    status, body, pulled = asgi_call(client.app, "POST", path, headers, endless())
    assert (status, pulled) == (413, 0), body
    assert f"{limit:,} bytes" in json.loads(body)["errors"][0]["message"]
    huge = {**headers, "content-length": "9" * 5000}  # more digits than int() takes
    assert asgi_call(client.app, "POST", path, huge, endless())[::2] == (413, 0)


@pytest.mark.parametrize("path, limit, ctype", [("/api/v1/events", MiB, "application/json"),
                                                ("/webhooks/mg", 2 * MiB, "application/json"),
                                                ("/login", 16 * 1024, "application/x-www-form-urlencoded")])
def test_a_body_without_a_length_is_counted_as_it_arrives_and_never_buffered_past_the_limit(api_world, path, limit,
                                                                                             ctype):
    client, key = api_client(api_world)
    status, body, pulled = asgi_call(client.app, "POST", path, {**auth(key), "content-type": ctype}, endless(64 * MiB))
    assert status == 413, body
    assert pulled <= limit + CHUNK  # the app stopped at the first chunk past the limit, not at 64 MiB
    assert json.loads(body)["error"] == "request body too large"


def test_a_list_of_1000_events_with_every_field_at_its_longest_fits_the_api_limit(api_world):
    client, key = api_client(api_world)
    event = {"contact": "c" * 320, "type": "unsubscribed", "sequence": "s" * 100, "channel": "email",
             "value": -999999999999.99, "idempotency_key": "k" * 200}
    body = json.dumps([event] * 1000).encode()
    assert 700_000 < len(body) < MiB
    response = client.post("/api/v1/events", content=body, headers={**auth(key), "Content-Type": "application/json"})
    assert response.status_code == 422  # read, parsed and checked: no contact is called "ccc…"
    assert response.json()["errors"][-1]["field"] == "[999].contact"
    too_many = json.dumps([event] * 1500).encode()
    assert client.post("/api/v1/events", content=too_many, headers=auth(key)).status_code == 413


def test_contact_ids_that_are_not_ascii_digits_within_int64_are_404_not_500(api_world):
    client, key = api_client(api_world)
    assert client.post("/login", data={"secret": PASSWORD}, follow_redirects=False).status_code == 303
    for key_text in ("²", "٣", "1" * 30, str(2**63), "9" * 19):
        assert client.get(f"/dashboard/contacts/{key_text}").status_code == 404, key_text
        assert client.get(f"/api/v1/contacts/{key_text}/timeline", headers=auth(key)).status_code == 404, key_text


def test_a_deeply_nested_unsigned_webhook_body_is_400_not_500(api_world):
    client, key = api_client(api_world)
    nested = b"[" * 200_000 + b"]" * 200_000
    response = client.post("/webhooks/mg", content=nested, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    nested_obj = b'{"signature":' * 100_000 + b"1" + b"}" * 100_000
    assert client.post("/webhooks/mg", content=nested_obj).status_code == 400
    response = client.post("/api/v1/events", content=nested, headers={**auth(key), "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _send_chunked_until_answered(port: int, head: bytes, total: int) -> tuple[bytes, int]:
    """Send a chunked body of up to ``total`` bytes, stopping as soon as the server answers; return
    (the answer, bytes of body sent)."""
    chunk = b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK)  # blanks: a server that buffers them all answers fast
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head)
        try:
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += CHUNK
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server answered and closed while a chunk was on its way: the answer is still queued
        try:
            while data := sock.recv(65536):
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


def test_the_real_server_refuses_a_chunked_body_past_the_limit_with_its_memory_bounded(api_world):
    with api_world.engine.begin() as conn:
        key = create_key(conn, "limits")
    port = free_port()
    server = followup("serve", "--host", "127.0.0.1", "--port", str(port), config=api_world.config.dir)
    try:
        wait_for_server(f"http://127.0.0.1:{port}", server)
        before = _peak_rss(server.pid)
        head = (f"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
        answer, sent = _send_chunked_until_answered(port, head, 64 * MiB)
        grew = _peak_rss(server.pid) - before
    finally:
        stop(server)
    assert grew < 16 * MiB, f"peak memory grew by {grew / MiB:.0f} MiB"
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 64 * MiB  # answered while the body was still coming


def test_paths_cannot_forge_access_log_lines_or_send_terminal_escapes_and_every_answer_has_its_headers(api_world):
    port = free_port()
    server = followup("serve", "--host", "127.0.0.1", "--port", str(port), config=api_world.config.dir)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_server(base, server)
        answers = [httpx.get(base + path.replace(" ", "%20")) for path in (
            "/dashboard/a%0AFORGED one", "/dashboard/b%250AFORGED two", "/dashboard/c%1B%5B2J%0DFORGED three",
            "/api/v1/x%E2%80%AEFORGED four")]
        assert [a.status_code for a in answers] == [404, 404, 404, 401]
        answers += [httpx.get(base + "/healthz"),
                    httpx.post(base + "/login", content=b"x" * 20_000, headers={"Content-Type": "text/plain"})]
        assert [a.status_code for a in answers[4:]] == [200, 413]
        for answer in answers:  # every answer, refused ones too, carries the headers
            assert answer.headers["x-content-type-options"] == "nosniff", answer.headers
            assert answer.headers["x-frame-options"] == "DENY", answer.headers
    finally:
        output = stop(server)
    lines = output.splitlines()
    assert not [line for line in lines if line.startswith("FORGED")], output
    assert "\x1b" not in output and "\r" not in output and "\u202e" not in output
    assert any(r"/dashboard/a\nFORGED one" in line for line in lines), output
    assert any(r"/dashboard/b%0AFORGED two" in line for line in lines), output
    assert any(r"/dashboard/c\x1b[2J\rFORGED three" in line for line in lines), output
    assert any(r"/api/v1/x\u202eFORGED four 401" in line for line in lines), output
    assert any("POST /login 413" in line for line in lines), output


def test_service_max_body_bytes_sets_the_api_limit_and_a_bad_value_is_named(make_world, tmp_path):
    from engine.errors import ConfigError
    from engine.service.options import service_options

    world = make_world([simple_sequence("drip")], settings={**SERVICE_SETTINGS, "service": {"max_body_bytes": 4096}})
    options = service_options(world.config)
    assert options.max_body_bytes == 4096
    app = create_app(world.config, engine=world.engine, options=options)
    with world.engine.begin() as conn:
        key = create_key(conn, "small")
    headers = {**auth(key), "content-type": "application/json"}
    assert asgi_call(app, "POST", "/api/v1/events", {**headers, "content-length": "4097"}, endless())[::2] == (413, 0)
    status, _, pulled = asgi_call(app, "POST", "/api/v1/events", headers, endless())
    assert status == 413 and pulled <= 4096 + CHUNK
    with pytest.raises(ConfigError) as caught:
        make_world([simple_sequence("drip")], settings={**SERVICE_SETTINGS, "service": {"max_body_bytes": "lots"}})
    assert "service.max_body_bytes" in str(caught.value) and "at least 1024" in str(caught.value)


def test_fuzzed_contact_keys_in_paths_are_never_a_500(api_world):
    client, key = api_client(api_world)
    assert client.post("/login", data={"secret": PASSWORD}, follow_redirects=False).status_code == 303

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=st.text(min_size=1, max_size=40) | st.from_regex(r"\A[0-9]{15,40}\Z") | st.characters(categories=["Nd", "No"]))
    def paths(text):
        quoted = quote(text, safe="")
        for path in (f"/dashboard/contacts/{quoted}", f"/api/v1/contacts/{quoted}/timeline"):
            response = client.get(path, headers=auth(key))
            assert response.status_code < 500, (path, response.text)

    paths()
