"""Cost arithmetic."""

from __future__ import annotations

import pytest

from labeler.costs import Prices, estimate_round_cost, estimate_tokens, savings


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
def test_savings(labeled, to_humans, judge, price, reviewers, saved, factor) -> None:
    s = savings(labeled, to_humans, judge, price, reviewers)
    assert s.saved == pytest.approx(saved)
    assert s.factor == (None if factor is None else pytest.approx(factor))
    assert s.total_cost == pytest.approx(judge + to_humans * price * reviewers)


def test_estimates() -> None:
    assert estimate_tokens(4000) == 1000
    assert estimate_tokens(1) == 1
    tokens_in, tokens_out, cost = estimate_round_cost([400, 800], 64, Prices(1.0, 2.0))
    assert (tokens_in, tokens_out) == (300, 128)
    assert cost == pytest.approx((300 + 256) / 1e6)
