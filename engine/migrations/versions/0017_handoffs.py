"""lead scores on contacts; handoffs of leads to sales reps, with the rep's page token and the outcome

Revision ID: 0017
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contacts') as batch:
        batch.add_column(sa.Column('score', sa.Float(), nullable=True))
        batch.add_column(sa.Column('score_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'handoffs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('contact_id', sa.Integer(), nullable=False),
        sa.Column('enrollment_id', sa.Integer(), nullable=False),
        sa.Column('sequence', sa.String(length=100), nullable=False),
        sa.Column('rep', sa.String(length=100), nullable=False),
        sa.Column('fired_by', sa.String(length=200), nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('token_nonce', sa.String(length=32), nullable=True),
        sa.Column('token_expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.String(length=20), nullable=True),
        sa.Column('value', sa.Float(), nullable=True),
        sa.Column('objection', sa.String(length=300), nullable=True),
        sa.Column('follow_up_on', sa.Date(), nullable=True),
        sa.Column('note', sa.String(length=1000), nullable=True),
        sa.Column('outcome_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome_by', sa.String(length=120), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('enrollment_id'),
    )
    op.create_index('ix_handoffs_contact', 'handoffs', ['contact_id', 'at'])
    op.create_index('ix_handoffs_rep', 'handoffs', ['rep'])


def downgrade() -> None:
    op.drop_index('ix_handoffs_rep', table_name='handoffs')
    op.drop_index('ix_handoffs_contact', table_name='handoffs')
    op.drop_table('handoffs')
    with op.batch_alter_table('contacts') as batch:
        batch.drop_column('score_at')
        batch.drop_column('score')
