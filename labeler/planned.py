"""The planned certification procedure (issue 17). Pure (numpy).

The planned procedure (``calibration.procedure = "planned"``, the default)
-------------------------------------------------------------------------
Issue 17 traced where the retest procedure (``labeler.calibration``) loses its power in
small projects: its one fixed sequence starts low in the judge's good region (a coarse
grid on saturated probabilities), a certificate rarely survives the next sync (the newly
audited 5% stratum makes the exact test impossible), a fifth of the labels fit a score
that orders no better than the judge's own confidence, and the sample's size is
incidental. The planned procedure is built around one designed sample instead:

* **One calibration phase, one uniform sample.** While nothing is certified, every pair the
  judge could accept (an A/B verdict, orders agreeing, raw confidence >= the routing
  floor ``routing.threshold`` with a HIGH self-report) joins the phase; a pair is sampled
  for humans when its draw (a hash of seed and pair id, independent of its content) is
  below the phase's rate ``r`` (``calibration.cold_start_audit_rate``); the others wait,
  out of the dataset. So within the phase every pair had the same chance ``r``, fixed
  before its draw, and the labelled pairs of any region ``{score >= λ}`` are a uniform
  sample of it.
* **The order is label-free.** The score is the judge's own confidence; the candidate
  thresholds are the distinct scores of the phase (thinned to ``PLAN_POINTS`` ranks):
  read from the verdicts, never from a human label, so they may be fixed before the test.
* **The test is exact.** For region R_λ with n labelled pairs of which k disagree, H_λ:
  the disagreement rate p_λ of pairs like those in R_λ exceeds alpha. Given n, the
  labelled pairs are i.i.d. draws from the region (draws independent of content, pairs
  exchangeable), so k ~ Bin(n, p_λ), and H_λ is rejected when P(Bin(n, alpha) <= k) <=
  level (``binomial_rejects``, the Clopper-Pearson bound). The bound is on the rate of
  pairs drawn like these — the certified pairs now and the ones a kept certificate
  accepts later — not only on the labelled ones, so the judge labels delivered are what
  it bounds.
* **One fixed sequence per phase.** Thresholds are tested highest first and the
  sequence stops at the first that is not rejected (family-wise error at the look's
  level, no split). The sequence is fixed at the phase's first look, from scores and
  counts only (``fixed_sequence``): it begins where the region holds ``SEQUENCE_SHARE``
  of that look's labels, then the grid below. (Without the kept looks — a phase begun
  before they were kept, a cascade's first tier — each look makes its own, beginning at
  the highest threshold whose region holds ``START_SHARE`` of the labels and whose counts
  would let a judge disagreeing alpha/2 of the time pass with one unlucky disagreement
  more, ``good_judge_passes``.)
* **A cascade's earlier tiers.** A tier that is not the last sees pairs that reached
  humans through a later tier's routing. Its calibration sample is drawn with the last
  tier's draw (``routing.calibration_draw``), so while the last tier has no certificate
  every pair of it the last tier could accept reaches a human (chance 1 given the
  sample, ``given_sample``) and its looks are the uniform ones; once the last tier is
  certified its pairs have several chances and its looks use the stratified test of
  ``labeler.calibration``.
* **Looks at label milestones.** A look is due when the phase's labels reach
  ``first_look_count`` (``start_count`` at the first look's level: 93 at alpha 0.15,
  delta 0.1) and again at each doubling (counts only); milestone j allows
  ``FIRST_LOOK_SHARE * (1 - FIRST_LOOK_SHARE)^j`` of delta, a look spends what the
  milestones reached since the last look allow (several, when one sync passes several:
  large rounds), and the project's final look (``labeler round --finish``) all that is
  left. The levels add up to at most delta.
* **The looks share delta exactly (group-sequential).** The looks test nested samples
  (each look's labels include the earlier ones'), so a Bonferroni split, each look at its
  own level, is loose. Before a certificate each region is tested against its exact
  group-sequential boundary (``gs_boundary``): the most disagreements with which a
  judge disagreeing exactly alpha of the time would have crossed, at this look or any
  earlier one, with probability at most what the looks so far may spend together. The
  sequence is the same at every look, so a look errs only by certifying the sequence's
  first region worse than the target — the same region at every look — whose chance of
  ever crossing is at most delta. The looks keep what the later ones need: the scores of
  the pairs each counted, whether their humans disagreed, and what it was allowed
  (``Look.evidence``, the ``looks`` and ``look_evidence`` tables); a look whose sample no
  longer contains the earlier looks' as they were (a counted pair re-opened or relabelled)
  tests at its own level instead. The exactness assumes when a look comes does not depend
  on the labels (it depends on their count). For looks at 93, 186, 372 and 744 labels (the last the
  project's end, with all that is left) the later boundaries sit at nominal levels of
  0.037, 0.024 and 0.029 where Bonferroni allowed 0.025, 0.0125 and 0.0125.
* **A certificate is kept, and extended.** Pairs above the certified threshold are
  accepted from then on, audited at ``routing.audit_rate`` (the drift watch); pairs
  between the floor and it keep joining the sample at ``r`` and wait. Later looks go on
  with the phase's group-sequential test of the same fixed sequence, on one sample drawn
  alike (``uniform_sample``): every label of the pairs routed before the certificate (all
  sampled at ``r``) and, of the pairs routed after it, those whose draw is below the
  lowest chance of a label under the rates in force when the certificate was given
  (``thinning_rate``: the drift watch's; above the certificate the drift watch's sample,
  below it the calibration sample thinned to that rate). Each of them was labelled by a draw
  independent of its content at a rate the same for every score, so, rounds being drawn
  alike, each is a draw from the region like any other, and the exact test is taken on
  it as before the certificate (what that leaves unproved: the last bullet). A lower
  threshold extends the certificate; the certified region
  at every look is a prefix of the one sequence, so the looks err together only when the
  sequence's first region worse than the target crosses its boundary (at most delta
  were the look times fixed in advance).
  (The stratified test on the two inclusion probabilities, which the extension took
  before, pools the strata at the drift watch's rate and so reads a twentieth of the
  labels the certificate was earned on: early certificates were seldom extended.
  Measured, same run, on the 2,000-pair GPT-4-class world: 2.64x -> 2.95x, 83% -> 93% of
  the limit.) Without the draws or the kept looks, and for a cascade's earlier tiers, a
  look extends with the stratified test.
* **Futility.** When every region's Clopper-Pearson *lower* bound on disagreement is
  above alpha, nothing can be certified: waiting pairs go to humans and so do later ones.
  Sending pairs to humans never costs the guarantee anything, so this may read labels
  (it is checked at every sync, so a good judge is wrongly dropped more often than
  delta: that costs money, never quality).
* **Drift.** The drift watch counts the audits of certified pairs since the certificate
  began (``Thresholds.certified_at``); when they show, at confidence 1 - delta, agreement
  below the target (``calibration.drifted``: a sequential test, so reading it at every
  sync raises a false alarm in at most delta of projects), the certificate ends: every
  pair it accepted, and every pair waiting, goes to humans (no later phase's test covers
  them), and a new phase begins with the pairs routed from then on. The promise is per
  phase: each phase spends its own delta (drift is rare, and a phase that ends in drift
  has failed anyway).
* **What is assumed.** Rounds drawn alike (exchangeable pairs): a certificate covers
  later pairs because they are like the sample. A judge that gets worse between rounds
  breaks this; the drift watch catches it only with enough audits (``test_simulation``
  measures a 500-pair world where it does not).
* **Expected mode** uses the same phase, sample and looks with conformal selection
  (``certify_expected``) instead of the binomial test, and never extends a certificate:
  conformal selection spends no delta, and the lowest threshold over many looks would
  inflate the expected disagreement.
* **Extension looks are checked, not proved.** After a certificate the rate at which
  new pairs join the sample, and so when the next looks come, depends on when the
  certificate came, which the group-sequential boundary (computed for the counts the
  looks had) leaves out; the simulation tests measure the guarantee end to end there,
  including a world whose judge is good at the top and bad below (``tests/test_simulation``,
  the step world).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labeler import union
from labeler.calibration import (
    NEVER,
    Choice,
    _log_binom_cdf,
    binomial_rejects,
    certify_expected,
    certify_high_probability,
    cp_lower,
    cp_upper,
    start_count,
)

PLAN_POINTS = 400  # candidate thresholds: at most this many score quantiles
GOOD_JUDGE = 0.5  # the judge the start rule plans for disagrees this share of alpha
START_SHARE = 0.5  # the first tested region holds at least this share of the labels
SEQUENCE_SHARE = 0.65  # a phase's fixed sequence starts where its region holds this share
FIRST_LOOK_SHARE = 0.5  # share of delta each look spends of what is left (the first: half)


def _pmf(n: int, p: float) -> tuple[int, np.ndarray]:
    """Bin(n, p)'s probabilities where they exceed ~1e-17: (the first k kept, them)."""
    i = np.arange(1, n + 1)
    log_comb = np.concatenate(([0.0], np.cumsum(np.log(n - i + 1.0) - np.log(i))))
    k = np.arange(n + 1)
    logp = log_comb + k * math.log(p) + (n - k) * math.log1p(-p)
    keep = np.nonzero(logp > -40.0)[0]
    return int(keep[0]), np.exp(logp[keep[0] : keep[-1] + 1])


def gs_boundary(ns: Sequence[int], allowed: Sequence[float], alpha: float) -> int:
    """The group-sequential boundary of one region at the last of its looks: the most
    disagreements with which it is certified there (-1: none). ``ns``: the region's
    labelled pairs at each look of the phase (nested samples: each look's labels include
    the earlier ones'), ``allowed``: the share of delta the looks up to each may have spent
    together. At each look the boundary c is the largest whose first crossing, for a
    disagreement rate of exactly alpha, keeps the chance of ever crossing within what is
    allowed: P(k_u > c_u at every earlier look u, k <= c) <= allowed - P(crossed before)
    (exact: the counts' increments are independent binomials; a rate above alpha crosses
    less often). With one look it is the exact binomial test (``binomial_rejects``); with
    several, each look may use what the earlier looks' boundaries left unspent and the
    paths they already caught, instead of a Bonferroni share of its own: at samples of
    93, 186, 372 and 744 labels, allowed 0.05, 0.075, 0.0875 and 0.1 together, the later
    boundaries sit at nominal levels of 0.037, 0.024 and 0.029 where Bonferroni allows
    0.025, 0.0125 and 0.0125. A look with fewer labels than the one before is not a
    nested sample: ValueError."""
    off, dist = 0, np.ones(1)  # P(k = off + j, not crossed yet)
    prev, crossed, c = 0, 0.0, -1
    for n, a in zip(ns, allowed, strict=True):
        if n < prev:
            raise ValueError(f"looks must be nested samples: {n} labels after {prev}")
        if n > prev:
            lo, inc = _pmf(n - prev, alpha)
            dist, off, prev = np.convolve(dist, inc), off + lo, n
        cdf = np.cumsum(dist)
        j = int(np.searchsorted(cdf, a - crossed, side="right")) - 1
        c = off + j if j >= 0 else off - 1  # below ``off`` lies no mass worth counting
        if j >= 0:
            crossed += float(cdf[j])
            dist, off = dist[j + 1 :], off + j + 1
        top = np.nonzero(dist > 1e-18)[0]
        if len(top):
            dist, off = dist[top[0] : top[-1] + 1], off + int(top[0])
    return c


def look_delta(delta: float, look: int) -> float:
    """What look ``look`` (0, 1, ...) of the calibration sample may spend: ``FIRST_LOOK_SHARE``
    of delta at the first, then the same share of what is left at each later one (the sum
    over every look is at most delta, so the looks together keep the guarantee:
    Bonferroni; the final look at the end of a project spends all that is left)."""
    return delta * FIRST_LOOK_SHARE * (1 - FIRST_LOOK_SHARE) ** look


def milestones(labels: int, alpha: float, delta: float) -> int:
    """How many of the sample's milestones ``labels`` has reached: ``first_look_count``,
    then each doubling. Counts only, never labels."""
    first, passed = first_look_count(alpha, delta), 0
    while labels >= first * 2**passed:
        passed += 1
    return passed


def next_milestone(labels: int, alpha: float, delta: float) -> int:
    """The labels the sample needs for its next milestone."""
    return first_look_count(alpha, delta) * 2 ** milestones(labels, alpha, delta)


def look_level(delta: float, spent: float, labels: int, alpha: float, final: bool) -> float:
    """What a look with ``labels`` in the calibration sample may spend, ``spent`` having
    been spent: at the project's final look, all that is left; otherwise what the
    milestones reached allow (``look_delta`` of each, summed) less what is spent. One
    milestone a sync: each look spends its own ``look_delta``; when a sync passes several
    at once (large rounds: 20,000 pairs in rounds of 2,000 bring ~700 labels to the first
    look), the one look spends all of theirs, instead of spending them on the next syncs'
    nearly unchanged samples. The sum over every milestone is at most delta either way."""
    left = max(delta - spent, 0.0)
    if final:
        return left
    allowed = sum(look_delta(delta, j) for j in range(milestones(labels, alpha, delta)))
    return min(max(allowed - spent, 0.0), left)


def look_due(labels: int, spent: float, alpha: float, delta: float) -> bool:
    """Is a look (other than the final one) due, with ``labels`` in the calibration sample
    and ``spent`` of delta spent? Looks come when the sample reaches ``first_look_count``
    and then each time it has doubled, so a project of any size takes about log2 of its
    size in looks and each has twice the labels of the one before. Counts only."""
    return look_level(delta, spent, labels, alpha, False) > delta * 1e-9


def plan_grid(scores: np.ndarray, floor: float, points: int = PLAN_POINTS) -> list[float]:
    """Candidate thresholds, highest first: the distinct scores at or above ``floor`` of the
    population, thinned to at most ``points`` evenly spaced ranks. Label-free: it reads the
    judge's scores, never a human verdict, so it may be fixed before the test."""
    s = np.unique(scores[scores >= floor])[::-1]
    if len(s) > points:
        s = s[np.unique(np.linspace(0, len(s) - 1, points).round().astype(int))]
    return [float(v) for v in s]


def good_judge_passes(n: int, alpha: float, delta: float) -> bool:
    """Would a region with ``n`` labelled pairs pass the test if the judge
    disagreed on alpha/2 of them, with one unlucky disagreement more? Where the sequence
    begins (a rule on counts only: starting where a good judge fails by bad luck spends the
    sequence's one chance)."""
    return n > 0 and binomial_rejects(math.ceil(n * alpha * GOOD_JUDGE) + 1, n, alpha, delta)


def certify_planned(
    scores: np.ndarray,
    labelled: np.ndarray,
    disagree: np.ndarray,
    alpha: float,
    delta: float,
    grid: Sequence[float],
    history: Sequence[tuple[np.ndarray, float]] | None = None,
    allowed: float = 0.0,
    tiers: tuple[np.ndarray, np.ndarray] | None = None,
) -> Choice:
    """The lowest threshold of the fixed sequence ``grid`` (highest first) whose region
    passes ``binomial_rejects``: the arrays are over the calibration population (every
    pair of it was sampled with the same chance, by a draw independent of its content), and
    the sequence begins at the highest threshold whose counts would let a good judge pass
    (``good_judge_passes``: counts, never labels).

    ``history``: the phase's earlier looks, each as the scores of the pairs labelled at it
    and the share of delta the looks up to it were allowed together; ``allowed``: this
    look's. Then ``grid`` is the phase's fixed sequence (``fixed_sequence``), tested from
    its first threshold, and each region against its group-sequential boundary
    (``gs_boundary``) over all the phase's looks, instead of at this look's ``delta``
    alone.

    ``tiers``: a cascade's union test (``labeler.union``): every tier's adjusted scores
    and disagreements (K x n); ``scores`` are then the union scores, and a region's
    disagreements are those of the labels its deciding tiers deliver."""
    best = Choice(NEVER, 0, 0, None)
    regions = _counts(scores, labelled, disagree, grid, tiers)
    # the first region a good judge would pass and that holds START_SHARE of the labels
    # (a large sample does not start on a sliver at the top); none: the largest
    # (a cascade's union test may hold labelled pairs below the grid: in no region)
    total = int((labelled & (scores >= grid[-1])).sum()) if len(grid) else 0
    first = next(
        (
            i
            for i, (_, _, n, _) in enumerate(regions)
            if n >= START_SHARE * total and good_judge_passes(n, alpha, delta)
        ),
        len(regions) - 1,
    )
    if history is not None:
        first = 0  # the phase's one fixed sequence, from its start
    past = [(np.sort(h), a) for h, a in history or ()]
    for lam, _, n, k in regions[max(first, 0) :]:
        if history is None:
            passes = binomial_rejects(k, n, alpha, delta)
        else:
            ns = [len(h) - int(np.searchsorted(h, lam, side="left")) for h, _ in past]
            boundary = gs_boundary([*ns, n], [a for _, a in past] + [allowed], alpha)
            passes = k <= boundary
        if not passes:
            break
        start_at = best.start if best.start < NEVER else float(lam)
        best = Choice(float(lam), n, k, k / n if n else None, start_at)
    return best


def _counts(
    scores: np.ndarray,
    labelled: np.ndarray,
    disagree: np.ndarray,
    grid: Sequence[float],
    tiers: tuple[np.ndarray, np.ndarray] | None,
) -> list[tuple[float, int, int, int]]:
    """(threshold, pairs above it, labelled, disagreeing) for each threshold of ``grid``
    with a pair above it, highest first (``tiers``: see ``certify_planned``; one judge is
    a cascade of one tier)."""
    adj, dis = tiers if tiers is not None else (scores[None], disagree[None])
    return union.region_counts(list(grid), scores, labelled, union.steps(adj, dis, labelled))


def fixed_sequence(scores: np.ndarray, labelled: np.ndarray, floor: float) -> list[float]:
    """The thresholds every look of a calibration phase tests, highest first, fixed at
    its first look from counts and scores only: it starts where the region holds
    ``SEQUENCE_SHARE`` of that look's labels (the later looks, with two to eight times the
    labels, test the same regions: a start at half the labels let a first look certify a
    small top region that later looks could not extend), then the ``plan_grid``
    thresholds below. One sequence for every look is what lets the looks share delta
    exactly: a look errs only by certifying the first region of the sequence that is worse
    than the target — the same region at every look — and its group-sequential boundary
    (``gs_boundary``) keeps its chance of ever being certified within what the looks
    spend. (Each look choosing its own start, the region could differ from look to look:
    measured, a judge exactly at the target everywhere was then certified in 10.3% of
    5,000-pair projects at delta 0.1.)"""
    ranked = np.sort(scores[labelled & (scores >= floor)])[::-1]
    grid = plan_grid(scores, floor)
    if not len(ranked):
        return grid
    start = float(ranked[max(math.ceil(SEQUENCE_SHARE * len(ranked)) - 1, 0)])
    return [start, *(g for g in grid if g < start)]


def _regions(scores: np.ndarray, agree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The regions a threshold on ``scores`` can make, largest score first (every pair of
    a score or none; score 0 is never accepted): each one's size, and its disagreement
    rate by ``agree``."""
    order = np.argsort(-scores, kind="stable")
    s, a = scores[order], agree[order]
    disagreement = 1 - np.cumsum(a) / np.arange(1, len(scores) + 1)
    ends = np.nonzero(np.append(s[1:] != s[:-1], True) & (s > 0))[0] + 1
    return ends, disagreement[ends - 1]


def _thin(count: int, points: int) -> np.ndarray:
    """At most ``points`` evenly spaced indices of ``count`` regions (a large project: a
    fine grid of region sizes is enough)."""
    if count <= points:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, points).round().astype(int))


def oracle_limit(
    scores: np.ndarray, agree: np.ndarray, alpha: float, delta: float, points: int = 2000
) -> tuple[float, float, int]:
    """The statistical limit of a project (issue 17): (savings factor, coverage, audit
    labels) of an oracle that knows the best threshold on ``scores`` and proves it with a
    uniform audit of the accepted region (exact Clopper-Pearson bound at ``delta``); humans
    label the audit and every pair below the threshold. ``agree``: each pair's (true or
    expected) agreement with humans; pairs with score 0 are never accepted. n_audit is the
    fewest labels whose bound, with the region's disagreement rate observed exactly
    (rounded), reaches the target."""
    n_pairs = len(scores)
    ends, rates = _regions(scores, agree)
    keep = _thin(len(ends), points)
    best = (1.0, 0.0, 0)
    for size, rate in zip(ends[keep].tolist(), rates[keep].tolist(), strict=True):
        if rate >= alpha:
            continue
        audit = _audit_needed(rate, size, alpha, delta)
        if audit is None:
            continue
        factor = n_pairs / (audit + n_pairs - size)
        if factor > best[0]:
            best = (factor, size / n_pairs, audit)
    return best


def most_disagreements(n: int, alpha: float, delta: float) -> int:
    """The most disagreements among ``n`` uniform labels that still pass the exact test
    (``binomial_rejects``) at ``alpha``, ``delta``; -1 when none do."""
    i = np.arange(n + 1)
    log_pmf = (
        np.concatenate(([0.0], np.cumsum(np.log(n - i[1:] + 1.0) - np.log(i[1:]))))
        + i * math.log(alpha)
        + (n - i) * math.log1p(-alpha)
    )
    log_cdf = np.logaddexp.accumulate(log_pmf)
    passing = np.nonzero(log_cdf[:n] <= math.log(delta))[0]
    return int(passing[-1]) if len(passing) else -1


SAMPLING_POWER = 0.8  # the sampling limit's audit passes at least this often


def sampling_limit(
    scores: np.ndarray,
    agree: np.ndarray,
    alpha: float,
    delta: float,
    power: float = SAMPLING_POWER,
    points: int = 300,
) -> tuple[float, float, int]:
    """What the oracle of ``oracle_limit`` can expect when its audit is a random sample, as
    every real audit is: (expected savings factor, coverage, audit size). It knows each
    threshold's true disagreement rate p (from ``agree``) and picks the threshold and the
    audit size n that maximize the *expected* factor among audits designed to pass with
    probability at least ``power``: the audit passes the exact test with probability
    P(Bin(n, p) <= k_n) (``most_disagreements``), and then humans label the audit and
    every pair below the threshold; otherwise every pair. (Without a power floor the
    expectation favours lotteries: 15 labels on 94% of the pairs pass one time in ten and
    then save 12x.) ``oracle_limit``
    instead assumes the audit shows the region's rate exactly, which a random sample of
    that size does only about half the time: no procedure can expect that figure, and on a
    judge whose best region is large and close to the target the gap is 25-35%. So this is
    the limit a procedure that does not know the threshold is measured against as well."""
    n_pairs = len(scores)
    ends, rates = _regions(scores, agree)
    ends, rates = ends[rates < alpha], rates[rates < alpha]
    if not len(ends):
        return (1.0, 0.0, 0)
    keep = _thin(len(ends), points)
    ends, rates = ends[keep], np.clip(rates[keep], 1e-12, 1 - 1e-12)
    best = (1.0, 0.0, 0)
    sizes = np.unique(np.geomspace(10, int(ends.max()), 120).round().astype(int))
    for n in sizes.tolist():
        k = most_disagreements(n, alpha, delta)
        fits = ends >= n
        if k < 0 or not fits.any():
            continue
        passes = np.exp(_log_binom_cdf(k, n, rates[fits]))
        factor = np.where(
            passes >= power, passes * n_pairs / (n + n_pairs - ends[fits]) + (1 - passes), 1.0
        )
        i = int(np.argmax(factor))
        if factor[i] > best[0]:
            best = (float(factor[i]), float(ends[fits][i]) / n_pairs, n)
    return best


def _audit_needed(rate: float, size: int, alpha: float, delta: float) -> int | None:
    """The fewest uniform labels (at most ``size``) whose Clopper-Pearson bound, with
    disagreements at ``rate``, is at most alpha (bisection on a monotone-enough count)."""

    def passes(n: int) -> bool:
        return cp_upper(round(rate * n), n, delta) <= alpha

    if not passes(size):
        return None
    lo, hi = 1, size
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid + 1, hi)
    return lo


FIRST_LOOK_FACTOR = 1.0  # the first look waits for start_count labels, then each doubling


def first_look_count(alpha: float, delta: float) -> int:
    """Labels the calibration sample must hold before its first look (other than the
    final one): enough for a good judge to pass at the level the first look may spend
    (``start_count`` at ``look_delta(delta, 0)``: 93 at alpha 0.15, delta 0.1). Counts only,
    never labels."""
    return math.ceil(FIRST_LOOK_FACTOR * start_count(alpha, look_delta(delta, 0)))


@dataclass(frozen=True)
class Look:
    """One look of the planned procedure at the calibration sample."""

    taken: bool  # False: not due yet (too few labels); nothing spent
    level: float  # the share of delta this look spent (0 when not taken)
    choice: Choice  # NEVER when nothing was certified
    population: int  # pairs in the calibration population
    labels: int  # of them, sampled and decided
    futile: bool = False  # every region is confidently worse than the target
    # a look of the group-sequential test: the scores of its labelled pairs and the
    # phase's fixed sequence, which its later looks need (``plan_look``); else None
    evidence: np.ndarray | None = None
    sequence: tuple[float, ...] | None = None
    allowed: float = 0.0  # the share of delta its group-sequential looks have had so far
    read: int | None = None  # labels its test read when fewer than ``labels`` (a thinned sample)
    closed: str = ""  # why no look can come this phase (a union's: ``looks.take_look``)


def futile(
    scores: np.ndarray,
    labelled: np.ndarray,
    disagree: np.ndarray,
    alpha: float,
    delta: float,
    floor: float,
    tiers: tuple[np.ndarray, np.ndarray] | None = None,
) -> bool:
    """Is the judge confidently worse than the target in every region a look could start
    from or reach (those holding at least ``START_SHARE`` of the labels: a look's
    sequence never starts on a smaller one), each region's Clopper-Pearson lower bound on
    disagreement above alpha? Then waiting is pointless and its pairs go to humans.
    Sending pairs to humans never costs the guarantee anything, so this may read labels at
    any time; it runs at every sync, so a good judge is wrongly found futile more often
    than delta — that costs money, never quality."""
    total = int((labelled & (scores >= floor)).sum())
    if total < 10:
        return False
    for _, _, n, k in _counts(scores, labelled, disagree, plan_grid(scores, floor), tiers):
        if n >= START_SHARE * total and cp_lower(k, n, delta) <= alpha:
            return False
    return True


def earlier_tier_test(alpha: float, delta: float, guarantee: str) -> tuple[float, float, str]:
    """The test a cascade tier that is not the last takes: (alpha, delta, guarantee). Its
    labels reach humans only through the next tier's routing, with chances from its audit
    rate to 1, and conformal selection on such weights is optimistic (tests/test_simulation,
    the annotated worlds). In ``expected`` mode it takes the stratified high-probability
    test at ``alpha - d`` with confidence ``1 - d``, ``d = min(delta, alpha / 2)``: the
    disagreement it certifies exceeds ``alpha - d`` with probability at most ``d``, so its
    expectation stays within ``alpha`` (for the tier; for the union of the tiers it is
    measured in simulation, not proved)."""
    if guarantee != "expected":
        return alpha, delta, guarantee
    d = min(delta, alpha / 2)
    return alpha - d, d, "high_probability"


def given_sample(pi: float, draw: float, rate: float) -> tuple[float, float]:
    """A pair of an earlier tier's calibration sample — in it because the last tier's draw
    was below ``rate`` (``routing.calibration_draw``) — that the last tier routed with
    chance ``pi`` and that same ``draw``: its chance of reaching a human given that it is
    in the sample, and its draw given that (uniform on [0, 1) again; sampled exactly when
    it is below the chance, as for any pair). Below the last tier's certificate (``pi`` at
    least ``rate``) the chance is 1: the sample is fully labelled."""
    return min(pi, rate) / rate, draw / rate


def uniform_sample(
    labelled: np.ndarray, after: np.ndarray, draw: np.ndarray, rate: float
) -> np.ndarray:
    """The labels of a calibration phase that form one sample drawn alike after its
    certificate: every labelled pair routed before it (``after`` False: all sampled at the
    calibration rate) and, of those routed after it, the ones whose ``draw`` is below
    ``rate`` (the lowest chance any of those had: every pair whatever its score had at
    least that chance, and was labelled exactly when its draw was below its own). Reads
    draws and routing times, never labels."""
    return labelled & (~after | (draw < rate))


def thinning_rate(fixed: float, pi_after: np.ndarray) -> float:
    """The rate ``uniform_sample`` thins a phase's labels routed after its certificate to:
    ``fixed``, the lowest chance of a label a pair had under the rates in force when the
    certificate was given (the drift watch's and the calibration sample's), so that a
    later look never loses a pair an earlier one counted (the group-sequential test needs
    each look's labels to include the earlier ones'); lower only where a pair since had
    a lower chance (``pi_after``: a rate lowered mid-phase; the sample then changes and
    the phase's later looks go back to the stratified test)."""
    return float(min(fixed, pi_after.min())) if len(pi_after) else fixed


def plan_look(
    scores: np.ndarray,
    labelled: np.ndarray,
    disagree: np.ndarray,
    alpha: float,
    delta: float,
    *,
    looks: int,
    spent: float,
    floor: float,
    pi: np.ndarray,
    guarantee: str = "high_probability",
    min_labels: int = 0,
    final: bool = False,
    certified: float = NEVER,
    draw: np.ndarray | None = None,
    history: Sequence[tuple[np.ndarray, float]] | None = None,
    sequence: Sequence[float] | None = None,
    sample: np.ndarray | None = None,
    tiers: tuple[np.ndarray, np.ndarray] | None = None,
) -> Look:
    """A look at the calibration population (every pair of this phase the judge could
    accept, ``pi`` its chance of reaching a human, ``draw`` its sampling draw): taken when
    ``look_due`` (or ``final``: the end of the project, which spends all of delta that is
    left). Before a certificate every pair had the same chance: the fixed label-free
    sequence ``plan_grid`` is tested with ``certify_planned`` (or, for the expected
    guarantee, conformal selection on the same sample). After one (``certified``), the
    look tries to *extend* it, and a lower threshold than the one in force extends it:
    given ``sample`` (the labels drawn alike, ``uniform_sample``) and ``history``, the
    phase's group-sequential test goes on with its fixed sequence on that sample; without
    them, the whole grid again from the top (where the labels' count says, never where the
    last certificate was: that was chosen from these labels), each region tested with the
    stratified test of ``certify_high_probability`` (pairs grouped by their chance of
    reaching a human: the calibration rate below the certificate, the drift watch's rate
    above it), at the look's own level.

    ``history``: the phase's earlier looks — the scores of the pairs of the sample at
    each and the share of delta allowed up to it — and ``sequence``, the phase's fixed
    sequence (``fixed_sequence``, made at its first look and returned in
    ``Look.sequence``), for the group-sequential test; None: each look
    tests its own sequence at its own level (Bonferroni). ``tiers``: a cascade's union
    test (``certify_planned``), which takes the uniform sample's tests only."""
    n_lab = int(labelled.sum())
    due = final or (n_lab >= min_labels and look_due(n_lab, spent, alpha, delta))
    nothing = Choice(NEVER, 0, 0, None)
    stratified = (certified < NEVER and (sample is None or history is None)) or (
        certified >= NEVER and len(np.unique(pi)) > 1
    )
    if tiers is not None and (guarantee == "expected" or stratified):
        raise ValueError("the union test takes only a uniform sample's exact test")
    if certified >= NEVER and futile(scores, labelled, disagree, alpha, delta, floor, tiers):
        return Look(False, 0.0, nothing, len(scores), n_lab, True)
    if not due or n_lab == 0:
        return Look(False, 0.0, nothing, len(scores), n_lab)
    level = look_level(delta, spent, n_lab, alpha, final)
    grid = plan_grid(scores, floor)
    evidence, kept, allowed, read = None, None, 0.0, None
    if guarantee == "expected":
        # conformal selection spends no delta: taking the lowest threshold over many
        # looks would inflate the expected disagreement, so a certificate is not extended
        choice = (
            nothing
            if certified < NEVER
            else certify_expected(scores, labelled, pi, disagree, alpha, 1, grid)
        )
    elif level <= 0:
        choice = nothing
    elif stratified:
        # several inclusion probabilities (after a certificate without one sample drawn
        # alike; or a cascade's first tier, whose pairs reached humans through a later
        # tier's routing): the stratified test
        choice = certify_high_probability(
            scores, labelled, pi, disagree, alpha, level, 5, grid, draw
        )
    else:
        if sample is not None and certified < NEVER:
            labelled = sample  # the extension's sample drawn alike (``uniform_sample``)
            read = int(sample.sum())
        if history is not None and (len(history) != looks or (history and not sequence)):
            history = None  # looks taken before the history was kept: each at its own level
        if history is not None:
            # the group-sequential test of the phase's one fixed sequence, made at its
            # first look
            fixed = (
                list(sequence) if history and sequence else fixed_sequence(scores, labelled, floor)
            )
            allowed = (history[-1][1] if history else 0.0) + level
            choice = certify_planned(
                scores, labelled, disagree, alpha, level, fixed, history, allowed, tiers
            )
            evidence, kept = scores[labelled], tuple(fixed)
        else:
            choice = certify_planned(scores, labelled, disagree, alpha, level, grid, tiers=tiers)
    if choice.threshold >= certified:
        choice = nothing  # a certificate is never withdrawn by a look, only by drift
    return Look(
        True, level, choice, len(scores), n_lab, evidence=evidence, sequence=kept,
        allowed=allowed, read=read,
    )  # fmt: skip
