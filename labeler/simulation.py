"""The labeling loop without the I/O: rounds, routing, human answers, calibration and
re-checks on plain values. Pure (numpy through ``calibration``).

It is what the property tests run over many simulated worlds and what
``bench/calibration_bench.py`` replays real verdicts through; ``labeler`` itself runs the
same ``routing`` and ``calibration`` functions against its SQLite state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from labeler import calibration as cal
from labeler.routing import (
    ACCEPT,
    CERTIFIED,
    PROVISIONAL,
    RECHECK,
    Thresholds,
    route_signals,
    status_of,
)


@dataclass(frozen=True)
class SimPair:
    """A judged pair: what the judge said, and what a human reviewer answers."""

    signals: cal.Signals
    human: str  # A | B | TIE | BOTH_BAD
    p_agree: float | None = None  # the true chance the judge is right (None: use ``human``)


@dataclass(frozen=True)
class Settings:
    alpha: float = 0.15
    delta: float = 0.1
    guarantee: str = "high_probability"
    per_round: int = 100
    cold_threshold: float = 0.8
    cold_audit_rate: float = 0.3
    audit_rate: float = 0.05
    provisional_audit_rate: float = 0.3
    min_labels: int = 30
    min_count: int = 20
    fit_share: float = 0.2
    learn: bool = True
    start_from_fit: bool = True  # False: the sequence starts at the top (before fit_start)


@dataclass
class Outcome:
    pairs: int = 0
    certified: int = 0
    provisional: int = 0  # judge-accepted, never certified by the end (humans must decide)
    human_labels: int = 0  # sampled + re-checked
    rechecked: int = 0
    agreement: float | None = None  # true agreement of the certified pairs
    invariant_broken: int = 0  # certified pairs below the thresholds in force (must be 0)
    history: list[dict[str, float]] = field(default_factory=list)
    final_weights: tuple[float, ...] | None = None

    @property
    def coverage(self) -> float:
        return self.certified / self.pairs if self.pairs else 0.0

    @property
    def humans_needed(self) -> int:
        return self.human_labels + self.provisional

    @property
    def savings_factor(self) -> float:
        return self.pairs / self.humans_needed if self.humans_needed else float("inf")


def _truth(p: SimPair) -> float:
    """The chance the judge's label agrees with humans (known in a simulation)."""
    return p.p_agree if p.p_agree is not None else float(p.human == p.signals.label)


def _thresholds(c: cal.Calibrated, version: int, s: Settings) -> Thresholds:
    return Thresholds(
        c.proposal,
        c.proposal,
        version,
        c.weights,
        s.audit_rate,
        c.certified,
        c.certified,
        s.provisional_audit_rate,
        c.guarantee,
        c.fitted_on,
    )


def run_loop(pairs: Sequence[SimPair], s: Settings, seed: int = 0) -> Outcome:
    """Judge ``pairs`` in rounds of ``s.per_round``, humans answering what routing sends
    them, calibrating after each round and re-checking every judge-accepted pair."""
    rng = np.random.default_rng(seed)
    draws = rng.random(len(pairs))
    fit = rng.random(len(pairs)) < s.fit_share
    t = Thresholds(
        s.cold_threshold,
        s.cold_threshold,
        0,
        None,
        s.audit_rate,
        provisional_audit_rate=s.cold_audit_rate,
        guarantee=s.guarantee,
    )
    items: list[cal.Judged] = []
    accepted: dict[int, str] = {}  # index -> status, judge-accepted pairs still standing
    out = Outcome(pairs=len(pairs))
    certified_ever: tuple[tuple[float, ...] | None, int] = (None, 0)
    previous_certified = cal.NEVER
    for start in range(0, len(pairs), s.per_round):
        for i in range(start, min(start + s.per_round, len(pairs))):
            p = pairs[i]
            d = route_signals(p.signals, t, float(draws[i]))
            sampled = d.action != ACCEPT
            human = p.human if sampled else None
            items.append(cal.Judged(p.signals, d.pi, sampled, human, bool(fit[i]), float(draws[i])))
            if sampled:
                out.human_labels += 1
            else:
                accepted[i] = d.status or PROVISIONAL
        c = cal.calibrate(
            items,
            s.alpha,
            s.delta,
            guarantee=s.guarantee,
            min_labels=s.min_labels,
            min_count=s.min_count,
            learn=s.learn,
            previous=certified_ever,
            previous_certified=previous_certified,
            start_from_fit=s.start_from_fit,
        )
        if c is None:
            continue
        certified_ever = (c.weights, c.fitted_on)
        previous_certified = c.certified
        t = _thresholds(c, t.version + 1, s)
        scores = cal.scores_of([pairs[i].signals for i in accepted], t.weights)
        for (i, _), sc in zip(list(accepted.items()), scores, strict=True):
            status = status_of(float(sc), pairs[i].signals.label, t)
            if status == RECHECK:
                del accepted[i]
                out.rechecked += 1
                out.human_labels += 1
            else:
                accepted[i] = status
        out.history.append(
            {
                "round": start // s.per_round + 1,
                "certified": sum(v == CERTIFIED for v in accepted.values()),
                "threshold": t.certified_a,
                "proposal": t.a,
            }
        )
    final = cal.scores_of([pairs[i].signals for i in accepted], t.weights)
    certified = [i for (i, st), sc in zip(accepted.items(), final, strict=True) if st == CERTIFIED]
    out.invariant_broken = sum(
        1
        for (i, st), sc in zip(accepted.items(), final, strict=True)
        if st == CERTIFIED and sc < t.certified_for(pairs[i].signals.label or "A")
    )
    out.certified = len(certified)
    out.final_weights = t.weights
    out.provisional = len(accepted) - len(certified)
    if certified:
        right = [_truth(pairs[i]) for i in certified]
        out.agreement = float(np.mean(right))
    return out
