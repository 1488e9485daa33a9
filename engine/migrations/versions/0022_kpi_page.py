"""kpi page: the KPI page's funnels from the index on messages (sent_at) alone (PostgreSQL)

``messages (sent_at)`` of the messages that went out carries their contact and id besides what a KPI window's
sends are counted by: the funnel per sequence reads the (sequence, contact) pairs sent within the window, and the
funnel per touch joins the window's sends to their clicks and credited conversions by message id, without
reading the table.

Revision ID: 0022_kpi_page
Revises: 0021_rollups
"""
from alembic import op
import sqlalchemy as sa


revision = '0022_kpi_page'
down_revision = '0021_rollups'
branch_labels = None
depends_on = None

#: 0021's columns of the index on sent_at
SENDS = ['status', 'sequence', 'touch', 'provider', 'channel', 'segments']


def _sent_at_index(include: list[str]) -> None:
    op.drop_index('ix_messages_sent_at', table_name='messages')
    op.create_index('ix_messages_sent_at', 'messages', ['sent_at'], postgresql_include=include,
                    postgresql_where=sa.text("sent_at IS NOT NULL"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        _sent_at_index([*SENDS, 'contact_id', 'id'])


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        _sent_at_index(SENDS)
