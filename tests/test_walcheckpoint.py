"""engine.walcheckpoint: the worker's background WAL checkpoint."""
from __future__ import annotations


def test_checkpointer_copies_the_log_back_into_the_database_file(tmp_path):
    import os
    import sqlite3
    import threading

    from engine.walcheckpoint import Checkpointer

    path = str(tmp_path / "wal.db")
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # only the checkpointer copies pages back here
    writer.execute("CREATE TABLE t (x TEXT)")
    writer.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 2000)
    assert os.path.getsize(path) < 100_000 < os.path.getsize(path + "-wal")  # the rows are only in the log
    done = threading.Event()
    checkpointer = Checkpointer(path, interval=0)
    run = checkpointer._checkpoint
    checkpointer._checkpoint = lambda conn: (run(conn), done.set())  # type: ignore[method-assign]
    checkpointer.poke()
    assert done.wait(30), "the checkpoint thread never ran"
    checkpointer.close()
    assert os.path.getsize(path) > 1_000_000  # now they are in the database file
    assert writer.execute("SELECT count(*) FROM t").fetchone()[0] == 2000
    writer.close()


def test_checkpointer_never_started_closes_and_a_failing_checkpoint_is_only_logged(tmp_path, caplog):
    import sqlite3

    from engine.walcheckpoint import Checkpointer

    Checkpointer(str(tmp_path / "never.db")).close()  # no commit, no thread
    bad = Checkpointer(str(tmp_path / "x.db"))
    conn = sqlite3.connect(":memory:")
    conn.close()
    bad._checkpoint(conn)  # a closed connection: sqlite3.ProgrammingError is not a crash of the thread
    assert "background checkpoint" in caplog.text
