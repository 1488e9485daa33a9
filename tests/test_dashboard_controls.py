"""The dashboard's buttons: pause, resume, stop (after a confirmation) a sequence, unenroll a contact.

Each is a POST form with the session's CSRF token: a form without it, with a wrong one, with another
session's, or posted from another site is refused (403) and changes nothing. The flow is also clicked
through in a real headless Chromium.
"""
from __future__ import annotations

import os
import re
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from freezegun import freeze_time

from engine.models import Enrollment, Message, SequenceState
from engine.service import create_app
from engine.service.options import ServiceOptions
from tests.conftest import simple_sequence
from tests.service_support import PASSWORD, SERVICE_SETTINGS

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@pytest.fixture
def world(make_world):
    world = make_world([simple_sequence("drip"), simple_sequence("news")], settings=SERVICE_SETTINGS)
    with freeze_time("2026-12-05 06:30:00", tz_offset=0):
        ids = world.add_contacts({"phone": "09121111111", "first_name": "سارا"},
                                 {"phone": "09122222222", "first_name": "Reza"})
        world.enroll("drip", *ids)
        world.enroll("news", ids[0])
    world.ids = ids
    return world


def client_for(world) -> TestClient:
    options = ServiceOptions(dashboard_password=PASSWORD, public_url=None)
    return TestClient(create_app(world.config, engine=world.engine, options=options), raise_server_exceptions=False)


def logged_in(world) -> tuple[TestClient, str]:
    """A client with a dashboard session, and the CSRF token its sequences page carries."""
    client = client_for(world)
    assert client.post("/login", data={"secret": PASSWORD}, follow_redirects=False).status_code == 303
    page = client.get("/dashboard/sequences")
    assert page.status_code == 200
    return client, CSRF.search(page.text).group(1)


def state(world, name: str) -> str | None:
    table = SequenceState.__table__
    with world.engine.connect() as conn:
        return conn.execute(sa.select(table.c.state).where(table.c.name == name)).scalar()


def statuses(world, sequence: str) -> list[str]:
    table = Enrollment.__table__
    with world.engine.connect() as conn:
        return list(conn.execute(sa.select(table.c.status).where(table.c.sequence == sequence)
                                 .order_by(table.c.id)).scalars())


def test_pause_and_resume_buttons_change_the_state_and_say_so(world):
    client, token = logged_in(world)
    page = client.get("/dashboard/sequences")
    assert 'action="/dashboard/sequences/drip/pause"' in page.text and 'href="/dashboard/sequences/drip/stop"' in page.text
    paused = client.post("/dashboard/sequences/drip/pause", data={"csrf": token}, follow_redirects=False)
    assert paused.status_code == 303 and paused.headers["location"].startswith("/dashboard/sequences?notice=pause")
    assert state(world, "drip") == "paused" and state(world, "news") is None
    shown = client.get(paused.headers["location"])
    assert "drip is paused" in shown.text and 'action="/dashboard/sequences/drip/resume"' in shown.text
    assert client.post("/dashboard/sequences/drip/resume", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert state(world, "drip") is None


@pytest.mark.parametrize("form, headers", [
    ({}, {}),                                              # no token
    ({"csrf": "0" * 64}, {}),                              # a wrong one
    ({"csrf": "TOKEN"}, {"Sec-Fetch-Site": "cross-site"}),  # the right one, from another site
    ({"csrf": "TOKEN"}, {"Origin": "https://evil.example"}),
])
def test_an_action_without_the_right_token_or_from_another_site_is_refused(world, form, headers):
    client, token = logged_in(world)
    data = {k: token if v == "TOKEN" else v for k, v in form.items()}
    for path, extra in (("/dashboard/sequences/drip/pause", {}), ("/dashboard/sequences/drip/stop", {"confirm": "drip"}),
                        (f"/dashboard/contacts/{world.ids[0]}/unenroll", {"sequence": "drip"})):
        refused = client.post(path, data={**data, **extra}, headers=headers, follow_redirects=False)
        assert refused.status_code == 403, (path, refused.text)
    assert state(world, "drip") is None and statuses(world, "drip") == ["active", "active"]


def test_another_sessions_token_is_refused(world):
    client, _ = logged_in(world)
    _, other_token = logged_in(world)
    refused = client.post("/dashboard/sequences/drip/pause", data={"csrf": other_token}, follow_redirects=False)
    assert refused.status_code == 403 and state(world, "drip") is None


def test_an_api_key_without_a_session_cannot_use_the_forms(world):
    from engine.apikeys import create_key

    with world.engine.begin() as conn:
        key = create_key(conn, "ops")
    client = client_for(world)
    refused = client.post("/dashboard/sequences/drip/pause", data={"csrf": ""},
                          headers={"Authorization": f"Bearer {key}"}, follow_redirects=False)
    assert refused.status_code == 403 and state(world, "drip") is None


def test_stop_asks_first_and_only_the_confirmation_stops(world):
    client, token = logged_in(world)
    unconfirmed = client.post("/dashboard/sequences/drip/stop", data={"csrf": token}, follow_redirects=False)
    assert unconfirmed.status_code == 400 and state(world, "drip") is None
    confirm = client.get("/dashboard/sequences/drip/stop")
    assert confirm.status_code == 200
    assert "2 active enrollment(s) end as stopped" in confirm.text and 'name="confirm" value="drip"' in confirm.text
    assert statuses(world, "drip") == ["active", "active"]  # the GET changed nothing
    done = client.post("/dashboard/sequences/drip/stop", data={"csrf": CSRF.search(confirm.text).group(1),
                                                               "confirm": "drip"}, follow_redirects=False)
    assert done.status_code == 303 and state(world, "drip") == "stopped"
    assert statuses(world, "drip") == ["stopped", "stopped"] and statuses(world, "news") == ["active"]
    with world.engine.connect() as conn:
        table = Message.__table__
        assert set(conn.execute(sa.select(table.c.status, table.c.reason).where(table.c.sequence == "drip"))) == {
            ("cancelled", "sequence stopped")}
    # stopping it twice, or pausing it now, is refused with the reason, not a 500
    again = client.post("/dashboard/sequences/drip/pause", data={"csrf": token}, follow_redirects=False)
    assert again.status_code == 409 and "is stopped" in again.text


def test_unknown_sequence_action_or_contact_is_a_404(world):
    client, token = logged_in(world)
    assert client.get("/dashboard/sequences/nope/stop").status_code == 404
    assert client.post("/dashboard/sequences/nope/pause", data={"csrf": token}).status_code == 404
    assert client.post("/dashboard/sequences/drip/explode", data={"csrf": token}).status_code == 404
    assert client.post("/dashboard/contacts/999999/unenroll", data={"csrf": token, "sequence": "drip"}).status_code == 404
    assert client.post("/dashboard/contacts/99999999999/unenroll", data={"csrf": token, "sequence": "drip"}).status_code in (404, 422)


def test_the_unenroll_button_on_a_contact_ends_only_that_enrollment(world):
    client, _ = logged_in(world)
    sara = world.ids[0]
    page = client.get(f"/dashboard/contacts/{sara}")
    assert page.text.count('class="unenroll"') == 2  # drip and news
    token = CSRF.search(page.text).group(1)
    done = client.post(f"/dashboard/contacts/{sara}/unenroll", data={"csrf": token, "sequence": "news"},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/dashboard/contacts/{sara}"
    assert statuses(world, "news") == ["unenrolled"] and statuses(world, "drip") == ["active", "active"]
    again = client.post(f"/dashboard/contacts/{sara}/unenroll", data={"csrf": token, "sequence": "news"})
    assert again.status_code == 409


def test_a_logged_out_browser_is_sent_to_login(world):
    refused = client_for(world).post("/dashboard/sequences/drip/pause", data={"csrf": "x"}, follow_redirects=False)
    assert refused.status_code in (303, 307) and "/login" in refused.headers["location"]
    assert state(world, "drip") is None


# -- in a real browser ----------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"


@pytest.mark.slow
@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} is missing: run tests/setup_chromium.sh")
def test_pause_resume_stop_and_unenroll_in_chromium(world, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.service_support import followup, free_port, stop, wait_for_server
    from tests.test_service_dashboard import FLAGS

    port = free_port()
    server = followup("serve", "--port", str(port), config=world.config.dir)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(base, server)
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                            headless=True, args=FLAGS)
            page = context.new_page()
            page.set_default_timeout(10_000)
            page.goto(base + "/dashboard/sequences?lang=en")
            page.fill("input[name=secret]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/dashboard/sequences**")
            page.goto(base + "/dashboard/lang/en?next=/dashboard/sequences")
            page.click("#ctl-drip button[value=pause]")
            page.wait_for_selector("#notice")
            assert "drip is paused" in page.locator("#notice").inner_text()
            assert page.locator("#ctl-drip .state-paused").count() == 1
            page.click("#ctl-drip button[value=resume]")
            page.wait_for_selector("#ctl-drip .state-active")
            page.click("#ctl-drip a.danger")
            page.wait_for_selector("#confirm-stop")
            assert state(world, "drip") is None  # the confirmation page changed nothing
            page.click("#confirm-stop button")
            page.wait_for_selector("#ctl-drip .state-stopped")
            assert statuses(world, "drip") == ["stopped", "stopped"]
            page.goto(f"{base}/dashboard/contacts/{world.ids[0]}")
            page.click("form.unenroll button")
            page.wait_for_url(f"**/dashboard/contacts/{world.ids[0]}")
            assert statuses(world, "news") == ["unenrolled"]
            assert page.locator("form.unenroll").count() == 0
            context.close()
    finally:
        stop(server)
