"""Routing: accept a judgement into the dataset, or send the pair to human review, and why.

Pure: plain values in, a ``Decision`` out. The reasons, checked in this order:

``malformed``           a judge reply could not be parsed
``order_disagreement``  the two presentation orders gave different verdicts
``tie``                 the judge said TIE
``low_confidence``      the score is below the routing (proposal) threshold for the label
                        (before calibration the score is the confidence, and a LOW
                        self-report scores 0)
``audit``               would have been accepted, but drawn for blind human review
``confident``           accepted: *certified* when the score reaches the threshold a test
                        certified, else *provisional* (kept out of the certified dataset
                        until a later calibration covers it, or sent back with ``recheck``)

Every decision carries ``pi``, the probability the pair had of reaching a human, fixed
now: 1 when its score sent it there, else the audit rate of its region (the provisional
region is audited more: its labels decide whether it can be certified). The audit draw is
a hash of (seed, pair id), uniform on [0, 1): a pair goes to humans exactly when
``draw < pi``, so a rerun routes identically and calibration can weight every human verdict
by ``1 / pi``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labeler import union
from labeler.calibration import NEVER, Signals, score, signals_of
from labeler.verdicts import Judgement

ACCEPT = "accept"
REVIEW = "review"
CERTIFIED = "certified"
PROVISIONAL = "provisional"
RECHECK = "recheck"
SUSPECTED_INJECTION = "suspected_injection"
ESCALATE = "escalate"  # a judge tier that is not the last passes the pair to the next tier
REVIEW_REASONS = (
    "malformed",
    "order_disagreement",
    "tie",
    "low_confidence",
    "audit",
    "judge_error",
    "near_duplicate",
    "recheck",
    SUSPECTED_INJECTION,
)


@dataclass(frozen=True)
class Thresholds:
    """What a round routes with. ``a``/``b``: the score an A/B verdict needs to be accepted
    at all (provisionally); ``certified_a``/``certified_b``: the score a test certified
    (NEVER: none yet). ``weights`` combine the judge's signals into the score (None: the
    raw confidence, HIGH required). ``audit_rate`` audits certified acceptances,
    ``provisional_audit_rate`` provisional ones. ``version`` grows on every change."""

    a: float
    b: float
    version: int = 0
    weights: tuple[float, ...] | None = None
    audit_rate: float = 0.05
    certified_a: float = NEVER
    certified_b: float = NEVER
    provisional_audit_rate: float = 0.2
    guarantee: str = "high_probability"
    fitted_on: int = 0
    judge_version: str = ""  # a panel's judge version these thresholds were chosen for
    # the planned procedure: looks taken at the calibration sample, the share of delta they
    # spent, the version its calibration phase began at, and whether the project finished
    looks: int = 0
    spent: float = 0.0
    phase: int = 0
    finished: bool = False
    certified_at: int = 0  # the version the certificate began at (the drift watch's start)
    # a union cascade (``union``): each earlier tier's consistency caps as fixed at the
    # phase's first look, ((bin edges), (caps)) per tier; None: not fixed yet
    caps: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] | None = None
    # the planned procedure: the (target agreement, confidence) the phase's looks test at,
    # fixed at its first look (a target chosen after seeing a look is not covered by the
    # guarantee); None: no look yet, the config's
    terms: tuple[float, float] | None = None
    # and the test it takes, fixed alike: (guarantee, quality, parity margin); a change is
    # refused (``terms.check_mode``)
    mode: tuple[str, str, float] | None = None

    @classmethod
    def from_params(cls, data: dict[str, Any]) -> Thresholds:
        """Thresholds stored as JSON (lists where tuples were); other keys are ignored."""
        data = {k: v for k, v in data.items() if k in _FIELDS}
        if data.get("weights") is not None:
            data["weights"] = tuple(data["weights"])
        if data.get("caps") is not None:
            data["caps"] = tuple((tuple(e), tuple(c)) for e, c in data["caps"])
        if data.get("terms") is not None:
            data["terms"] = (float(data["terms"][0]), float(data["terms"][1]))
        if data.get("mode") is not None:
            data["mode"] = (str(data["mode"][0]), str(data["mode"][1]), float(data["mode"][2]))
        return cls(**data)

    def for_label(self, label: str) -> float:
        return self.a if label == "A" else self.b

    def certified_for(self, label: str) -> float:
        return self.certified_a if label == "A" else self.certified_b


_FIELDS = frozenset(Thresholds.__dataclass_fields__)


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    pi: float = 1.0  # probability the pair had of reaching a human
    status: str | None = None  # certified | provisional (accepted pairs)
    score: float = 0.0


def audit_draw(seed: int, pair_id: str, tier: int = 0) -> float:
    """A reproducible uniform number in [0, 1) for this pair and seed; each judge tier of
    a cascade draws independently (its audits must not depend on an earlier tier's)."""
    return _uniform(f"{seed}:{pair_id}" if tier == 0 else f"{seed}:{pair_id}:tier{tier}")


def _uniform(key: str) -> float:
    """A reproducible uniform number in [0, 1) from ``key`` (a hash)."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def round_draw(seed: int, pair_id: str, cut: float = 0.0) -> float:
    """The draw that orders the waiting pairs (``routing.round_order = "random"``): each
    round takes the lowest, so every round is a uniform sample of the pairs waiting,
    whatever the source's order (sorted by topic, say): the rounds are drawn alike, which
    the certificate's guarantee assumes. A pair keeps its place. ``cut``: the highest draw
    a round has taken (``Store.round_cut``); the pairs still waiting are uniform above
    it, so a pair joining them draws there too (on [0, 1), pairs imported after a round
    would all come first). Independent of every other draw."""
    return cut + (1.0 - cut) * _uniform(f"{seed}:{pair_id}:round")


PREDICTION_RATE = 0.4  # the share of a cascade's first pairs its split is predicted from


def prediction_draw(seed: int, pair_id: str) -> float:
    """The draw that puts a pair in the set a cascade's split of delta is predicted from
    (``split``, below ``PREDICTION_RATE``): a hash of its own, independent of every tier's
    audit draw, so the split chosen from these pairs' scores is independent of which
    pairs the tests read labels of, and every tier's test holds at its share."""
    return _uniform(f"{seed}:{pair_id}:split")


def in_prediction_set(seed: int, pair_id: str) -> bool:
    return prediction_draw(seed, pair_id) < PREDICTION_RATE


def tier_judges(seed: int, pair_id: str, tiers: int, rate: float | None, predicting: bool) -> bool:
    """Does a tier judge this pair itself? Always, unless it judges only its calibration
    sample at ``rate`` (``sample_only_rate``): then the pairs of that sample and, while
    its cascade's split of delta is still to be predicted (``predicting``), those of the
    prediction set."""
    if rate is None or calibration_draw(seed, pair_id, tiers) < rate:
        return True
    return predicting and in_prediction_set(seed, pair_id)


def sample_only_rate(t: Thresholds, last: bool, procedure: str) -> float | None:
    """The rate of a tier's calibration sample when it judges only that sample — a tier
    that is not the last, with no certificate yet, under the planned procedure — else
    None (it judges every pair that reaches it). 0 when such a tier can no longer be
    certified (its looks found it futile, it has no share of delta, or the project
    finished): it judges nothing."""
    if last or procedure != "planned" or t.certified_a < NEVER:
        return None
    return t.provisional_audit_rate if t.a < NEVER else 0.0


def calibration_draw(seed: int, pair_id: str, tiers: int) -> float:
    """The draw that puts a pair in the calibration sample of a tier that is not the last
    and has no certificate yet (planned procedure): the last tier's own audit draw, not the
    tier's. While the last tier samples its own calibration phase at a rate at least as
    high, every pair of the earlier tier's sample that it could accept reaches a human
    through it, so the earlier tier's sample is labelled at no extra human cost (with its
    own draw, only a ``rate`` share of it would be: 16% of the pairs instead of 40%). Its
    chance of a label, given that it is in the sample: ``planned.given_sample``."""
    return audit_draw(seed, pair_id, tiers - 1)


def status_of(s: float, label: str | None, thresholds: Thresholds) -> str:
    """Where a judge-accepted pair with score ``s`` stands under ``thresholds``."""
    if label not in ("A", "B"):
        return RECHECK
    if s >= thresholds.certified_for(label):
        return CERTIFIED
    return PROVISIONAL if s >= thresholds.for_label(label) else RECHECK


def route_signals(
    signals: Signals, thresholds: Thresholds, draw: float, last: bool = True
) -> Decision:
    """Decide one pair from its signals. ``draw`` is ``audit_draw(seed, pair_id, tier)``.

    A judge tier that is not the ``last`` of a cascade accepts only what it is certified
    for (audited at the certified rate); everything else — what it would send to humans,
    and what it would accept only provisionally — goes to the next tier (action
    ``escalate``). Its evidence is then the pair's final routing: the chance the pair had
    of reaching a human there, so a cheap first tier adds no human labels of its own."""
    reason = unfit_reason(signals)
    if reason is not None:
        return Decision(REVIEW if last else ESCALATE, reason)
    s = score(signals, thresholds.weights)
    status = status_of(s, signals.label, thresholds)
    if status == RECHECK:
        return Decision(REVIEW if last else ESCALATE, "low_confidence", 1.0, None, s)
    if status == PROVISIONAL and not last:
        return Decision(ESCALATE, "provisional", 1.0, None, s)
    rate = thresholds.audit_rate if status == CERTIFIED else thresholds.provisional_audit_rate
    if draw < rate:
        return Decision(REVIEW, "audit", rate, None, s)
    return Decision(ACCEPT, "confident", rate, status, s)


def unfit_reason(signals: Signals) -> str | None:
    """Why no score can accept this verdict (None: it has a label and a score)."""
    if signals.malformed:
        return "malformed"
    if not signals.orders_agree:
        return "order_disagreement"
    if signals.label not in ("A", "B"):
        return "tie"
    return None


def route(judgement: Judgement, thresholds: Thresholds, draw: float, last: bool = True) -> Decision:
    """Decide one pair. ``draw`` is ``audit_draw(seed, pair_id, tier)``."""
    return route_signals(signals_of(judgement), thresholds, draw, last)


def route_union(
    scores: Sequence[float], t: Thresholds, draw: float, last: bool, unfit: str | None
) -> tuple[Decision, int]:
    """Decide one pair of a union cascade (``calibration.cascade = "union"``) at tier
    ``len(scores) - 1``: ``scores`` are the cascade-scale scores (``union.cascade_scores``)
    of the tiers that judged it so far (0: no usable verdict; an earlier tier's alone, as
    every tier before it passed the pair on), ``unfit`` why this tier's own verdict has
    none. ``draw`` is the last tier's audit draw, whichever tier routes. With it, the tier
    whose verdict the pair holds (-1: none).

    A tier that is not the last accepts what its score certifies (``t.certified_a``, the
    cascade's threshold) unless the pair is drawn for the drift watch's audit; everything
    else goes on, so the last tier sees every pair the test may read. The last tier routes
    on the union score (the highest): below the floor ``t.a`` to humans; drawn (the drift
    watch's rate above the certificate, the calibration sample's below it) to humans;
    above the certificate accepted with the first tier's label that reaches it; between
    floor and certificate accepted provisionally (it waits), holding the first tier's
    label that reaches the floor."""
    lam, own = t.certified_a, scores[-1]
    if not last:
        if own >= lam and draw >= t.audit_rate:
            return Decision(ACCEPT, "confident", t.audit_rate, CERTIFIED, own), len(scores) - 1
        reason = unfit or ("audit" if own >= lam else "provisional" if own >= t.a else "")
        return Decision(ESCALATE, reason or "low_confidence", 1.0, None, own), -1
    u = max(scores)
    if u <= 0 or u < t.a:
        return Decision(REVIEW, (unfit if u <= 0 else None) or "low_confidence", 1.0, None, u), -1
    pi = t.audit_rate if u >= lam else t.provisional_audit_rate
    if draw < pi:
        return Decision(REVIEW, "audit", pi, None, u), -1
    status = CERTIFIED if u >= lam else PROVISIONAL
    holder = int(union.holders(np.array(scores, float)[:, None], lam, t.a)[0])
    return Decision(ACCEPT, "confident", pi, status, u), holder
