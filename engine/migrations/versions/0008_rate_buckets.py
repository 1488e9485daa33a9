"""rate_buckets: one row per provider holds the send slots every worker leases from

A provider's ``rate`` is the panel's limit for the whole installation; workers on one PostgreSQL
database take batches of send slots from this row so that together they stay within it.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rate_buckets',
        sa.Column('provider', sa.String(length=100), nullable=False),
        sa.Column('tat', sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint('provider'),
    )


def downgrade() -> None:
    op.drop_table('rate_buckets')
