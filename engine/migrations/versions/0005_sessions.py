"""dashboard sessions, stored server-side so they can be ended

Revision ID: 0005
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('who', sa.String(length=120), nullable=False),
        sa.Column('api_key_id', sa.Integer(), nullable=True),
        sa.Column('password_check', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_sessions_api_key_id', 'sessions', ['api_key_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_sessions_api_key_id', table_name='sessions')
    op.drop_table('sessions')
