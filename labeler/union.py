"""The union test of a judge cascade (issue 17). Pure (numpy).

Today's cascade tests each tier on its own and splits delta between them; a later tier's
certificate rests on the pairs that reached it when it was earned, and an earlier tier's
certificate changes which pairs reach it (``tests/test_simulation.py``: the strict xfail
where a later tier's certificate outlives that shift). The union test is one test of
the region the whole cascade accepts, on one uniform calibration sample every tier has
judged, each pair scored by the tier that would decide it:

* **One path.** Every tier's score is put on one scale, and one threshold ``lam`` on it
  says what each tier accepts: tier k accepts a pair when its adjusted score is at
  least ``lam``, and the pair is decided by the first tier that accepts it. An earlier
  (cheaper) tier's score is its judge's probability with the error odds multiplied by
  ``EARLIER_ODDS`` (``adjusted``): a cheap judge's reported confidence is trusted less
  than the last tier's, which keeps its own, since a human label costs a hundred strong
  judge calls and a pair the cheap judge decides is a little less often right than the
  strong one would have been. The path is fixed before any label is read: a path chosen
  from the judges' own scores was fooled by an overconfident cheap judge (+212% in a
  prototype). Measured on ten simulated cascades and the PandaLM tiers bench
  (``tests/test_union_simulation.py``, ``bench/tiers_bench.py``), odds x4 with the
  consistency check below cost at most today's per-tier cascade in each (within 0.4%;
  judged as the real loop judges, ``union_simulation``) but the one where today's keeps
  a certificate the shift made wrong (840 vs 884, the strong judge alone 878), and (as
  first measured, judging lazily) at most 8.8% more than the best of x2, x4 and x8 in each
  (x2: up to 16.8%, x8: up to 16.4%).
* **The region and its disagreement.** The cascade at ``lam`` accepts a pair when its
  union score (``union_scores``: the largest adjusted score) is at least ``lam``; the
  label it delivers is the deciding tier's, so whether it disagrees with the humans
  depends on ``lam`` (a lower ``lam`` lets an earlier tier decide). ``steps`` writes
  each labelled pair's disagreement as steps along ``lam`` so that the disagreements of
  every region of the sequence come out of one sort (``region_counts``).
* **The consistency check.** An earlier tier's adjusted scores are capped, bin by bin,
  where its verdicts disagree with the last tier's more than the last tier's own
  confidence allows (``consistency_caps``), on pairs every tier judged outside the
  test's sample, fixed at the phase's first look.
* **The test.** Given the region's labelled count n, its labelled pairs are uniform
  draws from it (the sample's draws are independent of content), so its k disagreements
  are binomial in the rate of the labels the cascade delivers there: the planned
  procedure's exact test, fixed sequence and group-sequential looks
  (``planned.certify_planned``) apply unchanged, with the union score as the score.
"""

from __future__ import annotations

import numpy as np

EARLIER_ODDS = 4.0  # an earlier tier's error odds are multiplied by this (the x4 path)


def adjusted(scores: np.ndarray, odds: float = EARLIER_ODDS) -> np.ndarray:
    """An earlier tier's scores on the cascade's scale: probability ``s`` with its error
    odds ``(1 - s) / s`` multiplied by ``odds``. Monotone, 0 stays 0 (never accepted),
    1 stays 1."""
    s = np.asarray(scores, float)
    return np.where(s > 0, s / (s + odds * (1 - s)), 0.0)


def tier_threshold(lam: float, odds: float = EARLIER_ODDS) -> float:
    """The threshold on an earlier tier's own score that ``lam`` on the cascade's scale
    means (the inverse of ``adjusted``), before any cap: what ``labeler calibrate`` says
    a certificate asks of an earlier tier's confidence (``union_loop.describe``)."""
    if lam >= 1:
        return lam
    return lam * odds / (1 - lam + lam * odds)


def on_one_scale(scores: np.ndarray, odds: float = EARLIER_ODDS) -> np.ndarray:
    """Every tier's scores (K x n, the last tier last) on the cascade's scale."""
    out = np.array(scores, float)
    out[:-1] = adjusted(out[:-1], odds)
    return out


def holders(adj: np.ndarray, lam: float, floor: float) -> np.ndarray:
    """The tier whose label each pair delivers (K x n cascade-scale scores -> n): the
    first reaching the certificate ``lam`` when any does, else the first reaching the
    ``floor`` (the pair waits); -1: none (it goes to humans)."""
    u = adj.max(axis=0)
    reach = adj >= np.where(u >= lam, lam, floor)
    return np.where(reach.any(axis=0), reach.argmax(axis=0), -1)


def union_scores(adj: np.ndarray) -> np.ndarray:
    """Each pair's union score (K x n adjusted scores -> n): the highest threshold at
    which the cascade accepts it."""
    return adj.max(axis=0)


def deciding(adj: np.ndarray, lam: float) -> np.ndarray:
    """The tier that decides each pair at ``lam``: the first whose adjusted score reaches
    it; -1 where none does."""
    reach = adj >= lam
    return np.where(reach.any(axis=0), reach.argmax(axis=0), -1)


def steps(adj: np.ndarray, disagree: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The disagreements of the pairs in ``mask`` as steps along the threshold: (scores,
    weights) such that the disagreements the cascade delivers in region ``lam`` are the
    sum of the weights of the steps at or above ``lam``. A pair enters the region at its
    union score with its deciding tier's disagreement; where, lower, an earlier tier
    takes over (the next lower record of the prefix maxima of its adjusted scores), the
    step is the change of disagreement."""
    a, d = adj[:, mask], disagree[:, mask].astype(float)
    k = a.shape[0]
    # tier j decides on (its prefix max before it, a_j] when a_j is a strict record
    before = np.vstack([np.zeros((1, a.shape[1])), np.maximum.accumulate(a, axis=0)[:-1]])
    record = a > before
    scores, weights = [], []
    current = np.zeros(a.shape[1])  # disagreement of the decider above the step
    for j in range(k - 1, -1, -1):  # from the last tier down: records at falling scores
        on = record[j]
        # (a later record sits above: the change from its disagreement to this tier's)
        scores.append(a[j, on])
        weights.append(d[j, on] - current[on])
        current = np.where(on, d[j], current)
    return np.concatenate(scores), np.concatenate(weights)


def region_counts(
    grid: list[float], union: np.ndarray, labelled: np.ndarray, step: tuple[np.ndarray, np.ndarray]
) -> list[tuple[float, int, int, int]]:
    """(lam, pairs in the region, labelled of them, their disagreements) for each ``lam``
    of ``grid`` (highest first) with a pair above it: what ``planned.certify_planned``
    tests, from one sort each."""
    ranked = np.sort(union)[::-1]
    lab = np.sort(union[labelled])[::-1]
    order = np.argsort(-step[0], kind="stable")
    at, cum = step[0][order], np.cumsum(step[1][order])
    out = []
    for lam in grid:
        size = int(np.searchsorted(-ranked, -lam, side="right"))
        if not size:
            continue
        n = int(np.searchsorted(-lab, -lam, side="right"))
        m = int(np.searchsorted(-at, -lam, side="right"))
        k = int(np.rint(cum[m - 1])) if m else 0
        out.append((float(lam), size, n, k))
    return out


CHECK_BINS = 5  # an earlier tier's scores are checked in at most this many equal-count bins
CHECK_MIN = 20  # pairs judged by both tiers per bin (fewer: fewer bins; none: no check)


def consistency_caps(
    adj: np.ndarray, labels: np.ndarray, last: np.ndarray, last_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A label-free check of an earlier tier against the last one, on pairs both judged
    (``adj``: its adjusted scores, ``last``: the last tier's probabilities, ``*labels``:
    their verdicts): in equal-count bins of its scores, the two judges disagree at a rate
    D <= e + e_last, so its error there is about D - e_last or more, with e_last the last
    tier's claimed error (a heuristic where that claim is optimistic: then the earlier
    tier is trusted less, which costs money, not validity). Returns the lower edges of
    the bins and the most each bin's adjusted score may be: 1 - that error.

    It reads verdicts only, never a human label; taken on pairs apart from the test's
    sample (sampling draw at or above its rate) and fixed before the test, the regions it
    makes do not depend on the sample's outcomes, and the test stays exact. It sees a
    cheap judge that is sure and wrong where the last one is right (a fifth of its
    verdicts coin flips at p >= 0.9999), not errors the two judges share."""
    both = (adj > 0) & (last > 0)
    x = adj[both]
    bins = min(CHECK_BINS, len(x) // CHECK_MIN)
    if not bins:
        return np.zeros(1), np.ones(1)
    edges = np.quantile(x, np.arange(bins) / bins)
    edges[0] = 0.0
    at = np.searchsorted(edges, x, side="right") - 1
    differ = labels[both] != last_labels[both]
    claimed = 1 - last[both]
    caps = np.ones(bins)
    for b in range(bins):
        inside = at == b
        if inside.any():
            caps[b] = 1 - max(float(differ[inside].mean() - claimed[inside].mean()), 0.0)
    return edges, caps


def capped(adj: np.ndarray, edges: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """``adj`` no higher than its bin's cap (``consistency_caps``)."""
    return np.minimum(adj, caps[np.searchsorted(edges, adj, side="right") - 1])


Caps = tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]  # (edges, caps) per earlier tier


def cascade_scores(
    raw: np.ndarray, caps: Caps | None = None, odds: float = EARLIER_ODDS
) -> np.ndarray:
    """Every tier's scores (K x n probabilities, the last tier last; 0: no usable verdict)
    on the cascade's scale (``on_one_scale``), the earlier tiers' capped by ``caps``
    (``consistency_caps`` per earlier tier; None: not fixed yet)."""
    adj = on_one_scale(raw, odds)
    for k, (edges, cap) in enumerate(caps or ()):
        adj[k] = capped(adj[k], np.asarray(edges, float), np.asarray(cap, float))
    return adj


def check_caps(adj: np.ndarray, labels: np.ndarray, raw_last: np.ndarray) -> Caps:
    """The consistency caps of every earlier tier (``consistency_caps``) from pairs every
    tier judged: ``adj`` their uncapped cascade scores (K x n), ``labels`` their verdicts,
    ``raw_last`` the last tier's probabilities."""
    out = []
    for k in range(len(adj) - 1):
        edges, caps = consistency_caps(adj[k], labels[k], raw_last, labels[-1])
        out.append((tuple(map(float, edges)), tuple(map(float, caps))))
    return tuple(out)
