"""The project's state: one SQLite file holding every pair's lifecycle, every judge call,
every verdict and every round.

Pair states::

    imported -> accepted -> exported            (the judge decided alone)
    imported -> needs_review -> in_review -> human_decided -> exported

Writes are small transactions committed as work finishes (WAL journal), so ``kill -9`` at
any moment loses at most the requests in flight. Judge calls are cached by a key over
(model, template hash, guidelines hash, pair id, order): a stored successful reply is never
requested again.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from labeler.errors import StateError, state_failed
from labeler.state.batches import BatchesTables
from labeler.state.calls import CallRecord, CallsTables, VerdictRecord
from labeler.state.evidence import EvidenceTables
from labeler.state.pairs import PairsTables
from labeler.state.review import ReviewTables
from labeler.state.rewards import RewardTables
from labeler.state.rounds import RoundsTables
from labeler.state.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, STATES

__all__ = [
    "SCHEMA_VERSION",
    "STATES",
    "CallRecord",
    "Store",
    "VerdictRecord",
    "quick_check",
]


def quick_check(path: Path) -> str | None:
    """The first problem ``PRAGMA quick_check`` finds in the database at ``path`` (None:
    none, or it could not even be opened read-only)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc) if "malformed" in str(exc) or "not a database" in str(exc) else None
    first = " ".join(str(rows[0][0]).split()) if rows else "ok"  # one line
    return None if first == "ok" else first


class Store(
    PairsTables,
    RoundsTables,
    CallsTables,
    BatchesTables,
    ReviewTables,
    EvidenceTables,
    RewardTables,
):
    """A connection to the state database. Use as a context manager or call close(). Its
    methods live with their tables in ``labeler.state``."""

    last_path: Path | None = None  # the state database opened last (named in SQLite errors)

    def __init__(self, path: Path):
        self.path = path
        Store.last_path = path
        self._refuse_lost_state()
        self._check_after_unclean_stop()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # one thread at a time, but not always the opening one: a round started inside a
            # running event loop (a notebook) judges on a private loop in a worker thread
            self.db = sqlite3.connect(
                path, isolation_level=None, timeout=30, check_same_thread=False
            )
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self.transaction():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self._migrate()
            self._mark()
        except sqlite3.DatabaseError as exc:
            damaged = quick_check(path) if "malformed" in str(exc) else None
            if damaged is not None:
                raise StateError(state_failed(path, exc, damaged)) from None
            raise StateError(f"{path}: cannot open the state database ({exc})") from None
        except OSError as exc:
            raise StateError(f"{path}: cannot create the state folder ({exc})") from None

    @property
    def marker(self) -> Path:
        """A file beside the state saying this project has state (written when the state
        is first created): an emptied or deleted state.sqlite is then refused, never
        silently started again (which would judge and pay for every pair again)."""
        return self.path.with_name(self.path.name + ".created")

    def _refuse_lost_state(self) -> None:
        path = self.path
        try:
            fresh = not path.exists() or path.stat().st_size == 0
        except OSError:
            return  # unreadable: opening says what is wrong
        dataset = path.parent / "dataset"
        if not fresh or not (self.marker.exists() or dataset.exists()):
            return
        what = "missing" if not path.exists() else "empty"
        since = ""
        with contextlib.suppress(OSError, IndexError):
            since = f" since {self.marker.read_text().split()[0]}"
        evidence = self.marker if self.marker.exists() else dataset
        raise StateError(
            f"{path}: the state database is {what}, but this project had state{since} "
            f"({evidence} exists); restore {path.name} from your backup, or delete {evidence} "
            "to start a new project here (every pair is judged and paid for again)"
        )

    def _check_after_unclean_stop(self) -> None:
        """After a command stopped without releasing the project lock (killed, crashed),
        ``PRAGMA quick_check`` the state before using it: a damaged file is reported with
        the way out, never read as a smaller project ("Nothing to do")."""
        from labeler.lock import checked, stopped_uncleanly

        if not self.path.exists() or not stopped_uncleanly(self.path.parent):
            return
        damaged = quick_check(self.path)
        if damaged is not None:
            raise StateError(state_failed(self.path, RuntimeError(damaged), damaged))
        checked(self.path.parent)  # once per command: a large file takes a while to read

    def _mark(self) -> None:
        if self.marker.exists():
            return
        try:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.marker.write_text(f"{when} labeler state created here; do not delete\n")
        except OSError:
            pass  # a read-only folder: the state opened, the marker waits for the next time

    def _migrate(self) -> None:
        """Bring a state file to SCHEMA_VERSION by numbered steps (inside the opening
        transaction: a failed step leaves the file as it was)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: written by a newer labeler (schema {version}); upgrade labeler"
            )
        for number, step in MIGRATIONS:
            if number > version or (number == 1 and version <= 1):
                step(self.db)
        if version != SCHEMA_VERSION:  # (a file already there is not written: a read-only
            self.db.execute(  # command such as `status` needs no free space)
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
