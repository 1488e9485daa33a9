"""source spend: the cost of the messages sent per quarter hour kept by source too (PostgreSQL)

- ``bucket_counts`` kind ``sourced``: as ``spend`` (0023: the SMS segments and emails of the messages sent then,
  by provider as ``touch`` and channel as ``state``), keyed by the message's copy of its contact's source (0024)
  in place of the sequence, '' for none. A trigger on ``messages`` (once per statement, from its transition
  tables) appends the moves, so a source rewritten on a contact's messages moves its counts with it; filled here
  from the table. The KPI report's cost by source reads these counts instead of the window's messages;
- ``messages (sent_at) WHERE length(source) > 100``: a source longer than the key's 100 characters is not kept;
  the report counts those few messages from this index.

Revision ID: 0026_source_spend
Revises: 0025_sends_index
"""
from alembic import op
import sqlalchemy as sa


revision = '0026_source_spend'
down_revision = '0025_sends_index'
branch_labels = None
depends_on = None

QUARTER = 900
COUNTS_AS_SENT = "('sending', 'sent', 'delivered', 'undelivered', 'unknown')"
#: characters of a source kept in the key (bucket_counts.sequence); a longer one is counted from the index
KEPT = 100
LONG = sa.text(f"length(source) > {KEPT}")


def _key(row: str) -> tuple[str, ...]:
    """(quarter, source, provider, state, n) of a message; a NULL state is not counted."""
    counted = (f"{row}.sent_at IS NOT NULL AND {row}.status IN {COUNTS_AS_SENT} "
               f"AND coalesce(length({row}.source), 0) <= {KEPT}")
    return (f"floor(extract(epoch FROM {row}.sent_at) / {QUARTER})::bigint", f"coalesce({row}.source, '')",
            f"coalesce({row}.provider, '')", f"CASE WHEN {counted} THEN {row}.channel END",
            f"CASE WHEN {row}.channel = 'sms' AND coalesce({row}.segments, 0) <> 0 THEN {row}.segments ELSE 1 END")


def _triggers() -> list[str]:
    def moves(table: str, sign: str) -> str:
        quarter, source, provider, state, n = _key(table)
        return (f"SELECT {quarter} AS quarter, {source} AS sequence, {provider} AS touch, {state} AS state, "
                f"{sign}({n}) AS n FROM {table} WHERE ({state}) IS NOT NULL")

    insert = ("INSERT INTO bucket_moves (kind, quarter, sequence, touch, state, n) SELECT 'sourced', quarter, "
              "sequence, touch, state, sum(n) FROM ({}) AS moves GROUP BY quarter, sequence, touch, state "
              "HAVING sum(n) <> 0;")
    return [
        "CREATE FUNCTION bucket_sources_messages() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'INSERT' THEN {insert.format(moves('came', ''))} "
        f"ELSIF TG_OP = 'DELETE' THEN {insert.format(moves('gone', '-'))} "
        f"ELSE {insert.format(moves('gone', '-') + ' UNION ALL ' + moves('came', ''))} END IF; "
        "RETURN NULL; END $$",
        *(f"CREATE TRIGGER bucket_sources_messages_{event.lower()} AFTER {event} ON messages REFERENCING {tables} "
          "FOR EACH STATEMENT EXECUTE FUNCTION bucket_sources_messages()"
          for event, tables in (("INSERT", "NEW TABLE AS came"), ("DELETE", "OLD TABLE AS gone"),
                                ("UPDATE", "OLD TABLE AS gone NEW TABLE AS came"))),
    ]


def upgrade() -> None:
    op.create_index('ix_messages_long_source', 'messages', ['sent_at'], sqlite_where=LONG, postgresql_where=LONG)
    if op.get_bind().dialect.name == "sqlite":
        return
    # the triggers first: they lock messages against writes until this commits, so the count below misses none
    for statement in _triggers():
        op.execute(statement)
    quarter, source, provider, state, n = _key("messages")
    op.execute(f"INSERT INTO bucket_counts (kind, quarter, sequence, touch, state, n) SELECT 'sourced', {quarter}, "
               f"{source}, {provider}, {state}, sum({n}) FROM messages WHERE ({state}) IS NOT NULL "
               "GROUP BY 2, 3, 4, 5")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION bucket_sources_messages() CASCADE")
        for table in ("bucket_counts", "bucket_moves"):
            op.execute(f"DELETE FROM {table} WHERE kind = 'sourced'")
    op.drop_index('ix_messages_long_source', table_name='messages')
