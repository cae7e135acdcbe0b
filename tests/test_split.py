"""The split of delta between a cascade's tiers, predicted from the judges' scores
(``labeler.split``): pure functions, no labels read."""

from __future__ import annotations

import numpy as np
import pytest

from labeler import split
from labeler.calibration import Judged, Signals

ALPHA, DELTA, RATE, AUDIT = 0.15, 0.1, 0.4, 0.02


def terms(size: float, human: float = 0.5, delta: float = DELTA) -> split.Terms:
    return split.Terms(size, RATE, AUDIT, ALPHA, delta, human)


def scores(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, n)


def test_the_pass_chance_grows_with_labels_and_falls_with_disagreement() -> None:
    chances = [split.pass_chance(n, 0.05, ALPHA, DELTA) for n in (10, 40, 100, 400)]
    assert chances == sorted(chances) and chances[0] < 0.2 < 0.99 < chances[-1]
    by_rate = [split.pass_chance(200, p, ALPHA, DELTA) for p in (0.02, 0.08, 0.12, 0.2)]
    assert by_rate == sorted(by_rate, reverse=True) and by_rate[-1] < 0.01
    assert split.pass_chance(200, 0.02, ALPHA, 0.0) == 0.0  # no share of delta: no test
    assert split.pass_chance(0.5, 0.0, ALPHA, DELTA) == 0.0


def test_a_cheap_tier_that_cannot_be_certified_gets_no_share() -> None:
    """A cheap judge unsure everywhere (0.80-0.84, below what passes at a 0.85 target)
    would only weaken the strong tier's test: the last tier takes all of delta."""
    rng = np.random.default_rng(0)
    cheap, strong = scores(rng, 200, 0.80, 0.84), scores(rng, 200, 0.9, 1.0)
    pred = split.predict_shares([cheap, strong], [0.0003, 0.005], terms(10_000, 0.5))
    assert pred is not None and pred.shares == (0.0, 1.0) and pred.sample == 200
    assert pred.costs[1.0] < pred.costs[split.LAST_SHARES[1]]


def test_a_cheap_tier_keeps_its_share_where_it_pays_for_it() -> None:
    """A cheap judge sure of half the pairs, a strong judge whose calls cost as much as a
    tenth of a human label: taking half the pairs off the strong judge pays for the share
    of delta it costs the strong tier. Where a human label costs 1,000 strong calls, it
    does not (the share is worth more as the strong tier's coverage)."""
    rng = np.random.default_rng(1)
    easy = rng.random(400) < 0.5
    cheap = np.where(easy, rng.uniform(0.97, 1.0, 400), rng.uniform(0.5, 0.7, 400))
    strong = np.where(easy, rng.uniform(0.97, 1.0, 400), rng.uniform(0.9, 0.97, 400))
    dear = split.predict_shares([cheap, strong], [0.001, 0.05], terms(20_000, 0.5))
    assert dear is not None and dear.shares == pytest.approx((0.2, 0.8))
    cheap_calls = split.predict_shares([cheap, strong], [0.0, 0.0005], terms(1_000, 0.5))
    assert cheap_calls is not None and cheap_calls.shares == (0.0, 1.0)


def test_shares_add_up_to_one_for_any_number_of_tiers_and_need_a_sample() -> None:
    """Three tiers, each ten times the price of the one before, sure of most pairs: the
    earlier two share the fixed split's 20%."""
    rng = np.random.default_rng(2)
    tiers = [np.clip(rng.beta(8, 1, 2_000), 0, 1) for _ in range(3)]
    pred = split.predict_shares(tiers, [0.0003, 0.003, 0.03], terms(100_000, 0.5))
    assert pred is not None and pred.shares == pytest.approx((0.1, 0.1, 0.8))
    few = [np.full(split.MIN_SAMPLE - 1, 0.99)] * 2
    assert split.predict_shares(few, [0, 0], terms(100)) is None
    enough = [np.full(split.MIN_SAMPLE, 0.99)] * 2
    assert split.predict_shares(enough, [0, 0], terms(100))


def test_the_last_tiers_share_and_sample_set_its_expected_cost() -> None:
    """A judge at 0.9 on every pair against a 0.85 target: whether its region passes is
    a matter of labels and of delta. Less delta or a smaller project (fewer labels) leaves
    more pairs to humans; a judge below the target costs humans nearly every pair."""
    sure = np.full(200, 0.9)
    full = split.expected_cost([sure], [0.0], (1.0,), terms(1_000, 1.0))
    half = split.expected_cost([sure], [0.0], (0.5,), terms(1_000, 1.0))
    small = split.expected_cost([sure], [0.0], (1.0,), terms(300, 1.0)) * 1_000 / 300
    assert 0 < full < half < 1_000 and full < small
    unsure = split.expected_cost([np.full(200, 0.8)], [0.0], (1.0,), terms(1_000, 1.0))
    assert 990 < unsure <= 1_000  # only a lucky small sample passes
    # an earlier tier that (nearly) cannot pass judges only its sample, then the last
    # tier decides
    unsure_first = [np.full(200, 0.8), sure]
    both = split.expected_cost(unsure_first, [0.01, 0.0], (0.5, 0.5), terms(1_000, 1.0))
    assert half < both <= 0.01 * RATE * 1_000 + half


def test_a_tier_without_a_share_costs_only_what_the_later_tiers_cost() -> None:
    rng = np.random.default_rng(3)
    cheap, strong = scores(rng, 150, 0.9, 1.0), scores(rng, 150, 0.9, 1.0)
    t = terms(5_000)
    both = split.expected_cost([cheap, strong], [0.01, 0.1], (0.0, 1.0), t)
    alone = split.expected_cost([strong], [0.1], (1.0,), t)
    assert both == pytest.approx(alone)
    # a strong tier's region thins the cheap tier's labels: with a share it still costs
    # at most what never certifying costs
    shared = split.expected_cost([cheap, strong], [0.01, 0.1], (0.2, 0.8), t)
    never = 0.01 * RATE * 5_000 + split.expected_cost([strong], [0.1], (0.8,), t)
    assert shared <= never + 1e-9


def row(pair_id: str, reason: str = "escalate") -> dict[str, str]:
    return {"pair_id": pair_id, "reason": reason}


def judged(label: str | None, confidence: float) -> Judged:
    return Judged(Signals(label, confidence, 1.0, confidence), 0.4, False, None, False)


def test_the_common_sample_is_the_pairs_every_tier_judged() -> None:
    """Scores on the pairs both tiers judged (not those the cheap tier passed on unjudged,
    outside its calibration sample), 0 below a tier's floor or for a verdict no threshold
    may accept (a TIE)."""
    cheap = [
        (row("a"), judged("A", 0.95)),
        (row("b", "not_sampled"), judged(None, 0.0)),
        (row("c"), judged("B", 0.7)),
        (row("d"), judged("TIE", 0.99)),
    ]
    strong = [(row(i, "accept"), judged("A", 0.9 + k / 100)) for k, i in enumerate("abcd")]
    ids, got = split.common_scores([cheap, strong], [0.8, 0.8])
    assert ids == ["a", "c", "d"]
    assert [x.tolist() for x in got] == [[0.95, 0.0, 0.0], [0.9, 0.92, 0.93]]
    ids, chosen = split.common_scores([cheap, strong], [0.8, 0.8], lambda i: i != "c")
    assert ids == ["a", "d"]  # the prediction set
    assert [x.tolist() for x in chosen] == [[0.95, 0.0], [0.9, 0.93]]
    assert split.digest(["d", "a"]) == split.digest(ids) != split.digest(["a"])


def test_the_work_does_not_multiply_with_the_tiers() -> None:
    """Only the first tier tries each of its regions; a middle tier takes its likeliest-
    largest one. Four tiers scan regions ~400 times, ~40 pass chances each (every region
    of every tier tried against every other's: 40^3 = 64,000 scans, 100 s on 2,000
    pairs). Counted through the pass chances' memo, hits and misses alike."""
    rng = np.random.default_rng(4)
    tiers = [scores(rng, 300, 0.9, 1.0) for _ in range(4)]
    split._passes.cache_clear()
    split.expected_cost(tiers, [0.001, 0.01, 0.1, 1.0], (0.1, 0.1, 0.1, 0.7), terms(50_000))
    info = split._passes.cache_info()
    assert split.POINTS < info.hits + info.misses <= split.POINTS**2 * 2**4
