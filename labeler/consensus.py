"""Human review logic: shown order, mapping answers back, combining reviewers. Pure.

Reviewers see each pair in a random but reproducible order (a hash of seed and pair id):
position bias is real for humans too. Their answer is mapped back to stored order here.

Human labels, in stored order: ``A``, ``B``, ``TIE``, ``BOTH_BAD``. A pair is *decided*
when at least ``min_submitted`` reviewers submitted and one label has a strict majority;
it is *disputed* when the submitted labels differ (decided or not). Discarded and draft
responses are not verdicts.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

HUMAN_LABELS = ("A", "B", "TIE", "BOTH_BAD")
# Argilla label keys (what reviewers click) <-> human labels, in shown terms
_FROM_KEY = {"A": "A", "B": "B", "tie": "TIE", "both_bad": "BOTH_BAD"}
_TO_KEY = {v: k for k, v in _FROM_KEY.items()}


def shown_swapped(seed: int, pair_id: str) -> bool:
    """Whether reviewers see the stored response B first."""
    digest = hashlib.sha256(f"shown:{seed}:{pair_id}".encode()).digest()
    return digest[0] & 1 == 1


def _swap(label: str) -> str:
    return {"A": "B", "B": "A"}.get(label, label)


def to_shown_key(stored_label: str, swapped: bool) -> str:
    """The Argilla label key for a stored-order label (a judge suggestion, say)."""
    label = "TIE" if stored_label == "TIE" else stored_label
    return _TO_KEY[_swap(label) if swapped else label]


def from_shown_key(key: str | None, swapped: bool) -> str | None:
    """The stored-order human label for what a reviewer clicked (None if not a label)."""
    label = _FROM_KEY.get(key or "")
    if label is None:
        return None
    return _swap(label) if swapped else label


@dataclass(frozen=True)
class Consensus:
    label: str | None
    votes: dict[str, int]
    reviewers: int
    decided: bool
    disputed: bool

    @property
    def agreement(self) -> float:
        """Share of reviewers who chose the decided label (0 when undecided)."""
        if not self.decided or not self.reviewers or self.label is None:
            return 0.0
        return self.votes[self.label] / self.reviewers


def combine_votes(labels: Sequence[str], min_submitted: int) -> Consensus:
    """Combine the submitted labels of one pair (see the module docstring)."""
    votes = Counter(labels)
    n = len(labels)
    disputed = len(votes) > 1
    if n < min_submitted or n == 0:
        return Consensus(None, dict(votes), n, False, disputed)
    label, top = votes.most_common(1)[0]
    if top * 2 <= n:
        return Consensus(None, dict(votes), n, False, True)
    return Consensus(label, dict(votes), n, True, disputed)


def doubled(seed: int, pair_id: str, share: float) -> bool:
    """Whether two reviewers decide this pair (``review.double_share``): a draw from a hash
    of seed and pair id, independent of why the pair is in review (audit, low confidence,
    tie...), so doubled pairs are a uniform sample of the review pairs and reviewers learn
    nothing about a pair's routing from being asked with another reviewer."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"double:{seed}:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@dataclass(frozen=True)
class Vote:
    """One submitted verdict on a pair two reviewers were asked to decide."""

    pair_id: str
    round_id: int | None
    reviewer: str
    label: str  # a HUMAN_LABELS value, stored order
    at: str  # when the response was first given (orders a pair's votes)
    judge: str | None = None  # the judge's label (A | B | TIE), None when it gave none


LOW_REVIEWER_CONFIDENCE = 0.05  # a reviewer is flagged when this sure to be below peers
LOW_REVIEWER_MIN = 10  # comparisons a reviewer (and their peers) need before a flag


def _share(num: float, den: int) -> float | None:
    return round(num / den, 4) if den else None


def first_two(votes: Sequence[Vote]) -> dict[str, tuple[Vote, Vote]]:
    """The first two verdicts (by when they were given) of each pair that has two: a third
    reviewer is asked only when those two tie, so later ones are not a fair sample."""
    by_pair: dict[str, list[Vote]] = {}
    for v in votes:
        by_pair.setdefault(v.pair_id, []).append(v)
    out = {}
    for pair_id, given in by_pair.items():
        if len(given) >= 2:
            first, second = sorted(given, key=lambda v: (v.at, v.reviewer))[:2]
            out[pair_id] = (first, second)
    return out


def human_agreement(votes: Sequence[Vote]) -> dict[str, Any]:
    """How often two reviewers agree on the pairs both decided, next to how often the judge
    agrees with one of them on the same pairs; per round and per reviewer.

    Each pair counts its *first two* verdicts only (a third reviewer is asked only when
    those two tie, so counting later ones would favour agreement). Labels are compared as
    given: two ties agree, two "both bad" agree, a tie against A disagrees; the judge's
    agreement on a pair is the mean of ``judge == reviewer`` over the two (its TIE agrees
    with a human tie; a judge without a verdict is left out of that figure). A reviewer is
    flagged ``low`` when the exact (Clopper-Pearson) upper bound of their agreement with
    co-reviewers is below the lower bound of the agreement on the pairs they did not decide
    (two disjoint samples), each at 1 - ``LOW_REVIEWER_CONFIDENCE`` / reviewers
    (Bonferroni): a reviewer as good as the others is flagged rarely, however many there
    are."""
    from labeler.calibration import cp_lower, cp_upper

    pairs = []  # (round, reviewer 1, reviewer 2, agree, judge agreement or None)
    for first, second in first_two(votes).values():
        judge = first.judge
        jscore = None if judge is None else ((judge == first.label) + (judge == second.label)) / 2
        pairs.append(
            (first.round_id, first.reviewer, second.reviewer, first.label == second.label, jscore)
        )

    def summary(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
        judged = [r[4] for r in rows if r[4] is not None]
        return {
            "pairs": len(rows),
            "agreement": _share(sum(r[3] for r in rows), len(rows)),
            "judge_pairs": len(judged),
            "judge_agreement": _share(sum(judged), len(judged)),
        }

    rounds = sorted({r[0] for r in pairs}, key=lambda x: (x is None, x or 0))
    names = sorted({n for r in pairs for n in (r[1], r[2])})
    level = LOW_REVIEWER_CONFIDENCE / max(len(names), 1)
    total_agree = sum(r[3] for r in pairs)
    own_count: Counter[str] = Counter()
    own_agree: Counter[str] = Counter()
    for r in pairs:
        for name in (r[1], r[2]):
            own_count[name] += 1
            own_agree[name] += r[3]
    reviewers = []
    for name in names:
        n_own, agree = own_count[name], own_agree[name]
        n_peers, peers_agree = len(pairs) - n_own, total_agree - agree
        peer_rate = _share(peers_agree, n_peers)
        low = (
            n_own >= LOW_REVIEWER_MIN
            and n_peers >= LOW_REVIEWER_MIN
            and cp_upper(agree, n_own, level) < cp_lower(peers_agree, n_peers, level)
        )
        reviewers.append(
            {
                "reviewer": name,
                "pairs": n_own,
                "agreement": _share(agree, n_own),
                "peers_agreement": peer_rate,
                "low": low,
            }
        )
    return {
        "total": summary(pairs),
        "rounds": [{"round": rid} | summary([r for r in pairs if r[0] == rid]) for rid in rounds],
        "reviewers": reviewers,
    }
