"""Thresholds versions and the evidence they are chosen from (routed verdicts with their
human decisions). Part of ``labeler.store.Store``."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from labeler.state.base import Tables


class EvidenceTables(Tables):
    """Thresholds versions and the evidence they are chosen from (routed verdicts with
    their human decisions)."""

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

    def look_history(
        self, tier: int, judge_version: str, phase: int, looks: int
    ) -> tuple[list[float], list[float], dict[str, tuple[int, float | None, bool | None]]]:
        """The group-sequential looks a calibration phase took (``record_look``) before its
        look ``looks``: the share of delta allowed up to each, in order; the phase's fixed
        sequence of thresholds; and for each labelled pair counted, the look at which it
        first counted, with its score and whether its human disagreed then. A look kept
        by a sync that stopped before saving its thresholds is left out (the retaken look
        replaces it)."""
        key = (tier, judge_version, phase)
        rows = self.db.execute(
            "SELECT look, allowed, sequence FROM looks WHERE tier = ? AND judge_version = ? "
            "AND phase = ? AND look < ? ORDER BY look",
            (*key, looks),
        ).fetchall()
        allowed = [float(r["allowed"]) for r in rows]
        sequence = [float(x) for x in json.loads(rows[0]["sequence"])] if rows else []
        first = {
            str(r[0]): (int(r[1]), r[2], None if r[3] is None else bool(r[3]))
            for r in self.db.execute(
                "SELECT pair_id, look, score, disagree FROM look_evidence "
                "WHERE tier = ? AND judge_version = ? AND phase = ? AND look < ?",
                (*key, looks),
            )
        }
        return allowed, sequence, first

    def record_look(
        self,
        tier: int,
        judge_version: str,
        phase: int,
        look: int,
        allowed: float,
        sequence: list[float],
        counted: dict[str, tuple[float, bool]],
    ) -> None:
        """Keep a group-sequential look of a calibration phase: the share of delta allowed
        up to it, the phase's fixed sequence, and the labelled pairs it counted, each with
        its score and whether its human disagreed (a pair counted at an earlier look keeps
        its first record). Taking look ``look`` again (a sync that stopped before saving
        its thresholds) replaces what it kept."""
        key = (tier, judge_version, phase)
        with self.transaction() as db:
            _forget_looks(db, key, look)
            db.execute(
                "INSERT INTO looks VALUES (?,?,?,?,?,?)",
                (*key, look, allowed, json.dumps(sequence)),
            )
            db.executemany(
                "INSERT OR IGNORE INTO look_evidence VALUES (?,?,?,?,?,?,?)",
                (
                    (*key, pair_id, look, score, int(disagree))
                    for pair_id, (score, disagree) in counted.items()
                ),
            )

    def forget_looks(self, tier: int, judge_version: str, phase: int, look: int) -> None:
        """Drop what the phase kept from look ``look`` on: a look taken again that tested at
        its own level (its history did not hold) leaves no record, and an older record of
        the same look must not pass for its history at the next one."""
        with self.transaction() as db:
            _forget_looks(db, (tier, judge_version, phase), look)

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
        """Every verdict tier ``tier`` made — the final ones and those it escalated to the
        next tier — in routing order (by round, then the round's draw, then the source's
        order: the order-dependent tests read it as the simulation's sequence), with the
        pair's final routing (its probability of reaching a human) and its human decision
        (if any): what calibration weighs, with the round's settings (``round_settings``).
        Escalated pairs whose later tiers have not decided yet are left out (their chance
        of reaching a human is not fixed yet). ``draw_tier``: the tier whose audit draw
        decided whether the pair reached a human."""
        return self.db.execute(
            "SELECT v.pair_id, v.round_id, v.label, v.confidence, v.self_high, v.signals, "
            "v.action, v.reason, v.thresholds_version, v.pi, v.sampled, h.label AS human, "
            "COALESCE(ri.hint, 0) AS hint, p.seq, v.tier AS draw_tier, p.round_draw "
            "FROM verdicts v JOIN pairs p ON p.id = v.pair_id "
            "LEFT JOIN human_decisions h ON h.pair_id = v.pair_id AND h.decided = 1 "
            "LEFT JOIN review_items ri ON ri.pair_id = v.pair_id WHERE v.tier = ? "
            "UNION ALL "
            "SELECT e.pair_id, e.round_id, e.label, e.confidence, e.self_high, e.signals, "
            "'escalate', e.reason, e.thresholds_version, e.pi, e.sampled, h.label AS human, "
            "COALESCE(ri.hint, 0) AS hint, p.seq, e.draw_tier, p.round_draw "
            "FROM escalations e JOIN pairs p ON p.id = e.pair_id "
            "LEFT JOIN human_decisions h ON h.pair_id = e.pair_id AND h.decided = 1 "
            "LEFT JOIN review_items ri ON ri.pair_id = e.pair_id WHERE e.tier = ? "
            "AND e.pi IS NOT NULL "
            "ORDER BY 2, 16, 14",
            (tier, tier),
        )

    def round_settings(self) -> dict[int, str]:
        """Each round's stored thresholds and routing settings (JSON), by round id: read
        once, not beside each of its verdicts."""
        return {int(r[0]): r[1] for r in self.db.execute("SELECT id, thresholds FROM rounds")}

    def human_decided_verdicts(self) -> list[sqlite3.Row]:
        """Every judged pair with a human decision, with the round's routing settings."""
        return self.db.execute(
            "SELECT v.pair_id, v.round_id, v.label, v.confidence, v.self_high, v.signals, "
            "v.action, v.reason, v.thresholds_version, h.label AS human, h.reviewers, "
            "h.votes, r.thresholds AS round_thresholds FROM verdicts v "
            "JOIN human_decisions h ON h.pair_id = v.pair_id AND h.decided = 1 "
            "JOIN rounds r ON r.id = v.round_id ORDER BY v.round_id"
        ).fetchall()


def _forget_looks(db: sqlite3.Connection, key: tuple[int, str, int], look: int) -> None:
    for table in ("looks", "look_evidence"):
        db.execute(
            f"DELETE FROM {table} WHERE tier = ? AND judge_version = ? AND phase = ? AND look >= ?",
            (*key, look),
        )
