"""drop the delivery log's index on message_id

No query reads the log by message: ops read it by contact, sequence, event and time, which have their
own indexes. The worker appends three log rows per message sent, and each index is written for each row.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_delivery_log_message_id', table_name='delivery_log')


def downgrade() -> None:
    op.create_index('ix_delivery_log_message_id', 'delivery_log', ['message_id'], unique=False)
