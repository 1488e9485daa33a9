"""run marks: what the KPI page's funnels read kept in step with the tables (PostgreSQL)

- ``enrollments.first_sent_at``: when the run's first message that counts as sent went out;
  ``enrollments.first_clicked_at``: a person's first click on one of the run's messages. The funnel per sequence
  reads them from the window's runs;
- ``messages.clicks``: a person's clicks on the message; ``messages.credits``: the conversions credited to it;
- ``bucket_counts`` kinds ``spend`` (the messages sent then, by sequence, provider (``touch``) and channel
  (``state``), ``n`` their SMS segments, each email 1), ``clicked`` (the messages sent then that a person clicked)
  and ``credited`` (the conversions credited to the messages sent then), each by the message's send quarter hour:
  the window's cost and the funnel per touch;
- ``contact_events (message_id)``: the conversions credited to the sends at a window's edges; ``(at)`` and
  ``(contact_id)`` of the conversions: a window's conversions and its buyers' lifetime ones (PostgreSQL: with
  what the reports read of them, from the indexes alone);
- PostgreSQL: ``enrollments (enrolled_at)`` carries the run's sequence and contact.

Triggers keep them all in the transaction that changes a message, a click or a conversion (on ``messages`` once
per statement, from its transition tables: a worker's batch of sends is one set-based write, its moves summed by
key); filled here from the tables. On SQLite the columns stay NULL (and 0) and the reports count the tables.

Revision ID: 0023_run_marks
Revises: 0022_kpi_page
"""
from alembic import op
import sqlalchemy as sa


revision = '0023_run_marks'
down_revision = '0022_kpi_page'
branch_labels = None
depends_on = None

QUARTER = 900
COUNTS_AS_SENT = "('sending', 'sent', 'delivered', 'undelivered', 'unknown')"
KINDS = ("spend", "clicked", "credited")


def sent_at(row: str) -> str:
    """The message's send time if it counts as sent, else NULL."""
    return f"CASE WHEN {row}.status IN {COUNTS_AS_SENT} THEN {row}.sent_at END"


def _buckets(row: str) -> list[tuple[str, ...]]:
    """Each kind's (kind, quarter, sequence, touch, state, n) of a message; a NULL state is not counted."""
    quarter = f"floor(extract(epoch FROM {row}.sent_at) / {QUARTER})::bigint"
    units = (f"CASE WHEN {row}.channel = 'sms' AND coalesce({row}.segments, 0) <> 0 THEN {row}.segments "
             "ELSE 1 END")
    counted = f"{row}.sent_at IS NOT NULL AND {row}.status IN {COUNTS_AS_SENT}"
    return [("spend", quarter, f"{row}.sequence", f"coalesce({row}.provider, '')",
             f"CASE WHEN {counted} THEN {row}.channel END", units),
            ("clicked", quarter, f"{row}.sequence", f"{row}.touch",
             f"CASE WHEN {counted} AND {row}.clicks > 0 THEN 'clicked' END", "1"),
            ("credited", quarter, f"{row}.sequence", f"{row}.touch",
             f"CASE WHEN {counted} AND {row}.credits > 0 THEN 'converted' END", f"{row}.credits")]


def _statement_triggers(name: str) -> list[str]:
    """``name``'s triggers on ``messages``: once per statement, with the rows it changed (``gone``: as they were,
    ``came``: as they are), so a worker's batch of sends costs one set-based write, not one per message."""
    return [f"CREATE TRIGGER {name}_{event.lower()} AFTER {event} ON messages REFERENCING {tables} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            for event, tables in (("INSERT", "NEW TABLE AS came"), ("DELETE", "OLD TABLE AS gone"),
                                  ("UPDATE", "OLD TABLE AS gone NEW TABLE AS came"))]


def _bucket_triggers() -> list[str]:
    """The moves of a statement's messages in and out of the kinds' counts, summed by key (a message whose key
    and amount stayed cancels out)."""
    def moves(table: str, sign: str) -> str:
        return " UNION ALL ".join(f"SELECT '{kind}' AS kind, {quarter} AS quarter, {seq} AS sequence, "
                                  f"{touch} AS touch, {state} AS state, {sign}({n}) AS n FROM {table} "
                                  f"WHERE ({state}) IS NOT NULL"
                                  for kind, quarter, seq, touch, state, n in _buckets(table))

    insert = ("INSERT INTO bucket_moves (kind, quarter, sequence, touch, state, n) SELECT kind, quarter, sequence, "
              "touch, state, sum(n) FROM ({}) AS moves GROUP BY kind, quarter, sequence, touch, state "
              "HAVING sum(n) <> 0;")
    return [
        "CREATE FUNCTION bucket_marks_messages() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'INSERT' THEN {insert.format(moves('came', ''))} "
        f"ELSIF TG_OP = 'DELETE' THEN {insert.format(moves('gone', '-'))} "
        f"ELSE {insert.format(moves('gone', '-') + ' UNION ALL ' + moves('came', ''))} END IF; "
        "RETURN NULL; END $$",
        *_statement_triggers("bucket_marks_messages"),
    ]


#: a run's first send and first click, counted again from its messages (when one leaves or moves)
FIRST_SEND = ("(SELECT min(sent_at) FROM messages WHERE enrollment_id = {run} AND sent_at IS NOT NULL "
              f"AND status IN {COUNTS_AS_SENT})")
FIRST_CLICK = ("(SELECT min(g.at) FROM engagements g JOIN messages m ON m.id = g.message_id "
               "WHERE m.enrollment_id = {run} AND g.kind = 'clicked')")


def _run_triggers() -> list[str]:
    gone, came = sent_at("gone"), sent_at("came")
    # each message's counted send as it was (-1) and as it is (+1): what is left after they cancel moved
    sends = {"INSERT": f"SELECT id, enrollment_id, {came} AS at, 1 AS n FROM came WHERE ({came}) IS NOT NULL",
             "DELETE": f"SELECT id, enrollment_id, {gone} AS at, -1 AS n FROM gone WHERE ({gone}) IS NOT NULL"}
    sends["UPDATE"] = f"{sends['INSERT']} UNION ALL {sends['DELETE']}"
    clicked = {"INSERT": "SELECT id, enrollment_id, 1 AS n FROM came WHERE clicks > 0",
               "DELETE": "SELECT id, enrollment_id, -1 AS n FROM gone WHERE clicks > 0"}
    clicked["UPDATE"] = f"{clicked['INSERT']} UNION ALL {clicked['DELETE']}"

    def body(op: str) -> str:
        moved = (f"SELECT enrollment_id, at, sum(n) AS n FROM ({sends[op]}) AS sends "
                 "GROUP BY id, enrollment_id, at HAVING sum(n) <> 0")
        # a run's first send counted again where one of its sends left; a send that came may only make it
        # earlier; a run's first click counted again where a clicked message left it or came to it
        return (f"UPDATE enrollments SET first_sent_at = {FIRST_SEND.format(run='enrollments.id')} "
                f"WHERE id IN (SELECT enrollment_id FROM ({moved}) AS moved WHERE n < 0); "
                "UPDATE enrollments SET first_sent_at = s.at FROM (SELECT enrollment_id, min(at) AS at "
                f"FROM ({moved}) AS moved WHERE n > 0 GROUP BY enrollment_id) AS s "
                "WHERE enrollments.id = s.enrollment_id AND (first_sent_at IS NULL OR first_sent_at > s.at); "
                f"UPDATE enrollments SET first_clicked_at = {FIRST_CLICK.format(run='enrollments.id')} "
                f"WHERE id IN (SELECT enrollment_id FROM ({clicked[op]}) AS clicked "
                "GROUP BY id, enrollment_id HAVING sum(n) <> 0);")

    return [
        "CREATE FUNCTION run_marks_messages() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'INSERT' THEN {body('INSERT')} ELSIF TG_OP = 'DELETE' THEN {body('DELETE')} "
        f"ELSE {body('UPDATE')} END IF; RETURN NULL; END $$",
        *_statement_triggers("run_marks_messages"),
        # a person's click: its message's count and its run's first click
        "CREATE FUNCTION run_marks_engagements() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP <> 'INSERT' AND OLD.kind = 'clicked' AND OLD.message_id IS NOT NULL THEN "
        "UPDATE messages SET clicks = clicks - 1 WHERE id = OLD.message_id; "
        f"UPDATE enrollments e SET first_clicked_at = {FIRST_CLICK.format(run='e.id')} FROM messages m "
        "WHERE m.id = OLD.message_id AND e.id = m.enrollment_id AND e.first_clicked_at >= OLD.at; END IF; "
        "IF TG_OP <> 'DELETE' AND NEW.kind = 'clicked' AND NEW.message_id IS NOT NULL THEN "
        "UPDATE messages SET clicks = clicks + 1 WHERE id = NEW.message_id; "
        "UPDATE enrollments e SET first_clicked_at = NEW.at FROM messages m WHERE m.id = NEW.message_id "
        "AND e.id = m.enrollment_id AND (e.first_clicked_at IS NULL OR e.first_clicked_at > NEW.at); END IF; "
        "RETURN NULL; END $$",
        "CREATE TRIGGER run_marks_engagements_new AFTER INSERT OR DELETE ON engagements FOR EACH ROW "
        "EXECUTE FUNCTION run_marks_engagements()",
        "CREATE TRIGGER run_marks_engagements_moved AFTER UPDATE ON engagements FOR EACH ROW "
        "WHEN ((OLD.kind = 'clicked' OR NEW.kind = 'clicked') AND (OLD.kind, OLD.message_id, OLD.at) "
        "IS DISTINCT FROM (NEW.kind, NEW.message_id, NEW.at)) EXECUTE FUNCTION run_marks_engagements()",
        # a credited conversion: its message's count
        "CREATE FUNCTION run_marks_events() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP <> 'INSERT' AND OLD.type = 'converted' AND OLD.message_id IS NOT NULL THEN "
        "UPDATE messages SET credits = credits - 1 WHERE id = OLD.message_id; END IF; "
        "IF TG_OP <> 'DELETE' AND NEW.type = 'converted' AND NEW.message_id IS NOT NULL THEN "
        "UPDATE messages SET credits = credits + 1 WHERE id = NEW.message_id; END IF; "
        "RETURN NULL; END $$",
        "CREATE TRIGGER run_marks_events_new AFTER INSERT OR DELETE ON contact_events FOR EACH ROW "
        "EXECUTE FUNCTION run_marks_events()",
        "CREATE TRIGGER run_marks_events_moved AFTER UPDATE ON contact_events FOR EACH ROW "
        "WHEN ((OLD.type = 'converted' OR NEW.type = 'converted') AND (OLD.type, OLD.message_id) "
        "IS DISTINCT FROM (NEW.type, NEW.message_id)) EXECUTE FUNCTION run_marks_events()",
    ]


def _enrolled_at_index(include: list[str]) -> None:
    op.drop_index('ix_enrollments_enrolled_at', table_name='enrollments')
    op.create_index('ix_enrollments_enrolled_at', 'enrollments', ['enrolled_at'], postgresql_include=include)


def upgrade() -> None:
    for name in ('first_sent_at', 'first_clicked_at'):
        op.add_column('enrollments', sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    for name in ('clicks', 'credits'):
        op.add_column('messages', sa.Column(name, sa.Integer(), server_default='0', nullable=False))
    where = sa.text("message_id IS NOT NULL")
    op.create_index('ix_contact_events_message', 'contact_events', ['message_id'], sqlite_where=where,
                    postgresql_where=where)
    converted = sa.text("type = 'converted'")
    op.create_index('ix_contact_events_converted', 'contact_events', ['at'], sqlite_where=converted,
                    postgresql_where=converted, postgresql_include=['contact_id', 'sequence', 'value', 'id'])
    op.create_index('ix_contact_events_buyer', 'contact_events', ['contact_id'], sqlite_where=converted,
                    postgresql_where=converted, postgresql_include=['at', 'sequence', 'value', 'id'])
    _enrolled_at_index(['sequence', 'contact_id'])
    if op.get_bind().dialect.name == "sqlite":
        return
    # adding the columns locked messages and enrollments until this commits; the triggers lock the rest
    op.execute("LOCK TABLE engagements, contact_events IN SHARE ROW EXCLUSIVE MODE")
    op.execute("UPDATE messages SET clicks = c.n FROM (SELECT message_id, count(*) AS n FROM engagements "
               "WHERE kind = 'clicked' GROUP BY message_id) c WHERE messages.id = c.message_id")
    op.execute("UPDATE messages SET credits = c.n FROM (SELECT message_id, count(*) AS n FROM contact_events "
               "WHERE type = 'converted' GROUP BY message_id) c WHERE messages.id = c.message_id")
    op.execute("UPDATE enrollments SET first_sent_at = s.at FROM (SELECT enrollment_id, min(sent_at) AS at "
               f"FROM messages WHERE sent_at IS NOT NULL AND status IN {COUNTS_AS_SENT} GROUP BY enrollment_id) s "
               "WHERE enrollments.id = s.enrollment_id")
    op.execute("UPDATE enrollments SET first_clicked_at = c.at FROM (SELECT m.enrollment_id, min(g.at) AS at "
               "FROM engagements g JOIN messages m ON m.id = g.message_id WHERE g.kind = 'clicked' "
               "GROUP BY m.enrollment_id) c WHERE enrollments.id = c.enrollment_id")
    for statement in _run_triggers() + _bucket_triggers():
        op.execute(statement)
    for kind, *key, state, n in _buckets("messages"):
        op.execute(f"INSERT INTO bucket_counts (kind, quarter, sequence, touch, state, n) "
                   f"SELECT '{kind}', {', '.join(key)}, {state}, sum({n}) FROM messages "
                   f"WHERE ({state}) IS NOT NULL GROUP BY 2, 3, 4, 5")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for name in ("bucket_marks_messages", "run_marks_messages", "run_marks_engagements", "run_marks_events"):
            op.execute(f"DROP FUNCTION {name}() CASCADE")
        for table in ("bucket_counts", "bucket_moves"):
            op.execute(f"DELETE FROM {table} WHERE kind IN {KINDS!r}")
    for name in ('ix_contact_events_message', 'ix_contact_events_converted', 'ix_contact_events_buyer'):
        op.drop_index(name, table_name='contact_events')
    _enrolled_at_index([])
    for name in ('clicks', 'credits'):
        op.drop_column('messages', name)
    for name in ('first_sent_at', 'first_clicked_at'):
        op.drop_column('enrollments', name)
