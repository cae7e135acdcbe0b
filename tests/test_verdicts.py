"""Parsing judge replies, the verdict-token probability, combining both orders."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeler.verdicts import OrderReply, combine, parse_reply, read_reply, to_stored, verdict_probs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A HIGH", ("A", "HIGH")),
        ("B LOW\nbecause B cites a source", ("B", "LOW")),
        ("TIE LOW", ("TIE", "LOW")),
        ("  A\tHIGH  \n", ("A", "HIGH")),
        ("\nB HIGH\nreason", ("B", "HIGH")),
    ],
)
def test_parse_accepts_the_protocol(text: str, expected: tuple[str, str]) -> None:
    assert parse_reply(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "   ",
        "a high",
        "A",
        "HIGH A",
        "A MEDIUM",
        "A HIGH.",
        "Verdict: A HIGH",
        "A, HIGH",
        "AB HIGH",
        "I prefer A HIGH",
        "**A HIGH**",
        "C HIGH",
        "TIE",
    ],
)
def test_parse_rejects_everything_else(text: str | None) -> None:
    assert isinstance(parse_reply(text), str)


def lp(p: float) -> float:
    return math.log(p)


@pytest.mark.parametrize(
    ("positions", "expected"),
    [
        (None, None),
        ([], None),
        (
            [("A", lp(0.8), [("A", lp(0.8)), ("B", lp(0.15)), ("TIE", lp(0.05))])],
            {"A": 0.8, "B": 0.15, "TIE": 0.05},
        ),
        # leading whitespace token is skipped; variants of the same label add up
        (
            [
                (" ", lp(0.99), []),
                ("B", lp(0.6), [("B", lp(0.6)), (" B", lp(0.1)), ("A", lp(0.3))]),
            ],
            {"A": 0.3, "B": 0.7, "TIE": 0.0},
        ),
        # tokens that are not verdicts are ignored and the rest renormalised
        (
            [("A", lp(0.5), [("A", lp(0.5)), ("Sure", lp(0.3)), ("T", lp(0.2))])],
            {"A": 0.5 / 0.7, "B": 0.0, "TIE": 0.2 / 0.7},
        ),
        # the chosen token missing from the alternatives still counts
        ([("A", lp(0.6), [("B", lp(0.2))])], {"A": 0.75, "B": 0.25, "TIE": 0.0}),
        ([("Sure", lp(0.9), [("Sure", lp(0.9)), ("Well", lp(0.1))])], None),
    ],
)
def test_verdict_probs(positions, expected) -> None:
    got = verdict_probs(positions)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("order", "label", "stored"),
    [
        ("ab", "A", "A"),
        ("ab", "B", "B"),
        ("ba", "A", "B"),
        ("ba", "B", "A"),
        ("ba", "TIE", "TIE"),
    ],
)
def test_to_stored(order: str, label: str, stored: str) -> None:
    assert to_stored(order, label) == stored


def probs(a: float, b: float, t: float) -> dict[str, float]:
    return {"A": a, "B": b, "TIE": t}


@pytest.mark.parametrize(
    ("replies", "label", "confidence", "self_high", "flags"),
    [
        # both orders agree (B shown first in "ba" and chosen as "A"), logprobs averaged
        (
            [
                OrderReply("ab", "A", "HIGH", probs(0.9, 0.1, 0)),
                OrderReply("ba", "B", "HIGH", probs(0.2, 0.8, 0)),
            ],
            "A",
            0.85,
            True,
            "ok",
        ),
        # without logprobs the confidence is the share of HIGH self-reports
        ([OrderReply("ab", "B", "HIGH"), OrderReply("ba", "A", "LOW")], "B", 0.5, False, "ok"),
        ([OrderReply("ab", "B", "HIGH"), OrderReply("ba", "A", "HIGH")], "B", 1.0, True, "ok"),
        # logprobs in one order only: fall back to self-reports
        (
            [OrderReply("ab", "A", "HIGH", probs(0.9, 0.1, 0)), OrderReply("ba", "B", "HIGH")],
            "A",
            1.0,
            True,
            "ok",
        ),
        # both orders say "A" as presented: they disagree in stored terms (position bias)
        (
            [OrderReply("ab", "A", "HIGH"), OrderReply("ba", "A", "HIGH")],
            None,
            0.0,
            False,
            "disagree",
        ),
        ([OrderReply("ab", "TIE", "LOW"), OrderReply("ba", "TIE", "LOW")], "TIE", 0.0, False, "ok"),
        (
            [OrderReply("ab", "A", "HIGH"), OrderReply("ba", None, None, malformed="empty reply")],
            None,
            0.0,
            False,
            "malformed",
        ),
        ([OrderReply("ab", "A", "HIGH", probs(0.7, 0.2, 0.1))], "A", 0.7, True, "ok"),
    ],
)
def test_combine(replies, label, confidence, self_high, flags) -> None:
    j = combine(replies)
    assert j.label == label
    assert j.confidence == pytest.approx(confidence)
    assert j.self_high is self_high
    assert j.malformed is (flags == "malformed")
    assert j.orders_agree is (flags != "disagree")
    assert j.signals["verdicts"] == [r.verdict for r in replies]


def test_combine_needs_a_reply() -> None:
    with pytest.raises(ValueError):
        combine([])


verdict = st.sampled_from(["A", "B", "TIE"])
confidence = st.sampled_from(["HIGH", "LOW"])
prob = st.floats(0.01, 1.0)


@given(verdict, confidence, verdict, confidence, prob, prob, prob, prob, prob, prob)
def test_swapping_the_stored_responses_swaps_the_label(
    v1, c1, v2, c2, a1, b1, t1, a2, b2, t2
) -> None:
    """The same judge replies, with the pair stored the other way round, give the mirror
    judgement: the label swaps and the confidence is unchanged."""
    r1 = OrderReply("ab", v1, c1, probs(a1, b1, t1))
    r2 = OrderReply("ba", v2, c2, probs(a2, b2, t2))
    # stored the other way round, "ab" shows what "ba" showed before and vice versa
    m1 = OrderReply("ab", v2, c2, probs(a2, b2, t2))
    m2 = OrderReply("ba", v1, c1, probs(a1, b1, t1))
    j, m = combine([r1, r2]), combine([m1, m2])
    swap = {"A": "B", "B": "A", "TIE": "TIE", None: None}
    assert m.label == swap[j.label]
    assert m.confidence == pytest.approx(j.confidence)
    assert (m.self_high, m.orders_agree) == (j.self_high, j.orders_agree)


def test_read_reply_keeps_probs_in_presented_terms() -> None:
    r = read_reply("ba", "A HIGH\nx", [("A", lp(0.9), [("A", lp(0.9)), ("B", lp(0.1))])])
    assert r.verdict == "A" and r.probs == pytest.approx(probs(0.9, 0.1, 0))
    assert read_reply("ab", "nonsense").malformed


def test_vote_turns_samples_into_a_confidence() -> None:
    """Issue 12: judges without logprobs get a confidence from N sampled replies."""
    from labeler.verdicts import OrderReply, combine, vote

    def reply(verdict: str | None, conf: str = "HIGH") -> OrderReply:
        if verdict is None:
            return OrderReply("ab", None, None, None, malformed="garbage")
        return OrderReply("ab", verdict, conf)

    voted = vote("ab", [reply("A"), reply("A"), reply("B", "LOW"), reply("A"), reply(None)])
    assert voted.verdict == "A" and voted.self_confidence == "HIGH"
    assert voted.probs == {"A": 0.6, "B": 0.2, "TIE": 0.0}  # the garbled one counts for none
    assert vote("ab", [reply("A"), reply("B")]).malformed  # a split vote decides nothing
    assert vote("ab", [reply(None)]).malformed == "garbage"
    # both orders: the shares (mapped to stored order) average into the confidence
    ba = vote("ba", [OrderReply("ba", "B", "HIGH")] * 3 + [OrderReply("ba", "A", "LOW")])
    judged = combine([voted, ba])
    assert judged.label == "A" and judged.confidence == (0.6 + 0.75) / 2
    # one usable sample among five is not a sure verdict
    lone = vote("ab", [reply("A")] + [reply(None)] * 4)
    assert lone.probs is not None and lone.probs["A"] == 0.2
