"""Human parity (issue 18, ``calibration.quality = "human_parity"``): the judge agrees with
a reviewer at least as often as two reviewers agree with each other, minus
``calibration.parity_margin``. The statistic (``parity_z``), the betting test that
certifies a region (``certify_parity``), the drift watch (``parity_drifted``) and the look
of the planned procedure under parity (``parity_look``, at the milestones and shares of
delta ``labeler.planned`` schedules). Why this is the claim and why the test holds: the
``labeler.calibration`` docstring, "What agree with humans means". Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labeler.calibration import NEVER, Choice, cp_lower
from labeler.planned import START_SHARE, Look, look_due, look_level, plan_grid


def parity_z(judge: str | None, first: str, second: str) -> float:
    """The parity statistic of one pair two reviewers decided: how often the judge agrees
    with a reviewer, minus whether the reviewers agree with each other,
    ``Z = (1[j = h1] + 1[j = h2]) / 2 - 1[h1 = h2]`` in [-1, 1]. Labels compare as given
    (a judge TIE agrees with a human tie; "both bad" agrees only with "both bad")."""
    return ((judge == first) + (judge == second)) / 2 - float(first == second)


BET_CAP = 0.5  # a bet never stakes more than this share of what a loss could cost
PARITY_FLOOR = 0.5  # reviewers must agree more often than this (a coin toss on A/B)
PARITY_ALPHA = 0.15  # looks under human parity come at the milestones of this target


def betting_rejects(x: np.ndarray, m0: float, lo: float, delta: float) -> bool:
    """Test of H: E[x] <= ``m0`` for draws ``x`` in [``lo``, 1], taken i.i.d. in the given
    order (an order independent of their values), by betting (Waudby-Smith & Ramdas 2023):
    the capital ``prod(1 + lambda_t (x_t - m0))`` with each stake ``lambda_t`` in [0,
    ``BET_CAP`` / (m0 - lo)] chosen from the draws before t only (aGRAPA: the running mean
    gain over its second moment) is a nonnegative supermartingale under H, so by Ville's
    inequality it ever reaches 1/delta with probability at most delta: H is rejected when
    it does. Valid for any number of draws and however the stakes were chosen."""
    cap = BET_CAP / (m0 - lo)
    capital, mean, second = 1.0, 0.0, 0.25
    bar = 1.0 / delta
    for n, v in enumerate(x.tolist(), 1):
        gain = mean - m0
        stake = min(max(gain / (second + gain * gain), 0.0), cap) if n > 1 else 0.0
        capital *= 1.0 + stake * (v - m0)
        if capital >= bar:
            return True
        mean += (v - mean) / n
        second += ((v - m0 - gain) ** 2 - second) / (n + 1)
    return False


def certify_parity(
    scores: np.ndarray,
    z: np.ndarray,
    margin: float,
    delta: float,
    grid: Sequence[float],
    order: np.ndarray | None = None,
    hh: np.ndarray | None = None,
) -> Choice:
    """The lowest threshold of the fixed sequence ``grid`` (highest first) whose region
    shows human parity: H: E[Z] < -``margin`` over the region's pairs (``parity_z``; NaN
    where the pair has no two-reviewer evidence) rejected by ``betting_rejects`` at
    ``delta``. Every pair had the same chance of carrying evidence (the calibration rate
    times ``review.double_share``, drawn independently of its content), so the evidence
    of a region is a uniform sample of it; ``order`` (the pairs' sampling draws) fixes
    the order the bets are placed in, independently of the values. The sequence begins at
    the highest threshold whose region holds ``START_SHARE`` of the evidence (counts
    only) and stops at the first region that is not rejected. ``hh``: whether the pair's
    two reviewers agreed; a region passes only if they agree more often than
    ``PARITY_FLOOR`` (exact lower bound at ``delta``): reviewers no better than a coin
    toss make any judge "at parity", and that is no evidence of quality. (The floor is a
    second condition, not a second claim: it only ever refuses.)"""
    best = Choice(NEVER, 0, 0, None)
    has = ~np.isnan(z)
    idx = np.nonzero(has)[0]
    if order is not None:
        idx = idx[np.argsort(order[idx], kind="stable")]
    total = len(idx)
    if total == 0:
        return best
    ev_scores, ev_z = scores[idx], z[idx]
    ev_hh = np.ones(len(idx), bool) if hh is None else hh[idx]  # None: no floor
    started = False
    for lam in grid:
        inside = ev_scores >= lam
        n = int(inside.sum())
        if not started:
            if n < START_SHARE * total:
                continue
            started = True
        zz = ev_z[inside]
        agree = int(ev_hh[inside].sum())
        if cp_lower(agree, n, delta) <= PARITY_FLOOR or not betting_rejects(
            zz, -margin, -1.0, delta
        ):
            break
        # for parity, "disagreements" are the pairs where the judge did worse than the
        # reviewers did with each other (Z < 0), the estimate is the gap -mean(Z)
        start_at = best.start if best.start < NEVER else float(lam)
        best = Choice(float(lam), n, int((zz < 0).sum()), -float(zz.mean()), start_at)
    return best


def parity_drifted(z: Sequence[float], margin: float, delta: float) -> bool:
    """The drift watch under human parity: do the certified pairs' two-reviewer audits
    show, at confidence 1 - delta, that the judge fell below parity (H: E[Z] >= -margin
    rejected by betting on -Z)?"""
    if not len(z):
        return False
    return betting_rejects(-np.asarray(z, float), margin, -1.0, delta)


def parity_look(
    scores: np.ndarray,
    labelled: np.ndarray,
    parity: np.ndarray,
    agree: np.ndarray | None,
    delta: float,
    looks: int,
    spent: float,
    floor: float,
    final: bool,
    certified: float,
    draw: np.ndarray | None,
    margin: float,
) -> Look:
    """``planned.plan_look`` under human parity (``calibration.quality =
    "human_parity"``): ``parity``, each pair's ``parity_z``, NaN where it has no
    two-reviewer evidence (``agree``: whether its two reviewers agreed, for
    ``PARITY_FLOOR``); looks come at the milestones of the evidence count (as the
    binomial test's would at ``PARITY_ALPHA``) and test ``certify_parity``. After a
    certificate a look tests only the pairs below it (all sampled at the calibration
    rate): a band that shows parity by itself extends the certificate, since the union of
    two regions each at parity is at parity. There is no futility stop (pairs wait until
    the project's end)."""
    z = np.where(labelled, parity, np.nan)
    evidence = int((~np.isnan(z)).sum())
    nothing = Choice(NEVER, 0, 0, None)
    # the milestones of the binomial test at the parity margin's scale: counts only
    due = final or look_due(evidence, spent, PARITY_ALPHA, delta)
    if not due or evidence == 0:
        return Look(False, 0.0, nothing, len(scores), evidence)
    level = look_level(delta, spent, evidence, PARITY_ALPHA, final)
    band = scores < certified  # before a certificate: every pair
    grid = plan_grid(scores[band], floor)
    choice = (
        certify_parity(
            scores[band],
            z[band],
            margin,
            level,
            grid,
            None if draw is None else draw[band],
            None if agree is None else agree[band],
        )
        if level > 0
        else nothing
    )
    if choice.threshold >= certified:
        choice = nothing
    return Look(True, level, choice, len(scores), evidence)
