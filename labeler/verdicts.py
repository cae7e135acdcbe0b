"""Judge replies to verdicts: strict parsing, the verdict-token probability, both orders.

The judge's first line must be exactly ``<VERDICT> <CONFIDENCE>``: VERDICT is ``A``, ``B`` or
``TIE`` and CONFIDENCE is ``HIGH`` or ``LOW`` (upper case, separated by white space). A
rationale may follow on later lines. Anything else is a *malformed* reply.

A pair may be judged in two presentation orders: ``ab`` shows the stored response A first,
``ba`` shows it second. Verdicts are parsed in *presented* terms and mapped back to the
stored order before they are combined.

The combined confidence (a number in [0, 1]):

* with logprobs: the mean over orders of the probability of the final verdict's token,
  normalised over the A / B / TIE alternatives at the verdict position;
* with ``judge.samples`` > 1: the mean over orders of the verdict's vote share among the
  samples (``vote``), for judges without logprobs;
* without logprobs: the share of orders whose self-report is HIGH.

Orders that disagree, or any malformed order, give no label and confidence 0. Every signal
is kept in ``Judgement.signals`` so that calibration can learn a better combination later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

LABELS = ("A", "B", "TIE")
_FIRST_LINE = re.compile(r"^(A|B|TIE)[ \t]+(HIGH|LOW)[ \t]*$")
_TOKEN_LABEL = {"A": "A", "B": "B", "TIE": "TIE", "TI": "TIE", "T": "TIE"}

# One position of a logprobs reply: (chosen token, its logprob, [(alternative, logprob)...]).
TokenLogprobs = tuple[str, float, Sequence[tuple[str, float]]]


@dataclass(frozen=True)
class OrderReply:
    """One parsed judge reply, in the terms it was presented (before mapping back)."""

    order: str
    verdict: str | None
    self_confidence: str | None
    probs: dict[str, float] | None = None
    malformed: str | None = None


@dataclass(frozen=True)
class Judgement:
    """The combined verdict for a pair, in stored order."""

    label: str | None
    confidence: float
    self_high: bool
    malformed: bool = False
    orders_agree: bool = True
    signals: dict[str, object] = field(default_factory=dict)


def parse_reply(text: str | None) -> tuple[str, str] | str:
    """``(verdict, confidence)`` from a reply, or the reason it is malformed."""
    if text is None or not text.strip():
        return "empty reply"
    first = text.strip().splitlines()[0].strip()
    match = _FIRST_LINE.match(first)
    if not match:
        shown = first if len(first) <= 40 else first[:37] + "..."
        return f"first line is not '<A|B|TIE> <HIGH|LOW>': {shown!r}"
    return match.group(1), match.group(2)


def verdict_probs(positions: Sequence[TokenLogprobs] | None) -> dict[str, float] | None:
    """Probabilities of A / B / TIE at the verdict token, normalised over the three.

    The verdict token is the first token that is not white space. None when there are no
    logprobs or none of the alternatives there is a verdict token.
    """
    for chosen, chosen_logprob, alternatives in positions or ():
        if not chosen.strip():
            continue
        mass = dict.fromkeys(LABELS, 0.0)
        seen: set[str] = set()
        for token, logprob in [*alternatives, (chosen, chosen_logprob)]:
            if token in seen:  # the chosen token is usually among the alternatives too
                continue
            seen.add(token)
            label = _TOKEN_LABEL.get(token.strip().upper())
            if label is not None:
                mass[label] += math.exp(logprob)
        total = sum(mass.values())
        if total <= 0:
            return None
        return {label: value / total for label, value in mass.items()}
    return None


def to_stored(order: str, label: str) -> str:
    """Map a presented label back to stored order (``ba`` swaps A and B)."""
    if order == "ba" and label in ("A", "B"):
        return "B" if label == "A" else "A"
    return label


def read_reply(
    order: str, text: str | None, positions: Sequence[TokenLogprobs] | None = None
) -> OrderReply:
    parsed = parse_reply(text)
    if isinstance(parsed, str):
        return OrderReply(order, None, None, None, malformed=parsed)
    verdict, confidence = parsed
    return OrderReply(order, verdict, confidence, verdict_probs(positions))


def combine(replies: Sequence[OrderReply]) -> Judgement:
    """Combine one reply per judged order into the pair's judgement (see module doc)."""
    if not replies:
        raise ValueError("combine() needs at least one reply")
    signals: dict[str, object] = {
        "orders": [r.order for r in replies],
        "verdicts": [r.verdict for r in replies],
        "self": [r.self_confidence for r in replies],
    }
    bad = [r.malformed for r in replies if r.malformed]
    if bad:
        signals["malformed"] = bad
        return Judgement(None, 0.0, False, malformed=True, signals=signals)
    stored = [to_stored(r.order, r.verdict or "") for r in replies]
    self_high = all(r.self_confidence == "HIGH" for r in replies)
    signals["self_high_share"] = sum(r.self_confidence == "HIGH" for r in replies) / len(replies)
    probs = [_stored_probs(r) for r in replies]
    if all(p is not None for p in probs):
        signals["p"] = [{k: round(v, 6) for k, v in p.items()} for p in probs if p]
    if len(set(stored)) > 1:
        signals["orders_agree"] = False
        return Judgement(None, 0.0, False, orders_agree=False, signals=signals)
    label = stored[0]
    signals["orders_agree"] = True
    if all(p is not None for p in probs):
        confidence = sum(p[label] for p in probs if p) / len(probs)
        signals["p_verdict"] = round(confidence, 6)
    else:
        confidence = float(signals["self_high_share"])  # type: ignore[arg-type]
    return Judgement(label, confidence, self_high, signals=signals)


def vote(order: str, samples: Sequence[OrderReply]) -> OrderReply:
    """N sampled replies to one order as one reply: the majority verdict (ties between
    verdicts: none, as a malformed reply), HIGH when most samples said HIGH, and the vote
    shares as the verdict probabilities — a confidence for judges without logprobs.
    Malformed samples vote for nothing (they lower the shares); all malformed is
    malformed."""
    return pool(order, [replace(s, probs=None) for s in samples], "samples")


def pool(order: str, replies: Sequence[OrderReply], what: str = "panel") -> OrderReply:
    """Several replies to one order (a panel's prompt variants, or samples) as one: the
    mean of their verdict distributions — each reply's probabilities, or all its weight on
    its verdict without them — with a malformed reply weighing nothing (it lowers every
    share); the verdict is the distribution's top (a tie: none, as a malformed reply), HIGH
    when most valid replies said HIGH. All malformed is malformed."""
    valid = [r for r in replies if not r.malformed and r.verdict is not None]
    if not valid:
        return OrderReply(order, None, None, None, malformed=replies[0].malformed or "no votes")
    dists = [r.probs if r.probs is not None else {r.verdict: 1.0} for r in valid]
    mean = {label: sum(d.get(label, 0.0) for d in dists) / len(replies) for label in LABELS}
    top = max(mean.values())
    winners = [label for label, p in mean.items() if abs(p - top) < 1e-12]
    if len(winners) > 1:
        counts = {label: sum(r.verdict == label for r in valid) for label in LABELS}
        return OrderReply(order, None, None, None, malformed=f"{what} split {counts}")
    high = sum(r.self_confidence == "HIGH" for r in valid) * 2 > len(valid)
    return OrderReply(order, winners[0], "HIGH" if high else "LOW", mean)


def _stored_probs(reply: OrderReply) -> dict[str, float] | None:
    if reply.probs is None:
        return None
    return {to_stored(reply.order, k): v for k, v in reply.probs.items()}
