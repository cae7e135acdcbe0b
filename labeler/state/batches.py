"""Batch API batches, and the judge versions of a panel (few-shot examples from human
verdicts). Part of ``labeler.store.Store``."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from labeler.state.base import Tables
from labeler.state.calls import CallRecord, insert_call


class BatchesTables(Tables):
    """Batch API batches, and the judge versions of a panel (few-shot examples from human
    verdicts)."""

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

    def drop_batches(self, keys: Iterable[str]) -> None:
        """Forget batches that never reached the Batch API (``labeler round --online``)."""
        with self.transaction() as db:
            db.executemany("DELETE FROM batches WHERE key = ?", [(k,) for k in keys])

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
                insert_call(db, call)
                ok, failed = (ok + 1, failed) if call.status == "ok" else (ok, failed + 1)
            db.execute(
                "UPDATE batches SET status = 'ingested', remote_status = ?, results = ?, "
                "failed = ?, updated_at = ? WHERE key = ?",
                (remote_status, ok, failed, time.time(), key),
            )
        return ok, failed

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
