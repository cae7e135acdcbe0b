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

CUT_KEY = "round_cut"  # meta: ``routing.round_draw``'s cut
STRETCH_BELOW = 1e-6  # 1 - cut below which the waiting pairs' draws are stretched


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
            cut = self.round_cut()
            if order_seed is not None:
                order = "round_draw"
                draw = functools.partial(round_draw, order_seed, cut=cut)
                db.create_function("draw_of", 1, draw, deterministic=True)
                db.execute(  # pairs imported since the last round join the draw
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
            if order_seed is not None:
                self._move_cut(round_id, cut)
        return round_id

    def round_cut(self) -> float:
        """The highest draw a round drawing at random has taken (``routing.round_draw``'s
        ``cut``; 0 while no drawn pair waits)."""
        return float(self.get_meta(CUT_KEY) or 0.0)

    def _move_cut(self, round_id: int, cut: float) -> None:
        """After a round drew its pairs: the pairs left are uniform above the highest
        draw it took (the rest of a uniform sample above its cut-off), so pairs imported
        later draw there too. With no drawn pair left the cut starts again from 0; close
        to 1 (rounds that took almost every pair), the pairs left are stretched back
        onto [0, 1) (rarely: the only step that touches every waiting pair)."""
        db = self.db
        (taken,) = db.execute(
            "SELECT MAX(round_draw) FROM pairs WHERE round_id = ?", (round_id,)
        ).fetchone()
        waiting = "state = 'imported' AND round_id IS NULL AND round_draw IS NOT NULL"
        if db.execute(f"SELECT 1 FROM pairs WHERE {waiting} LIMIT 1").fetchone() is None:
            cut = 0.0
        elif taken is not None:
            cut = max(cut, float(taken))
            if 1.0 - cut < STRETCH_BELOW:
                db.execute(
                    "UPDATE pairs SET round_draw = MAX(round_draw - ?, 0) / (1 - ?) "
                    f"WHERE {waiting}",
                    (cut, cut),
                )
                cut = 0.0
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (CUT_KEY, repr(cut)))

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

    def set_round_option(self, round_id: int, key: str, value: Any) -> None:
        """Change one of the settings a round started with (kept with its thresholds)."""
        with self.transaction() as db:
            (raw,) = db.execute(
                "SELECT thresholds FROM rounds WHERE id = ?", (round_id,)
            ).fetchone()
            db.execute(
                "UPDATE rounds SET thresholds = ? WHERE id = ?",
                (json.dumps(json.loads(raw) | {key: value}), round_id),
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
        Rows ``labeler verify`` dropped from the dataset are not delivered, nor waiting:
        ``dropped`` counts them."""
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
            "AND p.state IN ('accepted', 'exported') AND v.status = 'provisional'), 0), "
            f"COALESCE(SUM(NOT {kept} AND (h.pair_id IS NOT NULL OR (v.action = 'accept' "
            "AND p.state IN ('accepted', 'exported') "
            "AND COALESCE(v.status, 'certified') = 'certified'))), 0) "
            "FROM verdicts v JOIN pairs p ON p.id = v.pair_id "
            "LEFT JOIN human_decisions h ON h.pair_id = v.pair_id AND h.decided = 1 "
            "WHERE v.round_id = ?",
            (round_id,),
        ).fetchone()
        return {
            "human": int(row[0]),
            "certified": int(row[1]),
            "provisional": int(row[2]),
            "dropped": int(row[3]),
        }
