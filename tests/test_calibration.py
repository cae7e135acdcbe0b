"""Threshold choice with a guarantee: exact bounds, the fixed-sequence test, and the
guarantee itself checked over many simulated worlds."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeler.calibration import (
    NEVER,
    Labeled,
    Signals,
    calibrate,
    cohen_kappa,
    cp_lower,
    cp_upper,
    drifted,
    fixed_sequence,
    reliability,
    score,
)


@pytest.mark.parametrize(
    ("k", "n", "delta", "expected"),
    [
        (0, 10, 0.05, 1 - 0.05 ** (1 / 10)),  # closed form when k = 0
        (0, 100, 0.1, 1 - 0.1 ** (1 / 100)),
        (10, 10, 0.05, 1.0),
        (0, 0, 0.05, 1.0),
    ],
)
def test_cp_upper_closed_forms(k: int, n: int, delta: float, expected: float) -> None:
    assert cp_upper(k, n, delta) == pytest.approx(expected, abs=1e-9)


@given(st.integers(0, 60), st.integers(1, 60), st.sampled_from([0.01, 0.05, 0.1, 0.25]))
def test_cp_bounds_bracket_the_estimate(k: int, n: int, delta: float) -> None:
    k = min(k, n)
    lo, hi = cp_lower(k, n, delta), cp_upper(k, n, delta)
    assert 0 <= lo <= k / n <= hi <= 1
    # the tail probability at the bound is delta (a binomial CDF check, computed directly)
    if k < n:
        cdf = sum(math.comb(n, i) * hi**i * (1 - hi) ** (n - i) for i in range(k + 1))
        assert cdf == pytest.approx(delta, rel=1e-6)


def test_fixed_sequence_stops_at_the_first_failure() -> None:
    scores = np.array([0.99] * 30 + [0.9] * 30 + [0.8] * 30 + [0.7] * 30)
    disagree = np.array([False] * 30 + [False] * 30 + [True] * 15 + [False] * 15 + [False] * 30)
    # pairs at 0.7 are perfect, but the test stops at 0.8 and never reaches them
    choice = fixed_sequence(scores, disagree, alpha=0.1, delta=0.1, min_count=20)
    # the lowest grid threshold that keeps exactly the 60 perfect pairs above it
    assert 0.8 < choice.threshold <= 0.9 and choice.n == 60 and choice.disagreements == 0
    none = fixed_sequence(scores, np.ones(120, bool), 0.1, 0.1, 20)
    assert none.threshold == NEVER


def test_min_count_skips_thresholds_with_too_few_pairs() -> None:
    scores = np.array([0.99] * 25 + [0.9] * 100)
    disagree = np.array([True] * 5 + [False] * 20 + [False] * 100)
    # tested first, the 25 top pairs (5 wrong) fail and end the sequence
    assert fixed_sequence(scores, disagree, 0.2, 0.1, min_count=20).threshold == NEVER
    # with at least 30 pairs required, the test starts at 0.9 (125 pairs, 5 wrong)
    assert 0.8 < fixed_sequence(scores, disagree, 0.2, 0.1, min_count=30).threshold <= 0.9


def test_first_testable_lets_one_disagreement_pass() -> None:
    from labeler.calibration import first_testable

    n = first_testable(0.15, 0.05)
    assert cp_upper(1, n, 0.05) <= 0.15 < cp_upper(1, n - 1, 0.05)


@pytest.mark.parametrize(
    ("x", "y", "kappa"),
    [
        (["A", "B", "A", "B"], ["A", "B", "A", "B"], 1.0),
        (["A", "A", "B", "B"], ["A", "B", "A", "B"], 0.0),
        (["A", "A", "A", "B"], ["A", "A", "B", "B"], 0.5),
    ],
)
def test_cohen_kappa(x: list[str], y: list[str], kappa: float) -> None:
    assert cohen_kappa(x, y) == pytest.approx(kappa)


def test_reliability_and_ece() -> None:
    bins, ece = reliability([0.95, 0.95, 0.55, 0.55], [True, True, True, False])
    assert [(round(s, 2), a, n) for s, a, n in bins] == [(0.55, 0.5, 2), (0.95, 1.0, 2)]
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)


def test_drift_needs_evidence() -> None:
    assert not drifted([], 0.1, 0.1)
    assert not drifted([True] * 18 + [False] * 2, 0.1, 0.1)  # 90%: consistent with target
    assert drifted([True] * 30 + [False] * 20, 0.1, 0.1)  # 60% of 50: clearly below


def test_cold_start_until_enough_labels() -> None:
    data = [Labeled(Signals("A", 0.9, 1.0), "A", True)] * 10
    assert calibrate(data, 0.1, 0.1, min_labels=50, min_count=5) is None


def test_score_rules() -> None:
    assert score(Signals("TIE", 0.99, 1.0), None) == 0.0
    assert score(Signals("A", 0.99, 1.0, orders_agree=False), None) == 0.0
    assert score(Signals("A", 0.9, 1.0), None) == 0.9
    assert score(Signals("A", 0.9, 0.5), None) == 0.0  # cold start: HIGH required
    w = (0.0, 1.0, 0.0, 0.0)
    assert score(Signals("B", 0.9, 0.5, p_verdict=0.9), w) == pytest.approx(0.9)


# -- the guarantee over simulated worlds ---------------------------------------------------

Judge = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


def calibrated(rng: np.random.Generator, n: int):
    """Confidence q ~ U(0.5, 1); P(agree) = q; half A, half B."""
    q = rng.uniform(0.5, 1.0, n)
    return q, q, rng.random(n) < 0.5


def overconfident(rng: np.random.Generator, n: int):
    """Says 0.9-1.0 for everything; P(agree) = 0.5 + 0.45 * (q - 0.9) * 10 ... at best 0.95."""
    q = rng.uniform(0.9, 1.0, n)
    return q, 0.5 + (q - 0.9) * 4.5, rng.random(n) < 0.5


def position_biased(rng: np.random.Generator, n: int):
    """A verdicts are twice as often wrong as B verdicts at the same confidence."""
    q = rng.uniform(0.6, 1.0, n)
    is_a = rng.random(n) < 0.6
    p = np.where(is_a, 1 - 2 * (1 - q), q)
    return q, np.clip(p, 0, 1), is_a


def useless(rng: np.random.Generator, n: int):
    """Confidence unrelated to correctness; 75% right overall (below a 0.9 target)."""
    q = rng.uniform(0.5, 1.0, n)
    return q, np.full(n, 0.75), rng.random(n) < 0.5


def simulate(
    judge: Judge,
    seed: int,
    n: int = 3000,
    rate: float = 0.1,
    alpha: float = 0.1,
    delta: float = 0.1,
) -> tuple[bool, float]:
    """One world: judge n pairs, humans label the sample (and the rest of the reviewed
    strata), calibrate, then measure the true agreement of what the thresholds accept on
    a fresh population of the same world. Returns (guarantee held, true coverage)."""
    rng = np.random.default_rng(seed)
    q, p_agree, is_a = judge(rng, n)
    agree = rng.random(n) < p_agree
    in_sample = rng.random(n) < rate
    data = []
    for i in range(n):
        label = "A" if is_a[i] else "B"
        s = Signals(label, float(q[i]), 1.0, p_verdict=float(q[i]))
        human = label if agree[i] else ("B" if label == "A" else "TIE")
        reviewed = in_sample[i] or q[i] < 0.8  # the low-confidence stratum is reviewed too
        if reviewed:
            data.append(Labeled(s, human, bool(in_sample[i])))
    cal = calibrate(data, alpha, delta, min_labels=50, min_count=30)
    assert cal is not None
    fresh_q, fresh_p, fresh_a = judge(np.random.default_rng(seed + 10**6), 20000)
    scores = np.array(
        [
            score(Signals("A" if a else "B", float(x), 1.0, p_verdict=float(x)), cal.weights)
            for x, a in zip(fresh_q, fresh_a, strict=True)
        ]
    )
    accepted = scores >= np.where(fresh_a, cal.a, cal.b)
    if not accepted.any():
        return True, 0.0
    true_agreement = float(fresh_p[accepted].mean())
    return true_agreement >= 1 - alpha, float(accepted.mean())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("judge", "min_cov", "max_cov"),
    [
        (calibrated, 0.03, 0.6),
        (overconfident, 0.0, 0.6),
        (position_biased, 0.01, 0.8),
        (useless, 0.0, 0.02),
    ],
)
def test_guarantee_holds_in_at_least_1_minus_delta_of_worlds(
    judge: Judge, min_cov: float, max_cov: float
) -> None:
    worlds = 200
    results = [simulate(judge, seed) for seed in range(worlds)]
    violations = sum(not ok for ok, _ in results)
    coverage = float(np.mean([c for _, c in results]))
    # delta = 0.1: at most 10% of worlds may break the guarantee; a procedure that used the
    # point estimate instead of the bound breaks it in about half of them
    assert violations <= 0.1 * worlds, f"{violations}/{worlds} worlds broke the guarantee"
    assert min_cov <= coverage <= max_cov, coverage


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6))
def test_a_judge_that_is_always_right_is_trusted(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = [
        Labeled(
            Signals("A" if rng.random() < 0.5 else "B", float(q), 1.0, p_verdict=float(q)), "", True
        )
        for q in rng.uniform(0.8, 1, 300)
    ]
    data = [Labeled(d.signals, d.signals.label or "", True) for d in data]
    cal = calibrate(data, 0.1, 0.1, min_labels=50, min_count=30, learn=False)
    assert cal is not None and cal.coverage > 0.9 and cal.agreement == 1.0
