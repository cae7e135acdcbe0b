"""Pairs as imported, their texts, states and quality flags, and what the dataset holds.
Part of ``labeler.store.Store``."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence

from labeler.pairs import BadRow, Pair
from labeler.state.base import Tables
from labeler.state.schema import AT_TIER, STATES


class PairsTables(Tables):
    """Pairs as imported, their texts, states and quality flags, and what the dataset holds."""

    def import_pairs(
        self, pairs: Iterable[Pair], bad_rows: Iterable[BadRow], source: str | None = None
    ) -> int:
        """Insert new pairs and bad-row reports in one transaction; returns pairs added.
        ``source``: the file or folder read whole, whose earlier bad rows (fixed since,
        perhaps) these replace."""
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
            if source is not None:
                db.execute(*_of_source("DELETE FROM bad_rows", source))
            db.executemany(
                "INSERT OR IGNORE INTO bad_rows (source, row, reason, first_seen) VALUES (?,?,?,?)",
                ((b.source, b.row, b.reason, now) for b in bad_rows),
            )
        return added

    def existing_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are stored already (in any state)."""
        return {r[0] for r in self._in_chunks("SELECT id FROM pairs WHERE id IN ({marks})", ids)}

    def existing_keys(self, keys: list[str]) -> set[str]:
        """Which of the order-free ``pair_key``s are stored already."""
        sql = "SELECT pair_key FROM pairs WHERE pair_key IN ({marks})"
        return {r[0] for r in self._in_chunks(sql, keys)}

    def known_pair_ids(self, ids: list[str]) -> set[str]:
        sql = "SELECT id FROM pairs WHERE id IN ({marks}) AND state != 'imported'"
        return {r[0] for r in self._in_chunks(sql, ids)}

    def iter_round_pairs(
        self,
        round_id: int | None,
        state: str = "imported",
        batch: int = 1000,
        tier: int | None = None,
    ) -> Iterator[Pair]:
        """Pairs of a round still in ``state``, in import order, read in batches; with
        ``tier``, only those waiting for that judge tier of a cascade. ``round_id`` None:
        the pairs no round has taken yet (from any source)."""
        last = 0
        at, extra = ("", ()) if tier is None else (f" AND {AT_TIER}", (tier,))
        while True:
            rows = self.db.execute(
                "SELECT seq, id, prompt, response_a, response_b, source, source_row FROM pairs "
                f"WHERE round_id IS ? AND state = ?{at} AND seq > ? ORDER BY seq LIMIT ?",
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
            sql, args = sql + f" AND {AT_TIER}", [*args, tier]
        return int(self.db.execute(sql, args).fetchone()[0])

    def state_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM pairs GROUP BY state"):
            counts[state] = n
        return counts

    def pair_count(self) -> int:
        """Pairs in the project (imported from the source)."""
        return int(self.db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0])

    def unassigned_count(self) -> int:
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM pairs WHERE state = 'imported' AND round_id IS NULL"
            ).fetchone()[0]
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

    def bad_rows(self, source: str) -> list[sqlite3.Row]:
        """The rows the latest read of ``source`` (a file, or a folder's files) skipped, in
        file order."""
        sql, args = _of_source("SELECT source, row, reason FROM bad_rows", source)
        return self.db.execute(sql + " ORDER BY source, row", args).fetchall()

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

    def flag_count(self, pair_id: str, kind: str) -> int:
        """How many flags of ``kind`` the pair has (one per reviewer, or per event)."""
        sql = "SELECT COUNT(*) FROM quality_flags WHERE pair_id = ? AND kind = ?"
        return int(self.db.execute(sql, (pair_id, kind)).fetchone()[0])

    def flagged_ids(self, kind: str) -> set[str]:
        return {
            r[0]
            for r in self.db.execute("SELECT pair_id FROM quality_flags WHERE kind = ?", (kind,))
        }

    def pair_ids_in_state(self, state: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM pairs WHERE state = ?", (state,))}

    def dataset_rows(
        self,
        certified_only: bool = True,
        with_dropped: bool = False,
        texts: bool = True,
        by_id: bool = False,
        ids: Sequence[str] | None = None,
    ) -> Iterator[sqlite3.Row]:
        """Pairs that belong in the DPO dataset: human A/B decisions (a human verdict wins),
        else the judge's accepted verdicts — only certified ones unless ``certified_only``
        is False (provisional ones are marked in ``label_status``). ``rm_margin`` and
        ``rm_flag``: what ``labeler verify`` found for the row's current label (NULL: not
        checked); rows it flagged under ``verify.action = "drop"`` are left out unless
        ``with_dropped`` (what verify itself checks again). Without ``texts`` the prompt
        and responses are NULL (a pass over what the rows are, not what they say); in
        import order, or by pair id with ``by_id`` (an export's stable order); ``ids``:
        only those pairs' rows (a few hundred at a time: one SQL parameter each).
        ``pair_state``: the pair's state (exported once a dataset written holds it)."""
        judge_ok = "AND COALESCE(v.status, 'certified') = 'certified' " if certified_only else ""
        dropped = (
            "" if with_dropped else "AND NOT COALESCE(vr.flagged = 1 AND vr.action = 'drop', 0) "
        )
        said = (
            "p.prompt, p.prompt_messages, p.response_a, p.response_b"
            if texts
            else "NULL AS prompt, NULL AS prompt_messages, NULL AS response_a, NULL AS response_b"
        )
        return self.db.execute(
            f"SELECT p.id, {said}, v.round_id, "
            "v.model, "
            "v.template_hash, COALESCE(h.label, v.label) AS label, "
            "CASE WHEN h.decided = 1 THEN 'human' ELSE 'judge' END AS label_source, "
            "CASE WHEN h.decided = 1 THEN 'human' ELSE COALESCE(v.status, 'certified') END "
            "AS label_status, "
            "CASE WHEN h.decided = 1 THEN 1.0 * json_extract(h.votes, '$.' || h.label) "
            "/ h.reviewers ELSE v.confidence END AS confidence, "
            "COALESCE(h.reviewers, 0) AS reviewers, vr.margin AS rm_margin, "
            "vr.flagged AS rm_flag, p.state AS pair_state "
            "FROM pairs p JOIN verdicts v ON v.pair_id = p.id "
            "LEFT JOIN human_decisions h ON h.pair_id = p.id AND h.decided = 1 "
            "LEFT JOIN verify_results vr ON vr.pair_id = p.id "
            "AND vr.label = COALESCE(h.label, v.label) "
            "WHERE ((h.label IN ('A', 'B')) OR (h.pair_id IS NULL AND v.action = 'accept' "
            "AND v.label IN ('A', 'B') AND p.state IN ('accepted', 'exported') "
            + judge_ok
            + ")) "
            + dropped
            + ("" if ids is None else f"AND p.id IN ({','.join('?' * len(ids))}) ")
            + ("ORDER BY p.id" if by_id else "ORDER BY p.seq"),
            () if ids is None else tuple(ids),
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

    def mark_exported(self, pair_ids: Iterable[str]) -> None:
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "UPDATE pairs SET state = 'exported', updated_at = ? WHERE id = ? "
                "AND state IN ('accepted', 'human_decided')",
                ((now, pid) for pid in pair_ids),
            )


def _of_source(sql: str, source: str) -> tuple[str, tuple[str, int, str]]:
    """``sql`` restricted to the bad rows of ``source``: the file, or the files under the
    folder (compared exactly, case included: no LIKE)."""
    folder = source.rstrip("/") + "/"
    where = " WHERE source = ? OR substr(source, 1, ?) = ?"
    return sql + where, (source, len(folder), folder)
