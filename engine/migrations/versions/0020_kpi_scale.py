"""reports at scale: the indexes the KPIs and the dashboard's funnels read by

- ``enrollments (enrolled_at)``: the runs of a KPI window;
- ``enrollments (sequence, status)``: a sequence's enrolled and converted counts, from the index alone;
- ``messages (sequence, touch, status)``: a sequence's funnel per touch, from the index alone;
- ``contact_events (sequence, type)``: a sequence's revenue and credited conversions;
- ``engagements (sequence, kind, touch, message_id)`` instead of ``(sequence, kind)``: a sequence's clicks per
  touch from the index alone;
- ``messages (sent_at)`` of the messages that went out: the sends of a KPI window and its days;
- ``delivery_log (provider, id)`` of the error events only: a provider's last error (the dashboard and
  /metrics), found at once even for a provider that never failed.

Revision ID: 0020_kpi_scale
Revises: 0019
"""
from alembic import op
import sqlalchemy as sa


revision = '0020_kpi_scale'
down_revision = '0019'
branch_labels = None
depends_on = None

INDEXES = (
    ('ix_enrollments_enrolled_at', 'enrollments', ['enrolled_at']),
    ('ix_enrollments_sequence_status', 'enrollments', ['sequence', 'status']),
    ('ix_messages_sequence_touch', 'messages', ['sequence', 'touch', 'status']),
    ('ix_contact_events_sequence', 'contact_events', ['sequence', 'type']),
    ('ix_engagements_sequence_touch', 'engagements', ['sequence', 'kind', 'touch', 'message_id']),
)


SENT = "sent_at IS NOT NULL"
ERRORS = "event IN ('failed', 'retry', 'unknown', 'undelivered')"
PARTIAL = (
    ('ix_messages_sent_at', 'messages', ['sent_at'], SENT),
    ('ix_log_provider_errors', 'delivery_log', ['provider', 'id'], ERRORS),
)


def upgrade() -> None:
    op.drop_index('ix_engagements_sequence', table_name='engagements')
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    for name, table, columns, where in PARTIAL:
        op.create_index(name, table, columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, table, *_ in reversed(PARTIAL + INDEXES):
        op.drop_index(name, table_name=table)
    op.create_index('ix_engagements_sequence', 'engagements', ['sequence', 'kind'])
