"""What every table group of ``labeler.store.Store`` shares: one connection and one
transaction helper."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from labeler.errors import StateError, write_failed


class Tables:
    """One connection (``db``) to the state database at ``path``, shared by the table
    groups ``labeler.store.Store`` is made of."""

    db: sqlite3.Connection
    path: Path

    def _in_chunks(self, sql: str, values: list[str]) -> Iterator[sqlite3.Row]:
        """Rows of ``sql`` (whose ``{marks}`` is an IN list) over ``values``, 500 at a time
        (SQLite caps the parameters of one statement)."""
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            yield from self.db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a full disk becomes one line naming the database (the
        transaction is rolled back: nothing half-written, the command can be rerun)."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            else:
                self.db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            if "full" in str(exc):  # SQLITE_FULL: "database or disk is full"
                import errno

                raise StateError(write_failed(self.path, OSError(errno.ENOSPC, str(exc)))) from None
            raise

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
