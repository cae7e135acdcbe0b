"""Cost arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeler.costs import (
    Ledger,
    Prices,
    estimate_round_cost,
    estimate_tokens,
    ledger,
    provisional_cost,
    savings_notes,
)


@pytest.mark.parametrize(
    ("tokens_in", "tokens_out", "expected"),
    [
        (0, 0, 0.0),
        (1_000_000, 0, 0.15),
        (0, 1_000_000, 0.60),
        (2000, 10, 0.000306),
    ],
)
def test_call_cost(tokens_in: int, tokens_out: int, expected: float) -> None:
    assert Prices(0.15, 0.60).call_cost(tokens_in, tokens_out) == pytest.approx(expected)


def per_pair(
    pairs: int, certified: int, provisional: int, human: int, to_humans: int,
    judge: float, price: float, reviewers: int,
) -> Ledger:  # fmt: skip
    """A per-pair ledger of a round whose judge accepted ``certified + provisional``."""
    return ledger(
        pairs, certified + provisional, to_humans, judge, [], price, reviewers, 30.0,
        "per_pair", certified=certified, human_decided=human, provisional=provisional,
    )  # fmt: skip


@pytest.mark.parametrize(
    (
        "pairs",
        "certified",
        "provisional",
        "human",
        "to_humans",
        "judge",
        "price",
        "reviewers",
        "baseline",
        "factor",
        "coverage",
        "waiting",
    ),
    [
        # 80 certified + 20 decided by humans: everything delivered
        (100, 80, 0, 20, 20, 1.0, 0.5, 1, 50.0, 50 / 11, 0.8, 0),
        # nothing certified: 80 provisional wait; only the 20 human decisions count
        (100, 0, 80, 20, 20, 1.0, 0.5, 1, 10.0, 10 / 11, 0.0, 80),
        # all to humans, all decided, a free judge: exactly as cheap as all-human
        (100, 0, 0, 100, 100, 0.0, 0.5, 1, 50.0, 1.0, 0.0, 0),
        # humans have not decided yet: their 5 pairs wait (3 labels each)
        (10, 5, 0, 0, 5, 0.5, 1.0, 3, 15.0, 15 / 15.5, 1.0, 5),
        # nothing spent at all: no factor
        (100, 100, 0, 0, 0, 0.0, 0.5, 1, 50.0, None, 1.0, 0),
        # nothing delivered yet: no coverage, a factor of 0
        (10, 0, 8, 0, 2, 0.1, 0.5, 2, 0.0, 0.0, None, 10),
    ],
)
def test_ledger_counts_only_what_was_delivered(
    pairs, certified, provisional, human, to_humans, judge, price, reviewers,
    baseline, factor, coverage, waiting,
) -> None:  # fmt: skip
    led = per_pair(pairs, certified, provisional, human, to_humans, judge, price, reviewers)
    spent = judge + to_humans * price * reviewers
    assert led.delivered == certified + human
    assert led.baseline == pytest.approx(baseline)
    assert led.baseline == pytest.approx(price * reviewers * led.delivered)
    assert led.total == pytest.approx(spent)
    assert led.saved == pytest.approx(baseline - spent)
    assert led.factor == (None if factor is None else pytest.approx(factor))
    assert led.coverage == (None if coverage is None else pytest.approx(coverage))
    assert (led.waiting, led.waiting_labels) == (waiting, waiting * reviewers)
    # per-pair pricing charges a pair sent to reviewers at once: only the provisional
    # pairs may cost more (the user trial found them counted twice, as spent and as "more")
    assert led.waiting_cost == pytest.approx(provisional * reviewers * price)
    assert led.with_reviewers == waiting - provisional


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 50),
    st.integers(0, 50),
    st.integers(0, 50),
    st.floats(0, 10),
    st.floats(0.01, 5),
    st.integers(1, 5),
)
def test_a_judge_that_certifies_nothing_never_saves(
    provisional: int, decided: int, undecided: int, judge: float, price: float, reviewers: int
) -> None:
    """Issue 17: without certified labels the savings factor is at most 1.0 (per-pair
    human cost), however many pairs the judge accepted provisionally."""
    to_humans = decided + undecided
    led = per_pair(
        provisional + to_humans, 0, provisional, decided, to_humans, judge, price, reviewers
    )
    assert led.saved <= 1e-9
    assert led.factor is None or led.factor <= 1.0 + 1e-9
    if led.pairs:
        assert savings_notes(led, "USD")[0].startswith("nothing certified")


def test_savings_notes_say_why_and_what_waits() -> None:
    def notes(certified: int, provisional: int, human: int, pairs: int) -> list[str]:
        led = ledger(
            pairs, certified + provisional, pairs - certified - provisional, 0.1, [], 0.5, 2,
            30.0, "per_pair", certified=certified, human_decided=human, provisional=provisional,
        )  # fmt: skip
        return savings_notes(led, "USD")

    assert notes(80, 0, 20, 100) == []  # everything delivered: nothing to explain
    assert notes(0, 9, 0, 11) == [
        "nothing certified yet: 9 judge-accepted pairs wait for evidence, so only human "
        "decisions count as delivered",
        "waiting for evidence: 11 pairs (9 provisional, 2 with reviewers), up to 22 more "
        "human labels (9.00 USD more at most, those with reviewers already counted as "
        "spent); not counted as saved",
    ]
    assert notes(0, 0, 3, 5)[0] == "nothing certified: every pair went to reviewers"
    assert notes(5, 2, 0, 7) == [
        "waiting for evidence: 2 pairs (2 provisional, 0 with reviewers), up to 4 more "
        "human labels (2.00 USD more at most); not counted as saved"
    ]
    timed = ledger(  # by time: an estimate at the measured time of a verdict, not a cap
        7, 7, 2, 0.1, [60.0, 120.0], 0.5, 1, 30.0, "time",
        certified=5, human_decided=0, provisional=0,
    )  # fmt: skip
    # finishing decides the provisional pairs only: their share of the estimate
    both = ledger(
        7, 7, 2, 0.1, [60.0, 120.0], 0.5, 1, 30.0, "time",
        certified=3, human_decided=0, provisional=2,
    )  # fmt: skip
    assert both.waiting_cost == pytest.approx(4 * 0.75)  # 2 provisional, 2 with reviewers
    assert provisional_cost(both, "USD") == "about 1.50 USD at the measured review time"
    per_pair = ledger(
        7, 7, 2, 0.1, [], 0.5, 2, 30.0, "per_pair", certified=3, human_decided=2, provisional=2,
    )  # fmt: skip
    assert provisional_cost(per_pair, "USD") == "2.00 USD at most"  # 2 pairs x 2 x 0.5
    assert provisional_cost(None, "USD") == "0.00 USD"
    # a cold review: a timed round plus one with no time measured yet, its 8 provisional
    # pairs priced per pair (1.0 each), not as a share of the timed round's estimate
    timed_done = ledger(
        4, 4, 0, 0.1, [60.0], 1.0, 1, 30.0, "time", certified=4, human_decided=0, provisional=0,
    )  # fmt: skip
    untimed = ledger(
        10, 8, 2, 0.1, [], 1.0, 1, 30.0, "time", certified=0, human_decided=0, provisional=8,
    )  # fmt: skip
    assert provisional_cost(timed_done + untimed, "USD").startswith("about 8.00 USD")
    assert savings_notes(timed, "USD") == [
        "waiting for evidence: 2 pairs (0 provisional, 2 with reviewers), up to 2 more "
        "human labels (about 1.50 USD more at the measured review time); not counted as saved"
    ]


def test_estimates() -> None:
    assert estimate_tokens(4000) == 1000
    assert estimate_tokens(1) == 1
    tokens_in, tokens_out, cost = estimate_round_cost([400, 800], 64, Prices(1.0, 2.0))
    assert (tokens_in, tokens_out) == (300, 128)
    assert cost == pytest.approx((300 + 256) / 1e6)


def test_review_seconds_caps_breaks_and_skips_first() -> None:
    from labeler.costs import review_seconds

    times = review_seconds(
        [
            ("ann", "p1", 100.0),
            ("ann", "p2", 130.0),
            ("ann", "p3", 2000.0),
            ("bob", "p1", 50.0),
            ("bob", "p4", 52.5),
        ],
        cap=300,
    )
    assert times == {
        ("ann", "p1"): None,
        ("ann", "p2"): 30.0,
        ("ann", "p3"): 300.0,
        ("bob", "p1"): None,
        ("bob", "p4"): 2.5,
    }


@pytest.mark.parametrize(
    ("mode", "times", "human", "time_cost", "more"),
    [
        ("per_pair", [], 20 * 0.5, None, 0.0),
        ("per_pair", [30.0, None], 20 * 0.5, 60 / 3600 * 36, 0.0),  # known: shown, not used
        # by time, the 5 pairs reviewers have not decided are not paid yet: each will cost
        # about what a measured verdict did (45 s at 36 an hour), not the price per pair
        ("time", [30.0, 60.0, None], (30 + 60 + 45) / 3600 * 36, (30 + 60 + 45) / 3600 * 36, 2.25),
        ("time", [], 20 * 0.5, None, 0.0),  # no times known yet: the price per pair
    ],
)
def test_ledger(mode: str, times: list, human: float, time_cost: float | None, more: float) -> None:
    from labeler.costs import ledger

    led = ledger(
        pairs=100,
        accepted=80,
        to_humans=20,
        judge_cost=2.0,
        review_times=times,
        price_per_pair=0.5,
        reviewers=1,
        hourly_rate=36.0,
        mode=mode,
        certified=80,
        human_decided=15,
        provisional=0,
    )
    assert led.human_cost == pytest.approx(human)
    assert led.human_cost_time == (None if time_cost is None else pytest.approx(time_cost))
    assert led.baseline == pytest.approx(47.5)
    assert led.saved == pytest.approx(47.5 - 2.0 - human)
    assert (led.waiting_labels, led.waiting_cost) == (5, pytest.approx(more))
    assert led.cost_per_accepted == pytest.approx(2.0 / 80)
    total = led + led
    assert total.pairs == 200 and total.saved == pytest.approx(2 * led.saved)


def test_ledger_counts_reviewers_per_pair() -> None:
    from labeler.costs import ledger

    led = ledger(
        10, 5, 5, 0.0, [], 1.0, 3, 30.0, "per_pair", certified=5, human_decided=5, provisional=0
    )
    assert (led.human_cost, led.baseline) == (15.0, 30.0)


def test_cached_input_is_priced_apart() -> None:
    """Issue 12: cached input tokens (usage.prompt_tokens_details.cached_tokens)."""
    prices = Prices(0.15, 0.60, 0.075)
    assert prices.call_cost(1000, 10, 600) == pytest.approx(
        (400 * 0.15 + 600 * 0.075 + 10 * 0.6) / 1e6
    )
    assert prices.call_cost(1000, 10, 5000) == prices.call_cost(1000, 10, 1000)  # at most all
    assert Prices(0.15, 0.60).call_cost(1000, 10, 600) == Prices(0.15, 0.60).call_cost(1000, 10)


def test_a_time_mode_total_counts_a_round_without_times_at_its_price_per_pair() -> None:
    """A round with no measured review time is priced per pair (its pairs with reviewers
    counted as spent); the project's total dropped that cost and still left those pairs
    out of the money that may come."""

    def one(times: list[float | None], decided: int) -> Ledger:
        return ledger(
            10, 5, 5, 0.0, times, 0.5, 1, 36.0, "time",
            certified=5, human_decided=decided, provisional=0,
        )  # fmt: skip

    timed, untimed = one([100.0, 100.0, 100.0, 100.0, 100.0], 5), one([], 0)
    total = timed + untimed
    assert untimed.human_cost == pytest.approx(2.5) and untimed.waiting_cost == 0.0
    assert total.human_cost == pytest.approx(timed.human_cost + 2.5)
    assert total.waiting_cost == 0.0  # the untimed round's 5 pairs are in the spent money
