"""conversions: the A/B variant of the credited message

Revision ID: 0019
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contact_events') as batch:
        batch.add_column(sa.Column('variant', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contact_events') as batch:
        batch.drop_column('variant')
