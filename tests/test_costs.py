"""Cost arithmetic."""

from __future__ import annotations

import pytest

from labeler.costs import Prices, estimate_round_cost, estimate_tokens, ledger


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


@pytest.mark.parametrize(
    ("labeled", "to_humans", "judge", "price", "reviewers", "saved", "factor"),
    [
        (100, 20, 1.0, 0.5, 1, 50 - 10 - 1, 50 / 11),
        (100, 100, 0.0, 0.5, 1, 0.0, 1.0),
        (100, 0, 0.0, 0.5, 1, 50.0, None),  # nothing spent at all
        (10, 5, 0.5, 1.0, 3, 30 - 15 - 0.5, 30 / 15.5),
    ],
)
def test_ledger_savings(labeled, to_humans, judge, price, reviewers, saved, factor) -> None:
    led = ledger(
        labeled, labeled - to_humans, to_humans, judge, [], price, reviewers, 30.0, "per_pair"
    )
    assert led.saved == pytest.approx(saved)
    assert led.factor == (None if factor is None else pytest.approx(factor))
    assert led.total == pytest.approx(judge + to_humans * price * reviewers)


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
    ("mode", "times", "human", "time_cost"),
    [
        ("per_pair", [], 20 * 0.5, None),
        ("per_pair", [30.0, None], 20 * 0.5, 60 / 3600 * 36),  # both known: shown, not used
        ("time", [30.0, 60.0, None], (30 + 60 + 45) / 3600 * 36, (30 + 60 + 45) / 3600 * 36),
        ("time", [], 20 * 0.5, None),  # no times known yet: falls back to the price per pair
    ],
)
def test_ledger(mode: str, times: list, human: float, time_cost: float | None) -> None:
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
    )
    assert led.human_cost == pytest.approx(human)
    assert led.human_cost_time == (None if time_cost is None else pytest.approx(time_cost))
    assert led.baseline == pytest.approx(50.0)
    assert led.saved == pytest.approx(50.0 - 2.0 - human)
    assert led.cost_per_accepted == pytest.approx(2.0 / 80)
    total = led + led
    assert total.pairs == 200 and total.saved == pytest.approx(2 * led.saved)


def test_ledger_counts_reviewers_per_pair() -> None:
    from labeler.costs import ledger

    led = ledger(10, 5, 5, 0.0, [], 1.0, 3, 30.0, "per_pair")
    assert (led.human_cost, led.baseline) == (15.0, 30.0)


def test_cached_input_is_priced_apart() -> None:
    """Issue 12: cached input tokens (usage.prompt_tokens_details.cached_tokens)."""
    prices = Prices(0.15, 0.60, 0.075)
    assert prices.call_cost(1000, 10, 600) == pytest.approx(
        (400 * 0.15 + 600 * 0.075 + 10 * 0.6) / 1e6
    )
    assert prices.call_cost(1000, 10, 5000) == prices.call_cost(1000, 10, 1000)  # at most all
    assert Prices(0.15, 0.60).call_cost(1000, 10, 600) == Prices(0.15, 0.60).call_cost(1000, 10)
