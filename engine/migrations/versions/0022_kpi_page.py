"""kpi page: the KPI page's counts per quarter hour kept by triggers; its funnels from the index on sent_at

- ``bucket_counts`` (PostgreSQL): per quarter hour, sequence and touch, the messages sent then that are
  ``sent`` or ``delivered`` (kind ``sends``), the clicks by a person (``clicks``) and the conversions (``sales``);
  triggers on ``messages``, ``engagements`` and ``contact_events`` append each move to ``bucket_moves`` in the
  transaction that made it, and the worker folds them in (:mod:`engine.store.buckets`); filled here from the
  tables. Both tables stay empty on SQLite (its reports count the tables);
- ``engagements (at)``: the clicks of a window's edges (and of the whole window on SQLite);
- PostgreSQL: ``messages (sent_at)`` of the messages that went out carries their contact and id too: the funnel
  per sequence reads the (sequence, contact) pairs sent within the window, and the funnel per touch joins the
  window's sends to their clicks and credited conversions, without reading the table.

Revision ID: 0022_kpi_page
Revises: 0021_rollups
"""
from alembic import op
import sqlalchemy as sa


revision = '0022_kpi_page'
down_revision = '0021_rollups'
branch_labels = None
depends_on = None

#: 0021's columns of the index on sent_at
SENDS = ['status', 'sequence', 'touch', 'provider', 'channel', 'segments']
QUARTER = 900


def quarter(column: str) -> str:
    return f"floor(extract(epoch FROM {column}) / {QUARTER})::bigint"


def sends_state(row: str) -> str:
    """A message's counted state in ``sends`` (NULL: not counted), as the KPI page's COUNTS_AS_SENT."""
    return (f"CASE WHEN {row}.sent_at IS NULL THEN NULL WHEN {row}.status = 'delivered' THEN 'delivered' "
            f"WHEN {row}.status IN ('sending', 'sent', 'undelivered', 'unknown') THEN 'sent' END")


def clicks_state(row: str) -> str:
    return f"CASE WHEN {row}.kind = 'clicked' THEN 'clicked' END"


def sales_state(row: str) -> str:
    return f"CASE WHEN {row}.type = 'converted' THEN 'converted' END"


#: table, kind, its time column, its touch (a conversion has none), its counted state
COUNTED = (("messages", "sends", "sent_at", "{row}.touch", sends_state),
           ("engagements", "clicks", "at", "coalesce({row}.touch, '')", clicks_state),
           ("contact_events", "sales", "at", "''", sales_state))


def _key(row: str, at: str, touch: str, state) -> tuple[str, ...]:
    return (quarter(f"{row}.{at}"), f"coalesce({row}.sequence, '')", touch.format(row=row), state(row))


def _pg_triggers(table: str, kind: str, at: str, touch: str, state) -> list[str]:
    old, new = _key("OLD", at, touch, state), _key("NEW", at, touch, state)
    insert = "INSERT INTO bucket_moves (kind, quarter, sequence, touch, state, n) VALUES "
    row = "('{kind}', {0}, {1}, {2}, {3}, {n})"
    leave = f"IF ({old[3]}) IS NOT NULL THEN {insert}{row.format(*old, kind=kind, n=-1)}; END IF;"
    enter = f"IF ({new[3]}) IS NOT NULL THEN {insert}{row.format(*new, kind=kind, n=1)}; END IF;"
    moved = " OR ".join(f"({a}) IS DISTINCT FROM ({b})" for a, b in zip(old, new))
    return [
        f"CREATE FUNCTION bucket_moves_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP <> 'INSERT' THEN {leave} END IF; IF TG_OP <> 'DELETE' THEN {enter} END IF; "
        "RETURN NULL; END $$",
        f"CREATE TRIGGER bucket_moves_{table}_new AFTER INSERT OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION bucket_moves_{table}()",
        f"CREATE TRIGGER bucket_moves_{table}_moved AFTER UPDATE ON {table} FOR EACH ROW "
        f"WHEN ((({old[3]}) IS NOT NULL OR ({new[3]}) IS NOT NULL) AND ({moved})) "
        f"EXECUTE FUNCTION bucket_moves_{table}()",
    ]


def _sent_at_index(include: list[str]) -> None:
    op.drop_index('ix_messages_sent_at', table_name='messages')
    op.create_index('ix_messages_sent_at', 'messages', ['sent_at'], postgresql_include=include,
                    postgresql_where=sa.text("sent_at IS NOT NULL"))


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    def key(primary: bool) -> list[sa.Column]:
        return [sa.Column('kind', sa.String(length=10), primary_key=primary, nullable=False),
                sa.Column('quarter', sa.BigInteger(), primary_key=primary, nullable=False),
                *(sa.Column(name, sa.String(length=size), primary_key=primary, nullable=False)
                  for name, size in (('sequence', 100), ('touch', 100), ('state', 20)))]

    op.create_table('bucket_moves', sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                              primary_key=True),
                    *key(False), sa.Column('n', sa.Integer(), nullable=False))
    op.create_table('bucket_counts', *key(True), sa.Column('n', sa.BigInteger(), nullable=False))
    op.create_index('ix_engagements_at', 'engagements', ['at'])
    if sqlite:
        return
    for table, kind, at, touch, state in COUNTED:
        # the trigger first: it locks the table against writes until this commits, so the count below misses none
        for statement in _pg_triggers(table, kind, at, touch, state):
            op.execute(statement)
        key = _key(table, at, touch, state)
        op.execute(f"INSERT INTO bucket_counts (kind, quarter, sequence, touch, state, n) "
                   f"SELECT '{kind}', {', '.join(key)}, count(*) FROM {table} WHERE ({key[3]}) IS NOT NULL "
                   "GROUP BY 2, 3, 4, 5")
    _sent_at_index([*SENDS, 'contact_id', 'id'])


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table, *_ in COUNTED:
            op.execute(f"DROP FUNCTION bucket_moves_{table}() CASCADE")
        _sent_at_index(SENDS)
    op.drop_index('ix_engagements_at', table_name='engagements')
    op.drop_table('bucket_counts')
    op.drop_table('bucket_moves')
