"""The store: SQLModel tables. SQLite by default, the same schema on PostgreSQL.

Every datetime is stored as UTC (``DateTime(timezone=True)``; SQLite gives it back naive,
:func:`engine.clock.to_utc` puts the zone back). Status values are ``str`` enums, stored as text.
"""
from __future__ import annotations

import enum
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .fields import MAX_ATTR_VALUE

__all__ = [
    "MessageStatus", "EnrollmentStatus", "Contact", "SequenceVersion", "Offer", "Enrollment",
    "Message", "DeliveryLog", "ContactEvent", "ProviderState", "WorkerStatus", "metadata",
    "OPEN_STATUSES", "IN_FLIGHT", "FINAL_STATUSES", "COUNTS_AS_SENT", "ACCEPTED", "RECEIPT_FROM", "status_is", "ERROR_EVENTS",
]


def _partial(name: str, *columns: str, where: str) -> sa.Index:
    return sa.Index(name, *columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def _ts(**kw: Any) -> Any:
    return Field(sa_type=sa.DateTime(timezone=True), **kw)


class MessageStatus(str, enum.Enum):
    """Where a message stands. :mod:`engine.transitions` declares the moves between them."""

    PENDING = "pending"          # waits for the previous touch; no due time yet
    SCHEDULED = "scheduled"      # due at next_attempt_at
    CLAIMED = "claimed"          # leased before its checks; recovery schedules it again
    SENDING = "sending"          # the provider is being called; fate unknown until recorded
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"          # the provider may or may not have it; never resent blindly


_S = MessageStatus
#: the status groups, as the stored strings
#: not sent yet: waiting for the previous touch, or due
OPEN_STATUSES = (_S.PENDING.value, _S.SCHEDULED.value)
#: leased to a worker that is checking or sending it
IN_FLIGHT = (_S.CLAIMED.value, _S.SENDING.value)
#: nothing more is tried for it (a receipt may still move sent or unknown on)
FINAL_STATUSES = tuple(s.value for s in MessageStatus if s.value not in OPEN_STATUSES + IN_FLIGHT)
#: count toward the frequency cap: the message left, or may have
COUNTS_AS_SENT = (_S.SENDING.value, _S.SENT.value, _S.DELIVERED.value, _S.UNDELIVERED.value, _S.UNKNOWN.value)
#: the funnel's "sent": accepted by a provider
ACCEPTED = (_S.SENT.value, _S.DELIVERED.value, _S.UNDELIVERED.value)
#: a receipt may move these on (one can arrive before the send is recorded)
RECEIPT_FROM = (_S.SENT.value, _S.UNKNOWN.value, _S.SENDING.value)
#: the lease columns of a message no worker holds any more
LEASE_RELEASED = MappingProxyType({"lease_owner": None, "lease_token": None, "lease_until": None})


class EnrollmentStatus(str, enum.Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CONVERTED = "converted"
    REPLIED = "replied"
    UNSUBSCRIBED = "unsubscribed"
    EXITED = "exited"            # an exit_on event other than the ones above (e.g. order_placed) arrived
    STOPPED = "stopped"          # the whole sequence was stopped (`followup sequences stop`)
    UNENROLLED = "unenrolled"    # taken out by hand (`followup sequences unenroll`)
    HANDED_OFF = "handed_off"    # its handoff rule fired: the lead went to a sales rep (see :mod:`engine.handoff`)


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"

    id: Optional[int] = Field(default=None, primary_key=True)
    external_id: Optional[str] = Field(default=None, sa_column_kwargs={"unique": True}, max_length=200)
    phone: Optional[str] = Field(default=None, sa_column_kwargs={"unique": True}, max_length=20)
    email: Optional[str] = Field(default=None, sa_column_kwargs={"unique": True}, max_length=320)
    first_name: str = Field(default="", max_length=200)
    last_name: str = Field(default="", max_length=200)
    timezone: Optional[str] = Field(default=None, max_length=64)
    locale: Optional[str] = Field(default=None, max_length=8)
    #: ";a;b;" so a tag matches with LIKE '%;a;%'
    tags: str = Field(default="", max_length=2000)
    attrs: dict = Field(default_factory=dict, sa_type=sa.JSON)
    sms_suppressed: Optional[str] = Field(default=None, max_length=200)
    email_suppressed: Optional[str] = Field(default=None, max_length=200)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    #: the lead score as of ``score_at`` (see :mod:`engine.scoring`); it halves every ``scoring.half_life``
    score: Optional[float] = None
    score_at: Optional[datetime] = _ts(default=None)


class SequenceVersion(SQLModel, table=True):
    """A sequence as it was when contacts enrolled: enrollments keep following their version."""

    __tablename__ = "sequence_versions"

    hash: str = Field(primary_key=True, max_length=64)
    name: str = Field(index=True, max_length=100)
    definition: str = Field(sa_type=sa.Text)
    file: str = Field(default="", max_length=500)
    loaded_at: datetime = _ts()


class Offer(SQLModel, table=True):
    """A real offer: stock counts down on each conversion so templates always show the true number."""

    __tablename__ = "offers"
    __table_args__ = (sa.UniqueConstraint("sequence", "code"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    sequence: str = Field(max_length=100)
    code: str = Field(max_length=100, index=True)
    title: str = Field(default="", max_length=300)
    stock: Optional[int] = None
    redeemed: int = 0
    expires_at: Optional[datetime] = _ts(default=None)


#: the predicates of the enrollments' two partial unique indexes (an insert's ON CONFLICT names the same)
ACTIVE_UNKEYED = "status = 'active' AND event_key IS NULL"
KEYED = "event_key IS NOT NULL"


class Enrollment(SQLModel, table=True):
    __tablename__ = "enrollments"
    __table_args__ = (
        # one active enrollment per contact and sequence, among those no event key started
        sa.Index("uq_enrollment_active", "contact_id", "sequence", unique=True,
                 sqlite_where=sa.text(ACTIVE_UNKEYED), postgresql_where=sa.text(ACTIVE_UNKEYED)),
        # one run per contact, sequence and event key (a cart), whatever became of it
        sa.Index("uq_enrollment_event_key", "contact_id", "sequence", "event_key", unique=True,
                 sqlite_where=sa.text(KEYED), postgresql_where=sa.text(KEYED)),
        # the runs of a KPI window (PostgreSQL: their sequence, contact and source from the index); a sequence's
        # enrolled and converted counts from the index alone
        sa.Index("ix_enrollments_enrolled_at", "enrolled_at", postgresql_include=["sequence", "contact_id", "source"]),
        sa.Index("ix_enrollments_sequence_status", "sequence", "status"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    sequence: str = Field(max_length=100, index=True)
    sequence_hash: str = Field(max_length=64)
    status: str = Field(default=EnrollmentStatus.ACTIVE.value, max_length=20)
    ended_reason: Optional[str] = Field(default=None, max_length=300)
    enrolled_at: datetime = _ts()
    ended_at: Optional[datetime] = _ts(default=None)
    offer_code: Optional[str] = Field(default=None, max_length=100)
    #: frozen at enrollment: editing expires_after later never extends what a contact was told
    offer_expires_at: Optional[datetime] = _ts(default=None)
    #: the key of the event that started this run (a cart id): one run per key (see :mod:`engine.triggers`)
    event_key: Optional[str] = Field(default=None, max_length=200)
    #: that event's data, frozen as it arrived: templates read it as ``event.data``
    event_data: Optional[dict] = Field(default=None, sa_type=sa.JSON)
    #: PostgreSQL (kept by triggers, migration ``0023_run_marks``; NULL on SQLite): when the run's first message
    #: that counts as sent went out, and a person's first click on one of its messages (the funnel per sequence)
    first_sent_at: Optional[datetime] = _ts(default=None)
    first_clicked_at: Optional[datetime] = _ts(default=None)
    #: the contact's source (its ``source`` attribute, else its ``utm_source``), kept in step with the contact
    #: (:mod:`engine.store.sources`): the reports by source read it instead of the contacts
    source: Optional[str] = Field(default=None, max_length=MAX_ATTR_VALUE)


class Message(SQLModel, table=True):
    """One touch for one enrollment. ``next_attempt_at`` is what the claim query orders by."""

    __tablename__ = "messages"
    __table_args__ = (
        # partial indexes: each holds only the rows its query looks for, so a status change that
        # leaves them costs nothing there (queries must compare status with a literal to use them)
        _partial("ix_messages_due", "next_attempt_at", "due_at", where="status = 'scheduled'"),
        _partial("ix_messages_lease", "lease_until", where="status IN ('claimed', 'sending')"),
        _partial("ix_messages_poll", "poll_at", where="status = 'sent' AND poll_at IS NOT NULL"),
        _partial("ix_messages_contact_sent", "contact_id", "sent_at", where="sent_at IS NOT NULL"),
        _partial("ix_messages_provider_id", "provider_message_id", where="provider_message_id IS NOT NULL"),
        sa.Index("ix_messages_enrollment", "enrollment_id", "touch_index", unique=True),
        # a sequence's funnel per touch on SQLite, from the index alone (PostgreSQL: ``sequence_counts``)
        sa.Index("ix_messages_sequence_touch", "sequence", "touch", "status"),
        # the sends of a KPI window, its days and its funnels by touch from the index alone (PostgreSQL: by
        # provider, contact and source too)
        sa.Index("ix_messages_sent_at", "sent_at", "status", "sequence", "touch",
                 sqlite_where=sa.text("sent_at IS NOT NULL"), postgresql_where=sa.text("sent_at IS NOT NULL"),
                 postgresql_include=["provider", "channel", "segments", "contact_id", "id", "source"]),
        # the sends whose source is too long for the kept counts by source (engine.store.buckets.SOURCED)
        _partial("ix_messages_long_source", "sent_at", where="length(source) > 100"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    enrollment_id: int = Field(foreign_key="enrollments.id")
    contact_id: int = Field(foreign_key="contacts.id")
    sequence: str = Field(max_length=100)
    touch_index: int
    touch: str = Field(max_length=100)
    channel: str = Field(max_length=10)
    urgent: bool = False
    status: str = Field(default=MessageStatus.PENDING.value, max_length=20)
    due_at: Optional[datetime] = _ts(default=None)
    next_attempt_at: Optional[datetime] = _ts(default=None)
    attempt: int = 0
    lease_owner: Optional[str] = Field(default=None, max_length=100)
    lease_token: Optional[str] = Field(default=None, max_length=40)
    lease_until: Optional[datetime] = _ts(default=None)
    provider: Optional[str] = Field(default=None, max_length=100)
    provider_message_id: Optional[str] = Field(default=None, max_length=200)
    sent_at: Optional[datetime] = _ts(default=None)  # when the attempt went to the provider (set as it is claimed)
    reason: Optional[str] = Field(default=None, max_length=500)
    cost: Optional[float] = None
    segments: Optional[int] = None
    poll_at: Optional[datetime] = _ts(default=None)
    polls: int = 0
    updated_at: datetime = _ts()
    #: the A/B variant this message was given (see :mod:`engine.variants`); None: the touch has none
    variant: Optional[str] = Field(default=None, max_length=40)
    #: PostgreSQL (kept by triggers, migration ``0023_run_marks``; 0 on SQLite): a person's clicks on it and the
    #: conversions credited to it (the funnel per touch's kept counts)
    clicks: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    credits: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    #: the contact's source, as :attr:`Enrollment.source`
    source: Optional[str] = Field(default=None, max_length=MAX_ATTR_VALUE)


#: the log's events that count as a provider's errors
ERROR_EVENTS = ("failed", "retry", "unknown", "undelivered")


class DeliveryLog(SQLModel, table=True):
    """One row per state change of a message; rows are only ever appended."""

    __tablename__ = "delivery_log"
    __table_args__ = (
        sa.Index("ix_log_contact", "contact_id", "id"),
        sa.Index("ix_log_sequence", "sequence", "id"),
        # a provider's last error (the query names the events as literals, so the partial index serves it)
        _partial("ix_log_provider_errors", "provider", "id", where=f"event IN {ERROR_EVENTS!r}"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = _ts(index=True)
    message_id: Optional[int] = None  # not indexed: nothing reads the log by message
    contact_id: Optional[int] = None
    sequence: Optional[str] = Field(default=None, max_length=100)
    touch: Optional[str] = Field(default=None, max_length=100)
    channel: Optional[str] = Field(default=None, max_length=10)
    provider: Optional[str] = Field(default=None, max_length=100)
    event: str = Field(max_length=30)
    reason: Optional[str] = Field(default=None, max_length=500)
    attempt: int = 0
    provider_message_id: Optional[str] = Field(default=None, max_length=200)
    worker: Optional[str] = Field(default=None, max_length=100)


CONVERTED = "type = 'converted'"


class ContactEvent(SQLModel, table=True):
    """What a contact did: converted, replied, unsubscribed, resubscribed, or any named event (cart_abandoned)."""

    __tablename__ = "contact_events"
    __table_args__ = (
        # a sequence's revenue and credited conversions
        sa.Index("ix_contact_events_sequence", "sequence", "type"),
        # the conversions credited to a window's sends (the funnel per touch)
        _partial("ix_contact_events_message", "message_id", where="message_id IS NOT NULL"),
        # a KPI window's conversions, and the lifetime ones of its buyers (PostgreSQL: from the indexes alone)
        sa.Index("ix_contact_events_converted", "at", sqlite_where=sa.text(CONVERTED),
                 postgresql_where=sa.text(CONVERTED), postgresql_include=["contact_id", "sequence", "value", "id"]),
        sa.Index("ix_contact_events_buyer", "contact_id", sqlite_where=sa.text(CONVERTED),
                 postgresql_where=sa.text(CONVERTED), postgresql_include=["at", "sequence", "value", "id"]),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    type: str = Field(max_length=50)
    #: what the event is about (a cart, an order): a run it starts or ends is the one with this key
    key: Optional[str] = Field(default=None, max_length=200)
    data: Optional[dict] = Field(default=None, sa_type=sa.JSON)
    sequence: Optional[str] = Field(default=None, max_length=100)
    channel: Optional[str] = Field(default=None, max_length=10)
    value: Optional[float] = None
    idempotency_key: Optional[str] = Field(default=None, sa_column_kwargs={"unique": True}, max_length=200)
    source: str = Field(default="cli", max_length=30)
    at: datetime = _ts(index=True)
    #: a conversion's credited message and touch, and how it earned it: ``click`` or ``send`` (None: not
    #: attributed; see :mod:`engine.attribution`)
    message_id: Optional[int] = None
    touch: Optional[str] = Field(default=None, max_length=100)
    attributed_by: Optional[str] = Field(default=None, max_length=10)
    #: the credited message's A/B variant (see :mod:`engine.variants`), if its touch has variants
    variant: Optional[str] = Field(default=None, max_length=40)


class ProviderState(SQLModel, table=True):
    """A provider paused for the whole cluster (no credit, bad key), and until when."""

    __tablename__ = "provider_states"

    name: str = Field(primary_key=True, max_length=100)
    state: str = Field(default="active", max_length=20)
    reason: Optional[str] = Field(default=None, max_length=500)
    paused_until: Optional[datetime] = _ts(default=None)
    updated_at: datetime = _ts()


class WorkerStatus(SQLModel, table=True):
    """Each worker's heartbeat, and cluster-wide job locks (name = job, owner = worker)."""

    __tablename__ = "worker_status"

    name: str = Field(primary_key=True, max_length=100)
    owner: Optional[str] = Field(default=None, max_length=100)
    last_tick_at: Optional[datetime] = _ts(default=None)
    until: Optional[datetime] = _ts(default=None)
    detail: Optional[str] = Field(default=None, max_length=500)


def status_is(column: sa.ColumnElement, *values: str) -> sa.ColumnElement:
    """``column = 'x'`` with the value as a literal, so the partial indexes can serve the query."""
    literals = [sa.literal_column(f"'{v}'") for v in values]
    return column == literals[0] if len(literals) == 1 else column.in_(literals)


metadata = SQLModel.metadata


class ApiKey(SQLModel, table=True):
    """A bearer key for the HTTP API and dashboard: only its SHA-256 is stored; revoked keys stay for audit."""

    __tablename__ = "api_keys"

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, sa_column_kwargs={"unique": True})
    key_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    created_at: datetime = _ts()
    revoked_at: Optional[datetime] = _ts(default=None)


class WebhookToken(SQLModel, table=True):
    """A single-use token from a signed webhook (Mailgun's), kept until its replay window has passed."""

    __tablename__ = "webhook_tokens"

    provider: str = Field(primary_key=True, max_length=100)
    token: str = Field(primary_key=True, max_length=64)  # SHA-256 hex of the provider's token
    expires_at: datetime = _ts(index=True)


__all__ += ["ApiKey", "WebhookToken"]


class Installation(SQLModel, table=True):
    """One row: what makes this database's client references its own (see :mod:`engine.installation`)."""

    __tablename__ = "installation"

    id: int = Field(primary_key=True)  # always 1
    reference_prefix: int
    created_at: datetime = _ts()


__all__ += ["Installation"]


class DashboardSession(SQLModel, table=True):
    """A dashboard login (see :mod:`engine.sessions`): the cookie's token is stored only as its SHA-256."""

    __tablename__ = "sessions"

    id: str = Field(primary_key=True, max_length=64)
    who: str = Field(max_length=120)
    api_key_id: Optional[int] = Field(default=None, foreign_key="api_keys.id", index=True)
    password_check: Optional[str] = Field(default=None, max_length=64)
    created_at: datetime = _ts()
    last_seen_at: datetime = _ts()
    expires_at: datetime = _ts()


__all__ += ["DashboardSession"]


class AlertState(SQLModel, table=True):
    """One alert condition (per provider or worker where it has one): its state and what ops were last told."""

    __tablename__ = "alerts"

    key: str = Field(primary_key=True, max_length=200)  # e.g. provider_paused:kavenegar, queue_lag_over
    state: str = Field(default="clear", max_length=10)  # firing or clear, as last evaluated
    detail: Optional[str] = Field(default=None, max_length=500)
    since: datetime = _ts()  # when it entered its state
    notified: Optional[str] = Field(default=None, max_length=10)  # the state ops were last told: firing or clear
    last_sent_at: Optional[datetime] = _ts(default=None)  # when the last alert (not recovery note) went out


__all__ += ["AlertState"]


class SequenceState(SQLModel, table=True):
    """A sequence paused or stopped by hand (see :mod:`engine.control`); no row means active."""

    __tablename__ = "sequence_states"

    name: str = Field(primary_key=True, max_length=100)
    state: str = Field(max_length=20)  # paused or stopped
    reason: Optional[str] = Field(default=None, max_length=300)
    updated_at: datetime = _ts()


__all__ += ["SequenceState"]


class RateBucket(SQLModel, table=True):
    """A provider's ``rate``, shared by every worker on this database (see :mod:`engine.ratebuckets`).

    ``tat`` is the bucket's theoretical arrival time (GCRA): the Unix time at which the provider's
    next free send slot begins. A lease moves it on by the slots it takes.
    """

    __tablename__ = "rate_buckets"

    provider: str = Field(primary_key=True, max_length=100)
    tat: float = Field(default=0.0, sa_type=sa.Float(precision=53))


__all__ += ["RateBucket"]


class Link(SQLModel, table=True):
    """A short link of one message: ``{links.base_url}/{code}`` redirects to ``target`` (see :mod:`engine.links`).

    ``url`` is the address as the template gave it (one code per message and url: the claim that renders a
    message reads its codes first, under the message's lock); ``target`` is it with the UTM parameters added,
    the only place the redirect goes.
    """

    __tablename__ = "links"
    __table_args__ = (sa.Index("ix_links_message", "message_id"),)

    code: str = Field(primary_key=True, max_length=16)
    message_id: Optional[int] = None
    contact_id: Optional[int] = None
    sequence: Optional[str] = Field(default=None, max_length=100)
    touch: Optional[str] = Field(default=None, max_length=100)
    channel: Optional[str] = Field(default=None, max_length=10)
    url: str = Field(max_length=2048)
    target: str = Field(max_length=4096)
    created_at: datetime = _ts()
    expires_at: Optional[datetime] = _ts(default=None)


class EngagementKind(str, enum.Enum):
    """What a reader did with a sent message (``*_bot``: a link scanner or preview did it, not a person)."""

    CLICKED = "clicked"
    CLICKED_BOT = "clicked_bot"
    OPENED = "opened"
    OPENED_BOT = "opened_bot"


class Engagement(SQLModel, table=True):
    """One click or open of a message, from our own links (``source`` link or pixel) or a provider's events."""

    __tablename__ = "engagements"
    __table_args__ = (
        sa.Index("ix_engagements_message", "message_id", "kind"),
        sa.Index("ix_engagements_contact", "contact_id", "at"),
        # a sequence's clicks per touch from the index alone
        sa.Index("ix_engagements_sequence_touch", "sequence", "kind", "touch", "message_id"),
        # the clicks of a KPI window's edges (PostgreSQL keeps the rest per quarter hour: bucket_counts)
        sa.Index("ix_engagements_at", "at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = _ts()
    kind: str = Field(max_length=20)
    message_id: Optional[int] = None
    contact_id: Optional[int] = None
    sequence: Optional[str] = Field(default=None, max_length=100)
    touch: Optional[str] = Field(default=None, max_length=100)
    channel: Optional[str] = Field(default=None, max_length=10)
    source: str = Field(max_length=30)
    code: Optional[str] = Field(default=None, max_length=16)
    #: a provider's own id of the event, so the same event posted twice is recorded once
    external_id: Optional[str] = Field(default=None, sa_column_kwargs={"unique": True}, max_length=200)


__all__ += ["Link", "Engagement", "EngagementKind"]


class LeadOutcome(str, enum.Enum):
    """What a sales rep recorded for a lead handed to them."""

    WON = "won"
    LOST = "lost"
    FOLLOW_UP_LATER = "follow_up_later"


class Handoff(SQLModel, table=True):
    """A lead handed from a sequence to a sales rep (see :mod:`engine.handoff`), and what the rep recorded.

    The rep's page token is signed over ``id``, ``token_nonce`` and ``token_expires_at``
    (:mod:`engine.leads`); a NULL nonce revokes it."""

    __tablename__ = "handoffs"
    __table_args__ = (sa.Index("ix_handoffs_contact", "contact_id", "at"), sa.Index("ix_handoffs_rep", "rep"))

    id: Optional[int] = Field(default=None, primary_key=True)
    contact_id: int
    enrollment_id: int = Field(sa_column_kwargs={"unique": True})
    sequence: str = Field(max_length=100)
    rep: str = Field(max_length=100)
    fired_by: str = Field(max_length=200)  # the condition that fired: replied, score >= 30, clicked last-chance
    score: float
    at: datetime = _ts()
    token_nonce: Optional[str] = Field(default=None, max_length=32)
    token_expires_at: datetime = _ts()
    outcome: Optional[str] = Field(default=None, max_length=20)
    value: Optional[float] = None
    objection: Optional[str] = Field(default=None, max_length=300)
    follow_up_on: Optional[date] = None
    note: Optional[str] = Field(default=None, max_length=1000)
    outcome_at: Optional[datetime] = _ts(default=None)
    outcome_by: Optional[str] = Field(default=None, max_length=120)


__all__ += ["LeadOutcome", "Handoff"]


class OutboxStatus(str, enum.Enum):
    """Where one event for one webhook URL stands (see :mod:`engine.webhook_delivery`)."""

    PENDING = "pending"      # due at next_attempt_at, after the contact's earlier events for the same URL
    DELIVERED = "delivered"  # the URL answered 2xx


class WebhookOutbox(SQLModel, table=True):
    """One event for one webhook URL, written in the transaction of the change that caused it."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        _partial("ix_webhook_outbox_pending", "url", "contact_id", "id", where="status = 'pending'"),
        sa.Index("ix_webhook_outbox_created", "created_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    #: the Standard Webhooks ``webhook-id``: the same for every URL and every retry of one event
    event_id: str = Field(max_length=40)
    url: str = Field(max_length=2048)
    kind: str = Field(max_length=30)
    contact_id: Optional[int] = None
    #: the JSON body exactly as signed and sent
    body: str = Field(sa_type=sa.Text)
    status: str = Field(default=OutboxStatus.PENDING.value, max_length=20)
    attempts: int = 0
    created_at: datetime = _ts()
    next_attempt_at: Optional[datetime] = _ts(default=None)
    delivered_at: Optional[datetime] = _ts(default=None)
    last_error: Optional[str] = Field(default=None, max_length=500)


class EndpointState(str, enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"        # failed for webhooks.PAUSE_AFTER; `followup webhooks resume URL` delivers again


class WebhookEndpoint(SQLModel, table=True):
    """A webhook URL's delivery state: failing since when, paused or not."""

    __tablename__ = "webhook_endpoints"

    url: str = Field(primary_key=True, max_length=2048)
    state: str = Field(default=EndpointState.ACTIVE.value, max_length=20)
    failing_since: Optional[datetime] = _ts(default=None)
    paused_at: Optional[datetime] = _ts(default=None)
    last_error: Optional[str] = Field(default=None, max_length=500)
    updated_at: datetime = _ts()


__all__ += ["OutboxStatus", "WebhookOutbox", "EndpointState", "WebhookEndpoint"]


class AbTest(SQLModel, table=True):
    """One touch's A/B test: running, winner (by the rule or promoted by hand) or inconclusive."""

    __tablename__ = "ab_tests"

    sequence: str = Field(primary_key=True, max_length=100)
    touch: str = Field(primary_key=True, max_length=100)
    state: str = Field(max_length=20)
    winner: Optional[str] = Field(default=None, max_length=40)
    #: rule (the worker's evaluation) or hand (``followup ab --promote``)
    decided_by: Optional[str] = Field(default=None, max_length=20)
    #: sends before this moment do not count (``followup ab --reset`` moves it)
    started_at: datetime = _ts()
    evaluated_at: Optional[datetime] = _ts(default=None)
    #: the last evaluation's figures per variant: sends, successes, p_best
    detail: Optional[dict] = Field(default=None, sa_type=sa.JSON)


__all__ += ["AbTest"]


class LogCount(SQLModel, table=True):
    """The delivery log's rows with an id up to ``upto`` counted by event and provider: where ``/metrics``
    starts counting (:mod:`engine.service.tally`), so a fresh service never reads the whole log."""

    __tablename__ = "log_counts"

    upto: int = Field(primary_key=True, sa_type=sa.BigInteger)
    event: str = Field(primary_key=True, max_length=30)
    provider: str = Field(primary_key=True, max_length=100)  # "" for a row without a provider
    n: int = Field(sa_type=sa.BigInteger)


__all__ += ["LogCount"]


class SequenceCount(SQLModel, table=True):
    """PostgreSQL: how many messages of each sequence's touch, and runs of each sequence, are in each state, as
    rows to add up: database triggers on ``messages`` and ``enrollments`` append a row for each move between
    counted states (``from_status`` → ``to_status``; none for a new or deleted row) in the transaction that made
    it, and :func:`engine.store.rollups.fold` sums the rows into one per count now and then. Empty on SQLite.

    A message's counted state is its status once final, else ``waiting``; a run's is ``converted`` or ``other``
    (:func:`engine.store.rollups.message_state`, :func:`engine.store.rollups.run_state`)."""

    __tablename__ = "sequence_counts"

    id: Optional[int] = Field(default=None, primary_key=True,
                              sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
    kind: str = Field(max_length=10)  # message or run
    sequence: str = Field(max_length=100)
    touch: str = Field(max_length=100)  # "" for a run
    from_status: Optional[str] = Field(default=None, max_length=20)
    to_status: Optional[str] = Field(default=None, max_length=20)
    n: int = Field(sa_type=sa.BigInteger)


__all__ += ["SequenceCount"]


class BucketMove(SQLModel, table=True):
    """PostgreSQL: a move into (``n`` > 0) or out of (``n`` < 0) a count of :class:`BucketCount`, appended by a
    database trigger on ``messages``, ``engagements`` or ``contact_events`` in the transaction that made it;
    :func:`engine.store.buckets.fold` adds them to ``bucket_counts`` now and then. Empty on SQLite."""

    __tablename__ = "bucket_moves"

    id: Optional[int] = Field(default=None, primary_key=True,
                              sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
    kind: str = Field(max_length=10)
    quarter: int = Field(sa_type=sa.BigInteger)
    sequence: str = Field(max_length=100)
    touch: str = Field(max_length=100)
    state: str = Field(max_length=20)
    n: int


class BucketCount(SQLModel, table=True):
    """PostgreSQL: per quarter hour (seconds since the epoch ÷ 900), how many of the messages sent then are
    ``sent`` or ``delivered`` (kind ``sends``, by the message's ``sent_at``), how many clicks by a person
    (``clicks``, by the click's time) and conversions (``sales``, by the event's time), per sequence and touch;
    and by the message's ``sent_at``: the SMS segments and emails of the messages sent then (``spend``, its
    ``touch`` the provider and its ``state`` the channel), those a person clicked (``clicked``) and the conversions
    credited to them (``credited``); with the rows of ``bucket_moves`` not folded yet, the counts
    (:mod:`engine.store.buckets`). Empty on SQLite."""

    __tablename__ = "bucket_counts"

    kind: str = Field(max_length=10, primary_key=True)
    quarter: int = Field(sa_type=sa.BigInteger, primary_key=True)
    sequence: str = Field(max_length=100, primary_key=True)
    touch: str = Field(max_length=100, primary_key=True)
    state: str = Field(max_length=20, primary_key=True)
    n: int = Field(sa_type=sa.BigInteger)


__all__ += ["BucketMove", "BucketCount"]
