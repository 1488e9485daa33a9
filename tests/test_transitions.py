"""A message's life, as engine/transitions.py declares it: read top to bottom, it is the spec."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.models import (COUNTS_AS_SENT, FINAL_STATUSES, IN_FLIGHT, LEASE_RELEASED, OPEN_STATUSES,
                           MessageStatus as S)
from engine.transitions import (ENDS_TOUCH, EVENT_FROM, EVENT_REACHES, TRANSITIONS, Event, Facts, IllegalTransition,
                                Outcome, allowed, change, log_next, scheduled_values)
from providers.base import SendResult

AT = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
LEASE = {"lease_owner": "w1", "lease_token": "t", "lease_until": AT + timedelta(minutes=5)}


def message(status: str, attempt: int = 0, **more) -> dict:
    return {"id": 7, "contact_id": 3, "sequence": "welcome", "touch": "t0", "channel": "sms", "status": status,
            "attempt": attempt, "provider": None, **more}


# -- the table ---------------------------------------------------------------------------------
def test_every_status_is_in_the_table_or_final():
    assert set(TRANSITIONS) | set(FINAL_STATUSES) == set(S)
    assert not set(TRANSITIONS) & {S.DELIVERED, S.UNDELIVERED, S.FAILED, S.SKIPPED, S.CANCELLED}


@pytest.mark.parametrize("before, after, ok", [
    ("pending", "scheduled", True),        # the previous touch ended
    ("pending", "cancelled", True),        # the contact left the sequence
    ("pending", "sending", False),         # a touch is never sent before it is due
    ("pending", "skipped", True),          # a migrated sequence passes the touch over
    ("scheduled", "sending", True),        # claimed and checked
    ("scheduled", "scheduled", True),      # deferred
    ("scheduled", "skipped", True),
    ("scheduled", "failed", True),         # its template broke
    ("scheduled", "sent", False),          # nothing is sent without `sending` committed first
    ("claimed", "scheduled", True),        # a lease taken before the checks only goes back
    ("claimed", "sending", False),
    ("sending", "sent", True), ("sending", "failed", True), ("sending", "unknown", True),
    ("sending", "scheduled", True),        # retry, deferred, released
    ("sending", "delivered", True),        # a receipt can arrive before the send is recorded
    ("sent", "delivered", True), ("sent", "undelivered", True), ("unknown", "delivered", True),
    ("sent", "scheduled", False),          # a message that went out is never sent again
    ("unknown", "scheduled", False),       # ...nor one that may have
    ("scheduled", "pending", True),        # the next touch of a requeued message waits for it again
    ("delivered", "undelivered", False), ("failed", "scheduled", False), ("cancelled", "scheduled", False),
])
def test_which_status_may_follow_which(before, after, ok):
    assert allowed(before, after) is ok


@pytest.mark.parametrize("before", ["sent", "unknown"])
def test_only_a_never_sent_on_receipt_schedules_again_a_message_that_went_out(before):
    assert allowed(before, "scheduled", "requeued")
    assert not allowed(before, "scheduled", "retry") and not allowed(before, "scheduled", "lost")


def test_the_status_groups_split_the_statuses():
    assert set(OPEN_STATUSES) | set(IN_FLIGHT) | set(FINAL_STATUSES) == {s.value for s in S}
    assert set(COUNTS_AS_SENT) == {"sending", "sent", "delivered", "undelivered", "unknown"}
    assert ENDS_TOUCH == {S.SENT, S.FAILED, S.UNKNOWN, S.SKIPPED}


# -- the checks at claim time ------------------------------------------------------------------
def test_a_due_message_that_passes_its_checks_is_sending_leased_to_its_worker_with_the_attempt_counted():
    made = change(message("scheduled", attempt=0), Outcome("sending", provider="kave"), Facts(AT, lease=LEASE))
    assert made.event == "sending" and made.provider == "kave"
    assert made.values == {"status": "sending", "attempt": 1, "sent_at": AT, "provider": "kave", **LEASE}


def test_a_send_of_an_ab_touch_keeps_the_variant_it_renders_on_the_message():
    made = change(message("scheduled"), Outcome("sending", provider="kave", variant="b"), Facts(AT, lease=LEASE))
    assert made.values["variant"] == "b" and made.values["status"] == "sending"
    plain = change(message("scheduled"), Outcome("sending", provider="kave"), Facts(AT, lease=LEASE))
    assert "variant" not in plain.values


def test_a_message_waiting_for_an_event_is_deferred_to_its_next_look():
    look = AT + timedelta(minutes=5)
    made = change(message("scheduled"), Outcome("deferred", "waiting for clicked value", until=look), Facts(AT))
    assert made.event == "deferred" and made.values["status"] == "scheduled"
    assert made.values["next_attempt_at"] == look


def test_a_message_outside_its_window_is_deferred_to_when_the_window_opens():
    opens = AT + timedelta(hours=3)
    made = change(message("scheduled"), Outcome("deferred", "outside the send window", until=opens), Facts(AT))
    assert made.event == "deferred"
    assert made.values == {"status": "scheduled", "next_attempt_at": opens, "reason": "outside the send window",
                           **LEASE_RELEASED}


@pytest.mark.parametrize("kind", ["skipped", "cancelled", "failed"])
def test_a_message_the_checks_stop_ends_with_its_reason_and_no_next_attempt(kind):
    made = change(message("scheduled"), Outcome(kind, "why"), Facts(AT))
    assert made.event == kind
    assert made.values == {"status": kind, "reason": "why", "next_attempt_at": None, **LEASE_RELEASED}


def test_a_pending_touch_becomes_due_after_the_previous_one():
    assert scheduled_values(AT) == {"status": "scheduled", "due_at": AT, "next_attempt_at": AT}


def test_an_event_wait_starts_when_due_and_is_first_claimed_at_its_first_look():
    look = timedelta(minutes=5)
    assert scheduled_values(AT, look) == {"status": "scheduled", "due_at": AT, "next_attempt_at": AT + look}


# -- what the send tells ---------------------------------------------------------------------------
def test_a_send_the_provider_took_is_sent_with_its_id_cost_and_segments_and_polled_a_minute_later():
    made = change(message("sending", attempt=1), Outcome("sent", provider="kave", result=SendResult("p-1", 120.0)),
                  Facts(AT, segments=2))
    assert made.values == {"status": "sent", "provider": "kave", "reason": None, "provider_message_id": "p-1",
                           "cost": 120.0, "segments": 2, "poll_at": AT + timedelta(minutes=1), **LEASE_RELEASED}


def test_a_permanent_failure_fails_the_touch_at_that_provider():
    made = change(message("sending", attempt=1), Outcome("failed", "recipient: bad number", "kave"), Facts(AT))
    assert made.values == {"status": "failed", "reason": "recipient: bad number", "next_attempt_at": None,
                           "provider": "kave", **LEASE_RELEASED}


@pytest.mark.parametrize("attempt, retry_after, delay", [(1, None, 60), (2, None, 120), (3, None, 240), (2, 5.0, 5)])
def test_a_transient_failure_is_tried_again_after_a_doubling_backoff_or_the_providers_retry_after(
        attempt, retry_after, delay):
    made = change(message("sending", attempt=attempt), Outcome("retry", "HTTP 503", "kave", retry_after=retry_after),
                  Facts(AT, max_attempts=5, backoff_seconds=60))
    until = AT + timedelta(seconds=delay)
    assert made.event == "retry" and made.provider == "kave"
    assert made.values == {"status": "scheduled", "next_attempt_at": until, "attempt": attempt, "sent_at": None,
                           "reason": f"HTTP 503; next attempt at {until.isoformat()}", **LEASE_RELEASED}


def test_the_last_allowed_attempt_failing_transiently_fails_the_touch():
    made = change(message("sending", attempt=5), Outcome("retry", "HTTP 503", "kave"),
                  Facts(AT, max_attempts=5, backoff_seconds=60))
    assert made.event == "failed"
    assert made.values["status"] == "failed" and made.values["reason"] == "retries exhausted after 5 attempts: HTTP 503"


def test_every_provider_paused_defers_the_send_and_gives_the_attempt_back():
    made = change(message("sending", attempt=3), Outcome("deferred", "every sms provider is paused"),
                  Facts(AT, backoff_seconds=60))
    assert made.event == "deferred"
    assert made.values["status"] == "scheduled" and made.values["attempt"] == 2
    assert made.values["next_attempt_at"] == AT + timedelta(seconds=60)


def test_a_line_outside_its_operator_hours_defers_the_send_to_when_it_opens():
    opens = AT + timedelta(hours=2)
    made = change(message("sending", attempt=1), Outcome("deferred", "operator hours", until=opens),
                  Facts(AT, backoff_seconds=60))
    assert made.event == "deferred" and made.values["attempt"] == 0 and made.values["next_attempt_at"] == opens


def test_a_send_released_by_a_stopping_worker_is_due_now_with_the_attempt_given_back():
    made = change(message("sending", attempt=3), Outcome("released", "the worker is stopping"), Facts(AT))
    assert made.event == "released"
    assert made.values == {"status": "scheduled", "next_attempt_at": AT, "attempt": 2, "sent_at": None,
                           "reason": "the worker is stopping", **LEASE_RELEASED}


def test_a_send_whose_fate_is_unknown_is_never_resent():
    made = change(message("sending", attempt=1), Outcome("unknown", "ambiguous: read timeout", "kave"), Facts(AT))
    assert made.values["status"] == "unknown" and "next_attempt_at" not in made.values


# -- recovery -------------------------------------------------------------------------------------
def test_recovery_sends_again_what_no_provider_has_keeping_the_attempt():
    made = change(message("sending", attempt=1), Outcome("lost", "w0 died; no provider has our id"), Facts(AT))
    assert made.event == "released"
    assert made.values["status"] == "scheduled" and "attempt" not in made.values and made.values["sent_at"] is None


def test_recovery_schedules_a_claimed_message_again_as_it_never_reached_a_provider():
    made = change(message("claimed", attempt=0), Outcome("released", "lease expired"), Facts(AT))
    assert made.values["status"] == "scheduled" and "attempt" not in made.values


# -- receipts -----------------------------------------------------------------------------------
@pytest.mark.parametrize("state, reason", [("delivered", "delivered to the handset"), ("undelivered", "not delivered")])
def test_a_receipt_moves_a_sent_message_to_its_final_state_and_stops_the_polling(state, reason):
    made = change(message("sent", attempt=1), Outcome(state, provider="kave"), Facts(AT))
    assert made.event == state and made.provider == "kave"
    assert made.values == {"status": state, "reason": reason, "poll_at": None}


def test_a_receipt_that_will_never_come_stops_the_polling_and_keeps_the_status():
    made = change(message("sent", attempt=1), Outcome("receipt_timeout", "no final state; it stays sent"), Facts(AT))
    assert made.event == "receipt_timeout" and made.values == {"poll_at": None}


@pytest.mark.parametrize("before", ["sent", "unknown", "sending"])
def test_a_message_accepted_and_never_sent_on_is_requeued_due_now(before):
    made = change(message(before, attempt=1, poll_at=AT), Outcome("requeued", "not sent (no credit)", "ipp"),
                  Facts(AT))
    assert made.event == "requeued" and made.provider == "ipp"
    assert made.values == {"status": "scheduled", "next_attempt_at": AT, "sent_at": None, "poll_at": None,
                           "reason": "not sent (no credit)", **LEASE_RELEASED}


def test_a_touch_a_migrated_sequence_moves_becomes_due_at_its_new_time():
    due = AT + timedelta(days=1)
    made = change(message("pending"), Outcome("due", "due tomorrow", until=due), Facts(AT))
    assert made.event == "scheduled"
    assert made.values == {"status": "scheduled", "due_at": due, "next_attempt_at": due, "reason": "due tomorrow"}


def test_the_touch_after_a_requeued_one_waits_for_it_again():
    made = change(message("scheduled", due_at=AT), Outcome("pending", "waits for t0 again"), Facts(AT))
    assert made.event == "pending"
    assert made.values == {"status": "pending", "due_at": None, "next_attempt_at": None,
                           "reason": "waits for t0 again"}


# -- what is never allowed ------------------------------------------------------------------------
@pytest.mark.parametrize("status, outcome", [
    ("sent", Outcome("sending")),           # a second send of a message that went out
    ("delivered", Outcome("undelivered")),  # a final state moving on
    ("pending", Outcome("sent")),
    ("unknown", Outcome("retry", "x")),
    ("sent", Outcome("lost", "x")),         # recovery never sends again what went out
    ("delivered", Outcome("requeued", "x")),  # a receipt after the final one
])
def test_an_outcome_the_table_does_not_allow_is_refused(status, outcome):
    with pytest.raises(IllegalTransition, match=f"{status} →"):
        change(message(status, attempt=1), outcome, Facts(AT, max_attempts=5))


# -- the delivery log's order, derived from the table ------------------------------------------------
#: an outcome that logs each event (``scheduled`` is a pending touch becoming due)
_MAKES = {"scheduled": "due", "released": "released"}


@pytest.mark.parametrize("event", list(Event))
def test_each_event_is_logged_from_the_statuses_declared_and_reaches_its_status(event):
    for status in EVENT_FROM[event]:
        kind = _MAKES.get(event.value, event.value)
        outcome = Outcome(kind, "why", provider="p", until=AT + timedelta(hours=1), result=SendResult("id-1"))
        made = change(message(status.value, attempt=1), outcome, Facts(AT, max_attempts=3))
        assert made.event == event.value
        assert made.values.get("status", status.value) == EVENT_REACHES[event]


def test_a_log_begins_due_or_waiting_and_goes_on_as_the_table_allows():
    assert log_next(None) == {"scheduled", "pending"}
    assert log_next("pending") == {"scheduled", "cancelled", "skipped"}
    ready = {"sending", "deferred", "cancelled", "skipped", "failed", "released", "pending"}
    for event in ("scheduled", "deferred", "retry", "released", "requeued"):  # scheduled again, or claimed unlogged
        assert log_next(event) == ready
    assert log_next("sending") == {"sent", "failed", "unknown", "retry", "deferred", "released", "delivered",
                                   "undelivered"}
    assert log_next("sent") == {"delivered", "undelivered", "receipt_timeout", "requeued"}
    assert log_next("receipt_timeout") == {"delivered", "undelivered", "requeued"}  # the polling stops once
    assert log_next("unknown") == {"delivered", "undelivered", "requeued"}
    for final in ("delivered", "undelivered", "failed", "skipped", "cancelled"):
        assert log_next(final) == set()


def test_the_fault_audit_checks_the_log_against_the_engines_table_not_a_copy():
    from bench.faults import ALLOWED_NEXT

    assert ALLOWED_NEXT == {e: log_next(e) for e in (None, *(event.value for event in Event))}
    assert "sending" not in ALLOWED_NEXT["sent"] and "scheduled" not in ALLOWED_NEXT["sending"]  # never backwards
