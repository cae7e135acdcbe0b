"""Simulated reviewers for the demo: they decide pairs in Argilla through its HTTP API (the
calls the web UI makes, via ``ReviewerSession``), from the demo pairs' known answers, with
human-like mistakes at a stated rate.

A reviewer takes the records pending for them in the order Argilla gives (a different
order per reviewer), and for each: picks the truly better response as shown, or says Tie
for a true tie; with probability ``error_rate`` picks the other response instead.

*Realistic* reviewers (``hard_error`` > 0, the demo's ``--parity``) err more on harder
pairs — ``error_rate + hard_error x difficulty`` (0.03 + 0.32 x difficulty: 97% consistent
on the easiest pairs, 65% on the hardest) — each independently of the others (the draw
is keyed by reviewer and pair), so two reviewers disagree as real ones do.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from typing import Any

from labeler.demo.data import DemoPair
from labeler.demo.reviewers import ReviewerSession


@dataclass
class SimulatedReviewer:
    name: str
    session: ReviewerSession
    truth: dict[tuple[str, frozenset[str]], DemoPair]
    error_rate: float = 0.05
    hard_error: float = 0.0  # extra error at difficulty 1 (realistic reviewers)
    done: int = 0

    def decide(self, record: dict[str, Any]) -> str:
        # the texts as a reviewer reads them (labeler sends & < > as HTML entities)
        fields = {k: html.unescape(v) for k, v in record["fields"].items() if isinstance(v, str)}
        first, second = fields["response_a"], fields["response_b"]
        pair = self.truth.get((fields["prompt"], frozenset((first, second))))
        # keyed by the pair (its record external id), not the record UUID or the reviewer, so
        # the same pair gets the same human answer in every run: the demo is reproducible
        # (realistic reviewers: by reviewer and pair, so each errs on its own)
        key = f"review:{self.name}:" if self.hard_error else "review:"
        digest = hashlib.sha256(f"{key}{record['external_id']}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        error = self.error_rate + self.hard_error * (pair.difficulty if pair else 1.0)
        if pair is None or pair.truth == "TIE":
            return "tie" if u >= error else "A"
        better_first = (pair.response_a if pair.truth == "A" else pair.response_b) == first
        right = "A" if better_first else "B"
        return right if u >= error else ("B" if right == "A" else "A")

    def review(self, dataset_id: str, limit: int | None = None) -> int:
        """Decide pending records until none are left (or ``limit``); returns how many."""
        count = 0
        while limit is None or count < limit:
            records = self.session.pending(dataset_id, limit=20)
            if not records:
                break
            for record in records[: None if limit is None else limit - count]:
                self.session.submit(record["id"], self.decide(record), reason="simulated")
                count += 1
        self.done += count
        return count


def truth_index(pairs: list[DemoPair]) -> dict[tuple[str, frozenset[str]], DemoPair]:
    return {(p.prompt, frozenset((p.response_a, p.response_b))): p for p in pairs}
