"""A judge cascade under the union test (``labeler.union``), simulated: the planned
procedure's loop (``simulation.run_planned``) on the cascade's union scores, each pair
labelled by the tier that decides it, and each tier paid only for the pairs it had to
judge. Pure (numpy).

How the simulated loop judges (what the real loop would pay for): the first tier judges
every pair; a later tier judges a pair when the tiers before it cannot decide it at the
threshold in force (before a certificate, at the routing floor: a pair the earlier
tiers could accept there waits with their verdicts only), every pair that reaches a
human, whose verdicts the test reads, and, until the phase's first look, the check band
(``union.CHECK_RATE``). When a certificate is given or extended, the waiting pairs are
judged by the tiers that threshold needs.

The consistency caps (``union.consistency_caps``) are read from the check band — pairs
every tier judged, never labelled, apart from the test's sample — and fixed at the
phase's first look: until then a pair joins the phase on its uncapped scores; at that
look the caps apply to the phase's pairs, and the pairs they put below the floor (in no
region) go to humans; afterwards pairs are routed on the capped scores. So the regions
are fixed before the test and independent of the sample's outcomes.
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
        self.band = np.zeros(len(self.scores), bool)  # routed into the check band

    def _rescore(self, adj: np.ndarray) -> None:
        self.adj = adj
        self.scores = union.union_scores(adj)
        self.tiers = (adj, self.dis)

    def _caps(self) -> np.ndarray:
        """Every tier's adjusted scores, the earlier tiers' capped by their consistency
        with the last tier on the phase's check band."""
        band = ~np.isnan(self.pi) & self.band
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
        if self.futile or self.scores[i] <= 0 or self.scores[i] < s.cold_threshold:
            self.judged[:, i] = True  # no tier can accept it: every one was asked
            self.out.human_labels += 1
            return 1.0, True, float(self.draws[i])
        above = self.scores[i] >= lam
        self.after[i] = lam < cal.NEVER
        self.pi[i] = s.audit_rate if above else s.calibration_rate
        if self.check and not self.frozen:
            rate = s.calibration_rate
            self.band[i] = rate <= self.draws[i] < rate + union.CHECK_RATE
            self.judged[:, i] |= self.band[i]  # every tier judges the check band
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
            self._decide(i, min(lam, s.cold_threshold))
        return float(self.pi[i]), bool(self.draws[i] < self.pi[i]), float(self.draws[i])

    def watch_drift(self) -> None:
        super().watch_drift()
        if self.frozen and self.looks == 0:  # a new phase: uncapped until its first look
            self.frozen = False
            self.band[:] = False
            self._rescore(self.base)

    def look(self, final: bool) -> None:
        if self.check and not self.frozen:
            self._rescore(self._caps())
        super().look(final)
        if self.check and not self.frozen:
            if self.looks:
                self._freeze()
            else:
                self._rescore(self.base)
        lam = self.certified_at
        for i in self.certified:
            if self.decider[i] < 0:
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
