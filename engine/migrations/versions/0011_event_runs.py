"""event runs: an enrollment keeps the key and data of the event that started it; any event name is stored

One active enrollment per contact and sequence still holds for enrollments without a key; those an event
key started are one per contact, sequence and key, active or not.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

ACTIVE = "status = 'active'"
ACTIVE_UNKEYED = "status = 'active' AND event_key IS NULL"
KEYED = "event_key IS NOT NULL"


def _where(predicate: str) -> dict:
    return {"sqlite_where": sa.text(predicate), "postgresql_where": sa.text(predicate)}


def upgrade() -> None:
    with op.batch_alter_table('enrollments') as batch_op:
        batch_op.add_column(sa.Column('event_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('event_data', sa.JSON(), nullable=True))
    op.drop_index('uq_enrollment_active', table_name='enrollments')
    op.create_index('uq_enrollment_active', 'enrollments', ['contact_id', 'sequence'], unique=True,
                    **_where(ACTIVE_UNKEYED))
    op.create_index('uq_enrollment_event_key', 'enrollments', ['contact_id', 'sequence', 'event_key'], unique=True,
                    **_where(KEYED))
    with op.batch_alter_table('contact_events') as batch_op:
        batch_op.alter_column('type', existing_type=sa.String(length=20), type_=sa.String(length=50),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('data', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contact_events') as batch_op:
        batch_op.drop_column('data')
        batch_op.drop_column('key')
        batch_op.alter_column('type', existing_type=sa.String(length=50), type_=sa.String(length=20),
                              existing_nullable=False)
    op.drop_index('uq_enrollment_event_key', table_name='enrollments')
    op.drop_index('uq_enrollment_active', table_name='enrollments')
    op.create_index('uq_enrollment_active', 'enrollments', ['contact_id', 'sequence'], unique=True, **_where(ACTIVE))
    with op.batch_alter_table('enrollments') as batch_op:
        batch_op.drop_column('event_data')
        batch_op.drop_column('event_key')
