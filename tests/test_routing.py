"""Routing reasons, certified / provisional acceptance, the probability ``pi`` each pair
had of reaching a human, and the reproducible audit draw."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeler.calibration import NEVER, Signals, signals_of
from labeler.routing import (
    Decision,
    Thresholds,
    audit_draw,
    route,
    route_signals,
    status_of,
)
from labeler.verdicts import Judgement

# A needs 0.8 to be accepted provisionally and 0.9 to be certified; B needs 0.85 and 0.95
T = Thresholds(
    0.8,
    0.85,
    version=3,
    audit_rate=0.05,
    certified_a=0.9,
    certified_b=0.95,
    provisional_audit_rate=0.2,
)


def high(label: str | None, confidence: float) -> Signals:
    """A judgement with a HIGH self-report in both orders (cold start scores it by its
    raw confidence)."""
    return Signals(label, confidence, 1.0)


@pytest.mark.parametrize(
    ("signals", "draw", "expected"),
    [
        # sent to humans by the judgement itself: pi = 1
        (Signals(None, 0.0, 0.0, malformed=True), 0.9, Decision("review", "malformed")),
        (Signals("A", 0.99, 1.0, malformed=True), 0.9, Decision("review", "malformed")),
        (
            Signals("A", 0.99, 1.0, orders_agree=False),
            0.9,
            Decision("review", "order_disagreement"),
        ),
        (high("TIE", 0.99), 0.9, Decision("review", "tie")),
        (high(None, 0.99), 0.9, Decision("review", "tie")),
        (high("A", 0.79), 0.9, Decision("review", "low_confidence", 1.0, None, 0.79)),
        (high("B", 0.84), 0.9, Decision("review", "low_confidence", 1.0, None, 0.84)),
        # a LOW self-report scores 0 before a score is learned
        (Signals("A", 0.99, 0.5), 0.9, Decision("review", "low_confidence", 1.0, None, 0.0)),
        # low confidence goes to humans whatever the draw (never an "audit")
        (high("A", 0.5), 0.0, Decision("review", "low_confidence", 1.0, None, 0.5)),
        # provisional region: pi = provisional_audit_rate
        (high("A", 0.8), 0.9, Decision("accept", "confident", 0.2, "provisional", 0.8)),
        (high("A", 0.85), 0.2, Decision("accept", "confident", 0.2, "provisional", 0.85)),
        (high("A", 0.85), 0.19, Decision("review", "audit", 0.2, None, 0.85)),
        (high("B", 0.9), 0.5, Decision("accept", "confident", 0.2, "provisional", 0.9)),
        # certified region: pi = audit_rate
        (high("A", 0.9), 0.9, Decision("accept", "confident", 0.05, "certified", 0.9)),
        (high("A", 0.99), 0.05, Decision("accept", "confident", 0.05, "certified", 0.99)),
        (high("A", 0.99), 0.049, Decision("review", "audit", 0.05, None, 0.99)),
        (high("B", 0.94), 0.9, Decision("accept", "confident", 0.2, "provisional", 0.94)),
        (high("B", 0.96), 0.9, Decision("accept", "confident", 0.05, "certified", 0.96)),
        (high("B", 0.96), 0.01, Decision("review", "audit", 0.05, None, 0.96)),
    ],
)
def test_route_signals(signals: Signals, draw: float, expected: Decision) -> None:
    assert route_signals(signals, T, draw) == expected


def test_route_signals_with_a_learned_score() -> None:
    # weights on the logit only: the score is the verdict probability, HIGH not required
    t = Thresholds(0.8, 0.8, weights=(0.0, 1.0, 0.0, 0.0, 0.0), certified_a=0.9, certified_b=0.9)
    d = route_signals(Signals("B", 0.6, 0.0, p_verdict=0.95), t, 0.5)
    assert (d.action, d.status, d.pi) == ("accept", "certified", t.audit_rate)
    assert d.score == pytest.approx(0.95)
    assert route_signals(Signals("B", 0.99, 1.0, p_verdict=0.7), t, 0.5).reason == (
        "low_confidence"
    )


def test_route_a_judgement_uses_its_stored_signals() -> None:
    assert route(Judgement("A", 0.95, True), T, 0.5) == Decision(
        "accept", "confident", 0.05, "certified", 0.95
    )
    assert route(Judgement("A", 0.95, False), T, 0.5).reason == "low_confidence"
    assert route(Judgement(None, 0.0, False, malformed=True), T, 0.5).reason == "malformed"
    # a stored self_high_share below 1 overrides the combined self_high flag
    half = Judgement("A", 0.95, True, signals={"self_high_share": 0.5})
    assert route(half, T, 0.5).reason == "low_confidence"


@pytest.mark.parametrize(
    ("score", "label", "expected"),
    [
        (0.95, "A", "certified"),
        (0.9, "A", "certified"),
        (0.89, "A", "provisional"),
        (0.8, "A", "provisional"),
        (0.79, "A", "recheck"),
        (0.94, "B", "provisional"),
        (0.95, "B", "certified"),
        (0.84, "B", "recheck"),
        (0.99, "TIE", "recheck"),
        (0.99, None, "recheck"),
    ],
)
def test_status_of(score: float, label: str | None, expected: str) -> None:
    assert status_of(score, label, T) == expected


def test_nothing_is_certified_before_a_test_certifies_it() -> None:
    cold = Thresholds(0.8, 0.8)
    assert cold.certified_a == cold.certified_b == NEVER
    assert status_of(1.0, "A", cold) == "provisional"
    d = route_signals(high("A", 1.0), cold, 0.99)
    assert (d.action, d.status, d.pi) == ("accept", "provisional", cold.provisional_audit_rate)


def test_audit_draw_is_reproducible_and_uniform() -> None:
    ids = [f"pair-{i}" for i in range(20000)]
    draws = [audit_draw(7, i) for i in ids]
    assert draws == [audit_draw(7, i) for i in ids]
    assert all(0 <= d < 1 for d in draws)
    share = sum(d < 0.05 for d in draws) / len(draws)
    assert 0.04 < share < 0.06
    assert [audit_draw(8, i) for i in ids[:50]] != draws[:50]


unit = st.floats(0, 1)
draws = st.floats(0, 1, exclude_max=True)
signals = st.builds(
    Signals,
    st.sampled_from(["A", "B", "TIE", None]),
    unit,
    st.sampled_from([0.0, 0.5, 1.0]),
    st.none() | unit,
    st.booleans(),
    st.booleans(),
)
thresholds = st.builds(
    Thresholds,
    unit,
    unit,
    audit_rate=unit,
    certified_a=unit | st.just(NEVER),
    certified_b=unit | st.just(NEVER),
    provisional_audit_rate=unit,
)


@given(signals, thresholds, draws)
def test_pi_is_the_chance_of_reaching_a_human(s: Signals, t: Thresholds, draw: float) -> None:
    """A pair goes to humans exactly when its uniform draw is below pi: over the draw, pi
    is the true probability that it reaches a human (what calibration weights by)."""
    d = route_signals(s, t, draw)
    assert 0 <= d.pi <= 1
    assert (d.action == "review") == (draw < d.pi)
    # and pi does not depend on the draw: it is fixed before the draw is looked at
    assert route_signals(s, t, 0.0).pi == route_signals(s, t, 0.999).pi == d.pi
    if d.action == "accept":
        assert d.status == status_of(d.score, s.label, t)
    elif d.reason != "audit":
        assert d.pi == 1.0


@given(st.sampled_from(["A", "B"]), unit, st.booleans(), unit, unit, unit, unit, draws)
def test_swapping_a_and_b_keeps_the_decision(
    label: str,
    conf: float,
    high_: bool,
    threshold: float,
    certified: float,
    rate: float,
    provisional_rate: float,
    draw: float,
) -> None:
    """With one threshold pair for both labels, the mirrored judgement routes the same way."""
    t = Thresholds(
        threshold,
        threshold,
        audit_rate=rate,
        certified_a=certified,
        certified_b=certified,
        provisional_audit_rate=provisional_rate,
    )
    other = "B" if label == "A" else "A"
    mirrored = route(Judgement(other, conf, high_), t, draw)
    assert route(Judgement(label, conf, high_), t, draw) == mirrored
    assert mirrored == route_signals(signals_of(Judgement(other, conf, high_)), t, draw)
