"""links and engagements: short links of messages, clicks and opens; the credited message of a conversion

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'links',
        sa.Column('code', sa.String(length=16), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('contact_id', sa.Integer(), nullable=True),
        sa.Column('sequence', sa.String(length=100), nullable=True),
        sa.Column('touch', sa.String(length=100), nullable=True),
        sa.Column('channel', sa.String(length=10), nullable=True),
        sa.Column('url', sa.String(length=2048), nullable=False),
        sa.Column('target', sa.String(length=4096), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('code'),
    )
    op.create_index('ix_links_message', 'links', ['message_id'])
    op.create_table(
        'engagements',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('contact_id', sa.Integer(), nullable=True),
        sa.Column('sequence', sa.String(length=100), nullable=True),
        sa.Column('touch', sa.String(length=100), nullable=True),
        sa.Column('channel', sa.String(length=10), nullable=True),
        sa.Column('source', sa.String(length=30), nullable=False),
        sa.Column('code', sa.String(length=16), nullable=True),
        sa.Column('external_id', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('external_id'),
    )
    op.create_index('ix_engagements_message', 'engagements', ['message_id', 'kind'])
    op.create_index('ix_engagements_contact', 'engagements', ['contact_id', 'at'])
    op.create_index('ix_engagements_sequence', 'engagements', ['sequence', 'kind'])
    with op.batch_alter_table('contact_events') as batch:
        batch.add_column(sa.Column('message_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('touch', sa.String(length=100), nullable=True))
        batch.add_column(sa.Column('attributed_by', sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contact_events') as batch:
        batch.drop_column('attributed_by')
        batch.drop_column('touch')
        batch.drop_column('message_id')
    op.drop_index('ix_engagements_sequence', table_name='engagements')
    op.drop_index('ix_engagements_contact', table_name='engagements')
    op.drop_index('ix_engagements_message', table_name='engagements')
    op.drop_table('engagements')
    op.drop_index('ix_links_message', table_name='links')
    op.drop_table('links')
