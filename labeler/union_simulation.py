"""A judge cascade under the union test (``labeler.union``), simulated as the real loop
runs it (``calibration.cascade = "union"``): the planned procedure's loop
(``simulation.run_planned``) on the cascade's union scores, each pair labelled by the
tier that decides it, and each tier paid only for the pairs it had to judge. Pure (numpy).

How the loop judges: the first tier judges every pair; a later tier judges a pair when
the tiers before it cannot decide it at the certificate in force (before one, every
pair), and every pair that reaches a human, whose verdicts the test reads. Once the
cascade is found futile, only the last tier judges (every pair goes to humans). Judging the
waiting pairs lazily (only when a certificate needs them) saved at most 0.6% of the
cost in ten simulated cascades (60 worlds each): not worth a second kind of waiting pair.

The consistency caps (``union.consistency_caps``) are read from the phase's pairs (union
score at or above the floor) outside the test's sample (sampling draw at or above the
calibration rate) that every tier judged, and fixed at the phase's first look: until
then a pair joins the phase on its uncapped scores; at that look the caps apply to the
phase's pairs, and the pairs they put below the floor (in no region) go to humans;
afterwards pairs are routed on the capped scores. So the regions are fixed before the
test and independent of the sample's outcomes.

A tier that did not judge a pair scores it 0 in the test (the real loop has no verdict to
read): such a pair was accepted by an earlier tier at the certificate in force, so its
union score, the best of the verdicts it has, still places it in every region the phase's
later looks can test (at or below that certificate).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labeler import calibration as cal
from labeler import union
from labeler.simulation import Outcome, PlannedRun, Settings, SimPair, true_agreement


class _Union(PlannedRun):
    """One run of the union test (``run_union``)."""

    def __init__(
        self,
        tiers: Sequence[Sequence[SimPair]],
        s: Settings,
        seed: int,
        odds: float,
        draws: np.ndarray | None = None,
        check: bool = True,
    ) -> None:
        super().__init__(tiers[-1], s, seed, draws)
        self.raw = np.array([cal.scores_of([p.signals for p in t], None) for t in tiers])
        self.labels = np.array([[str(p.signals.label) for p in t] for t in tiers])
        self.dis = np.array([[p.human != p.signals.label for p in t] for t in tiers])
        self.base = union.on_one_scale(self.raw, odds)
        self.check, self.frozen = check, False
        self._rescore(self.base)
        self.decider = np.full(len(self.scores), -1)
        self.judged = np.zeros(self.adj.shape, bool)

    def _rescore(self, adj: np.ndarray) -> None:
        self.adj = adj
        self.scores = union.union_scores(adj)
        self.tiers = (adj, self.dis)

    def _caps(self) -> np.ndarray:
        """Every tier's adjusted scores, the earlier tiers' capped by their consistency
        with the last tier on the phase's pairs outside the sample that every tier judged."""
        band = ~np.isnan(self.pi) & (self.draws >= self.s.calibration_rate)
        band &= self.judged.all(axis=0)
        adj = self.base.copy()
        for k in range(len(adj) - 1):
            edges, caps = union.consistency_caps(
                self.base[k, band], self.labels[k, band], self.raw[-1, band],
                self.labels[-1, band],
            )  # fmt: skip
            adj[k] = union.capped(self.base[k], edges, caps)
        return adj

    def _freeze(self) -> None:
        """The phase's first look was taken on the capped scores: they route from now on,
        and the phase's pairs they put below the floor go to humans."""
        self.frozen = True
        low = ~np.isnan(self.pi) & (self.scores < self.s.cold_threshold)
        waiting = set(self.waiting)
        gone = [i for i in np.nonzero(low)[0] if i in waiting]
        self.waiting = [i for i in self.waiting if not low[i]]
        self.out.human_labels += len(gone)
        self.out.rechecked += len(gone)
        self.judged[:, low] = True  # below the floor at every tier: each was asked
        self.pi[low] = np.nan

    def _decide(self, i: int, lam: float) -> int:
        """The tier deciding pair ``i`` at ``lam`` (-1: none), the tiers up to it judged."""
        d = int(union.deciding(self.adj[:, i : i + 1], lam)[0])
        self.judged[: len(self.adj) if d < 0 else d + 1, i] = True
        return d

    def route(self, i: int) -> tuple[float, bool, float]:
        s, lam = self.s, self.certified_at
        if self.futile:  # nothing can be certified: only the last tier judges
            self.judged[-1, i] = True
            self.out.human_labels += 1
            return 1.0, True, float(self.draws[i])
        if self.scores[i] <= 0 or self.scores[i] < s.cold_threshold:
            self.judged[:, i] = True  # no tier can accept it: every one was asked
            self.out.human_labels += 1
            return 1.0, True, float(self.draws[i])
        above = self.scores[i] >= lam
        self.after[i] = lam < cal.NEVER
        self.pi[i] = s.audit_rate if above else s.calibration_rate
        if self.draws[i] < self.pi[i]:
            self.judged[:, i] = True  # the test reads every tier's verdict
            self.out.human_labels += 1
            if above:  # the drift watch audits the label the cascade delivers
                self.audits.append(not self.dis[self._decide(i, lam), i])
        elif above:
            self.certified.append(i)
            self.decider[i] = self._decide(i, lam)
        else:
            self.waiting.append(i)
            self._decide(i, lam)  # below the certificate: every tier judges it
        return float(self.pi[i]), bool(self.draws[i] < self.pi[i]), float(self.draws[i])

    def watch_drift(self) -> None:
        super().watch_drift()
        if self.frozen and self.looks == 0:  # a new phase: uncapped until its first look
            self.frozen = False
            self._rescore(self.base)

    def look(self, final: bool) -> None:
        if self.check and not self.frozen:
            self._rescore(self._caps())
        full = self.adj
        self._rescore(np.where(self.judged, full, 0.0))  # the verdicts the loop has
        super().look(final)
        self._rescore(full)
        if self.check and not self.frozen:
            if self.looks:
                self._freeze()
            else:
                self._rescore(self.base)
        lam = self.certified_at
        for i in self.certified:  # (a lower certificate may let an earlier tier decide)
            self.decider[i] = self._decide(i, lam)
        if lam < cal.NEVER:
            for i in self.waiting:
                self._decide(i, lam)


def run_union(
    tiers: Sequence[Sequence[SimPair]],
    s: Settings,
    seed: int = 0,
    odds: float = union.EARLIER_ODDS,
    finish: bool = True,
    draws: np.ndarray | None = None,
    check: bool = True,
) -> Outcome:
    """The cascade ``tiers`` (``tiers[k][i]``: what judge k says of pair i, the last tier
    last) under the union test: ``run_planned``'s rounds, looks and drift watch on the
    union scores. ``finish``: a final look, then what waits goes to humans."""
    run = _Union(tiers, s, seed, odds, draws, check)
    out = run.play(finish)
    certified = np.array(run.certified, int)
    deciders = run.decider[certified]
    out.certified, out.provisional = len(certified), len(run.waiting)
    out.invariant_broken = int((run.scores[certified] < run.certified_at).sum())
    out.tier_judged = [int(j.sum()) for j in run.judged]
    out.tier_certified = [int((deciders == k).sum()) for k in range(len(tiers))]
    truth = [true_agreement(tiers[d][i]) for d, i in zip(deciders, certified, strict=True)]
    if truth:
        out.agreement = float(np.mean(truth))
    out.tier_agreement = [
        float(np.mean([t for t, d in zip(truth, deciders, strict=True) if d == k]))
        if (deciders == k).any()
        else None
        for k in range(len(tiers))
    ]
    return out
