"""Routing reasons, thresholds per label, and the reproducible audit draw."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeler.routing import Decision, Thresholds, audit_draw, route
from labeler.verdicts import Judgement

T = Thresholds(0.8, 0.9)


@pytest.mark.parametrize(
    ("judgement", "draw", "expected"),
    [
        (Judgement("A", 0.95, True), 0.5, Decision("accept", "confident")),
        (Judgement("A", 0.80, True), 0.5, Decision("accept", "confident")),  # at the threshold
        (Judgement("A", 0.79, True), 0.5, Decision("review", "low_confidence")),
        (Judgement("B", 0.85, True), 0.5, Decision("review", "low_confidence")),  # B needs 0.9
        (Judgement("B", 0.95, True), 0.5, Decision("accept", "confident")),
        (Judgement("A", 0.99, False), 0.5, Decision("review", "low_confidence")),  # said LOW
        (Judgement("TIE", 0.99, True), 0.5, Decision("review", "tie")),
        (
            Judgement(None, 0.0, False, orders_agree=False),
            0.5,
            Decision("review", "order_disagreement"),
        ),
        (Judgement(None, 0.0, False, malformed=True), 0.5, Decision("review", "malformed")),
        (Judgement("A", 0.95, True), 0.01, Decision("review", "audit")),
        (Judgement("A", 0.5, True), 0.01, Decision("review", "low_confidence")),  # not audit
    ],
)
def test_route(judgement: Judgement, draw: float, expected: Decision) -> None:
    assert route(judgement, T, audit_rate=0.05, draw=draw) == expected


def test_audit_draw_is_reproducible_and_uniform() -> None:
    ids = [f"pair-{i}" for i in range(20000)]
    draws = [audit_draw(7, i) for i in ids]
    assert draws == [audit_draw(7, i) for i in ids]
    assert all(0 <= d < 1 for d in draws)
    share = sum(d < 0.05 for d in draws) / len(draws)
    assert 0.04 < share < 0.06
    assert [audit_draw(8, i) for i in ids[:50]] != draws[:50]


@given(
    st.sampled_from(["A", "B"]),
    st.floats(0, 1),
    st.booleans(),
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_swapping_a_and_b_keeps_the_decision(label, conf, high, threshold, rate, draw) -> None:
    """With one threshold for both labels, the mirrored judgement routes the same way."""
    t = Thresholds(threshold, threshold)
    other = "B" if label == "A" else "A"
    assert route(Judgement(label, conf, high), t, rate, draw) == route(
        Judgement(other, conf, high), t, rate, draw
    )
