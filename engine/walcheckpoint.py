"""Copying SQLite's write-ahead log back into the database on a thread of its own.

SQLite does this inside the commit that takes the log past ``wal_autocheckpoint`` pages (1,000): the
committing thread — the worker's tick — stops while the pages are copied and synced. Poked after the
worker's commits, this thread checkpoints first (``PASSIVE``: it never waits for, nor blocks, a reader
or a writer), so the log is reset before it grows that far and the commits find nothing left to copy.
SQLite's own checkpoint stays on: if this thread falls behind or stops, the commits take over again.
"""
from __future__ import annotations

import logging
import sqlite3
import threading

__all__ = ["Checkpointer"]

logger = logging.getLogger("followup.worker")


class Checkpointer:
    """Checkpoints the SQLite file at ``path`` after :meth:`poke`, at most once per ``interval`` seconds."""

    def __init__(self, path: str, *, interval: float = 0.05):
        self.path = path
        self.interval = interval
        self._poked = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Something was committed: checkpoint soon."""
        if self._thread is None:  # started on the first commit: a worker that only reads never needs it
            self._thread = threading.Thread(target=self._run, daemon=True, name="wal-checkpoint")
            self._thread.start()
        self._poked.set()

    def close(self) -> None:
        self._closing.set()
        self._poked.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            while True:
                self._poked.wait()
                if self._closing.is_set():
                    return
                self._poked.clear()
                self._checkpoint(conn)
                self._closing.wait(self.interval)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as err:  # the commits' own checkpoints still run
            logger.warning("background checkpoint of %s failed: %s", self.path, err)
