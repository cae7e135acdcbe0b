"""Today's threshold procedure (before issue 9), kept only so the calibration benchmark can
compare it with the current one in the same run: uniform audit sample, Clopper-Pearson
fixed sequence from the top, cold-start acceptance on the judge's word."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from labeler.calibration import Signals, cp_lower, cp_upper

GRID = tuple(round(x, 3) for x in np.arange(0.995, 0.0, -0.005))
NEVER = 1.01  # a threshold above every score: nothing is accepted
MIN_FIT = 30  # fewer human verdicts than this outside the sample: no learned combination


def features(s: Signals) -> list[float]:
    p = s.p_verdict if s.p_verdict is not None else s.confidence
    p = min(max(p, 1e-4), 1 - 1e-4)
    return [1.0, math.log(p / (1 - p)), s.self_high_share, 1.0 if s.label == "A" else 0.0]


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 50
) -> np.ndarray | None:
    """Ridge logistic regression by Newton's method; None when it cannot be fitted."""
    if len(y) < MIN_FIT or y.min() == y.max():
        return None
    w = np.zeros(x.shape[1])
    penalty = l2 * np.eye(x.shape[1])
    penalty[0, 0] = 0.0  # no penalty on the intercept
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + penalty @ w
        hess = (x.T * (p * (1 - p))) @ x + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w if np.all(np.isfinite(w)) else None


def score(s: Signals, weights: Sequence[float] | None) -> float:
    """The combined score of one judgement (0 for pairs no threshold may accept)."""
    if not s.eligible:
        return 0.0
    if weights is None:
        return s.confidence if s.self_high_share >= 1.0 else 0.0
    z = float(np.dot(features(s), weights))
    return 1 / (1 + math.exp(-max(min(z, 50.0), -50.0)))


# -- the procedure ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    threshold: float
    n: int  # sample pairs at or above it
    disagreements: int
    upper: float  # bound on the disagreement rate


@lru_cache(maxsize=256)
def first_testable(alpha: float, delta: float) -> int:
    """The fewest pairs with which one disagreement can still pass the test. Starting the
    sequence with fewer would spend its only chance on a test that a good judge fails by
    bad luck (with k = 0 required); the rule looks at counts only, never at labels."""
    n = 2
    while cp_upper(1, n, delta) > alpha and n < 100_000:
        n += 1
    return n


def fixed_sequence(
    scores: np.ndarray,
    disagree: np.ndarray,
    alpha: float,
    delta: float,
    min_count: int,
    grid: Sequence[float] = GRID,
) -> Choice:
    """The threshold with the most coverage that passes the fixed-sequence test (see the
    module docstring). FWER control covers every rejected hypothesis at once, so among
    thresholds with the same sample pairs above them the highest is kept: no lower
    threshold reaches into scores no sample pair had."""
    best = Choice(NEVER, 0, 0, 1.0)
    start = max(min_count, first_testable(alpha, delta))
    for lam in grid:
        above = scores >= lam
        n = int(above.sum())
        if n < start:
            continue
        k = int(disagree[above].sum())
        upper = cp_upper(k, n, delta)
        if upper > alpha:
            break
        if n > best.n:  # every rejected λ is covered; keep the highest one per sample set
            best = Choice(float(lam), n, k, upper)
    return best


@dataclass(frozen=True)
class Calibrated:
    a: float
    b: float
    weights: tuple[float, ...] | None
    scheme: str  # "joint" | "per_label" | "cold_start"
    sample: int  # human-decided pairs in the uniform sample
    fitted_on: int
    coverage: float  # share of all judged pairs the thresholds accept (estimated)
    agreement: float | None  # of accepted sample pairs
    agreement_lower: float | None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Labeled:
    """A judged pair with a human decision."""

    signals: Signals
    human: str  # A | B | TIE | BOTH_BAD
    in_sample: bool  # in the uniform calibration sample

    @property
    def disagrees(self) -> bool:
        return self.signals.label != self.human


def _accept(scores: np.ndarray, labels: Sequence[str | None], a: float, b: float) -> np.ndarray:
    thresholds = np.array([a if lab == "A" else b for lab in labels])
    return scores >= thresholds


def calibrate(
    data: Sequence[Labeled],
    alpha: float,
    delta: float,
    min_labels: int,
    min_count: int,
    learn: bool = True,
) -> Calibrated | None:
    """New thresholds from human verdicts, or None while the sample is too small."""
    sample = [d for d in data if d.in_sample]
    if len(sample) < min_labels:
        return None
    fit = [d for d in data if not d.in_sample and d.signals.eligible]
    weights = None
    if learn:
        x = np.array([features(d.signals) for d in fit]) if fit else np.zeros((0, 4))
        y = np.array([0.0 if d.disagrees else 1.0 for d in fit])
        w = fit_logistic(x, y)
        weights = None if w is None else tuple(float(v) for v in w)
    scores = np.array([score(d.signals, weights) for d in sample])
    disagree = np.array([d.disagrees for d in sample])
    labels = [d.signals.label for d in sample]
    joint = fixed_sequence(scores, disagree, alpha, delta / 2, min_count)
    is_a = np.array([lab == "A" for lab in labels])
    per_a = fixed_sequence(scores[is_a], disagree[is_a], alpha, delta / 4, min_count)
    per_b = fixed_sequence(scores[~is_a], disagree[~is_a], alpha, delta / 4, min_count)
    cov_joint = _accept(scores, labels, joint.threshold, joint.threshold).mean()
    cov_split = _accept(scores, labels, per_a.threshold, per_b.threshold).mean()
    if cov_split > cov_joint:
        a, b, scheme = per_a.threshold, per_b.threshold, "per_label"
    else:
        a, b, scheme = joint.threshold, joint.threshold, "joint"
    accepted = _accept(scores, labels, a, b)
    n = int(accepted.sum())
    agree = int((~disagree[accepted]).sum())
    notes = (
        []
        if weights is not None
        else [
            f"score = raw confidence with HIGH required ({len(fit)} verdicts to learn from, "
            f"{MIN_FIT} needed)"
        ]
    )
    return Calibrated(
        a,
        b,
        weights,
        scheme,
        len(sample),
        len(fit),
        float(accepted.mean()),
        agree / n if n else None,
        cp_lower(agree, n, delta) if n else None,
        notes,
    )
