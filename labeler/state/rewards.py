"""The reward model's scores (a cache: paid work is never asked twice), its requests (the
ledger) and each row's margin as ``labeler verify`` last checked it; the chosen responses
the fact-check has read a verdict on. Part of ``labeler.store.Store``."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from labeler.state.base import Tables
from labeler.state.calls import back_to_review

_CHOSEN = "CASE v.label WHEN 'A' THEN p.response_a ELSE p.response_b END"
# a judge-accepted A/B pair no human has decided, its chosen response unchecked for its label
# (nor a row `labeler verify` dropped for this label: out of the dataset, not worth a call)
_UNCHECKED = (
    "v.action = 'accept' AND v.label IN ('A', 'B') AND NOT EXISTS (SELECT 1 FROM fact_checks "
    "f WHERE f.pair_id = v.pair_id AND f.label = v.label) AND NOT EXISTS (SELECT 1 FROM "
    "human_decisions h WHERE h.pair_id = v.pair_id AND h.decided = 1) AND NOT EXISTS (SELECT "
    "1 FROM verify_results r WHERE r.pair_id = v.pair_id AND r.label = v.label AND r.flagged "
    "AND r.action = 'drop')"
)


class RewardTables(Tables):
    """The reward model's scores, requests and verify results; the fact-checks done."""

    def reward_scores(self, keys: list[str]) -> dict[str, float]:
        """The stored score of each of ``keys`` that has one."""
        sql = "SELECT key, score FROM reward_scores WHERE key IN ({marks})"
        return {r[0]: float(r[1]) for r in self._in_chunks(sql, keys)}

    def save_reward_scores(
        self,
        scores: Sequence[tuple[str, float]],
        api: str,
        model: str,
        attempts: int,
        cost: float,
        latency_ms: float | None,
    ) -> None:
        """One returned request: its scores and its ledger row, in one transaction."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO reward_scores VALUES (?, ?, ?, ?, ?)",
                ((key, score, api, model, now) for key, score in scores),
            )
            db.execute(
                "INSERT INTO reward_calls (at, api, model, items, attempts, cost, latency_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now, api, model, len(scores), attempts, cost, latency_ms),
            )

    def reward_totals(self) -> dict[str, float]:
        """Requests, responses scored and their cost, over the project."""
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(items), 0), COALESCE(SUM(cost), 0) FROM reward_calls"
        ).fetchone()
        return {"requests": int(row[0]), "scored": int(row[1]), "cost": float(row[2])}

    def save_verify_results(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """(pair_id, label, label_source, chosen, rejected, margin, flagged, action) rows:
        each replaces the pair's previous result."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO verify_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((*r, now) for r in rows),
            )

    def verify_counts(self) -> dict[str, dict[str, int]]:
        """Rows checked and flagged, by label source (human / judge), for the labels the
        rows have now (a result for a label since replaced does not count)."""
        out: dict[str, dict[str, int]] = {}
        for r in self.db.execute(
            "SELECT vr.label_source, COUNT(*), SUM(vr.flagged), "
            "SUM(vr.flagged AND vr.action = 'drop'), "
            "SUM(vr.flagged AND vr.action = 'review' AND vr.label_source = 'judge') "
            "FROM verify_results vr JOIN verdicts v ON v.pair_id = vr.pair_id "
            "LEFT JOIN human_decisions h ON h.pair_id = vr.pair_id AND h.decided = 1 "
            "WHERE vr.label = COALESCE(h.label, v.label) GROUP BY vr.label_source"
        ):
            out[r[0]] = {
                "checked": int(r[1]),
                "flagged": int(r[2] or 0),
                "dropped": int(r[3] or 0),
                "sent_to_review": int(r[4] or 0),
            }
        return out

    def ask_one_more(self, pair_ids: list[str], kind: str, detail: str) -> int:
        """Human-decided pairs need one more reviewer (flag ``kind``, read by ``labeler
        sync``): their decision is set aside (out of the dataset until the next reviewer
        decides) and they are in review again. A pair asked once is not asked again.
        Returns how many were asked."""
        now = time.time()
        asked = 0
        with self.transaction() as db:
            for pid in pair_ids:
                if db.execute(
                    "SELECT 1 FROM quality_flags WHERE pair_id = ? AND kind = ?", (pid, kind)
                ).fetchone():
                    continue
                db.execute(
                    "INSERT INTO quality_flags VALUES (?, ?, '', ?, ?)", (pid, kind, detail, now)
                )
                db.execute("UPDATE human_decisions SET decided = 0 WHERE pair_id = ?", (pid,))
                db.execute(
                    "UPDATE pairs SET state = 'in_review', updated_at = ? WHERE id = ?", (now, pid)
                )
                asked += 1
        return asked

    def fact_pending(self, after: int = 0, limit: int = 500) -> list[sqlite3.Row]:
        """Judge-accepted pairs with an A/B label whose chosen response has not been
        fact-checked for that label (``quality.fact_check``), with their texts, in
        ``seq`` order after ``after``, ``limit`` at a time (texts of 100k long pairs do not
        fit in memory at once)."""
        return self.db.execute(
            # pairs drive the scan (CROSS JOIN keeps that order): a range of seq, stopped
            # at ``limit``, not a sort of every verdict at each call
            f"SELECT p.seq, p.id, p.prompt, v.label, {_CHOSEN} AS chosen FROM pairs p "
            f"CROSS JOIN verdicts v ON v.pair_id = p.id WHERE {_UNCHECKED} AND p.seq > ? "
            "ORDER BY p.seq LIMIT ?",
            (after, limit),
        ).fetchall()

    def fact_pending_chars(self) -> list[tuple[int, int]]:
        """The prompt's and the chosen response's length (characters) of each pair
        ``fact_pending`` would return: what the dry run prices."""
        return [
            (int(r[0]), int(r[1]))
            for r in self.db.execute(
                f"SELECT LENGTH(p.prompt), LENGTH({_CHOSEN}) FROM verdicts v "
                f"JOIN pairs p ON p.id = v.pair_id WHERE {_UNCHECKED}"
            )
        ]

    def fact_pending_count(self) -> int:
        """How many pairs ``fact_pending`` would return."""
        return int(
            self.db.execute(f"SELECT COUNT(*) FROM verdicts v WHERE {_UNCHECKED}").fetchone()[0]
        )

    def fact_checked_in(self, round_id: int) -> dict[str, int]:
        """The fact-checks of round ``round_id`` (over all its runs) by outcome."""
        return {
            str(outcome): int(n)
            for outcome, n in self.db.execute(
                "SELECT outcome, COUNT(*) FROM fact_checks WHERE round_id = ? GROUP BY outcome",
                (round_id,),
            )
        }

    def labels_of(self, pair_ids: list[str]) -> dict[str, str]:
        """The label of each pair's verdict (pairs with none left out)."""
        sql = "SELECT pair_id, label FROM verdicts WHERE pair_id IN ({marks})"
        return {str(r[0]): str(r[1]) for r in self._in_chunks(sql, pair_ids)}

    def save_fact_checks(self, rows: Iterable[tuple[str, str, str]], round_id: int) -> None:
        """(pair id, label checked, outcome: ``prompts.FACT_OUTCOMES`` or failed) rows."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO fact_checks VALUES (?, ?, ?, ?, ?)",
                ((pid, label, outcome, round_id, now) for pid, label, outcome in rows),
            )

    def send_to_review(self, pair_ids: list[str], reason: str) -> int:
        """Judge-accepted pairs go back to humans (state needs_review) with ``reason``: out
        of the dataset until reviewers decide them. Returns how many went."""
        with self.transaction() as db:
            return back_to_review(db, pair_ids, reason, time.time())
