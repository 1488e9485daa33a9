"""lead sources: the contact's source copied onto its enrollments and messages

- ``enrollments.source`` and ``messages.source``: the contact's ``source`` attribute, else its ``utm_source``
  (NULL when it has neither), kept in step with the contact by the engine (:mod:`engine.store.sources`). The
  KPIs by source group the window's runs and sends by it instead of joining them to the contacts;
- PostgreSQL: ``enrollments (enrolled_at)`` and ``messages (sent_at)`` carry it too, so those reports read the
  indexes alone.

Filled here from the contacts, one statement per table.

Revision ID: 0024_lead_sources
Revises: 0023_run_marks
"""
from alembic import op
import sqlalchemy as sa


revision = '0024_lead_sources'
down_revision = '0023_run_marks'
branch_labels = None
depends_on = None

#: characters of an attribute's value (engine.fields.MAX_ATTR_VALUE)
LENGTH = 1000
#: 0023's columns of the index on enrolled_at, 0022's of the index on sent_at
RUNS = ['sequence', 'contact_id']
SENDS = ['status', 'sequence', 'touch', 'provider', 'channel', 'segments', 'contact_id', 'id']
#: the statement triggers on messages that an UPDATE fires: the backfill changes no column they count
MESSAGE_TRIGGERS = ('run_marks_messages_update', 'bucket_marks_messages_update')


def source(sqlite: bool) -> str:
    """The contact's source from ``contacts.attrs`` (engine.store.sources.source_of): an empty value is none."""
    def attr(key: str) -> str:
        return f"json_extract(contacts.attrs, '$.{key}')" if sqlite else f"contacts.attrs ->> '{key}'"
    return f"coalesce(nullif({attr('source')}, ''), nullif({attr('utm_source')}, ''))"


def _backfill(table: str, sqlite: bool) -> None:
    if sqlite:
        op.execute(f"UPDATE {table} SET source = (SELECT {source(True)} FROM contacts "
                   f"WHERE contacts.id = {table}.contact_id)")
        return
    op.execute(f"UPDATE {table} SET source = c.source FROM (SELECT id, {source(False)} AS source FROM contacts) c "
               f"WHERE {table}.contact_id = c.id AND c.source IS NOT NULL")


def _indexes(runs: list[str], sends: list[str]) -> None:
    op.drop_index('ix_enrollments_enrolled_at', table_name='enrollments')
    op.create_index('ix_enrollments_enrolled_at', 'enrollments', ['enrolled_at'], postgresql_include=runs)
    where = sa.text("sent_at IS NOT NULL")
    op.drop_index('ix_messages_sent_at', table_name='messages')
    op.create_index('ix_messages_sent_at', 'messages', ['sent_at'], sqlite_where=where, postgresql_where=where,
                    postgresql_include=sends)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in ('enrollments', 'messages'):
        op.add_column(table, sa.Column('source', sa.String(length=LENGTH), nullable=True))
    if not sqlite:
        # adding the column locked messages until this commits: nobody else writes while they are off
        for name in MESSAGE_TRIGGERS:
            op.execute(f"ALTER TABLE messages DISABLE TRIGGER {name}")
    for table in ('enrollments', 'messages'):
        _backfill(table, sqlite)
    if sqlite:
        return
    for name in MESSAGE_TRIGGERS:
        op.execute(f"ALTER TABLE messages ENABLE TRIGGER {name}")
    _indexes([*RUNS, 'source'], [*SENDS, 'source'])


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        _indexes(RUNS, SENDS)
    for table in ('enrollments', 'messages'):
        op.drop_column(table, 'source')
