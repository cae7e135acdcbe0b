"""How a cascade splits its confidence budget (1 - ``calibration.confidence``) between
its tiers, predicted from the judges' own confidence without reading a human label
(issue 17: "split delta between tiers by what each can be predicted to certify").

A tier's share of delta buys it a chance to certify a region; a share given to a tier
that cannot use it only weakens the others' tests. The prediction takes each tier's score
on the prediction set (``routing.prediction_draw``: pairs every tier judges until the
split is fixed, chosen by a hash draw of their own, a uniform sample of the project),
treats each score as the chance the judge agrees with humans (calibrated confidence: an
assumption, not a measurement), and, for each candidate split, the expected cost of the
project: judge calls plus human labels for what is not certified, a tier's region
certified with the chance its exact test passes on the calibration sample the region
would get. It keeps the split with the lowest expected cost. The split reads no label,
and the prediction set (with the judge prices, measured on it) is independent of the
audit draws that decide which labels the tests read: given the split, each tier's test
holds at its share, and the union at delta (Bonferroni over the tiers, as for a fixed
split); a wrong prediction costs savings, never the guarantee. Pure: scores and prices
in, shares out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from labeler import calibration as cal
from labeler.calibration import _log_binom_cdf
from labeler.config import LAST_TIER_SHARE
from labeler.planned import first_look_count, most_disagreements

# the last tier's candidate shares of delta: all of it, or the fixed split's (the tiers
# before it split the rest equally)
LAST_SHARES = (1.0, LAST_TIER_SHARE)
POINTS = 40  # candidate regions (top shares of a tier's scores) per tier
MIN_SAMPLE = 30  # fewer pairs every tier judged than this: no prediction (the fixed split)
STEP = 1.03  # label counts are rounded on a geometric grid this fine (memoised)


@dataclass(frozen=True)
class Prediction:
    shares: tuple[float, ...]  # each tier's share of delta
    cost: float  # the expected cost of the project under the chosen split
    costs: dict[float, float]  # expected cost per candidate last-tier share
    sample: int  # pairs of the prediction set the prediction read


@lru_cache(maxsize=8192)
def _passes(n: int, p_milli: int, alpha: float, delta: float) -> float:
    """The chance the exact test (``planned.binomial_rejects``) passes on ``n`` uniform
    labels when each disagrees with chance ``p_milli / 1000``."""
    k = most_disagreements(n, alpha, delta)
    if k < 0:
        return 0.0
    p = min(max(p_milli / 1000, 1e-9), 1 - 1e-9)
    return float(np.exp(_log_binom_cdf(k, n, np.array([p])))[0])


def pass_chance(n: float, p: float, alpha: float, delta: float) -> float:
    """``_passes`` with ``n`` rounded on a geometric grid and ``p`` to 0.001 (memoised)."""
    if n < 1 or delta <= 0:
        return 0.0
    n_grid = max(1, round(STEP ** round(math.log(n) / math.log(STEP))))
    return _passes(n_grid, round(p * 1000), alpha, delta)


def regions(
    scores: np.ndarray,
    mask: np.ndarray,
    size: float,
    rate: float,
    alpha: float,
    delta: float,
    kept: np.ndarray | None = None,
) -> list[tuple[float, float, float]]:
    """A tier's candidate regions on the pairs ``mask`` of the prediction set, standing for
    ``size`` pairs: (threshold, pairs it covers, chance its test passes) for up to
    ``POINTS`` top shares of the scores, the test reading the region's calibration sample
    (``rate`` of its pairs; of each, the share ``kept`` keeps its label) with each pair
    disagreeing with chance 1 - its score."""
    pick = mask & (scores > 0)
    order = np.argsort(-scores[pick], kind="stable")
    s = scores[pick][order]
    total = int(mask.sum())
    if not len(s) or not total:
        return []
    keep = np.ones(len(s)) if kept is None else kept[pick][order]
    ends = np.unique(np.linspace(1, len(s), min(POINTS, len(s))).round().astype(int))
    miss, labels = np.cumsum(1 - s), np.cumsum(keep)
    out = []
    for m in ends.tolist():
        covered = size * m / total
        chance = pass_chance(rate * size * labels[m - 1] / total, miss[m - 1] / m, alpha, delta)
        if chance > 0:
            out.append((float(s[m - 1]), covered, chance))
    return out


@dataclass(frozen=True)
class Terms:
    """The project a split is predicted for."""

    size: float  # its pairs
    rate: float  # an uncertified tier's calibration sample rate
    audit: float  # the drift watch's rate (``routing.audit_rate``)
    alpha: float  # 1 - the target agreement
    delta: float  # 1 - the confidence: what the tiers' shares split
    human: float  # what a human label costs (all its reviewers)


def expected_cost(
    scores: Sequence[np.ndarray], costs: Sequence[float], shares: Sequence[float], t: Terms
) -> float:
    """The expected cost of the project's ``t.size`` pairs through the tiers
    (``scores[k]``: tier k's score on each pair of the prediction set; ``costs[k]``: what
    it costs to judge a pair) with tier k tested at ``t.delta * shares[k]``. A tier that
    is not the last judges only its calibration sample (``t.rate``) until certified,
    then every pair that reaches it; one with no share judges nothing. Its sample
    reaches humans through the last tier: where that tier is expected to certify (its
    best region), only at the drift watch's ``t.audit`` rate (``planned.given_sample``).
    Each tier's region is the one with the lowest expected cost given the later tiers'
    (chosen on expectations, as a plan would be: a prediction, not a test); a tier
    between the first and the last takes the region it most likely certifies most of,
    so the work is about ``POINTS`` x 2^tiers region scans, not ``POINTS`` to the power
    of the tiers."""
    size, rate, audit, alpha, delta, human = t.size, t.rate, t.audit, t.alpha, t.delta, t.human
    last = len(scores) - 1

    def best_last(mask: np.ndarray) -> tuple[float, float, float]:
        n_k = size * mask.mean()
        found = regions(scores[last], mask, n_k, rate, alpha, delta * shares[last])
        return max(found, key=lambda r: r[1] * r[2], default=(np.inf, 0.0, 0.0))

    def tier(k: int, mask: np.ndarray) -> float:
        n_k = size * mask.mean()
        if k == last:
            _, covered, chance = best_last(mask)
            return costs[k] * n_k + human * (n_k - covered * chance)
        rest = tier(k + 1, mask)
        if shares[k] <= 0:
            return rest
        threshold, _, chance = best_last(mask)
        kept = np.where(scores[last] >= threshold, 1 - chance * (1 - audit / rate), 1.0)
        waiting = costs[k] * rate * n_k + rest  # never certified
        best = waiting
        found = regions(scores[k], mask, n_k, rate, alpha, delta * shares[k], kept)
        if k > 0:  # a middle tier takes its likeliest-largest region (not every one)
            found = [max(found, key=lambda r: r[1] * r[2])] if found else []
        for at, _, passes in found:
            certified = costs[k] * n_k + tier(k + 1, mask & (scores[k] < at))
            best = min(best, passes * certified + (1 - passes) * waiting)
        return best

    return tier(0, np.ones(len(scores[0]), bool))


def predict_shares(
    scores: Sequence[np.ndarray], costs: Sequence[float], t: Terms
) -> Prediction | None:
    """The split of delta (one share per tier, adding up to 1) with the lowest expected
    cost (``expected_cost``) among the last tier taking each of ``LAST_SHARES`` and the
    others splitting the rest equally; a tie keeps the larger last share. ``scores``: each
    tier's score on the pairs of the prediction set (0 where it could not accept the
    pair); None when there are fewer than ``MIN_SAMPLE`` such pairs (too few to predict
    from)."""
    tiers = len(scores)
    if len(scores[0]) < MIN_SAMPLE:
        return None
    found: dict[float, float] = {}
    best: tuple[float, float] | None = None
    for f in LAST_SHARES:
        shares = (*([(1 - f) / (tiers - 1)] * (tiers - 1)), f)
        cost = expected_cost(scores, costs, shares, t)
        found[f] = cost
        if best is None or cost < best[1] * (1 - 1e-6):
            best = (f, cost)
    assert best is not None
    f = best[0]
    shares = (*([(1 - f) / (tiers - 1)] * (tiers - 1)), f)
    return Prediction(shares, best[1], found, len(scores[0]))


def may_wait(labels: int, alpha: float, delta: float) -> bool:
    """May a cascade's split of delta still wait for a prediction set large enough
    (``MIN_SAMPLE``)? Yes while no tier's look can be due: the project's human labels
    (a bound on any tier's calibration sample) are fewer than the first look needs with
    all of delta (a tier's share only raises that count). So no delta is spent before the
    split is fixed: a small first round no longer fixes the fallback split for good."""
    return labels < first_look_count(alpha, delta)


def _judged(row: Any) -> bool:
    """Did the tier judge this pair? (not: passed on outside its calibration sample)"""
    return bool(row["reason"] != "not_sampled")


def common_scores(
    tiers: Sequence[Sequence[tuple[Any, cal.Judged]]],
    floors: Sequence[float],
    chosen: Callable[[str], bool] = lambda pair_id: True,
) -> tuple[list[str], list[np.ndarray]]:
    """The ``chosen`` pairs every tier judged (``thresholds.judged`` per tier; the
    prediction set, ``routing.prediction_draw``) and each tier's score on them, 0 where
    it could not accept the pair (not an eligible verdict, or below its floor
    ``floors[k]``): what ``predict_shares`` reads."""
    by_tier = []
    for data, floor in zip(tiers, floors, strict=True):
        found = {}
        for row, d in data:
            if _judged(row) and chosen(row["pair_id"]):
                x = cal.score(d.signals, None)
                found[row["pair_id"]] = x if x >= floor else 0.0
        by_tier.append(found)
    ids = [i for i in by_tier[0] if all(i in found for found in by_tier[1:])]
    return ids, [np.array([found[i] for i in ids], float) for found in by_tier]


def digest(ids: Sequence[str]) -> str:
    """A short fingerprint of a set of pair ids (which pairs a prediction read)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]
