"""A judge cascade under the union test (``labeler.union``), simulated: the planned
procedure's loop (``simulation.run_planned``) on the cascade's union scores, each pair
labelled by the tier that decides it, and each tier paid only for the pairs it had to
judge. Pure (numpy).

How the simulated loop judges (what the real loop would pay for): the first tier judges
every pair; a later tier judges a pair when the tiers before it cannot decide it at the
threshold in force (before a certificate, at the routing floor: a pair the earlier
tiers could accept there waits with their verdicts only) and every pair that reaches a
human, whose verdicts the test reads. When a certificate is given or extended, the
waiting pairs are judged by the tiers that threshold needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labeler import calibration as cal
from labeler import union
from labeler.simulation import Outcome, Settings, SimPair, _Planned, _truth


class _Union(_Planned):
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
        self.check = check
        self._rescore(self.base)
        self.decider = np.full(len(self.scores), -1)
        self.judged = np.zeros(self.adj.shape, bool)

    def _rescore(self, adj: np.ndarray) -> None:
        self.adj = adj
        self.scores = union.union_scores(adj)
        self.tiers = (adj, self.dis)

    def _check_tiers(self) -> None:
        """Before the phase's first look: the earlier tiers' scores capped by their
        consistency with the last tier on the sample (``union.consistency_caps``); what
        can no longer reach the floor goes to humans."""
        sample = ~np.isnan(self.pi) & (self.draws < self.pi)
        adj = self.base.copy()
        for k in range(len(adj) - 1):
            edges, caps = union.consistency_caps(
                self.base[k, sample], self.labels[k, sample], self.raw[-1, sample],
                self.labels[-1, sample],
            )  # fmt: skip
            adj[k] = union.capped(self.base[k], edges, caps)
        self._rescore(adj)
        low = [i for i in self.waiting if self.scores[i] < self.s.cold_threshold]
        self.waiting = [i for i in self.waiting if self.scores[i] >= self.s.cold_threshold]
        self.out.human_labels += len(low)
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

    def look(self, final: bool) -> None:
        if self.check and self.looks == 0:
            self._check_tiers()
        super().look(final)
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
    out = run.out
    for start in range(0, len(run.scores), s.per_round):
        for i in range(start, min(start + s.per_round, len(run.scores))):
            run.route(i)
        run.watch_drift()
        run.look(final=False)
        out.history.append(
            {"round": start // s.per_round + 1, "certified": len(run.certified),
             "threshold": run.certified_at}
        )  # fmt: skip
    if finish:
        run.look(final=True)
        out.human_labels += len(run.waiting)
        run.waiting.clear()
    certified = np.array(run.certified, int)
    deciders = run.decider[certified]
    out.certified, out.provisional = len(certified), len(run.waiting)
    out.invariant_broken = int((run.scores[certified] < run.certified_at).sum())
    out.tier_judged = [int(j.sum()) for j in run.judged]
    out.tier_certified = [int((deciders == k).sum()) for k in range(len(tiers))]
    truth = [_truth(tiers[d][i]) for d, i in zip(deciders, certified, strict=True)]
    if truth:
        out.agreement = float(np.mean(truth))
    out.tier_agreement = [
        float(np.mean([t for t, d in zip(truth, deciders, strict=True) if d == k]))
        if (deciders == k).any()
        else None
        for k in range(len(tiers))
    ]
    return out
