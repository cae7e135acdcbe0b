"""The reward model's scores (a cache: paid work is never asked twice), its requests (the
ledger) and each row's margin as ``labeler verify`` last checked it. Part of
``labeler.store.Store``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from labeler.state.base import Tables
from labeler.state.calls import back_to_review


class RewardTables(Tables):
    """The reward model's scores, requests and verify results."""

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

    def send_to_review(self, pair_ids: list[str], reason: str) -> int:
        """Judge-accepted pairs go back to humans (state needs_review) with ``reason``: out
        of the dataset until reviewers decide them. Returns how many went."""
        with self.transaction() as db:
            return back_to_review(db, pair_ids, reason, time.time())
