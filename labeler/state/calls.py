"""Judge calls (the paid work, cached) and the verdicts made from them, per judge tier.
Part of ``labeler.store.Store``."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from labeler.state.base import Tables


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


class CallsTables(Tables):
    """Judge calls (the paid work, cached) and the verdicts made from them, per judge tier."""

    def last_judge(self, tier: int) -> sqlite3.Row | None:
        """The model, template and guidelines hashes of tier ``tier``'s latest judge call
        (a fact-check's left out), or None: the tier never judged."""
        return self.db.execute(  # (from the newest back: recent calls are the tier's)
            "SELECT model, template_hash, guidelines_hash FROM calls WHERE tier = ? "
            "AND presented_order != 'fact' ORDER BY id DESC LIMIT 1",
            (tier,),
        ).fetchone()

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
            insert_call(db, call)

    def call_totals(self, round_id: int | None = None) -> dict[str, float]:
        where, args = ("WHERE round_id = ?", (round_id,)) if round_id is not None else ("", ())
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0),"
            f" COALESCE(SUM(cost),0), COALESCE(SUM(status != 'ok'),0),"
            f" COALESCE(SUM(batch IS NOT NULL),0) FROM calls {where}",
            args,
        ).fetchone()
        return {
            "calls": row[0],
            "prompt_tokens": row[1],
            "completion_tokens": row[2],
            "cost": float(row[3]),
            "errors": row[4],
            "batched": row[5],  # sent through the Batch API
        }

    def record_verdict(self, v: VerdictRecord, new_state: str, hold: int | None = None) -> None:
        """Store the verdict and move the pair out of ``imported`` in one transaction;
        ``hold``: a union cascade's pair holds that tier's verdict (``deliver_tiers``)."""
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
            if hold is not None:
                _deliver(db, v.pair_id, hold)

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
        tier did with the pairs that reached it (of one round, or of all)."""
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

    def tier_passed_unjudged(self, round_id: int | None = None) -> dict[int, int]:
        """Tier -> pairs it passed on without judging them (outside its calibration
        sample; counted among its ``escalate`` in ``tier_decisions``)."""
        and_round = "AND round_id = ?" if round_id is not None else ""
        args = (round_id,) if round_id is not None else ()
        return {
            int(tier): int(n)
            for tier, n in self.db.execute(
                "SELECT tier, COUNT(*) FROM escalations WHERE reason = 'not_sampled' "
                f"{and_round} GROUP BY 1",
                args,
            )
        }

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

    def tier_pair_costs(self) -> dict[tuple[int, str], float]:
        """What judging each pair cost each tier: (tier, pair id) -> the cost of its calls."""
        return {
            (int(tier), str(pair_id)): float(cost)
            for tier, pair_id, cost in self.db.execute(
                # (not an abandoned request's worst cost: the resume asked it again)
                "SELECT tier, pair_id, SUM(cost) FROM calls WHERE status != 'abandoned' "
                "GROUP BY tier, pair_id"
            )
        }

    def judge_accepted(self) -> list[sqlite3.Row]:
        """Every pair the judge accepted that no human has decided, in routing order."""
        return self.db.execute(
            "SELECT v.pair_id, v.label, v.confidence, v.self_high, v.signals, v.reason, "
            "v.status, v.tier "
            "FROM verdicts v JOIN pairs p ON p.id = v.pair_id WHERE v.action = 'accept' "
            "AND p.state IN ('accepted', 'exported') ORDER BY p.seq"
        ).fetchall()

    def judged_any(self) -> bool:
        """Has any judge tier routed a pair in this project?"""
        found = self.db.execute(
            "SELECT 1 FROM verdicts UNION ALL SELECT 1 FROM escalations LIMIT 1"
        ).fetchone()
        return found is not None

    def escalations_of(self, pair_id: str) -> list[sqlite3.Row]:
        """The verdicts the earlier tiers of a cascade gave this pair, by tier."""
        return self.db.execute(
            "SELECT tier, label, confidence, self_high, signals, reason FROM escalations "
            "WHERE pair_id = ? ORDER BY tier",
            (pair_id,),
        ).fetchall()

    def accepted_tier_verdicts(self) -> dict[str, dict[int, sqlite3.Row]]:
        """Every tier's verdict of each judge-accepted pair no human has decided (the
        final verdict's, ``final`` 1, and the escalations'), by pair and tier: what a
        union cascade re-checks (``union_loop.recheck``)."""
        out: dict[str, dict[int, sqlite3.Row]] = {}
        accepted = (
            "SELECT v.pair_id FROM verdicts v JOIN pairs p ON p.id = v.pair_id WHERE "
            "v.action = 'accept' AND p.state IN ('accepted', 'exported')"
        )
        for row in self.db.execute(
            "SELECT pair_id, tier, label, confidence, self_high, signals, reason, status, "
            f"1 AS final FROM verdicts WHERE pair_id IN ({accepted}) UNION ALL "
            "SELECT pair_id, tier, label, confidence, self_high, signals, reason, NULL, 0 "
            f"FROM escalations WHERE pair_id IN ({accepted})"
        ):
            out.setdefault(row["pair_id"], {})[int(row["tier"])] = row
        return out

    def deliver_tiers(self, holders: dict[str, int]) -> int:
        """Union cascade pairs now hold these tiers' verdicts (``_deliver``), in one
        transaction. Returns how many moved."""
        with self.transaction() as db:
            return sum(_deliver(db, pair_id, tier) for pair_id, tier in holders.items())

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
            back_to_review(db, back, "recheck", now)
        return len(back)


def _deliver(db: sqlite3.Connection, pair_id: str, tier: int) -> bool:
    """A union cascade's pair now holds tier ``tier``'s verdict (``union_loop``), inside
    the caller's transaction: it and the verdict in force swap places (the final verdict
    row takes that tier's label, confidence and signals; the one it held becomes its
    tier's escalation row, with the pair's routing). False (nothing done) when it holds
    that tier's already or that tier has no verdict of it."""
    v = db.execute("SELECT tier FROM verdicts WHERE pair_id = ?", (pair_id,)).fetchone()
    e = db.execute(
        "SELECT * FROM escalations WHERE pair_id = ? AND tier = ?", (pair_id, tier)
    ).fetchone()
    if v is None or e is None or int(v["tier"]) == tier:
        return False
    db.execute("DELETE FROM escalations WHERE pair_id = ? AND tier = ?", (pair_id, tier))
    db.execute(
        "INSERT INTO escalations (pair_id, tier, round_id, model, template_hash, label, "
        "confidence, self_high, signals, reason, thresholds_version, created_at, pi, "
        "sampled, draw_tier) SELECT pair_id, tier, round_id, model, template_hash, label, "
        "confidence, self_high, signals, reason, thresholds_version, created_at, pi, "
        "sampled, tier FROM verdicts WHERE pair_id = ?",
        (pair_id,),
    )
    db.execute(
        "UPDATE verdicts SET model = ?, template_hash = ?, label = ?, confidence = ?, "
        "self_high = ?, signals = ?, tier = ? WHERE pair_id = ?",
        (e["model"], e["template_hash"], e["label"], e["confidence"], e["self_high"],
         e["signals"], tier, pair_id),
    )  # fmt: skip
    return True


def back_to_review(db: sqlite3.Connection, pair_ids: list[str], reason: str, now: float) -> int:
    """Judge-accepted pairs go back to humans (state needs_review) with ``reason``, inside
    the caller's transaction. Returns how many were judge-accepted (and went)."""
    moved = 0
    for pid in pair_ids:
        cur = db.execute(
            "UPDATE verdicts SET action = 'review', reason = ?, status = NULL "
            "WHERE pair_id = ? AND action = 'accept'",
            (reason, pid),
        )
        if cur.rowcount:
            moved += 1
            db.execute(
                "UPDATE pairs SET state = 'needs_review', updated_at = ? WHERE id = ? "
                "AND state IN ('accepted', 'exported')",
                (now, pid),
            )
    return moved


def insert_call(db: sqlite3.Connection, call: CallRecord) -> None:
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
