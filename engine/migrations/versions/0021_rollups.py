"""rollups: the sequences' counts kept by triggers, the log's counts for /metrics, the sends' covering index

- ``sequence_counts`` (PostgreSQL): a row for each move of a message (or a run) between counted states, appended
  by a trigger in the transaction that moved it (:mod:`engine.store.rollups`); filled here from the tables. On
  SQLite the table stays empty: there the counts are read from the tables through their indexes (triggers on
  ``messages`` made each of the worker's batched updates twice as slow there, ~20% of its bookkeeping CPU);
- ``log_counts``: the delivery log counted by event and provider up to an id (:mod:`engine.service.tally`);
  filled here with the rows logged before five minutes ago;
- PostgreSQL: ``messages (sent_at)`` of the messages that went out carries their status, sequence, touch,
  provider, channel and segments: a KPI window's sends from the index alone.

Revision ID: 0021_rollups
Revises: 0020_kpi_scale
"""
from datetime import datetime, timedelta, timezone

from alembic import op
import sqlalchemy as sa


revision = '0021_rollups'
down_revision = '0020_kpi_scale'
branch_labels = None
depends_on = None

WAITING = "('pending', 'scheduled', 'claimed', 'sending')"


def message_state(row: str) -> str:
    return f"CASE WHEN {row}.status IN {WAITING} THEN 'waiting' ELSE {row}.status END"


def run_state(row: str) -> str:
    return f"CASE WHEN {row}.status = 'converted' THEN 'converted' ELSE 'other' END"


#: table, kind, its touch column (a run has none), its state
COUNTED = (("messages", "message", "{row}.touch", message_state), ("enrollments", "run", "''", run_state))
#: what a KPI window's sends are counted by, carried in the index on sent_at (PostgreSQL: read from the index alone)
SENDS = ['status', 'sequence', 'touch', 'provider', 'channel', 'segments']
INSERT = "INSERT INTO sequence_counts (kind, sequence, touch, from_status, to_status, n) VALUES "


def _pg_triggers(table: str, kind: str, touch: str, state) -> list[str]:
    old, new = touch.format(row="OLD"), touch.format(row="NEW")
    same_key = f"OLD.sequence IS NOT DISTINCT FROM NEW.sequence AND {old} IS NOT DISTINCT FROM {new}"
    return [
        f"CREATE FUNCTION sequence_counts_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'INSERT' THEN {INSERT}('{kind}', NEW.sequence, {new}, NULL, {state('NEW')}, 1); "
        f"ELSIF TG_OP = 'DELETE' THEN {INSERT}('{kind}', OLD.sequence, {old}, {state('OLD')}, NULL, 1); "
        f"ELSIF {same_key} THEN {INSERT}('{kind}', OLD.sequence, {old}, {state('OLD')}, {state('NEW')}, 1); "
        f"ELSE {INSERT}('{kind}', OLD.sequence, {old}, {state('OLD')}, NULL, 1), "
        f"('{kind}', NEW.sequence, {new}, NULL, {state('NEW')}, 1); "
        "END IF; RETURN NULL; END $$",
        f"CREATE TRIGGER sequence_counts_{table}_new AFTER INSERT OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION sequence_counts_{table}()",
        f"CREATE TRIGGER sequence_counts_{table}_moved AFTER UPDATE ON {table} FOR EACH ROW "
        f"WHEN (NOT ({same_key}) OR ({state('OLD')}) IS DISTINCT FROM ({state('NEW')})) "
        f"EXECUTE FUNCTION sequence_counts_{table}()",
    ]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        'sequence_counts',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('sequence', sa.String(length=100), nullable=False),
        sa.Column('touch', sa.String(length=100), nullable=False),
        sa.Column('from_status', sa.String(length=20), nullable=True),
        sa.Column('to_status', sa.String(length=20), nullable=True),
        sa.Column('n', sa.BigInteger(), nullable=False),
    )
    op.create_table(
        'log_counts',
        sa.Column('upto', sa.BigInteger(), primary_key=True),
        sa.Column('event', sa.String(length=30), primary_key=True),
        sa.Column('provider', sa.String(length=100), primary_key=True),
        sa.Column('n', sa.BigInteger(), nullable=False),
    )
    for table, kind, touch, state in () if sqlite else COUNTED:
        # the trigger first: it locks the table against writes until this commits, so the count below misses none
        for statement in _pg_triggers(table, kind, touch, state):
            op.execute(statement)
        op.execute(f"INSERT INTO sequence_counts (kind, sequence, touch, from_status, to_status, n) "
                   f"SELECT '{kind}', sequence, {touch.format(row=table)}, NULL, {state(table)}, count(*) "
                   f"FROM {table} GROUP BY sequence, {'touch, ' if '{row}' in touch else ''}{state(table)}")
    settled = datetime.now(timezone.utc) - timedelta(minutes=5)
    upto = op.get_bind().execute(sa.text("SELECT max(id) FROM delivery_log WHERE at < :at"),
                                 {"at": settled.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else settled}).scalar()
    if upto is not None:
        op.execute(sa.text("INSERT INTO log_counts (upto, event, provider, n) SELECT :upto, event, "
                           "coalesce(provider, ''), count(*) FROM delivery_log WHERE id <= :upto "
                           "GROUP BY event, coalesce(provider, '')").bindparams(upto=upto))
    if not sqlite:
        op.drop_index('ix_messages_sent_at', table_name='messages')
        op.create_index('ix_messages_sent_at', 'messages', ['sent_at'], postgresql_include=SENDS,
                        postgresql_where=sa.text("sent_at IS NOT NULL"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table, *_ in COUNTED:
            op.execute(f"DROP FUNCTION sequence_counts_{table}() CASCADE")
        op.drop_index('ix_messages_sent_at', table_name='messages')
        op.create_index('ix_messages_sent_at', 'messages', ['sent_at'], postgresql_where=sa.text("sent_at IS NOT NULL"))
    op.drop_table('log_counts')
    op.drop_table('sequence_counts')
