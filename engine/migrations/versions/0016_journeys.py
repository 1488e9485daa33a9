"""journeys: the A/B variant a message was given, and each A/B test's state

Revision ID: 0016
Revises: 0018
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('variant', sa.String(length=40), nullable=True))
    op.create_table(
        'ab_tests',
        sa.Column('sequence', sa.String(length=100), nullable=False),
        sa.Column('touch', sa.String(length=100), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('winner', sa.String(length=40), nullable=True),
        sa.Column('decided_by', sa.String(length=20), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('evaluated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('detail', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('sequence', 'touch'),
    )


def downgrade() -> None:
    op.drop_table('ab_tests')
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('variant')
