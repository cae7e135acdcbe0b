"""Pairs pushed to Argilla, reviewers' responses and the decisions made from them. Part of
``labeler.store.Store``."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Container, Iterable
from typing import Any

from labeler.state.base import Tables


class ReviewTables(Tables):
    """Pairs pushed to Argilla, reviewers' responses and the decisions made from them."""

    def review_queue(self) -> list[str]:
        """The pairs waiting to be pushed for review, in file order (ids only: their texts
        are read a batch at a time by ``pairs_for_review``)."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT id FROM pairs WHERE state = 'needs_review' ORDER BY seq"
            ).fetchall()
        ]

    def pairs_for_review(self, pair_ids: list[str]) -> list[sqlite3.Row]:
        """What reviewers are shown of these pairs and the judge's verdict on them, in the
        order given (pairs no longer waiting for review are left out)."""
        sql = (
            "SELECT p.id, p.prompt, p.response_a, p.response_b, v.round_id, v.confidence, "
            "v.reason, v.label, v.model FROM pairs p JOIN verdicts v ON v.pair_id = p.id "
            "WHERE p.state = 'needs_review' AND p.id IN ({marks})"
        )
        rows = {r["id"]: r for r in self._in_chunks(sql, pair_ids)}
        return [rows[pid] for pid in pair_ids if pid in rows]

    def decided_count(self) -> int:
        """Pairs humans have decided (any label)."""
        sql = "SELECT COUNT(*) FROM human_decisions WHERE decided = 1"
        return int(self.db.execute(sql).fetchone()[0])

    def audits_with_reviewers(self, datasets: Iterable[str], max_reviewers: int) -> int:
        """Pairs drawn for a blind audit (a calibration sample's or the drift watch's) that
        humans have not decided yet and still may: the evidence a look would still read.
        Left out, as no sync asks anyone about them again: a pair in a review dataset
        other than ``datasets`` (one left behind), and a pair already answered by
        ``max_reviewers`` reviewers (a tie, or fast verdicts, at the cap) — an answer
        labeler holds back as a draft to reopen a tie counts as given."""
        names = list(datasets)
        marks = ",".join("?" * len(names)) or "NULL"
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM verdicts v JOIN pairs p ON p.id = v.pair_id "
                "LEFT JOIN human_decisions h ON h.pair_id = v.pair_id AND h.decided = 1 "
                "LEFT JOIN review_items ri ON ri.pair_id = v.pair_id "
                "WHERE v.action = 'review' AND v.reason = 'audit' AND h.pair_id IS NULL "
                "AND p.state IN ('needs_review', 'in_review') "
                f"AND (ri.dataset IS NULL OR ri.dataset IN ({marks})) "
                "AND (SELECT COUNT(*) FROM human_responses r WHERE r.pair_id = v.pair_id "
                "AND (r.status = 'submitted' OR EXISTS (SELECT 1 FROM quality_flags f "
                "WHERE f.pair_id = r.pair_id AND f.kind = 'escalated' "
                "AND f.reviewer = r.reviewer))) < ?",
                (*names, max_reviewers),
            ).fetchone()[0]
        )

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
        self,
        rows: Iterable[tuple[str, str, str, str | None, str | None, str, str]],
        held: Container[tuple[str, str]] = (),
    ) -> int:
        """Store (pair, reviewer, status, label, reason, inserted_at, updated_at) rows;
        returns how many were new or changed. A response labeler ``held`` as a draft
        (``sync.Hold``, status given as submitted) keeps the time it was submitted: the
        hold moved Argilla's ``updated_at``, and several held at once would look like
        answers given milliseconds apart (too fast to count)."""
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
                if old is not None and row[:2] in held and tuple(old)[:3] == row[2:5]:
                    continue  # (held, unchanged: its submission time stays)
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

    def human_decision_ids(self) -> set[str]:
        """Pairs with a consensus stored (``save_decisions``), decided or not."""
        return {r[0] for r in self.db.execute("SELECT pair_id FROM human_decisions")}

    def save_decisions(self, decisions: dict[str, Any]) -> int:
        """Store each pair's consensus; decided pairs in review become human_decided. A
        pair whose decision came undone (a verdict withdrawn or changed into a tie since)
        is in review again, out of the dataset; one decided anew for a tie or both-bad is
        no longer exported. Returns how many pairs became decided now."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "UPDATE pairs SET state = 'in_review', updated_at = ? "
                "WHERE id = ? AND state IN ('human_decided', 'exported')",
                ((now, pid) for pid, c in decisions.items() if not c.decided),
            )
            db.executemany(
                "UPDATE pairs SET state = 'human_decided', updated_at = ? "
                "WHERE id = ? AND state = 'exported'",
                (
                    (now, pid)
                    for pid, c in decisions.items()
                    if c.decided and c.label not in ("A", "B")
                ),
            )
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

    def submitted_responses(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT h.pair_id, h.reviewer, h.label, h.updated_at, v.round_id "
            "FROM human_responses h LEFT JOIN verdicts v ON v.pair_id = h.pair_id "
            "WHERE h.status = 'submitted' ORDER BY h.updated_at"
        ).fetchall()
