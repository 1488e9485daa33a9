"""the installation row: a random prefix that makes our client references unique to this database

Kavenegar answers a repeated ``localid`` with the old message and sends nothing, and Ghasedak refuses a
repeated ``clientReferenceId``. A database reset, a restored backup or a staging database on the same
account would reuse message ids; a reference of ``prefix * 10**12 + id`` with a prefix drawn here does not.

Revision ID: 0007
Revises: 0003
"""
import secrets
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'installation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reference_prefix', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(table, [{'id': 1, 'reference_prefix': secrets.randbelow(9_000_000) + 1,
                            'created_at': datetime.now(timezone.utc)}])


def downgrade() -> None:
    op.drop_table('installation')
