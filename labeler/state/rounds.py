"""Rounds, and what each decided and delivered (the ledger reads these). Part of
``labeler.store.Store``."""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from typing import Any

from labeler.routing import round_draw
from labeler.state.base import Tables


class RoundsTables(Tables):
    """Rounds, and what each decided and delivered (the ledger reads these)."""

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
        order_seed: int | None = None,
    ) -> int:
        """Create a round and assign it ``limit`` unassigned imported pairs: those with
        the lowest ``routing.round_draw`` under ``order_seed`` (a uniform sample of the
        pairs waiting), or the first in the source's order when it is None."""
        order = "seq"
        with self.transaction() as db:
            if order_seed is not None:
                order = "round_draw"
                draw = functools.partial(round_draw, order_seed, cut=self.round_cut())
                db.create_function("draw_of", 1, draw, deterministic=True)
                # pairs imported since the last round join the draw; a drawn pair keeps
                # its draw (the waiting pairs stay uniform above the cut)
                db.execute(
                    "UPDATE pairs SET round_draw = draw_of(id) WHERE state = 'imported' "
                    "AND round_id IS NULL AND round_draw IS NULL"
                )
            cur = db.execute(
                "INSERT INTO rounds (status, started_at, pair_limit, model, template_hash, "
                "guidelines_hash, thresholds) VALUES ('running', ?, ?, ?, ?, ?, ?)",
                (time.time(), limit, model, template_hash, guidelines_hash, json.dumps(thresholds)),
            )
            round_id = int(cur.lastrowid or 0)
            db.execute(
                "UPDATE pairs SET round_id = ? WHERE seq IN (SELECT seq FROM pairs WHERE "
                f"state = 'imported' AND round_id IS NULL ORDER BY {order}, seq LIMIT ?)",
                (round_id, -1 if limit is None else limit),
            )
        return round_id

    def round_cut(self) -> float:
        """The highest draw a round has taken (``routing.round_draw``'s ``cut``)."""
        row = self.db.execute(
            "SELECT MAX(round_draw) FROM pairs WHERE round_id IS NOT NULL"
        ).fetchone()
        return float(row[0] or 0.0)

    def waiting_draws(self, ids: list[str]) -> dict[str, float]:
        """The kept draws of those of ``ids`` that wait for a round."""
        sql = (
            "SELECT id, round_draw FROM pairs WHERE id IN ({marks}) AND state = 'imported' "
            "AND round_id IS NULL AND round_draw IS NOT NULL"
        )
        return {r[0]: float(r[1]) for r in self._in_chunks(sql, ids)}

    def finish_round(self, round_id: int, summary: dict[str, Any], status: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE rounds SET status = ?, ended_at = ?, summary = ? WHERE id = ?",
                (status, time.time(), json.dumps(summary), round_id),
            )

    def rounds(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM rounds ORDER BY id").fetchall()

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
        decided label), ``certified`` / ``provisional`` judge labels no human decided.
        Rows ``labeler verify`` dropped from the dataset are not delivered."""
        kept = (
            "NOT EXISTS (SELECT 1 FROM verify_results vr WHERE vr.pair_id = v.pair_id "
            "AND vr.flagged = 1 AND vr.action = 'drop' AND vr.label = COALESCE(h.label, v.label))"
        )
        row = self.db.execute(
            f"SELECT COALESCE(SUM(h.pair_id IS NOT NULL AND {kept}), 0), "
            "COALESCE(SUM(h.pair_id IS NULL AND v.action = 'accept' "
            "AND p.state IN ('accepted', 'exported') "
            f"AND COALESCE(v.status, 'certified') = 'certified' AND {kept}), 0), "
            "COALESCE(SUM(h.pair_id IS NULL AND v.action = 'accept' "
            "AND p.state IN ('accepted', 'exported') AND v.status = 'provisional'), 0) "
            "FROM verdicts v JOIN pairs p ON p.id = v.pair_id "
            "LEFT JOIN human_decisions h ON h.pair_id = v.pair_id AND h.decided = 1 "
            "WHERE v.round_id = ?",
            (round_id,),
        ).fetchone()
        return {"human": int(row[0]), "certified": int(row[1]), "provisional": int(row[2])}
