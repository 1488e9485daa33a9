"""engine.recovery: its search for expired leases reads the partial index."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("expired", [True, False])
def test_recoverys_search_reads_the_partial_index_not_the_whole_table(tmp_path, expired):
    # a search ordered by id would make SQLite walk every message on every tick
    from engine.clock import now
    from engine.db import make_engine, upgrade
    from engine.recovery import in_flight_query

    url = f"sqlite:///{tmp_path}/plan.db"
    upgrade(url)
    engine = make_engine(url)
    sql = str(in_flight_query(engine, now() if expired else None).compile(engine,
                                                                          compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    engine.dispose()
    assert "USING INDEX ix_messages_lease" in plan and "TEMP B-TREE" not in plan, plan
