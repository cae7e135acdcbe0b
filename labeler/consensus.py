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
