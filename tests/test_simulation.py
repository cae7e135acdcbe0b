"""The whole loop (rounds, routing, human answers, calibration, re-checks) over many
simulated worlds: the promised guarantee holds, certified pairs always pass the thresholds
in force, a useless judge is not trusted and a good one is.

Each world is a judge of 500 pairs, judged in rounds of 100 with alpha = 0.15 and
delta = 0.1. Its ``SimPair.p_agree`` is the true chance the judge is right on that pair, so
the measured agreement of the certified pairs is their true agreement, not a noisy count.

Slack: a share measured over ``WORLDS`` worlds has binomial standard error
sqrt(delta (1 - delta) / WORLDS) (0.021 for 200 worlds); a guarantee "in at least
1 - delta of worlds" is checked as "violated in at most delta + 2 standard errors", a test
that a correct procedure fails about 2% of the time when it is exactly at delta, and much
less often when it is conservative, as the betting test is. The expected-mode mean is
allowed two standard errors of its own mean the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cache

import numpy as np
import pytest

from labeler.calibration import Signals, scores_of
from labeler.planned import oracle_limit
from labeler.routing import round_draw
from labeler.simulation import (
    Outcome,
    Settings,
    SimPair,
    gpt4_class_world,
    judged_pairs,
    run_cascade,
    run_loop,
    run_planned,
    run_planned_cascade,
)

PAIRS = 500
WORLDS = 200
ALPHA, DELTA = 0.15, 0.1
LOOP_SEED = 10**6  # the loop's draws must not come from the world's own generator


def skill(rng: np.random.Generator) -> np.ndarray:
    """How likely the judge is right, pair by pair: mostly easy pairs (mean 0.9)."""
    return 0.5 + 0.5 * rng.beta(4, 1, PAIRS)


def halves(rng: np.random.Generator, n: int = PAIRS) -> np.ndarray:
    return rng.random(n) < 0.5


def calibrated(rng: np.random.Generator) -> list[SimPair]:
    """Reports exactly its chance of being right; says HIGH from 0.75."""
    q = skill(rng)
    return judged_pairs(rng, halves(rng), q, q, np.where(q >= 0.75, 1.0, 0.5))


def overconfident(rng: np.random.Generator) -> list[SimPair]:
    """Reports at least 0.95 on every pair, always HIGH."""
    q = skill(rng)
    reported = np.maximum(q, 0.95 + 0.049 * rng.random(PAIRS))
    return judged_pairs(rng, halves(rng), reported, q, np.ones(PAIRS))


def position_biased(rng: np.random.Generator) -> list[SimPair]:
    """Calibrated on B verdicts; A verdicts are wrong twice as often at the same report."""
    q = skill(rng)
    is_a = halves(rng)
    p = np.where(is_a, np.clip(1 - 2 * (1 - q), 0.0, 1.0), q)
    return judged_pairs(rng, is_a, q, p, np.where(q >= 0.75, 1.0, 0.5))


def useless(rng: np.random.Generator) -> list[SimPair]:
    """Right 70% of the time whatever it reports (any certified set misses the target)."""
    reported = rng.uniform(0.5, 1.0, PAIRS)
    return judged_pairs(rng, halves(rng), reported, np.full(PAIRS, 0.7), np.ones(PAIRS))


def extreme(rng: np.random.Generator) -> list[SimPair]:
    """Calibrated, except a fifth of its verdicts, reported at p >= 0.9999, are coin flips
    (like a small judge whose most extreme scores are less accurate than high ones)."""
    q = skill(rng)
    pushed = rng.random(PAIRS) < 0.2
    reported = np.where(pushed, 1 - 10 ** rng.uniform(-6, -4, PAIRS), q)
    return judged_pairs(rng, halves(rng), reported, np.where(pushed, 0.5, q), np.ones(PAIRS))


def single_score(rng: np.random.Generator) -> list[SimPair]:
    """Reports p = 1.0, HIGH, on every pair; right 83% of the time on average, just under
    the 85% target, so certifying anything is a violation."""
    p = rng.uniform(0.66, 1.0, PAIRS)
    return judged_pairs(rng, halves(rng), np.ones(PAIRS), p, np.ones(PAIRS))


def drop(rng: np.random.Generator) -> list[SimPair]:
    """Calibrated for the first two rounds; from the third on, right 0.15 less often at the
    same report (its quality drops between rounds: the endpoint changed under the same
    model name; a file sorted by topic, the judge overconfident on the later topics, is
    this world until its rounds are drawn at random,
    ``test_a_source_sorted_by_topic_keeps_the_guarantee_when_rounds_are_drawn``)."""
    q = skill(rng)
    p = np.where(np.arange(PAIRS) < 200, q, np.clip(q - 0.15, 0.0, 1.0))
    return judged_pairs(rng, halves(rng), q, p, np.where(q >= 0.75, 1.0, 0.5))


def saturated(rng: np.random.Generator) -> list[SimPair]:
    """Probabilities saturated as real judges' logprobs are (``gpt4_class_world``)."""
    return gpt4_class_world(rng, PAIRS)


def near_target(rng: np.random.Generator) -> list[SimPair]:
    """Agreement only 1-3 points above the 85% target on 80% of the pairs (whatever it
    reports there), 60% on the rest."""
    u = rng.random(PAIRS) < 0.8
    reported = np.where(u, rng.uniform(0.9, 1.0, PAIRS), rng.uniform(0.5, 0.9, PAIRS))
    p = np.where(u, rng.uniform(0.86, 0.88, PAIRS), 0.6)
    return judged_pairs(rng, halves(rng), reported, p, np.ones(PAIRS))


WORLD_KINDS: dict[str, Callable[[np.random.Generator], list[SimPair]]] = {
    "calibrated": calibrated,
    "overconfident": overconfident,
    "position_biased": position_biased,
    "useless": useless,
    "extreme": extreme,
    "single_score": single_score,
    "drop": drop,
}
PLANNED_KINDS = {**WORLD_KINDS, "saturated": saturated, "near_target": near_target}
GUARANTEES = ("high_probability", "expected")


@cache
def outcomes(kind: str, guarantee: str) -> tuple[Outcome, ...]:
    """The loop run on WORLDS worlds of one kind (cached: several tests read them). The
    retest procedure re-tests every pair at each sync, its drift-watch audits among the
    evidence: its guarantee in the ``drop`` world needs them at 5% (at the default 2%,
    31 of 200 ``drop`` worlds end below target)."""
    settings = Settings(
        alpha=ALPHA, delta=DELTA, guarantee=guarantee, per_round=100, audit_rate=0.05
    )
    return tuple(
        run_loop(WORLD_KINDS[kind](np.random.default_rng(seed)), settings, LOOP_SEED + seed)
        for seed in range(WORLDS)
    )


@cache
def planned_outcomes(kind: str, guarantee: str) -> tuple[Outcome, ...]:
    """The planned procedure (issue 17) on WORLDS worlds of one kind, with the project's
    end (a final look, then every waiting pair to humans)."""
    settings = Settings(alpha=ALPHA, delta=DELTA, guarantee=guarantee, per_round=100)
    return tuple(
        run_planned(PLANNED_KINDS[kind](np.random.default_rng(seed)), settings, LOOP_SEED + seed)
        for seed in range(WORLDS)
    )


def disagreement(o: Outcome) -> float:
    """True disagreement rate of the certified pairs (0 when nothing is certified)."""
    return 0.0 if o.agreement is None else 1.0 - o.agreement


def mean_coverage(kind: str, guarantee: str) -> float:
    return float(np.mean([o.coverage for o in outcomes(kind, guarantee)]))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(WORLD_KINDS))
def test_high_probability_guarantee_holds_in_1_minus_delta_of_worlds(kind: str) -> None:
    runs = outcomes(kind, "high_probability")
    broken = sum(o.agreement is not None and o.agreement < 1 - ALPHA for o in runs)
    allowed = DELTA + 2 * math.sqrt(DELTA * (1 - DELTA) / len(runs))
    assert broken / len(runs) <= allowed, (
        f"{kind}: {broken}/{len(runs)} worlds certified pairs below {1 - ALPHA:.0%} agreement"
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(WORLD_KINDS))
def test_expected_guarantee_bounds_the_mean_disagreement(kind: str) -> None:
    values = np.array([disagreement(o) for o in outcomes(kind, "expected")])
    slack = 2 * float(values.std(ddof=1)) / math.sqrt(len(values))
    assert values.mean() <= ALPHA + slack, (
        f"{kind}: mean disagreement of certified pairs {values.mean():.4f} > {ALPHA}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("guarantee", GUARANTEES)
@pytest.mark.parametrize("kind", list(WORLD_KINDS))
def test_certified_pairs_always_pass_the_thresholds_in_force(kind: str, guarantee: str) -> None:
    runs = outcomes(kind, guarantee)
    assert sum(o.invariant_broken for o in runs) == 0
    # every pair ends certified, provisional (humans still decide it) or human-labelled
    for o in runs:
        assert o.certified + o.provisional + o.human_labels == o.pairs


@pytest.mark.slow
@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_a_useless_judge_is_not_trusted(guarantee: str) -> None:
    assert mean_coverage("useless", guarantee) <= 0.05


@pytest.mark.slow
def test_a_good_judge_saves_human_labels() -> None:
    """Measured with 200 worlds: coverage 0.44 (high_probability) and 0.76 (expected);
    humans needed 279 and 119 of 500."""
    high, expected = (
        mean_coverage("calibrated", "high_probability"),
        mean_coverage("calibrated", "expected"),
    )
    assert high >= 0.3
    assert expected >= 0.6 and expected > high  # the weaker promise buys coverage
    humans = {g: np.mean([o.humans_needed for o in outcomes("calibrated", g)]) for g in GUARANTEES}
    assert humans["high_probability"] <= 0.7 * PAIRS
    assert humans["expected"] <= 0.4 * PAIRS


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "feature", "share"),
    [
        ("extreme", 2, 0.9),  # z * z / 10: the most extreme reports are worse (measured 97%)
        ("position_biased", 4, 2 / 3),  # is-A: A verdicts are worse (measured 76%)
    ],
)
def test_the_learned_score_sees_the_judges_flaw(kind: str, feature: int, share: float) -> None:
    weights = [o.final_weights for o in outcomes(kind, "high_probability")]
    learned = [w for w in weights if w is not None]
    assert len(learned) >= WORLDS // 2
    assert np.mean([w[feature] < 0 for w in learned]) >= share


# -- the planned procedure (issue 17) -------------------------------------------------------


DROP_IS_OUTSIDE = pytest.mark.xfail(
    strict=True,
    reason="the planned procedure assumes rounds drawn alike: a certificate is kept, and "
    "the 2% drift watch of 500 pairs does not catch a judge that gets worse after round 2 "
    "(measured: 41 of 200 worlds below target; the retest procedure's guarantee holds there "
    "with a 5% watch)",
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    [pytest.param(k, marks=DROP_IS_OUTSIDE) if k == "drop" else k for k in PLANNED_KINDS],
)
def test_planned_guarantee_holds_in_1_minus_delta_of_worlds(kind: str) -> None:
    """Measured (200 worlds each) on worlds whose rounds are drawn alike: at most 3 of
    200 below target in any kind (single_score; each look at its own Bonferroni level: 2)."""
    runs = planned_outcomes(kind, "high_probability")
    broken = sum(o.agreement is not None and o.agreement < 1 - ALPHA for o in runs)
    allowed = DELTA + 2 * math.sqrt(DELTA * (1 - DELTA) / len(runs))
    assert broken / len(runs) <= allowed, f"{kind}: {broken}/{len(runs)} worlds below target"


DROP_IS_OUTSIDE_EXPECTED = pytest.mark.xfail(
    strict=True,
    reason="the same world in expected mode: mean disagreement 0.168 (the drift watch's "
    "sequential test catches the drop in 4 of 200 worlds; the bound it replaced, re-read "
    "at every sync with a 5% watch, in 27, at the price of false alarms in 32% of "
    "projects whose judge is at the target)",
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    [pytest.param(k, marks=DROP_IS_OUTSIDE_EXPECTED) if k == "drop" else k for k in PLANNED_KINDS],
)
def test_planned_expected_guarantee_bounds_the_mean_disagreement(kind: str) -> None:
    values = np.array([disagreement(o) for o in planned_outcomes(kind, "expected")])
    slack = 2 * float(values.std(ddof=1)) / math.sqrt(len(values))
    assert values.mean() <= ALPHA + slack


def in_round_order(pairs: list[SimPair], seed: int) -> list[SimPair]:
    """``pairs`` as a source file (row i is ``pair-i``) in the order the real loop's rounds
    take them under ``routing.round_order = "random"``: by ``routing.round_draw``."""
    order = sorted(range(len(pairs)), key=lambda i: round_draw(seed, f"pair-{i}"))
    return [pairs[i] for i in order]


@pytest.mark.slow
@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_a_source_sorted_by_topic_keeps_the_guarantee_when_rounds_are_drawn(
    guarantee: str,
) -> None:
    """The ``drop`` world read as a source file sorted by topic: on the last 300 rows'
    topics the judge is right 0.15 less often at the same report. In the file's order
    (``round_order = "source"``) the certificate earned on the first topics is applied
    to the others: measured (200
    worlds), 41 below target, mean disagreement 0.168 in expected mode (the strict xfails
    above). Rounds drawn at random (the default) are drawn alike, and the guarantee
    holds: 7 of 200 below target (32 certify anything: 60% of this judge's pairs miss the
    target by 0.15); expected mode's mean disagreement 0.139 (194 certify). This test
    orders the simulated pairs as the real loop does (``routing.round_draw``; its rounds
    and its evidence, ``tests/test_rounds.py``, ``tests/test_store.py``)."""
    settings = Settings(alpha=ALPHA, delta=DELTA, guarantee=guarantee, per_round=100)
    drawn, source = [], []
    for s in range(WORLDS):
        pairs = drop(np.random.default_rng(s))
        drawn.append(run_planned(in_round_order(pairs, s), settings, LOOP_SEED + s))
        source.append(run_planned(pairs, settings, LOOP_SEED + s))
    assert sum(o.certified > 0 for o in drawn) >= WORLDS // 10  # not safe by certifying nothing
    if guarantee == "high_probability":
        allowed = DELTA + 2 * math.sqrt(DELTA * (1 - DELTA) / WORLDS)
        broken = [
            sum(o.agreement is not None and o.agreement < 1 - ALPHA for o in runs)
            for runs in (drawn, source)
        ]
        assert broken[0] / WORLDS <= allowed < broken[1] / WORLDS, broken
    else:
        values = np.array([disagreement(o) for o in drawn])
        bound = ALPHA + 2 * float(values.std(ddof=1)) / math.sqrt(WORLDS)
        assert values.mean() <= bound < np.mean([disagreement(o) for o in source])


@pytest.mark.slow
@pytest.mark.parametrize("guarantee", GUARANTEES)
@pytest.mark.parametrize("kind", list(PLANNED_KINDS))
def test_planned_loses_nothing_and_leaves_nothing_waiting(kind: str, guarantee: str) -> None:
    for o in planned_outcomes(kind, guarantee):
        assert o.invariant_broken == 0
        assert o.provisional == 0  # the project's end decided every waiting pair
        assert o.certified + o.human_labels == o.pairs


@pytest.mark.slow
@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_planned_does_not_trust_a_useless_judge(guarantee: str) -> None:
    runs = planned_outcomes("useless", guarantee)
    assert np.mean([o.coverage for o in runs]) <= 0.05


def at_target(rng: np.random.Generator, n: int) -> list[SimPair]:
    """A judge right exactly 85% of the time at every confidence it reports (0.8-1.0):
    no region is better than the target, so a test at the target's edge, where a test's
    error is largest, certifies any region only by error."""
    return judged_pairs(rng, rng.random(n) < 0.5, rng.uniform(0.8, 1.0, n), np.full(n, 0.85),
                        np.ones(n))  # fmt: skip


@pytest.mark.slow
def test_group_sequential_looks_certify_a_judge_at_the_target_in_at_most_delta_of_worlds() -> None:
    """2,000 pairs in rounds of 100: a phase takes five looks (at 93, 186, 372 and 744
    labels and the project's end), each sharing delta with the others through the
    group-sequential boundary of the phase's fixed sequence. Over 200 worlds whose judge
    sits exactly at the target, the share certifying anything stays within delta (two
    standard errors of slack). Measured: 9.0% of these 200 worlds (each look at its own
    Bonferroni level: 4.0%); an exact test at the edge spends about all of delta. With a
    start chosen afresh at each look, 10.3% of 300 5,000-pair worlds."""
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=100)
    runs = [
        run_planned(at_target(np.random.default_rng(seed), 2000), settings, LOOP_SEED + seed)
        for seed in range(WORLDS)
    ]
    certified = np.mean([o.certified > 0 for o in runs])
    assert certified <= DELTA + 2 * math.sqrt(DELTA * (1 - DELTA) / WORLDS), certified


def step(rng: np.random.Generator, n: int) -> list[SimPair]:
    """A judge right 95% of the time on the 60% of pairs it is surest of and 55% below
    (confidence uniform on 0.8-1.0): a region agrees at the target exactly when it covers
    80%, so a first certificate lands in the good top and the looks after it are tempted
    to extend it past the edge: the error a certificate's extension can make."""
    conf = rng.uniform(0.8, 1.0, n)
    right = np.where(conf >= np.quantile(conf, 0.4), 0.95, 0.55)
    return judged_pairs(rng, halves(rng, n), conf, right, np.ones(n))


@pytest.mark.slow
def test_extending_a_certificate_keeps_the_guarantee_where_the_judge_falls_off() -> None:
    """After a certificate the looks go on with the group-sequential test on the sample
    drawn alike (``planned.uniform_sample``), whose look times depend on when the
    certificate came (``planned`` docstring: checked, not proved). On 200 step worlds of
    2,000 pairs, the share whose certified pairs end below target stays within delta
    (two standard errors of slack), and the extension goes further than the stratified
    test it replaced. Measured: 4 of 200 below target, coverage 0.584 (the stratified
    extension: 4, 0.575); over 700 more worlds with other seeds 50 (7.1%) against 30
    (4.3%): the exact test spends more of delta, as it should."""
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=200)
    before = replace(settings, drawn_alike=False)
    now, was = [], []
    for seed in range(WORLDS):
        pairs = step(np.random.default_rng(seed), 2000)
        now.append(run_planned(pairs, settings, LOOP_SEED + seed))
        was.append(run_planned(pairs, before, LOOP_SEED + seed))
    broken = np.mean([o.agreement is not None and o.agreement < 1 - ALPHA for o in now])
    assert broken <= DELTA + 2 * math.sqrt(DELTA * (1 - DELTA) / WORLDS), broken
    assert np.mean([o.coverage for o in now]) > np.mean([o.coverage for o in was])


def limit_of(pairs: list[SimPair]) -> float:
    scores = scores_of([p.signals for p in pairs], None)
    agree = np.array([p.p_agree or 0.0 for p in pairs])
    return oracle_limit(scores, agree, ALPHA, DELTA)[0]


@pytest.mark.slow
def test_planned_reaches_most_of_the_statistical_limit_on_a_saturated_judge() -> None:
    """Savings against the oracle limit (the best threshold, proved by a uniform audit) on
    the same worlds, and the retest procedure (before issue 17) on the first 40 of them.
    Measured (200 worlds): planned 0.92 of the limit, certified in 73.5% of worlds (0.89
    before a certificate was extended on the sample drawn alike; each look at its own
    Bonferroni level: 0.85, 69%)."""
    planned = planned_outcomes("saturated", "high_probability")
    limits = [limit_of(saturated(np.random.default_rng(seed))) for seed in range(WORLDS)]
    share = np.mean([o.savings_factor for o in planned]) / np.mean(limits)
    assert share >= 0.8
    assert np.mean([o.certified > 0 for o in planned]) >= 0.6
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=100)
    retest = [
        run_loop(saturated(np.random.default_rng(seed)), settings, LOOP_SEED + seed)
        for seed in range(40)
    ]
    assert np.mean([o.savings_factor for o in planned[:40]]) > np.mean(
        [o.savings_factor for o in retest]
    )


# -- a cascade of two judges ---------------------------------------------------------------

CASCADE_WORLDS = 100


def cascade_world(rng: np.random.Generator, n: int = PAIRS) -> tuple[list[SimPair], list[SimPair]]:
    """A cheap judge and a strong one on the same ``n`` pairs; each reports its chance of
    being right (calibrated), right independently of the other, and the reviewer answers
    the truth. Difficulty d ~ Beta(1, 2): the cheap judge is right with 1 - d / 2 (mean
    0.83), the strong one with 1 - d^2 / 2 (mean 0.92)."""
    d = rng.beta(1, 2, n)
    truth = np.where(halves(rng, n), "A", "B")
    tiers = []
    for p in (1 - d / 2, 1 - d**2 / 2):
        right = rng.random(n) < p
        tier = []
        for t, r, q in zip(truth, right, p, strict=True):
            label = t if r else ("B" if t == "A" else "A")
            high = 1.0 if q >= 0.75 else 0.5
            tier.append(SimPair(Signals(str(label), float(q), high, float(q)), str(t)))
        tiers.append(tier)
    return tiers[0], tiers[1]


@cache
def cascade_outcomes(which: str, guarantee: str) -> tuple[Outcome, ...]:
    """``which``: strong (alone) | cascade (cheap, then strong)."""
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=100, guarantee=guarantee)
    out = []
    for seed in range(CASCADE_WORLDS):
        cheap, strong = cascade_world(np.random.default_rng(seed))
        tiers = [strong] if which == "strong" else [cheap, strong]
        out.append(run_cascade(tiers, settings, LOOP_SEED + seed))
    return tuple(out)


@pytest.mark.slow
def test_a_cascade_keeps_the_guarantee_over_the_union_of_its_tiers() -> None:
    """What all tiers accept together agrees with humans at the target in >= 1 - delta of
    worlds (the tiers' shares of delta add up to 1); nothing is lost or counted twice.
    Measured (100 worlds): 0 broken."""
    runs = cascade_outcomes("cascade", "high_probability")
    broken = sum(o.agreement is not None and o.agreement < 1 - ALPHA for o in runs)
    allowed = DELTA + 2 * math.sqrt(DELTA * (1 - DELTA) / len(runs))
    assert broken / len(runs) <= allowed, f"{broken}/{len(runs)} worlds below target"
    for o in runs:
        assert o.invariant_broken == 0
        assert o.certified + o.provisional + o.human_labels == o.pairs
        assert o.tier_judged[0] == o.pairs and o.tier_judged[1] <= o.pairs
        assert sum(o.tier_certified) == o.certified


@pytest.mark.slow
def test_an_expected_mode_retest_cascade_covers_as_much_as_its_strong_judge() -> None:
    """Expected mode, the retest procedure. Measured (100 worlds): mean disagreement 0.053,
    coverage 0.773 against 0.767 for the strong judge alone. When conformal selection
    chose the cheap tier's threshold, it was certified here and the strong judge saw 302
    of 500 pairs (coverage 0.745). The stricter test a tier that is not the last now
    takes (``planned.earlier_tier_test``; the annotated worlds below are where conformal
    selection broke the target) certifies it in none of these 500-pair worlds."""
    cascade = cascade_outcomes("cascade", "expected")
    strong = cascade_outcomes("strong", "expected")
    assert holds_on_average(cascade)
    cov = {k: np.mean([o.coverage for o in v]) for k, v in (("c", cascade), ("s", strong))}
    assert cov["c"] >= 0.95 * cov["s"]
    for o in cascade:
        assert o.invariant_broken == 0 and sum(o.tier_certified) == o.certified


ANNOTATED_PAIRS, ANNOTATED_WORLDS = 10_000, 100


def annotated_world(rng: np.random.Generator) -> tuple[list[SimPair], list[SimPair]]:
    """Pairs like PandaLM's (bench/tiers_bench, without its data): 79% decided alike by
    three annotators (a tenth of them a tie the judges must break), 21% two to one; the
    reviewer is one of the three. A cheap judge right with 0.92 / 0.70 and a strong one
    with 0.97 / 0.80 on them (+- 0.06 a pair), each reporting that chance; agreement is
    the share of the three annotators who gave the judge's label."""
    n = ANNOTATED_PAIRS
    split = rng.random(n) >= 0.794
    tie = ~split & (rng.random(n) < 0.107)
    side = np.where(rng.random(n) < 0.5, "A", "B")
    flip = {"A": "B", "B": "A"}
    other = np.where(rng.random(n) < 0.5, np.vectorize(flip.get)(side), "TIE")
    votes = [
        ("TIE",) * 3 if t else (a, a, o) if sp else (a,) * 3
        for t, sp, a, o in zip(tie, split, side, other, strict=True)
    ]
    human = [v[k] for v, k in zip(votes, rng.integers(0, 3, n), strict=True)]
    tiers = []
    for easy, hard in ((0.92, 0.70), (0.97, 0.80)):
        q = np.clip(np.where(split, hard, easy) + rng.uniform(-0.06, 0.06, n), 0.5, 0.999)
        right = rng.random(n) < q
        tier = []
        for v, h, t, r, p in zip(votes, human, side, right, q, strict=True):
            label = t if r else flip[t]
            signals = Signals(label, float(p), 1.0 if p >= 0.8 else 0.0, float(p), True, False)
            tier.append(SimPair(signals, h, v.count(label) / 3))
        tiers.append(tier)
    return tiers[0], tiers[1]


@cache
def annotated_outcomes(which: str, worlds: int = ANNOTATED_WORLDS) -> tuple[Outcome, ...]:
    """``which``: strong (alone) | cascade (planned) | retest (a cascade, the retest
    procedure), in expected mode."""
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=1000, guarantee="expected")
    run = {"strong": None, "cascade": run_planned_cascade, "retest": run_cascade}[which]
    out = []
    for seed in range(worlds):
        cheap, strong = annotated_world(np.random.default_rng(seed))
        if run is None:
            out.append(run_planned(strong, settings, LOOP_SEED + seed))
        else:
            out.append(run([cheap, strong], settings, LOOP_SEED + seed))
    return tuple(out)


def holds_on_average(runs: Sequence[Outcome]) -> bool:
    values = np.array([disagreement(o) for o in runs])
    return bool(values.mean() <= ALPHA + 2 * float(values.std(ddof=1)) / math.sqrt(len(values)))


@pytest.mark.slow
def test_expected_mode_holds_on_average_for_one_judge_on_annotated_pairs() -> None:
    """The baseline for the cascade below, on the same worlds. Measured (100 worlds of
    10,000 pairs): mean agreement 0.854 (se 0.002) at a 0.85 target, coverage 0.72."""
    runs = annotated_outcomes("strong")
    assert holds_on_average(runs)
    assert np.mean([o.coverage for o in runs]) > 0.6


@pytest.mark.slow
@pytest.mark.parametrize(("which", "worlds"), [("cascade", ANNOTATED_WORLDS), ("retest", 60)])
def test_an_expected_mode_cascade_holds_on_average_on_annotated_pairs(
    which: str, worlds: int
) -> None:
    """The cheap tier's labels reach humans only through the strong tier's routing, with
    chances from 0.02 to 1, and conformal selection on such weights is optimistic: when
    it chose the cheap tier's threshold, the cascade's mean agreement on these worlds was
    0.842 (se 0.002) under the planned procedure, below the target in 73 of 100 worlds,
    the cheap tier's own pairs 0.834 (it certified 23% of the pairs); 0.844 (se 0.003)
    over 60 worlds under the retest procedure. A tier that is not the last now takes the
    high-probability test (``planned.earlier_tier_test``). Measured: planned 0.854 (se
    0.002), as one strong judge; retest 0.858 (se 0.004). Here the cheap tier certifies
    nothing any more (a tenth of the easy pairs are ties three annotators agree on, which
    no A/B verdict matches): this test guards the target, the one below guards the cheap
    tier's own pairs where it does certify."""
    runs = annotated_outcomes(which, worlds)
    assert holds_on_average(runs)
    for o in runs:  # nothing lost (the retest procedure has no project end: pairs wait)
        assert o.invariant_broken == 0
        assert o.certified + o.provisional + o.human_labels == o.pairs


@pytest.mark.slow
def test_an_expected_mode_cascade_certifies_a_good_cheap_judge_and_holds() -> None:
    """Where the cheap judge can pass the stricter test (the cascade worlds at 20,000
    pairs, rounds of 2,000), it takes pairs off the strong judge, and the cascade still
    holds on average. Measured (30 worlds): mean disagreement 0.095 at a 0.15 target,
    coverage 0.815 as the strong judge alone; the cheap tier certifies in all 30 worlds,
    54% of the pairs on average (its own pairs agreeing 0.913), and the strong judge sees
    45% of them. Before its calibration sample shared the strong tier's draw (16% of the
    pairs labelled instead of 40%): certified in 14 worlds, 24% of the pairs, the strong
    judge seeing 75%. (Under conformal selection the cheap tier took 56% and the strong
    judge saw 43%; the annotated worlds above are where that broke the target.)"""
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=2000, guarantee="expected")
    n, runs, alone = 20_000, [], []
    for seed in range(30):
        cheap, strong = cascade_world(np.random.default_rng(seed), n)
        runs.append(run_planned_cascade([cheap, strong], settings, LOOP_SEED + seed))
        alone.append(run_planned(strong, settings, LOOP_SEED + seed))
    assert holds_on_average(runs)
    assert np.mean([o.tier_certified[0] for o in runs]) > 0.15 * n
    assert np.mean([o.tier_judged[1] for o in runs]) < 0.85 * n
    own = [o.tier_agreement[0] for o in runs if o.tier_agreement[0] is not None]
    assert own and np.mean(own) >= 1 - ALPHA  # the cheap tier's own pairs hold too
    assert np.mean([o.coverage for o in runs]) >= 0.98 * np.mean([o.coverage for o in alone])


@pytest.mark.slow
def test_a_high_probability_cascade_covers_as_much_as_its_strong_judge_for_less() -> None:
    """Issue 17's aim for cascades: in high_probability mode the cascade covers as much as
    the strong judge alone, with no more human labels, and the strong judge sees fewer
    pairs. The cheap tier's calibration sample is drawn with the strong tier's draw
    (``routing.calibration_draw``): every pair of it that the strong tier could accept
    reaches a human through the strong tier's own calibration sample, so the cheap tier's
    test has 2.5 times the labels, at no extra human cost. Measured on these 20 worlds of
    10,000 pairs (rounds of 1,000): the cheap tier certifies in 19, 50% of the pairs; the
    strong judge sees 49% of them; coverage 0.816 (alone 0.816), 1,839 human labels (alone
    1,840); no world below the target. Over 30 worlds: 27, 47%, 52%, the cheap tier's own
    pairs agreeing 0.914, judge cost at the tiers bench's prices 43% below the strong
    judge alone's. With its own draw the cheap tier took 0.3% of the pairs here and the
    strong judge saw 99.7% (30 worlds: certified in 1, 0.2%, 99.8%). The split of delta
    predicted from the first round's scores (``split.predict_shares``, at the tiers
    bench's prices) keeps the cheap tier's share (0.2) in all 20 worlds: the figures are
    those of the fixed split."""
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=1000)
    n, runs, alone = 10_000, [], []
    for seed in range(20):
        cheap, strong = cascade_world(np.random.default_rng(seed), n)
        runs.append(run_planned_cascade([cheap, strong], settings, LOOP_SEED + seed))
        alone.append(run_planned(strong, settings, LOOP_SEED + seed))
    assert all(o.shares == pytest.approx((0.2, 0.8)) for o in runs)
    broken = sum(o.agreement is not None and o.agreement < 1 - ALPHA for o in runs)
    assert broken / len(runs) <= DELTA + 2 * math.sqrt(DELTA * (1 - DELTA) / len(runs))
    for o in runs:
        assert o.invariant_broken == 0 and o.certified + o.human_labels == o.pairs
    assert np.mean([o.tier_certified[0] for o in runs]) > 0.3 * n
    assert np.mean([o.tier_judged[1] for o in runs]) < 0.65 * n
    own = [o.tier_agreement[0] for o in runs if o.tier_agreement[0] is not None]
    assert np.mean(own) >= 1 - ALPHA
    assert np.mean([o.coverage for o in runs]) >= 0.99 * np.mean([o.coverage for o in alone])
    humans = {k: np.mean([o.humans_needed for o in v]) for k, v in (("c", runs), ("s", alone))}
    assert humans["c"] <= 1.01 * humans["s"]


@pytest.mark.slow
@pytest.mark.parametrize("noise", [0.0, 0.06])
def test_the_predicted_split_keeps_the_guarantee_where_its_choice_varies(noise: float) -> None:
    """The split of delta is predicted from the scores of the first round's prediction
    set (``split.predict_shares``; pairs chosen by a hash draw of their own,
    ``routing.prediction_draw``, independent of the audit draws that decide which labels
    the tests read): given the split, every tier's test holds at its share, so the union
    holds at delta as for a fixed split. (Predicting from the calibration sample itself,
    whose labels the tests read, would bound it only at 1.2 delta: each tier at the
    largest share it could get.) Measured where the choice varies from world to world
    (3,000 pairs in rounds of 300), 100 worlds: 0 below the target (the lowest agreement
    0.893); the cheap tier got a share in 63 and was certified in 15 (the fixed split:
    24); coverage 0.801 (fixed split 0.794), 598 human labels (617), the cheap tier
    judging 1,052 pairs (1,498). With reviewers who give the wrong label 6% of the time
    (both judges then sure of more than they get right, as real judges are): 0 of 100
    below the target, coverage 0.741 (fixed split 0.739). The procedure's own margin
    (the looks' share of delta, the exact test) keeps these worlds far from the bound:
    this guards the mechanics (the choice varies, nothing is lost), not the bound."""
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=300)
    runs = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        tiers = cascade_world(rng, 3_000)
        wrong = rng.random(3_000) < noise
        flip = {"A": "B", "B": "A"}
        noisy = [
            [SimPair(p.signals, flip[p.human] if wrong[i] else p.human) for i, p in enumerate(t)]
            for t in tiers
        ]
        runs.append(run_planned_cascade(noisy, settings, LOOP_SEED + seed))
    given = sum(o.shares[0] > 0 for o in runs)
    assert 0.2 * len(runs) < given < 0.95 * len(runs)  # the choice does vary
    assert sum(o.tier_certified[0] > 0 for o in runs) > 0
    broken = sum(o.agreement is not None and o.agreement < 1 - ALPHA for o in runs)
    assert broken / len(runs) <= DELTA + 2 * math.sqrt(DELTA * (1 - DELTA) / len(runs))
    for o in runs:
        assert o.invariant_broken == 0 and o.certified + o.human_labels == o.pairs


def shifting_world(
    rng: np.random.Generator, n: int, cheap_easy: float = 0.97, strong_hard: float = 0.78
) -> list[list[SimPair]]:
    """A cascade adversarial to the strong tier: 40% of the pairs are hard. On the easy
    ones the strong judge is right 97% of the time, the cheap one ``cheap_easy``, both
    saying 0.97; on the hard ones the cheap judge is right 60% of the time and says so, the
    strong judge right ``strong_hard`` of the time and sure of it (0.97). Once the cheap
    tier is certified on the easy pairs, the strong tier sees mostly the hard ones, where
    a certificate it earned on all pairs is wrong."""
    hard = rng.random(n) < 0.4
    truth = np.where(rng.random(n) < 0.5, "A", "B")
    tiers = []
    for acc_easy, acc_hard, q_hard in ((cheap_easy, 0.6, 0.6), (0.97, strong_hard, 0.97)):
        acc = np.where(hard, acc_hard, acc_easy)
        q = np.where(hard, q_hard, 0.97) + rng.uniform(-0.01, 0.01, n)
        right = rng.random(n) < acc
        label = np.where(right, truth, np.where(truth == "A", "B", "A"))
        tiers.append(
            [
                SimPair(Signals(str(lab), float(p), 1.0 if p >= 0.8 else 0.5, float(p)), str(t))
                for lab, p, t in zip(label, q, truth, strict=True)
            ]
        )
    return tiers


@pytest.mark.slow
def test_a_cascade_holds_the_union_when_the_strong_tiers_pairs_shift() -> None:
    """The README's caveat, measured: a later tier keeps the certificate it earned on all
    pairs when an earlier tier starts taking the easy ones. Measured over 20 worlds of
    20,000 pairs (the test runs the first 10): the cheap tier is certified in all; the
    strong tier's own pairs agree 0.80 (below the target in 14 worlds); the union agrees
    0.918 and is never below. This test guards the union; a tier's own pairs are not
    promised."""
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=2000)
    runs = []
    for seed in range(10):
        cheap, strong = shifting_world(np.random.default_rng(seed), 20_000)
        runs.append(run_planned_cascade([cheap, strong], settings, LOOP_SEED + seed))
    assert all(o.tier_certified[0] > 0 for o in runs)
    broken = sum(o.agreement is not None and o.agreement < 1 - ALPHA for o in runs)
    assert broken / len(runs) <= DELTA + 2 * math.sqrt(DELTA * (1 - DELTA) / len(runs))
    assert np.mean([o.agreement for o in runs]) >= 1 - ALPHA


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True, raises=AssertionError, reason="a later tier's certificate outlives the shift"
)
def test_the_union_holds_when_an_earlier_tier_shifts_a_later_ones_pairs() -> None:
    """Where the union is at risk: the cheap judge only just good enough on the easy pairs
    (0.87), so it is certified only after some rounds. From then on the strong tier sees
    mostly the hard pairs (0.74), but the sample its certificate rests on — earned
    already, or earned later on a sample that still holds the earlier rounds' pairs — was
    drawn from all pairs (0.6 x 0.97 + 0.4 x 0.74 = 0.878). (Forbidding the cheap tier a
    certificate once the strong one has one does not help: measured, the same world
    breaks.) Measured (20 worlds of 20,000 pairs): the cheap tier is certified in 2; in
    the one where the strong tier is certified too, the union agreed 0.848 (the strong
    tier's own pairs 0.833); the strong judge alone never fell below. Within delta over
    all worlds, but not by design: restarting a later tier's calibration when an earlier
    tier's certificate changes is not built (README). With other loop seeds (20 worlds)
    the cheap tier was certified in 2 and the union broke in both."""
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=2000)
    late = []
    for seed in range(20):
        cheap, strong = shifting_world(np.random.default_rng(seed), 20_000, 0.87, 0.74)
        o = run_planned_cascade([cheap, strong], settings, LOOP_SEED + seed)
        if o.tier_certified[0] and o.tier_certified[1]:
            late.append(o.agreement)
    if not late:  # not an expected failure: the scenario itself no longer happens
        raise RuntimeError("no world certified the cheap tier after the strong one")
    assert all(a >= 1 - ALPHA for a in late), late


@pytest.mark.slow
def test_a_planned_cascade_keeps_the_guarantee_and_pays_the_cheap_tier_for_its_sample() -> None:
    """The planned procedure with a cascade (issue 17): what both tiers certify agrees
    with humans at the target in >= 1 - delta of worlds; nothing is lost. At 500 pairs
    the cheap judge cannot be certified on a region of its own, and the split predicted
    from the prediction set's scores (``split.predict_shares``) sees it: it gives the
    cheap tier no share of delta (in all 100 worlds; in three the first round's
    prediction set had fewer than ``split.MIN_SAMPLE`` pairs, and the split was
    predicted after the second), so the cascade covers what the strong judge alone
    covers and the cheap tier judges little more than its first round's sample and
    prediction set. Measured (100 worlds): 0 broken; coverage 0.642 (the strong judge
    alone 0.642; the fixed split, the strong tier spending 0.8 of delta, 0.612), 179
    human labels (fixed split 194); the cheap tier judges 65 of 500 pairs (fixed split:
    its 40% sample, 200)."""
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=100)
    runs, alone, fixed = [], [], []
    for seed in range(CASCADE_WORLDS):
        cheap, strong = cascade_world(np.random.default_rng(seed))
        runs.append(run_planned_cascade([cheap, strong], settings, LOOP_SEED + seed))
        alone.append(run_planned(strong, settings, LOOP_SEED + seed))
        fixed.append(
            run_planned_cascade([cheap, strong], settings, LOOP_SEED + seed, shares=(0.2, 0.8))
        )
    for outcomes in (runs, fixed):
        broken = sum(o.agreement is not None and o.agreement < 1 - ALPHA for o in outcomes)
        allowed = DELTA + 2 * math.sqrt(DELTA * (1 - DELTA) / len(outcomes))
        assert broken / len(outcomes) <= allowed
        for o in outcomes:
            assert o.invariant_broken == 0
            assert o.certified + o.human_labels == o.pairs
            assert sum(o.tier_certified) == o.certified
    assert np.mean([o.tier_judged[0] for o in fixed]) <= 0.45 * PAIRS
    assert np.mean([o.coverage for o in fixed]) >= 0.93 * np.mean([o.coverage for o in alone])
    assert sum(o.shares == (0.0, 1.0) for o in runs) >= 0.95 * len(runs)
    assert np.mean([o.tier_judged[0] for o in runs]) <= 0.15 * PAIRS
    coverage = {k: np.mean([o.coverage for o in v]) for k, v in (("c", runs), ("s", alone))}
    assert coverage["c"] >= 0.995 * coverage["s"]
    assert coverage["c"] > np.mean([o.coverage for o in fixed]) + 0.01


@pytest.mark.slow
def test_a_cascade_run_in_small_rounds_still_predicts_its_split() -> None:
    """Rounds of 25 pairs: no first round's prediction set reaches ``split.MIN_SAMPLE``
    (about 10 pairs each). The split waits while no look can be due (``split.may_wait``)
    and is predicted once enough rounds are judged. Measured (100 worlds, same run):
    predicted in all 100 (fixed after the first round before: in none); coverage 0.659,
    the strong judge alone's (before 0.638); 170 human labels (before 181); the cheap
    tier judges 56 of 500 pairs (before 206: its 40% sample under the fixed split); no
    world below the target."""
    settings = Settings(alpha=ALPHA, delta=DELTA, per_round=25)
    runs, alone = [], []
    for seed in range(CASCADE_WORLDS):
        cheap, strong = cascade_world(np.random.default_rng(seed))
        runs.append(run_planned_cascade([cheap, strong], settings, LOOP_SEED + seed))
        alone.append(run_planned(strong, settings, LOOP_SEED + seed))
    broken = sum(o.agreement is not None and o.agreement < 1 - ALPHA for o in runs)
    assert broken / len(runs) <= DELTA + 2 * math.sqrt(DELTA * (1 - DELTA) / len(runs))
    assert all(o.invariant_broken == 0 and o.certified + o.human_labels == o.pairs for o in runs)
    assert sum(o.shares == (0.0, 1.0) for o in runs) >= 0.95 * len(runs)
    assert np.mean([o.tier_judged[0] for o in runs]) <= 0.15 * PAIRS
    coverage = [np.mean([o.coverage for o in v]) for v in (runs, alone)]
    assert coverage[0] >= 0.995 * coverage[1]
