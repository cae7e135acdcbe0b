"""Routing: accept a judgement into the dataset, or send the pair to human review, and why.

Pure: plain values in, a ``Decision`` out. The reasons, checked in this order:

``malformed``           a judge reply could not be parsed
``order_disagreement``  the two presentation orders gave different verdicts
``tie``                 the judge said TIE
``low_confidence``      the score is below the threshold for the label (before calibration
                        the score is the confidence, and a LOW self-report scores 0)
``audit``               would have been accepted, but drawn for blind human review
``confident``           accepted

The audit draw is a hash of (seed, pair id): the same pair and seed always draw the same
number, so a rerun routes identically, and audited pairs are a uniform random sample of
the would-be-accepted ones — the unbiased sample calibration needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from labeler.calibration import score, signals_of
from labeler.verdicts import Judgement

ACCEPT = "accept"
REVIEW = "review"
REVIEW_REASONS = (
    "malformed",
    "order_disagreement",
    "tie",
    "low_confidence",
    "audit",
    "judge_error",
    "near_duplicate",
)


@dataclass(frozen=True)
class Thresholds:
    """Score needed to accept an A verdict and a B verdict, the weights that combine the
    judge's signals into that score (None: the raw confidence, HIGH required), and the
    audit rate of the rounds routed with them. ``version`` grows on every change."""

    a: float
    b: float
    version: int = 0
    weights: tuple[float, ...] | None = None
    audit_rate: float = 0.05

    def for_label(self, label: str) -> float:
        return self.a if label == "A" else self.b


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str


def audit_draw(seed: int, pair_id: str) -> float:
    """A reproducible uniform number in [0, 1) for this pair and seed."""
    digest = hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def route(judgement: Judgement, thresholds: Thresholds, audit_rate: float, draw: float) -> Decision:
    """Decide one pair. ``draw`` is ``audit_draw(seed, pair_id)``."""
    if judgement.malformed:
        return Decision(REVIEW, "malformed")
    if not judgement.orders_agree:
        return Decision(REVIEW, "order_disagreement")
    if judgement.label == "TIE" or judgement.label is None:
        return Decision(REVIEW, "tie")
    if score(signals_of(judgement), thresholds.weights) < thresholds.for_label(judgement.label):
        return Decision(REVIEW, "low_confidence")
    if draw < audit_rate:
        return Decision(REVIEW, "audit")
    return Decision(ACCEPT, "confident")
