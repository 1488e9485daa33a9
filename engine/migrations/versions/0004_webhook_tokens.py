"""single-use webhook tokens, refused when seen again within their replay window

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhook_tokens',
        sa.Column('provider', sa.String(length=100), nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('provider', 'token'),
    )
    op.create_index('ix_webhook_tokens_expires_at', 'webhook_tokens', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_webhook_tokens_expires_at', table_name='webhook_tokens')
    op.drop_table('webhook_tokens')
