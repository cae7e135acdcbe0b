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
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeler.errors import StateError, state_failed, write_failed
from labeler.pairs import BadRow, Pair, pair_key

SCHEMA_VERSION = 6  # see MIGRATIONS
STATES = ("imported", "accepted", "needs_review", "in_review", "human_decided", "exported")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    prompt TEXT NOT NULL,
    response_a TEXT NOT NULL,
    response_b TEXT NOT NULL,
    source TEXT NOT NULL,
    source_row INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'imported',
    round_id INTEGER,
    imported_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pairs_by_state ON pairs (state, round_id, seq);
CREATE INDEX IF NOT EXISTS pairs_by_round ON pairs (round_id, state);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cache_key TEXT NOT NULL,
    pair_id TEXT NOT NULL,
    presented_order TEXT NOT NULL,
    model TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    guidelines_hash TEXT NOT NULL,
    round_id INTEGER,
    status TEXT NOT NULL,
    reply TEXT,
    logprobs TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    latency_ms REAL,
    error TEXT,
    created_at REAL NOT NULL,
    prompt_chars INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS calls_cache ON calls (cache_key) WHERE status = 'ok';
CREATE INDEX IF NOT EXISTS calls_failed ON calls (cache_key, id) WHERE status = 'error';
CREATE INDEX IF NOT EXISTS calls_refused ON calls (cache_key) WHERE status = 'refused';
CREATE INDEX IF NOT EXISTS calls_by_round ON calls (round_id);
CREATE TABLE IF NOT EXISTS verdicts (
    pair_id TEXT PRIMARY KEY,
    round_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    guidelines_hash TEXT NOT NULL,
    label TEXT,
    confidence REAL NOT NULL,
    self_high INTEGER NOT NULL,
    signals TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    thresholds_version INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_by_round ON verdicts (round_id, action, reason);
CREATE TABLE IF NOT EXISTS rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    pair_limit INTEGER,
    model TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    guidelines_hash TEXT NOT NULL,
    thresholds TEXT NOT NULL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS review_items (
    pair_id TEXT PRIMARY KEY,
    swapped INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    pushed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS review_items_by_dataset ON review_items (dataset);
CREATE TABLE IF NOT EXISTS human_responses (
    pair_id TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    status TEXT NOT NULL,
    label TEXT,
    reason TEXT,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    synced_at REAL NOT NULL,
    PRIMARY KEY (pair_id, reviewer)
);
CREATE TABLE IF NOT EXISTS human_decisions (
    pair_id TEXT PRIMARY KEY,
    label TEXT,
    votes TEXT NOT NULL,
    reviewers INTEGER NOT NULL,
    decided INTEGER NOT NULL,
    disputed INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS thresholds (
    version INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    a REAL NOT NULL,
    b REAL NOT NULL,
    weights TEXT,
    audit_rate REAL NOT NULL,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quality_flags (
    pair_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    reviewer TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (pair_id, kind, reviewer)
);
CREATE TABLE IF NOT EXISTS escalations (
    pair_id TEXT NOT NULL,
    tier INTEGER NOT NULL,
    round_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    label TEXT,
    confidence REAL NOT NULL,
    self_high INTEGER NOT NULL,
    signals TEXT NOT NULL,
    reason TEXT NOT NULL,
    thresholds_version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    -- the pair's chance of reaching a human and whether it did, fixed by its final verdict
    -- (made by tier draw_tier), NULL until then
    pi REAL,
    sampled INTEGER,
    draw_tier INTEGER,
    PRIMARY KEY (pair_id, tier)
);
CREATE INDEX IF NOT EXISTS escalations_by_round ON escalations (round_id, tier);
CREATE TABLE IF NOT EXISTS batches (
    key TEXT PRIMARY KEY,
    round_id INTEGER NOT NULL,
    tier INTEGER NOT NULL,
    path TEXT NOT NULL,
    requests INTEGER NOT NULL,
    file_id TEXT,
    batch_id TEXT,
    status TEXT NOT NULL,
    remote_status TEXT,
    results INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS judge_versions (
    tier INTEGER NOT NULL,
    hash TEXT NOT NULL,
    examples TEXT NOT NULL,
    human_verdicts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (tier, hash)
);
CREATE TABLE IF NOT EXISTS bad_rows (
    source TEXT NOT NULL,
    row INTEGER NOT NULL,
    reason TEXT NOT NULL,
    first_seen REAL NOT NULL,
    PRIMARY KEY (source, row)
);
"""


# the judge tier a pair waits for: the one after the last tier that passed it on (0: none)
_AT_TIER = "COALESCE((SELECT MAX(e.tier) + 1 FROM escalations e WHERE e.pair_id = pairs.id), 0) = ?"


@dataclass(frozen=True)
class CallRecord:
    cache_key: str
    pair_id: str
    order: str
    model: str
    template_hash: str
    guidelines_hash: str
    round_id: int
    status: str
    reply: str | None
    logprobs: Any
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_ms: float | None
    error: str | None
    prompt_chars: int = 0
    cached_tokens: int = 0
    tier: int = 0
    batch: str | None = None  # the Batch API batch (labeler's key) that answered it


@dataclass(frozen=True)
class VerdictRecord:
    pair_id: str
    round_id: int
    model: str
    template_hash: str
    guidelines_hash: str
    label: str | None
    confidence: float
    self_high: bool
    signals: dict[str, Any]
    action: str
    reason: str
    thresholds_version: int
    pi: float = 1.0
    sampled: bool = True
    status: str | None = None
    tier: int = 0  # the judge tier (cascade position) that made this verdict


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


class Store:
    """A connection to the state database. Use as a context manager or call close()."""

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
                for statement in _SCHEMA.split(";"):
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
                step(self)
        self.db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def _add_missing_columns(self) -> None:
        """Migration 1: columns added to version 1 files over time (idempotent)."""
        added = {
            "calls": (("prompt_chars", "INTEGER NOT NULL DEFAULT 0"),),
            # pi: the probability the pair had of reaching a human, fixed when routed;
            # sampled: routing sent it to humans; status: certified | provisional for
            # judge-accepted pairs (re-checked after every calibration)
            "verdicts": (("pi", "REAL"), ("sampled", "INTEGER"), ("status", "TEXT")),
            "thresholds": (("params", "TEXT"),),
            "review_items": (("hint", "INTEGER NOT NULL DEFAULT 0"),),
        }
        for table, columns in added.items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns:
                if name not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def _add_pair_keys(self) -> None:
        """Migration 2: ``pair_key``, the pair's identity whatever the order of its
        responses (a swapped copy of a stored pair is a duplicate), filled for old rows."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(pairs)")}
        if "pair_key" not in have:
            self.db.execute("ALTER TABLE pairs ADD COLUMN pair_key TEXT")
        last = 0
        while True:  # a thousand pairs at a time: 100k long pairs do not fit in memory at once
            rows = self.db.execute(
                "SELECT seq, prompt, response_a, response_b FROM pairs "
                "WHERE pair_key IS NULL AND seq > ? ORDER BY seq LIMIT 1000",
                (last,),
            ).fetchall()
            if not rows:
                break
            self.db.executemany(
                "UPDATE pairs SET pair_key = ? WHERE seq = ?",
                ((pair_key(r[1], r[2], r[3]), r[0]) for r in rows),
            )
            last = int(rows[-1][0])
        self.db.execute("CREATE INDEX IF NOT EXISTS pairs_by_key ON pairs (pair_key)")

    def _add_prompt_messages(self) -> None:
        """Migration 3: a multi-turn prompt's messages (JSON), beside its transcript."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(pairs)")}
        if "prompt_messages" not in have:
            self.db.execute("ALTER TABLE pairs ADD COLUMN prompt_messages TEXT")

    def _add_cached_tokens(self) -> None:
        """Migration 4: input tokens served from the endpoint's prompt cache, per call."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(calls)")}
        if "cached_tokens" not in have:
            self.db.execute("ALTER TABLE calls ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0")

    def _add_tiers(self) -> None:
        """Migration 5: the judge tier (cascade position) of every call, verdict and
        threshold version; 0 for everything before tiers existed."""
        for table in ("calls", "verdicts", "thresholds"):
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if "tier" not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN tier INTEGER NOT NULL DEFAULT 0")

    def _add_call_batch(self) -> None:
        """Migration 6: the Batch API batch that answered a call (NULL: online)."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(calls)")}
        if "batch" not in have:
            self.db.execute("ALTER TABLE calls ADD COLUMN batch TEXT")

    def _in_chunks(self, sql: str, values: list[str]) -> Iterator[sqlite3.Row]:
        """Rows of ``sql`` (whose ``{marks}`` is an IN list) over ``values``, 500 at a time
        (SQLite caps the parameters of one statement)."""
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            yield from self.db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    def existing_keys(self, keys: list[str]) -> set[str]:
        """Which of the order-free ``pair_key``s are stored already."""
        sql = "SELECT pair_key FROM pairs WHERE pair_key IN ({marks})"
        return {r[0] for r in self._in_chunks(sql, keys)}

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    # -- pairs -----------------------------------------------------------------------------

    def import_pairs(self, pairs: Iterable[Pair], bad_rows: Iterable[BadRow]) -> int:
        """Insert new pairs and bad-row reports in one transaction; returns pairs added."""
        now = time.time()
        with self.transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO pairs (id, prompt, response_a, response_b, source, "
                "source_row, imported_at, updated_at, pair_key, prompt_messages) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    (
                        p.id,
                        p.prompt,
                        p.response_a,
                        p.response_b,
                        p.source,
                        p.row,
                        now,
                        now,
                        p.key,
                        p.messages or None,
                    )
                    for p in pairs
                ),
            )
            added = db.total_changes - before
            db.executemany(
                "INSERT OR IGNORE INTO bad_rows (source, row, reason, first_seen) VALUES (?,?,?,?)",
                ((b.source, b.row, b.reason, now) for b in bad_rows),
            )
        return added

    def existing_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are stored already (in any state)."""
        return {r[0] for r in self._in_chunks("SELECT id FROM pairs WHERE id IN ({marks})", ids)}

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def known_pair_ids(self, ids: list[str]) -> set[str]:
        sql = "SELECT id FROM pairs WHERE id IN ({marks}) AND state != 'imported'"
        return {r[0] for r in self._in_chunks(sql, ids)}

    def iter_round_pairs(
        self, round_id: int, state: str = "imported", batch: int = 1000, tier: int | None = None
    ) -> Iterator[Pair]:
        """Pairs of a round still in ``state``, in import order, read in batches; with
        ``tier``, only those waiting for that judge tier of a cascade."""
        last = 0
        at, extra = ("", ()) if tier is None else (f" AND {_AT_TIER}", (tier,))
        while True:
            rows = self.db.execute(
                "SELECT seq, id, prompt, response_a, response_b, source, source_row FROM pairs "
                f"WHERE round_id = ? AND state = ?{at} AND seq > ? ORDER BY seq LIMIT ?",
                (round_id, state, *extra, last, batch),
            ).fetchall()
            if not rows:
                return
            for r in rows:
                yield Pair(
                    r["id"],
                    r["prompt"],
                    r["response_a"],
                    r["response_b"],
                    r["source"],
                    r["source_row"],
                )
            last = rows[-1]["seq"]

    def count_round_pairs(
        self, round_id: int, state: str | None = None, tier: int | None = None
    ) -> int:
        sql = "SELECT COUNT(*) FROM pairs WHERE round_id = ?"
        args: list[object] = [round_id]
        if state is not None:
            sql, args = sql + " AND state = ?", [*args, state]
        if tier is not None:
            sql, args = sql + f" AND {_AT_TIER}", [*args, tier]
        return int(self.db.execute(sql, args).fetchone()[0])

    def state_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM pairs GROUP BY state"):
            counts[state] = n
        return counts

    # -- rounds ----------------------------------------------------------------------------

    def open_round(self) -> sqlite3.Row | None:
        return self.db.execute(
            "SELECT * FROM rounds WHERE status = 'running' ORDER BY id DESC LIMIT 1"
        ).fetchone()

    def start_round(
        self,
        limit: int | None,
        model: str,
        template_hash: str,
        guidelines_hash: str,
        thresholds: dict[str, Any],
    ) -> int:
        """Create a round and assign it the next ``limit`` unassigned imported pairs."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO rounds (status, started_at, pair_limit, model, template_hash, "
                "guidelines_hash, thresholds) VALUES ('running', ?, ?, ?, ?, ?, ?)",
                (time.time(), limit, model, template_hash, guidelines_hash, json.dumps(thresholds)),
            )
            round_id = int(cur.lastrowid or 0)
            db.execute(
                "UPDATE pairs SET round_id = ? WHERE seq IN (SELECT seq FROM pairs WHERE "
                "state = 'imported' AND round_id IS NULL ORDER BY seq LIMIT ?)",
                (round_id, -1 if limit is None else limit),
            )
        return round_id

    def finish_round(self, round_id: int, summary: dict[str, Any], status: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE rounds SET status = ?, ended_at = ?, summary = ? WHERE id = ?",
                (status, time.time(), json.dumps(summary), round_id),
            )

    def rounds(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM rounds ORDER BY id").fetchall()

    def unassigned_count(self) -> int:
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM pairs WHERE state = 'imported' AND round_id IS NULL"
            ).fetchone()[0]
        )

    # -- judge calls -----------------------------------------------------------------------

    def cached_calls(self, keys: list[str]) -> dict[str, sqlite3.Row]:
        sql = "SELECT * FROM calls WHERE status = 'ok' AND cache_key IN ({marks})"
        return {row["cache_key"]: row for row in self._in_chunks(sql, keys)}

    def mark_fault_calls(self, round_id: int, since: float) -> None:
        """Failed calls of a run stopped for a failing endpoint: kept in the ledger (with
        their cost) but marked ``fault``, so they are not held against their pairs."""
        with self.transaction() as db:
            db.execute(
                "UPDATE calls SET status = 'fault' WHERE round_id = ? "
                "AND status IN ('error', 'refused') AND created_at >= ?",
                (round_id, since),
            )

    def refused(self, keys: list[str]) -> dict[str, str]:
        """Requests the endpoint refused for good (a 400, a billed empty reply), per cache
        key with the error: never sent again, even when the run that got the refusal
        was killed before its pair went to humans."""
        sql = (
            "SELECT cache_key, error FROM calls WHERE status = 'refused' AND cache_key IN ({marks})"
        )
        return {key: str(error or "") for key, error in self._in_chunks(sql, keys)}

    def failed_attempts(self, keys: list[str]) -> dict[str, tuple[int, str]]:
        """(failed requests, the last one's error) per cache key; keys with none left out."""
        sql = (
            "SELECT cache_key, COUNT(*), (SELECT error FROM calls AS c WHERE "
            "c.cache_key = calls.cache_key AND c.status = 'error' ORDER BY c.id DESC "
            "LIMIT 1) FROM calls WHERE status = 'error' AND cache_key IN ({marks}) "
            "GROUP BY cache_key"
        )
        return {key: (int(n), str(last or "")) for key, n, last in self._in_chunks(sql, keys)}

    def record_call(self, call: CallRecord) -> None:
        with self.transaction() as db:
            _insert_call(db, call)

    # -- Batch API -------------------------------------------------------------------------

    def add_batch(self, key: str, round_id: int, tier: int, path: str, requests: int) -> None:
        """A request file written for the Batch API (status ``written``: not uploaded)."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO batches (key, round_id, tier, path, requests, status, created_at, "
                "updated_at) VALUES (?,?,?,?,?,'written',?,?)",
                (key, round_id, tier, path, requests, now, now),
            )

    def update_batch(self, key: str, **fields: Any) -> None:
        """Set some of a batch's columns (file_id, batch_id, status, remote_status)."""
        allowed = {"file_id", "batch_id", "status", "remote_status"}
        assert set(fields) <= allowed, fields
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self.transaction() as db:
            db.execute(
                f"UPDATE batches SET {sets}, updated_at = ? WHERE key = ?",
                (*fields.values(), time.time(), key),
            )

    def batches(self, round_id: int | None = None) -> list[sqlite3.Row]:
        where, args = ("WHERE round_id = ?", (round_id,)) if round_id is not None else ("", ())
        return self.db.execute(
            f"SELECT * FROM batches {where} ORDER BY created_at", args
        ).fetchall()

    def ingest_batch(
        self, key: str, calls: Iterable[CallRecord], remote_status: str
    ) -> tuple[int, int]:
        """Record a finished batch's results and mark it ``ingested``, in one transaction:
        a run killed while ingesting leaves nothing of it, and the next run ingests it
        again from the start. Returns (results ok, failed)."""
        ok = failed = 0
        with self.transaction() as db:
            for call in calls:
                _insert_call(db, call)
                ok, failed = (ok + 1, failed) if call.status == "ok" else (ok, failed + 1)
            db.execute(
                "UPDATE batches SET status = 'ingested', remote_status = ?, results = ?, "
                "failed = ?, updated_at = ? WHERE key = ?",
                (remote_status, ok, failed, time.time(), key),
            )
        return ok, failed

    # -- judge versions (panels) --------------------------------------------------------------

    def judge_version(self, tier: int, hash_: str | None = None) -> sqlite3.Row | None:
        """A panel tier's judge version: the latest, or the one named ``hash_``."""
        if hash_ is not None:
            return self.db.execute(
                "SELECT * FROM judge_versions WHERE tier = ? AND hash = ?", (tier, hash_)
            ).fetchone()
        return self.db.execute(
            "SELECT * FROM judge_versions WHERE tier = ? ORDER BY created_at DESC, rowid DESC "
            "LIMIT 1",
            (tier,),
        ).fetchone()

    def add_judge_version(self, tier: int, hash_: str, examples: str, human_verdicts: int) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO judge_versions VALUES (?,?,?,?,?)",
                (tier, hash_, examples, human_verdicts, time.time()),
            )

    def judge_versions(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM judge_versions ORDER BY created_at").fetchall()

    def example_candidates(self) -> list[tuple[str, str, str | None]]:
        """(pair id, human label, the judge's final label) of every pair humans decided
        A or B, in import order."""
        return [
            (r[0], r[1], r[2])
            for r in self.db.execute(
                "SELECT h.pair_id, h.label, v.label FROM human_decisions h JOIN pairs p "
                "ON p.id = h.pair_id LEFT JOIN verdicts v ON v.pair_id = h.pair_id "
                "WHERE h.decided = 1 AND h.label IN ('A', 'B') ORDER BY p.seq"
            )
        ]

    def human_decision_count(self) -> int:
        return int(
            self.db.execute("SELECT COUNT(*) FROM human_decisions WHERE decided = 1").fetchone()[0]
        )

    def pair_texts(self, ids: list[str]) -> dict[str, tuple[str, str, str]]:
        sql = "SELECT id, prompt, response_a, response_b FROM pairs WHERE id IN ({marks})"
        return {r[0]: (r[1], r[2], r[3]) for r in self._in_chunks(sql, ids)}

    def chars_per_token(self) -> float | None:
        """Prompt characters per billed input token over earlier calls (None: no data)."""
        chars, tokens = self.db.execute(
            "SELECT SUM(prompt_chars), SUM(prompt_tokens) FROM calls WHERE status = 'ok' "
            "AND prompt_chars > 0 AND prompt_tokens > 0"
        ).fetchone()
        return chars / tokens if chars and tokens else None

    def flag(self, pair_id: str, kind: str, detail: str, reviewer: str = "") -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO quality_flags VALUES (?,?,?,?,?)",
                (pair_id, kind, reviewer, detail, time.time()),
            )

    def flags(self, kind: str | None = None) -> list[sqlite3.Row]:
        sql = (
            "SELECT f.*, v.round_id FROM quality_flags f LEFT JOIN verdicts v "
            "ON v.pair_id = f.pair_id"
        )
        if kind:
            return self.db.execute(
                sql + " WHERE f.kind = ? ORDER BY f.created_at", (kind,)
            ).fetchall()
        return self.db.execute(sql + " ORDER BY f.created_at").fetchall()

    def flagged_ids(self, kind: str) -> set[str]:
        return {
            r[0]
            for r in self.db.execute("SELECT pair_id FROM quality_flags WHERE kind = ?", (kind,))
        }

    def submitted_responses(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT h.pair_id, h.reviewer, h.label, h.updated_at, v.round_id "
            "FROM human_responses h LEFT JOIN verdicts v ON v.pair_id = h.pair_id "
            "WHERE h.status = 'submitted' ORDER BY h.updated_at"
        ).fetchall()

    def call_totals(self, round_id: int | None = None) -> dict[str, float]:
        where, args = ("WHERE round_id = ?", (round_id,)) if round_id is not None else ("", ())
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0),"
            f" COALESCE(SUM(cost),0), COALESCE(SUM(status != 'ok'),0) FROM calls {where}",
            args,
        ).fetchone()
        return {
            "calls": row[0],
            "prompt_tokens": row[1],
            "completion_tokens": row[2],
            "cost": float(row[3]),
            "errors": row[4],
        }

    # -- verdicts --------------------------------------------------------------------------

    def record_verdict(self, v: VerdictRecord, new_state: str) -> None:
        """Store the verdict and move the pair out of ``imported`` in one transaction."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO verdicts (pair_id, round_id, model, template_hash, "
                "guidelines_hash, label, confidence, self_high, signals, action, reason, "
                "thresholds_version, created_at, pi, sampled, status, tier) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    v.pair_id,
                    v.round_id,
                    v.model,
                    v.template_hash,
                    v.guidelines_hash,
                    v.label,
                    v.confidence,
                    int(v.self_high),
                    json.dumps(v.signals),
                    v.action,
                    v.reason,
                    v.thresholds_version,
                    now,
                    v.pi,
                    int(v.sampled),
                    v.status,
                    v.tier,
                ),
            )
            db.execute(
                "UPDATE pairs SET state = ?, updated_at = ? WHERE id = ? AND state = 'imported'",
                (new_state, now, v.pair_id),
            )
            if v.tier > 0:  # a first tier's final verdict has no escalation to resolve
                self._resolve(db, v)

    def record_escalation(self, v: VerdictRecord) -> None:
        """Tier ``v.tier`` passed the pair to the next tier: keep its verdict (evidence for
        that tier's thresholds, once the pair's final routing fixes its chance of reaching
        a human) and leave the pair ``imported``."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO escalations (pair_id, tier, round_id, model, "
                "template_hash, label, confidence, self_high, signals, reason, "
                "thresholds_version, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    v.pair_id,
                    v.tier,
                    v.round_id,
                    v.model,
                    v.template_hash,
                    v.label,
                    v.confidence,
                    int(v.self_high),
                    json.dumps(v.signals),
                    v.reason,
                    v.thresholds_version,
                    time.time(),
                ),
            )

    @staticmethod
    def _resolve(db: sqlite3.Connection, v: VerdictRecord) -> None:
        """The final verdict ``v`` fixes the evidence of the pair's escalations: its chance
        of reaching a human, whether it did, and whose audit draw decided."""
        db.execute(
            "UPDATE escalations SET pi = ?, sampled = ?, draw_tier = ? WHERE pair_id = ? "
            "AND pi IS NULL",
            (v.pi, int(v.sampled), v.tier, v.pair_id),
        )

    def tier_decisions(self, round_id: int | None = None) -> dict[tuple[int, str], int]:
        """(tier, outcome) -> pairs, outcome one of accept | review | escalate: what each
        tier did with the pairs it judged (of one round, or of all)."""
        where, args = ("WHERE round_id = ?", (round_id,)) if round_id is not None else ("", ())
        out: dict[tuple[int, str], int] = {}
        for tier, action, n in self.db.execute(
            f"SELECT tier, action, COUNT(*) FROM verdicts {where} GROUP BY 1, 2", args
        ):
            out[(int(tier), str(action))] = int(n)
        for tier, n in self.db.execute(
            f"SELECT tier, COUNT(*) FROM escalations {where} GROUP BY 1", args
        ):
            out[(int(tier), "escalate")] = int(n)
        return out

    def tier_call_totals(self, round_id: int | None = None) -> dict[int, dict[str, float]]:
        """Requests and cost per tier (of one round, or of all)."""
        where, args = ("WHERE round_id = ?", (round_id,)) if round_id is not None else ("", ())
        return {
            int(tier): {"calls": int(n), "cost": float(cost)}
            for tier, n, cost in self.db.execute(
                f"SELECT tier, COUNT(*), COALESCE(SUM(cost), 0) FROM calls {where} GROUP BY 1",
                args,
            )
        }

    def round_decisions(self, round_id: int) -> dict[tuple[str, str], int]:
        return {
            (a, r): n
            for a, r, n in self.db.execute(
                "SELECT action, reason, COUNT(*) FROM verdicts WHERE round_id = ? "
                "GROUP BY action, reason",
                (round_id,),
            )
        }

    def round_status_counts(self, round_id: int) -> dict[str, int]:
        """A round's judge-accepted pairs by status (certified, provisional)."""
        counts = {"certified": 0, "provisional": 0}
        for status, n in self.db.execute(
            "SELECT COALESCE(status, 'certified'), COUNT(*) FROM verdicts WHERE round_id = ? "
            "AND action = 'accept' GROUP BY 1",
            (round_id,),
        ):
            counts[status] = n
        return counts

    def round_delivery(self, round_id: int) -> dict[str, int]:
        """Where a round's judged pairs stand now: ``human`` decided by reviewers (any
        decided label), ``certified`` / ``provisional`` judge labels no human decided."""
        row = self.db.execute(
            "SELECT COALESCE(SUM(h.pair_id IS NOT NULL), 0), "
            "COALESCE(SUM(h.pair_id IS NULL AND v.action = 'accept' "
            "AND p.state IN ('accepted', 'exported') "
            "AND COALESCE(v.status, 'certified') = 'certified'), 0), "
            "COALESCE(SUM(h.pair_id IS NULL AND v.action = 'accept' "
            "AND p.state IN ('accepted', 'exported') AND v.status = 'provisional'), 0) "
            "FROM verdicts v JOIN pairs p ON p.id = v.pair_id "
            "LEFT JOIN human_decisions h ON h.pair_id = v.pair_id AND h.decided = 1 "
            "WHERE v.round_id = ?",
            (round_id,),
        ).fetchone()
        return {"human": int(row[0]), "certified": int(row[1]), "provisional": int(row[2])}

    def dataset_rows(self, certified_only: bool = True) -> Iterator[sqlite3.Row]:
        """Pairs that belong in the DPO dataset: human A/B decisions (a human verdict wins),
        else the judge's accepted verdicts — only certified ones unless ``certified_only``
        is False (provisional ones are marked in ``label_status``)."""
        judge_ok = "AND COALESCE(v.status, 'certified') = 'certified' " if certified_only else ""
        return self.db.execute(
            "SELECT p.id, p.prompt, p.prompt_messages, p.response_a, p.response_b, v.round_id, "
            "v.model, "
            "v.template_hash, COALESCE(h.label, v.label) AS label, "
            "CASE WHEN h.decided = 1 THEN 'human' ELSE 'judge' END AS label_source, "
            "CASE WHEN h.decided = 1 THEN 'human' ELSE COALESCE(v.status, 'certified') END "
            "AS label_status, "
            "CASE WHEN h.decided = 1 THEN 1.0 * json_extract(h.votes, '$.' || h.label) "
            "/ h.reviewers ELSE v.confidence END AS confidence, "
            "COALESCE(h.reviewers, 0) AS reviewers "
            "FROM pairs p JOIN verdicts v ON v.pair_id = p.id "
            "LEFT JOIN human_decisions h ON h.pair_id = p.id AND h.decided = 1 "
            "WHERE (h.label IN ('A', 'B')) OR (h.pair_id IS NULL AND v.action = 'accept' "
            "AND v.label IN ('A', 'B') AND p.state IN ('accepted', 'exported') "
            + judge_ok
            + ") ORDER BY p.seq"
        )

    def label_status_counts(self) -> dict[str, int]:
        """Dataset-eligible pairs by where their label stands: human, certified,
        provisional (judge-accepted, not yet covered by a certified threshold)."""
        counts = {"human": 0, "certified": 0, "provisional": 0}
        counts["human"] = int(
            self.db.execute(
                "SELECT COUNT(*) FROM human_decisions WHERE decided = 1 AND label IN ('A','B')"
            ).fetchone()[0]
        )
        for status, n in self.db.execute(
            "SELECT COALESCE(v.status, 'certified'), COUNT(*) FROM verdicts v "
            "JOIN pairs p ON p.id = v.pair_id LEFT JOIN human_decisions h "
            "ON h.pair_id = v.pair_id AND h.decided = 1 WHERE v.action = 'accept' "
            "AND h.pair_id IS NULL AND p.state IN ('accepted', 'exported') GROUP BY 1"
        ):
            counts[status] = n
        return counts

    def judge_accepted(self) -> list[sqlite3.Row]:
        """Every pair the judge accepted that no human has decided, in routing order."""
        return self.db.execute(
            "SELECT v.pair_id, v.label, v.confidence, v.self_high, v.signals, v.reason, "
            "v.status, v.tier "
            "FROM verdicts v JOIN pairs p ON p.id = v.pair_id WHERE v.action = 'accept' "
            "AND p.state IN ('accepted', 'exported') ORDER BY p.seq"
        ).fetchall()

    def apply_recheck(self, status: dict[str, str]) -> int:
        """Set each judge-accepted pair's status; 'recheck' sends it back to humans
        (state needs_review, reason recheck). Returns how many went back."""
        now = time.time()
        back = [pid for pid, st in status.items() if st == "recheck"]
        with self.transaction() as db:
            db.executemany(
                "UPDATE verdicts SET status = ? WHERE pair_id = ? AND action = 'accept'",
                ((st, pid) for pid, st in status.items() if st != "recheck"),
            )
            db.executemany(
                "UPDATE verdicts SET action = 'review', reason = 'recheck', status = NULL "
                "WHERE pair_id = ? AND action = 'accept'",
                ((pid,) for pid in back),
            )
            db.executemany(
                "UPDATE pairs SET state = 'needs_review', updated_at = ? WHERE id = ? "
                "AND state IN ('accepted', 'exported')",
                ((now, pid) for pid in back),
            )
        return len(back)

    # -- human review ----------------------------------------------------------------------

    def pairs_for_review(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT p.id, p.prompt, p.response_a, p.response_b, v.round_id, v.confidence, "
            "v.reason, v.label, v.model, r.thresholds AS round_thresholds FROM pairs p "
            "JOIN verdicts v ON v.pair_id = p.id JOIN rounds r ON r.id = v.round_id "
            "WHERE p.state = 'needs_review' ORDER BY p.seq"
        ).fetchall()

    def record_pushed(
        self, swapped: dict[str, bool], dataset: str, hinted: set[str] | None = None
    ) -> None:
        """Remember the shown order (and whether the judge's verdict was shown) and move
        the pairs to in_review, in one transaction."""
        now = time.time()
        hinted = hinted or set()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO review_items (pair_id, swapped, dataset, pushed_at, hint) "
                "VALUES (?,?,?,?,?)",
                ((pid, int(sw), dataset, now, int(pid in hinted)) for pid, sw in swapped.items()),
            )
            db.executemany(
                "UPDATE pairs SET state = 'in_review', updated_at = ? "
                "WHERE id = ? AND state = 'needs_review'",
                ((now, pid) for pid in swapped),
            )

    def shown_order(self) -> dict[str, bool]:
        return {
            r[0]: bool(r[1]) for r in self.db.execute("SELECT pair_id, swapped FROM review_items")
        }

    def requeue_in_review(self, dataset: str | None = None) -> int:
        """in_review -> needs_review (the Argilla dataset is gone; push them again): every
        pair in review, or those pushed to ``dataset``."""
        now = time.time()
        where = (
            ""
            if dataset is None
            else (" AND id IN (SELECT pair_id FROM review_items WHERE dataset = ?)")
        )
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE pairs SET state = 'needs_review', updated_at = ? "
                "WHERE state = 'in_review'" + where,
                (now,) if dataset is None else (now, dataset),
            )
            return cur.rowcount

    def pair_ids_in_state(self, state: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM pairs WHERE state = ?", (state,))}

    def requeue_pairs(self, pair_ids: list[str]) -> int:
        """in_review -> needs_review for these pairs (pushed again at the next push)."""
        now = time.time()
        with self.transaction() as db:
            return sum(
                db.execute(
                    "UPDATE pairs SET state = 'needs_review', updated_at = ? "
                    "WHERE id = ? AND state = 'in_review'",
                    (now, pid),
                ).rowcount
                for pid in pair_ids
            )

    def repush_loss(self, dataset: str) -> dict[str, Any]:
        """For the pairs in review in a deleted Argilla dataset: how many, the verdicts
        synced before (kept in the state) and the time of the last sync of any verdict."""
        row = self.db.execute(
            "SELECT COUNT(DISTINCT p.id), "
            "(SELECT COUNT(*) FROM human_responses h JOIN review_items r2 "
            " ON r2.pair_id = h.pair_id JOIN pairs p2 ON p2.id = h.pair_id "
            " WHERE r2.dataset = ? AND p2.state = 'in_review' AND h.status = 'submitted'), "
            "(SELECT MAX(synced_at) FROM human_responses) "
            "FROM pairs p JOIN review_items r ON r.pair_id = p.id "
            "WHERE r.dataset = ? AND p.state = 'in_review'",
            (dataset, dataset),
        ).fetchone()
        return {"pairs": int(row[0]), "kept": int(row[1]), "last_sync": row[2]}

    def in_review_by_dataset(self) -> dict[str, int]:
        """Pairs in review per Argilla dataset they were pushed to."""
        return {
            r[0]: int(r[1])
            for r in self.db.execute(
                "SELECT r.dataset, COUNT(*) FROM review_items r JOIN pairs p ON p.id = r.pair_id "
                "WHERE p.state = 'in_review' GROUP BY r.dataset"
            )
        }

    def round_pushed_to(self, round_id: int, dataset: str) -> int:
        """Pairs of a round pushed to the Argilla dataset ``dataset``."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM review_items r JOIN verdicts v ON v.pair_id = r.pair_id "
            "WHERE r.dataset = ? AND v.round_id = ?",
            (dataset, round_id),
        ).fetchone()
        return int(row[0])

    def review_datasets(self, pair_ids: list[str]) -> dict[str, str]:
        """The Argilla dataset each of these pairs was pushed to (those pushed before)."""
        sql = "SELECT pair_id, dataset FROM review_items WHERE pair_id IN ({marks})"
        return {r[0]: r[1] for r in self._in_chunks(sql, pair_ids)}

    def datasets_pushed(self) -> set[str]:
        """The Argilla datasets pairs were ever pushed to."""
        return {r[0] for r in self.db.execute("SELECT DISTINCT dataset FROM review_items")}

    def pairs_in_dataset(self, dataset: str) -> set[str]:
        """Pairs ever pushed to the Argilla dataset ``dataset``."""
        return {
            r[0]
            for r in self.db.execute(
                "SELECT pair_id FROM review_items WHERE dataset = ?", (dataset,)
            )
        }

    def double_votes(self, dataset: str | None) -> list[sqlite3.Row]:
        """Submitted verdicts on pairs two reviewers were asked to decide (those pushed to
        ``dataset``; None: every reviewed pair), with the pair's round and judge label."""
        where = "" if dataset is None else " AND r.dataset = ?"
        return self.db.execute(
            "SELECT h.pair_id, h.reviewer, h.label, h.inserted_at, v.round_id, "
            "v.label AS judge FROM human_responses h "
            "JOIN review_items r ON r.pair_id = h.pair_id "
            "LEFT JOIN verdicts v ON v.pair_id = h.pair_id "
            "WHERE h.status = 'submitted' AND h.label IS NOT NULL" + where,
            () if dataset is None else (dataset,),
        ).fetchall()

    def upsert_responses(
        self, rows: Iterable[tuple[str, str, str, str | None, str | None, str, str]]
    ) -> int:
        """Store (pair, reviewer, status, label, reason, inserted_at, updated_at) rows;
        returns how many were new or changed."""
        now = time.time()
        changed = 0
        with self.transaction() as db:
            for row in rows:
                old = db.execute(
                    "SELECT status, label, reason, updated_at FROM human_responses "
                    "WHERE pair_id = ? AND reviewer = ?",
                    row[:2],
                ).fetchone()
                if old is not None and tuple(old) == (row[2], row[3], row[4], row[6]):
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO human_responses VALUES (?,?,?,?,?,?,?,?)", (*row, now)
                )
                changed += 1
        return changed

    def verdicts_per_reviewer(self) -> dict[str, int]:
        """Submitted verdicts per reviewer (as last pulled from Argilla)."""
        return {
            r[0]: int(r[1])
            for r in self.db.execute(
                "SELECT reviewer, COUNT(*) FROM human_responses WHERE status = 'submitted' "
                "GROUP BY reviewer"
            )
        }

    def submitted_labels(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for pid, label in self.db.execute(
            "SELECT pair_id, label FROM human_responses WHERE status = 'submitted' "
            "AND label IS NOT NULL ORDER BY pair_id, reviewer"
        ):
            out.setdefault(pid, []).append(label)
        return out

    def save_decisions(self, decisions: dict[str, Any]) -> int:
        """Store each pair's consensus; decided pairs in review become human_decided.
        Returns how many pairs became decided now."""
        now = time.time()
        with self.transaction() as db:
            for pid, c in decisions.items():
                db.execute(
                    "INSERT OR REPLACE INTO human_decisions VALUES (?,?,?,?,?,?,?)",
                    (
                        pid,
                        c.label,
                        json.dumps(c.votes, sort_keys=True),
                        c.reviewers,
                        int(c.decided),
                        int(c.disputed),
                        now,
                    ),
                )
            marker = db.total_changes
            db.executemany(
                "UPDATE pairs SET state = 'human_decided', updated_at = ? "
                "WHERE id = ? AND state = 'in_review'",
                ((now, pid) for pid, c in decisions.items() if c.decided),
            )
            return db.total_changes - marker

    def disputed(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT h.pair_id, h.votes, h.reviewers, h.decided, h.label, p.prompt "
            "FROM human_decisions h JOIN pairs p ON p.id = h.pair_id WHERE h.disputed = 1 "
            "ORDER BY p.seq"
        ).fetchall()

    # -- thresholds ------------------------------------------------------------------------

    def latest_thresholds(self, tier: int = 0) -> sqlite3.Row | None:
        return self.db.execute(
            "SELECT * FROM thresholds WHERE tier = ? ORDER BY version DESC LIMIT 1", (tier,)
        ).fetchone()

    def thresholds_history(self, tier: int = 0) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM thresholds WHERE tier = ? ORDER BY version", (tier,)
        ).fetchall()

    def set_thresholds_report(self, row_id: int, report: dict[str, Any]) -> None:
        """Replace a saved thresholds version's report (its message is known only after
        the pairs were rechecked against it)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE thresholds SET report = ? WHERE version = ?", (json.dumps(report), row_id)
            )

    def save_thresholds(
        self,
        a: float,
        b: float,
        weights: Any,
        audit_rate: float,
        report: dict[str, Any],
        params: dict[str, Any] | None = None,
        tier: int = 0,
    ) -> int:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO thresholds (created_at, a, b, weights, audit_rate, report, params, "
                "tier) VALUES (?,?,?,?,?,?,?,?)",
                (
                    time.time(),
                    a,
                    b,
                    None if weights is None else json.dumps(weights),
                    audit_rate,
                    json.dumps(report),
                    None if params is None else json.dumps(params),
                    tier,
                ),
            )
            return int(cur.lastrowid or 0)

    def routed_verdicts(self, tier: int = 0) -> Iterator[sqlite3.Row]:
        """Every verdict tier ``tier`` made, in routing order — the final ones and those it
        escalated to the next tier — with the pair's final routing (its probability of
        reaching a human), its human decision (if any) and the round's routing settings:
        what calibration weighs. Escalated pairs whose later tiers have not decided yet are
        left out (their chance of reaching a human is not fixed yet). ``draw_tier``: the tier
        whose audit draw decided whether the pair reached a human."""
        return self.db.execute(
            "SELECT v.pair_id, v.round_id, v.label, v.confidence, v.self_high, v.signals, "
            "v.action, v.reason, v.thresholds_version, v.pi, v.sampled, h.label AS human, "
            "COALESCE(ri.hint, 0) AS hint, r.thresholds AS round_thresholds, p.seq, "
            "v.tier AS draw_tier FROM verdicts v "
            "JOIN pairs p ON p.id = v.pair_id JOIN rounds r ON r.id = v.round_id "
            "LEFT JOIN human_decisions h ON h.pair_id = v.pair_id AND h.decided = 1 "
            "LEFT JOIN review_items ri ON ri.pair_id = v.pair_id WHERE v.tier = ? "
            "UNION ALL "
            "SELECT e.pair_id, e.round_id, e.label, e.confidence, e.self_high, e.signals, "
            "'escalate', e.reason, e.thresholds_version, e.pi, e.sampled, h.label AS human, "
            "COALESCE(ri.hint, 0) AS hint, r.thresholds AS round_thresholds, p.seq, "
            "e.draw_tier FROM escalations e "
            "JOIN pairs p ON p.id = e.pair_id JOIN rounds r ON r.id = e.round_id "
            "LEFT JOIN human_decisions h ON h.pair_id = e.pair_id AND h.decided = 1 "
            "LEFT JOIN review_items ri ON ri.pair_id = e.pair_id WHERE e.tier = ? "
            "AND e.pi IS NOT NULL "
            "ORDER BY 15",
            (tier, tier),
        )

    def human_decided_verdicts(self) -> list[sqlite3.Row]:
        """Every judged pair with a human decision, with the round's routing settings."""
        return self.db.execute(
            "SELECT v.pair_id, v.round_id, v.label, v.confidence, v.self_high, v.signals, "
            "v.action, v.reason, v.thresholds_version, h.label AS human, h.reviewers, "
            "h.votes, r.thresholds AS round_thresholds FROM verdicts v "
            "JOIN human_decisions h ON h.pair_id = v.pair_id AND h.decided = 1 "
            "JOIN rounds r ON r.id = v.round_id ORDER BY v.round_id"
        ).fetchall()

    def mark_exported(self, pair_ids: Iterable[str]) -> None:
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "UPDATE pairs SET state = 'exported', updated_at = ? WHERE id = ? "
                "AND state IN ('accepted', 'human_decided')",
                ((now, pid) for pid in pair_ids),
            )


# (number, step): a state file at version v runs every step numbered above v
MIGRATIONS: tuple[tuple[int, Callable[[Store], None]], ...] = (
    (1, Store._add_missing_columns),
    (2, Store._add_pair_keys),
    (3, Store._add_prompt_messages),
    (4, Store._add_cached_tokens),
    (5, Store._add_tiers),
    (6, Store._add_call_batch),
)


def _insert_call(db: sqlite3.Connection, call: CallRecord) -> None:
    """Insert a call (an ok call's cache key is unique: a second copy is ignored)."""
    db.execute(
        "INSERT OR IGNORE INTO calls (cache_key, pair_id, presented_order, model, "
        "template_hash, guidelines_hash, round_id, status, reply, logprobs, "
        "prompt_tokens, completion_tokens, cost, latency_ms, error, created_at, "
        "prompt_chars, cached_tokens, tier, batch) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            call.cache_key,
            call.pair_id,
            call.order,
            call.model,
            call.template_hash,
            call.guidelines_hash,
            call.round_id,
            call.status,
            call.reply,
            None if call.logprobs is None else json.dumps(call.logprobs),
            call.prompt_tokens,
            call.completion_tokens,
            call.cost,
            call.latency_ms,
            call.error,
            time.time(),
            call.prompt_chars,
            call.cached_tokens,
            call.tier,
            call.batch,
        ),
    )
