"""A webhook receiver on 127.0.0.1 that verifies with the ``standardwebhooks`` package and drops repeats by id.

    with Receiver(SECRET) as hooks:
        hooks.url             # where to point settings' webhooks at
        hooks.accepted        # bodies of the events taken, first time each, in arrival order
        hooks.fail = 503      # answer every request with this status (None: 204)
        hooks.fail_contacts   # contact ids whose events are answered 503
        hooks.gather = threading.Barrier(4)   # the next 4 requests are answered only once all 4 have come

Fixtures (import them into a test module): ``webhook_secret`` (autouse: sets ``CRM_WEBHOOK_SECRET``) and
``receiver``.
"""
from __future__ import annotations

import base64
import threading

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.fakes.httpserver import FakeHttpServer, Reply, Request

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


class Receiver:
    """Verifies every request; keeps the first delivery of each ``webhook-id``."""

    def __init__(self, secret: str = SECRET):
        self.verifier = Webhook(secret)
        self.seen: set[str] = set()
        self.accepted: list[dict] = []
        self.repeats: list[str] = []
        self.rejected: list[str] = []
        self.fail: int | None = None
        self.fail_contacts: set[int] = set()
        self.gather: threading.Barrier | None = None
        #: the contacts of the requests that met at ``gather``
        self.gathered: list[int | None] = []
        #: set: the next request is taken, but its answer waits until ``release`` is set (a crash test kills the
        #: sender meanwhile)
        self.hold = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()
        self.held_id: str | None = None
        #: set: ``release`` is set once this many events have been accepted
        self.release_after: int | None = None
        self._lock = threading.Lock()
        self.server = FakeHttpServer(self._handle)

    def _handle(self, req: Request) -> Reply:
        with self._lock:
            held = self.hold.is_set()
            self.hold.clear()
            gather = self.gather
            if gather is not None:
                self.gathered.append((req.json.get("data", {}).get("contact") or {}).get("id"))
                if len(self.gathered) == gather.parties:
                    self.gather = None
        if gather is not None:
            gather.wait(30)  # broken (an error in the test) when fewer requests come at once
        reply = self._take(req)
        if held:  # taken, but the answer waits: the sender is killed before it reads it
            self.held_id = {k.lower(): v for k, v in req.headers.items()}["webhook-id"]
            self.holding.set()
            self.release.wait(30)
        return reply

    def _take(self, req: Request) -> Reply:
        if self.fail is not None:
            return Reply(self.fail)
        try:
            body = self.verifier.verify(req.body, req.headers)
        except WebhookVerificationError as err:
            self.rejected.append(str(err))
            return Reply(400, "bad signature")
        if (body["data"].get("contact") or {}).get("id") in self.fail_contacts:
            return Reply(503)
        event_id = {k.lower(): v for k, v in req.headers.items()}["webhook-id"]
        assert body["id"] == event_id
        with self._lock:
            if event_id in self.seen:
                self.repeats.append(event_id)
            else:
                self.seen.add(event_id)
                self.accepted.append(body)
                if self.release_after is not None and len(self.accepted) >= self.release_after:
                    self.release.set()
        return Reply(204)

    @property
    def url(self) -> str:
        return self.server.url + "/hooks/followup"

    def __enter__(self) -> "Receiver":
        self.server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.__exit__(*exc)


@pytest.fixture(autouse=True)
def webhook_secret(monkeypatch):
    """The secret the settings of :func:`settings_for` read (autouse where imported)."""
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", SECRET)


@pytest.fixture
def receiver():
    """A :class:`Receiver`, running."""
    with Receiver() as hooks:
        yield hooks


def settings_for(url: str, events=("converted", "replied", "unsubscribed", "clicked")) -> dict:
    return {"webhooks": [{"url": url, "events": list(events), "secret": "${CRM_WEBHOOK_SECRET}"}]}


def bodies(receiver: Receiver) -> list[tuple[str, int]]:
    return [(b["type"], b["data"]["contact"]["id"]) for b in receiver.accepted]


__all__ = ["Receiver", "SECRET", "settings_for", "bodies", "webhook_secret", "receiver"]
