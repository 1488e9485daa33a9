"""the sends' index keys their status, sequence and touch after the time

``messages (sent_at)`` becomes ``messages (sent_at, status, sequence, touch)``: on SQLite, which keeps no counts
of its own, a KPI window's sends, its days and its funnel per touch are counted from the index alone instead of a
lookup of each message's row (about half the time at 250,000 contacts). On PostgreSQL the index already carried
those columns; they move from its INCLUDE to its key.

Revision ID: 0025_sends_index
Revises: 0024_lead_sources
"""
from alembic import op
import sqlalchemy as sa


revision = '0025_sends_index'
down_revision = '0024_lead_sources'
branch_labels = None
depends_on = None

#: 0024's index columns after sent_at (PostgreSQL's INCLUDE)
INCLUDED = ['status', 'sequence', 'touch', 'provider', 'channel', 'segments', 'contact_id', 'id', 'source']
KEYED = ['status', 'sequence', 'touch']


def _index(keyed: list[str]) -> None:
    where = sa.text("sent_at IS NOT NULL")
    op.drop_index('ix_messages_sent_at', table_name='messages')
    op.create_index('ix_messages_sent_at', 'messages', ['sent_at', *keyed], sqlite_where=where,
                    postgresql_where=where, postgresql_include=[c for c in INCLUDED if c not in keyed])


def upgrade() -> None:
    _index(KEYED)


def downgrade() -> None:
    _index([])
