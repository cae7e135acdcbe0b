"""The labeling loop without the I/O: rounds, routing, human answers, calibration and
re-checks on plain values. Pure (numpy through ``calibration``).

It is what the property tests run over many simulated worlds and what
``bench/calibration_bench.py`` replays real verdicts through; ``labeler`` itself runs the
same ``routing`` and ``calibration`` functions against its SQLite state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from labeler import calibration as cal
from labeler import planned, split
from labeler.config import LAST_TIER_SHARE, split_delta
from labeler.routing import (
    CERTIFIED,
    ESCALATE,
    PREDICTION_RATE,
    PROVISIONAL,
    RECHECK,
    REVIEW,
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


PRICES = (0.0003, 0.005, 0.50)  # per pair: a cheap judge, a strong judge, a human


@dataclass(frozen=True)
class Settings:
    alpha: float = 0.15
    delta: float = 0.1
    guarantee: str = "high_probability"
    per_round: int = 100
    cold_threshold: float = 0.8
    cold_audit_rate: float = 0.3
    calibration_rate: float = 0.4  # the planned procedure's calibration sample rate
    audit_rate: float = 0.02  # the drift watch (routing.audit_rate)
    provisional_audit_rate: float = 0.3
    min_labels: int = 30
    min_count: int = 20
    fit_share: float = 0.2
    learn: bool = True
    start_from_fit: bool = True  # False: the sequence starts at the top (before fit_start)
    drift: str = "sequential"  # "fixed": the drift watch before issue 17 (the benchmark)
    sequential: bool = True  # False: each look at its own level (Bonferroni; the benchmark)
    # False: a certificate is extended with the stratified test (as before it was extended
    # on the sample drawn alike, ``planned.uniform_sample``; the benchmark)
    drawn_alike: bool = True


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
    tier_judged: list[int] = field(default_factory=list)  # pairs each judge tier judged
    shares: tuple[float, ...] = ()  # a cascade's split of delta between its tiers
    tier_certified: list[int] = field(default_factory=list)  # certified by each tier
    tier_agreement: list[float | None] = field(default_factory=list)  # of each tier's certified

    @property
    def coverage(self) -> float:
        return self.certified / self.pairs if self.pairs else 0.0

    @property
    def humans_needed(self) -> int:
        return self.human_labels + self.provisional

    @property
    def savings_factor(self) -> float:
        return self.pairs / self.humans_needed if self.humans_needed else float("inf")


def judged_pairs(
    rng: np.random.Generator,
    is_a: np.ndarray,
    reported: np.ndarray,
    p_agree: np.ndarray,
    high_share: np.ndarray,
) -> list[SimPair]:
    """A simulated judge's pairs: it says A where ``is_a``, reports ``reported`` (as
    confidence and verdict probability, HIGH share ``high_share``) and is right with
    probability ``p_agree``; the reviewer answers the truth."""
    out = []
    for a, r, p, h in zip(is_a, reported, p_agree, high_share, strict=True):
        label, other = ("A", "B") if a else ("B", "A")
        human = label if rng.random() < p else other
        out.append(SimPair(cal.Signals(label, float(r), float(h), float(r)), human, float(p)))
    return out


def gpt4_class_world(rng: np.random.Generator, n: int) -> list[SimPair]:
    """A GPT-4-class judge as issue 17 measured one, probabilities saturated as real
    logprobs are: about half of the pairs above 0.995, right 92% of the time there; 80%
    on the next quarter (about 88% over the top three quarters); 68% below."""
    u = rng.random(n)
    reported = np.where(
        u < 0.54,
        1 - 10 ** rng.uniform(-6, -2.31, n),
        np.where(u < 0.78, rng.uniform(0.9, 0.995, n), rng.uniform(0.55, 0.9, n)),
    )
    p = np.where(u < 0.54, 0.92, np.where(u < 0.78, 0.80, 0.68))
    return judged_pairs(rng, rng.random(n) < 0.5, reported, p, np.ones(n))


def true_agreement(p: SimPair) -> float:
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
    return run_cascade([pairs], s, seed)


def run_cascade(
    tiers: Sequence[Sequence[SimPair]],
    s: Settings,
    seed: int = 0,
    shares: Sequence[float] | None = None,
) -> Outcome:
    """``run_loop`` with a cascade of judges: ``tiers[k][i]`` is what judge ``k`` says of
    pair ``i`` (the human answer is the same in every tier). A pair goes to the first
    tier; what a tier cannot accept (``routing.ESCALATE_REASONS``) goes to the next; what
    the last cannot accept, and every audit draw, goes to humans. Each tier is calibrated
    on the pairs it judged, weighted by their final chance of reaching a human, at
    ``delta * shares[k]`` (default: ``Config.delta_shares``' split, the last tier taking
    ``LAST_TIER_SHARE``): the guarantee covers the union of what
    all tiers accept."""
    pairs = tiers[0]
    n, k_tiers = len(pairs), len(tiers)
    rng = np.random.default_rng(seed)
    draws = rng.random(n)
    fit = rng.random(n) < s.fit_share
    # each tier draws its audits independently (the first as run_loop always has)
    draws = np.vstack([draws, rng.random((k_tiers - 1, n))])
    cold = Thresholds(
        s.cold_threshold,
        s.cold_threshold,
        0,
        None,
        s.audit_rate,
        provisional_audit_rate=s.cold_audit_rate,
        guarantee=s.guarantee,
    )
    ts = [cold] * k_tiers
    items: list[list[cal.Judged]] = [[] for _ in tiers]
    accepted: dict[int, tuple[int, str]] = {}  # index -> (tier, status), still standing
    out = Outcome(pairs=n)
    out.tier_judged = [0] * k_tiers
    before: list[tuple[tuple[float, ...] | None, int]] = [(None, 0)] * k_tiers
    previous = [cal.NEVER] * k_tiers
    for start in range(0, n, s.per_round):
        for i in range(start, min(start + s.per_round, n)):
            _route_through(tiers, ts, i, draws, bool(fit[i]), items, accepted, out)
        for k in range(k_tiers):
            alpha, delta, guarantee = s.alpha, s.delta, s.guarantee
            delta *= shares[k] if shares is not None else split_delta([0.0] * k_tiers)[k]
            if k < k_tiers - 1:  # a tier that is not the last, as in the real loop
                alpha, delta, guarantee = planned.earlier_tier_test(alpha, delta, guarantee)
            c = cal.calibrate(
                items[k],
                alpha,
                delta,
                guarantee=guarantee,
                min_labels=s.min_labels,
                min_count=s.min_count,
                learn=s.learn,
                previous=before[k],
                previous_certified=previous[k],
                start_from_fit=s.start_from_fit,
            )
            if c is None:
                continue
            before[k], previous[k] = (c.weights, c.fitted_on), c.certified
            ts[k] = _thresholds(c, ts[k].version + 1, s)
            _recheck(tiers[k], ts[k], k, accepted, out)
        out.history.append(
            {
                "round": start // s.per_round + 1,
                "certified": sum(st == CERTIFIED for _, st in accepted.values()),
                "threshold": ts[0].certified_a,
                "proposal": ts[0].a,
            }
        )
    certified = []
    for i, (k, st) in accepted.items():
        sc = cal.score(tiers[k][i].signals, ts[k].weights)
        if st == CERTIFIED:
            certified.append(i)
            if sc < ts[k].certified_for(tiers[k][i].signals.label or "A"):
                out.invariant_broken += 1
    out.certified = len(certified)
    out.tier_certified = [sum(1 for i in certified if accepted[i][0] == k) for k in range(k_tiers)]
    out.final_weights = ts[0].weights
    out.provisional = len(accepted) - len(certified)
    if certified:
        out.agreement = float(
            np.mean([true_agreement(tiers[accepted[i][0]][i]) for i in certified])
        )
    return out


def _route_through(
    tiers: Sequence[Sequence[SimPair]],
    ts: list[Thresholds],
    i: int,
    draws: np.ndarray,
    fit: bool,
    items: list[list[cal.Judged]],
    accepted: dict[int, tuple[int, str]],
    out: Outcome,
) -> None:
    """Route pair ``i`` down the cascade. Every tier that judged it gets the same evidence:
    the final routing's chance of reaching a human, and the answer if it did."""
    pending: list[int] = []
    for k, tier in enumerate(tiers):
        d = route_signals(tier[i].signals, ts[k], float(draws[k, i]), k == len(tiers) - 1)
        out.tier_judged[k] += 1
        pending.append(k)
        if d.action == ESCALATE:
            continue
        sampled = d.action == REVIEW
        human = tier[i].human if sampled else None
        for j in pending:
            items[j].append(
                cal.Judged(tiers[j][i].signals, d.pi, sampled, human, fit, float(draws[k, i]))
            )
        if sampled:
            out.human_labels += 1
        else:
            accepted[i] = (k, d.status or PROVISIONAL)
        return


def _recheck(
    tier: Sequence[SimPair],
    t: Thresholds,
    k: int,
    accepted: dict[int, tuple[int, str]],
    out: Outcome,
) -> None:
    mine = [i for i, (kk, _) in accepted.items() if kk == k]
    scores = cal.scores_of([tier[i].signals for i in mine], t.weights)
    for i, sc in zip(mine, scores, strict=True):
        status = status_of(float(sc), tier[i].signals.label, t)
        if status == RECHECK:
            del accepted[i]
            out.rechecked += 1
            out.human_labels += 1
        else:
            accepted[i] = (k, status)


def _drifted(audits: Sequence[bool], s: Settings) -> bool:
    """The drift watch (``calibration.drifted``); ``s.drift = "fixed"``: the one before
    issue 17, a Clopper-Pearson bound re-read at every sync (false alarms far more often
    than delta over a project), kept to measure against."""
    if s.drift != "fixed":
        return cal.drifted(audits, s.alpha, s.delta)
    n = len(audits)
    return n > 0 and 1 - cal.cp_lower(n - sum(audits), n, s.delta) < 1 - s.alpha


class PlannedRun:
    """One run of the planned procedure (``run_planned``): where it stands — the
    certificate (NEVER: none yet), the looks taken and the share of delta they spent, the
    drift watch's audits, each pair's chance of reaching a human in this calibration phase
    (NaN: not in it) — and the pairs waiting and certified."""

    def __init__(
        self, pairs: Sequence[SimPair], s: Settings, seed: int, draws: np.ndarray | None = None
    ) -> None:
        self.pairs, self.s = pairs, s
        n = len(pairs)
        self.draws = np.random.default_rng(seed).random(n) if draws is None else draws
        self.scores = cal.scores_of([p.signals for p in pairs], None)
        self.disagree = np.array([p.human != p.signals.label for p in pairs])
        self.pi = np.full(n, np.nan)
        self.after = np.zeros(n, bool)  # routed after the phase's certificate
        self.certified_at = cal.NEVER
        self.looks, self.spent, self.futile = 0, 0.0, False
        self.audits: list[bool] = []
        self.history: list[tuple[np.ndarray, float]] = []  # the group-sequential looks
        self.sequence: tuple[float, ...] | None = None  # and the phase's fixed sequence
        self.waiting: list[int] = []
        self.certified: list[int] = []
        self.out = Outcome(pairs=n)
        # a cascade's union test (``labeler.union``): every tier's adjusted scores and
        # disagreements (K x n); None: one judge
        self.tiers: tuple[np.ndarray, np.ndarray] | None = None

    def route(self, i: int) -> tuple[float, bool, float]:
        """Route pair ``i``: (its chance of reaching a human, whether it did, its draw)."""
        s, out = self.s, self.out
        if self.futile or self.scores[i] <= 0 or self.scores[i] < s.cold_threshold:
            out.human_labels += 1
            return 1.0, True, float(self.draws[i])
        above = self.scores[i] >= self.certified_at
        self.after[i] = self.certified_at < cal.NEVER
        self.pi[i] = s.audit_rate if above else s.calibration_rate
        if self.draws[i] < self.pi[i]:
            out.human_labels += 1
            if above:
                self.audits.append(not self.disagree[i])  # the drift watch's audit
        else:
            (self.certified if above else self.waiting).append(i)
        return float(self.pi[i]), bool(self.draws[i] < self.pi[i]), float(self.draws[i])

    def watch_drift(self) -> None:
        """The certificate ends on drift: every pair it accepted and every pair waiting
        goes to humans (as in the real loop), and a new phase begins."""
        if self.certified_at >= cal.NEVER or not _drifted(self.audits, self.s):
            return
        back = len(self.certified) + len(self.waiting)
        self.out.human_labels += back
        self.out.rechecked += back
        self.certified.clear()
        self.waiting.clear()
        self.pi[:] = np.nan
        self.after[:] = False
        self.certified_at, self.looks, self.spent, self.audits = cal.NEVER, 0, 0.0, []
        self.history, self.sequence = [], None

    def look(self, final: bool) -> None:
        idx = np.nonzero(~np.isnan(self.pi))[0]
        if not len(idx):
            return
        pi, draws = self.pi[idx], self.draws[idx]
        after = self.after[idx]
        rate = planned.thinning_rate(min(self.s.audit_rate, self.s.calibration_rate), pi[after])
        look = planned.plan_look(
            self.scores[idx],
            draws < pi,
            self.disagree[idx],
            self.s.alpha,
            self.s.delta,
            looks=self.looks,
            spent=self.spent,
            floor=self.s.cold_threshold,
            pi=pi,
            guarantee=self.s.guarantee,
            final=final,
            certified=self.certified_at,
            draw=draws,
            history=self.history if self.s.sequential else None,
            sequence=self.sequence,
            sample=planned.uniform_sample(draws < pi, after, draws, rate)
            if self.s.drawn_alike
            else None,
            tiers=None if self.tiers is None else (self.tiers[0][:, idx], self.tiers[1][:, idx]),
        )
        if look.futile:  # the judge is out: its pairs go to humans from now on
            self.out.human_labels += len(self.waiting)
            self.out.rechecked += len(self.waiting)
            self.waiting.clear()
            self.pi[:] = np.nan
            self.futile = True
            return
        if not look.taken:
            return
        self.looks, self.spent = self.looks + 1, self.spent + look.level
        if look.evidence is not None:
            self.history.append((look.evidence, look.allowed))
            self.sequence = look.sequence
        if look.choice.threshold >= self.certified_at:
            return
        self.certified_at = look.choice.threshold
        still: list[int] = []
        for i in self.waiting:
            (self.certified if self.scores[i] >= self.certified_at else still).append(i)
        self.waiting = still

    def play(self, finish: bool) -> Outcome:
        """The rounds: each routes its pairs, then the drift watch and a look; ``finish``:
        a final look, then every pair still waiting goes to humans."""
        s, out = self.s, self.out
        for start in range(0, len(self.scores), s.per_round):
            for i in range(start, min(start + s.per_round, len(self.scores))):
                self.route(i)
            self.watch_drift()
            self.look(final=False)
            out.history.append(
                {
                    "round": start // s.per_round + 1,
                    "certified": len(self.certified),
                    "threshold": self.certified_at,
                }
            )
        if finish:
            self.look(final=True)
            out.human_labels += len(self.waiting)
            self.waiting.clear()
        return out


def run_planned(
    pairs: Sequence[SimPair],
    s: Settings,
    seed: int = 0,
    finish: bool = True,
    draws: np.ndarray | None = None,
) -> Outcome:
    """The loop with the planned procedure: every pair the judge could accept (eligible,
    score >= ``cold_threshold``) joins the calibration phase; below the certificate (all
    of them before there is one) it is sampled for humans at ``calibration_rate`` and
    otherwise waits, above it it is accepted, audited at ``audit_rate`` for drift. After
    each round a look tests the phase once it holds enough labels: first to certify, then
    to extend the certificate downwards. ``finish``: after the last round, a final look
    with what is left of delta, then every pair still waiting goes to humans. ``draws``:
    each pair's sampling draw (default: drawn from ``seed``), e.g. the real loop's."""
    run = PlannedRun(pairs, s, seed, draws)
    out = run.play(finish)
    out.certified = len(run.certified)
    out.provisional = len(run.waiting)
    out.invariant_broken = sum(1 for i in run.certified if run.scores[i] < run.certified_at)
    if run.certified:
        out.agreement = float(np.mean([true_agreement(pairs[i]) for i in run.certified]))
    return out


def run_planned_cascade(
    tiers: Sequence[Sequence[SimPair]],
    s: Settings,
    seed: int = 0,
    shares: tuple[float, float] | None = None,
    draws: tuple[np.ndarray, np.ndarray] | None = None,
    prices: tuple[float, float, float] = PRICES,
    predict_draws: np.ndarray | None = None,
) -> Outcome:
    """The planned procedure with a cascade of two judges (``tiers[k][i]``: what judge k
    says of pair i), as the real loop runs it: until the cheap tier is certified it judges
    only its calibration sample (the strong tier's draw below ``calibration_rate``,
    ``routing.calibration_draw``) and passes every pair on; once certified it accepts
    what its certificate covers (audited at ``audit_rate``) and passes the rest on. The
    strong tier runs ``run_planned``'s loop on what reaches it. The cheap tier's evidence
    is each pair's final chance of reaching a human (its own audit rate, or the strong
    tier's routing; in its calibration sample, given that it is in it:
    ``planned.given_sample``), tested with its own test (``planned.earlier_tier_test``),
    group-sequential while its labels are uniform; each tier spends its share of delta:
    ``shares``, or (None) the split ``split.predict_shares`` predicts from the prediction
    set at ``prices`` (cheap judge, strong judge, human, per pair), as the real loop fixes
    it at the end of the first round whose prediction set suffices
    (``thresholds.fix_predicted_split``), or (the fixed split) at the first calibration
    where a look could be due (``split.may_wait``): the pairs whose ``predict_draws``
    (``routing.prediction_draw``; default: drawn from ``seed``) is below
    ``routing.PREDICTION_RATE``, which the cheap tier judges while the split is pending,
    whether in its sample or not (outside it, for the prediction only). A tier with no
    share judges nothing after that. The cheap tier has no drift watch
    here (the real loop's watches each tier's certified pairs). ``draws``: each tier's
    audit draw per pair (default: drawn from ``seed``), e.g. the real loop's."""
    cheap, strong_pairs = tiers
    n = len(strong_pairs)
    strong = PlannedRun(strong_pairs, s, seed, None if draws is None else draws[1])
    draw0 = np.random.default_rng(seed + 1).random(n) if draws is None else draws[0]
    pdraw = np.random.default_rng(seed + 2).random(n) if predict_draws is None else predict_draws
    predicting = shares is None and s.guarantee == "high_probability"
    score0 = cal.scores_of([p.signals for p in cheap], None)
    disagree0 = np.array([p.human != p.signals.label for p in cheap])
    pi0, seen0 = np.full(n, np.nan), np.full(n, np.nan)
    labelled0 = np.zeros(n, bool)
    cert0, looks0, spent0, futile0, judged0 = cal.NEVER, 0, 0.0, False, 0
    history0: list[tuple[np.ndarray, float]] = []  # its group-sequential looks
    sequence0: tuple[float, ...] | None = None
    accepted0: list[int] = []
    audits0 = 0
    common: list[int] = []  # the first round's prediction set (both tiers judged it)
    alpha0, delta0, guarantee0 = s.alpha, 0.0, s.guarantee

    def fix_shares(final: bool) -> bool:
        """Fix the split (True), or use the fixed one and leave it pending (False) while
        the prediction set is too small and no look could be due (``split.may_wait``)."""
        nonlocal alpha0, delta0, guarantee0, futile0
        chosen: tuple[float, ...] | None = shares
        fixed = True
        if predicting:
            at = np.array(common, int)
            floor = s.cold_threshold
            terms = split.Terms(n, s.calibration_rate, s.audit_rate, s.alpha, s.delta, prices[2])
            pred = split.predict_shares(
                [np.where(x[at] >= floor, x[at], 0.0) for x in (score0, strong.scores)],
                prices[:2],
                terms,
            )
            chosen = None if pred is None else pred.shares
            labels = strong.out.human_labels + audits0
            fixed = pred is not None or final or not split.may_wait(labels, s.alpha, s.delta)
        if chosen is None:  # the fixed split (``config.split_delta``)
            chosen = (1 - LAST_TIER_SHARE, LAST_TIER_SHARE)
        strong.s = dataclasses.replace(s, delta=s.delta * chosen[1])
        alpha0, delta0, guarantee0 = planned.earlier_tier_test(
            s.alpha, s.delta * chosen[0], s.guarantee
        )
        futile0 = futile0 or chosen[0] <= 0
        strong.out.shares = tuple(chosen) if fixed else ()
        return fixed

    def look0(final: bool) -> None:
        nonlocal cert0, looks0, spent0, futile0, sequence0
        idx = np.nonzero(~np.isnan(pi0))[0]
        if not len(idx) or futile0:
            return
        look = planned.plan_look(
            score0[idx], labelled0[idx], disagree0[idx], alpha0, delta0,
            looks=looks0, spent=spent0, floor=s.cold_threshold, pi=pi0[idx],
            guarantee=guarantee0, final=final, certified=cert0, draw=seen0[idx],
            history=history0 if s.sequential else None, sequence=sequence0,
        )  # fmt: skip
        futile0 = look.futile
        if look.taken:
            looks0, spent0 = looks0 + 1, spent0 + look.level
            if look.evidence is not None:
                history0.append((look.evidence, look.allowed))
                sequence0 = look.sequence
            cert0 = min(cert0, look.choice.threshold)

    rate, fixed = s.calibration_rate, False
    for start in range(0, n, s.per_round):
        for i in range(start, min(start + s.per_round, n)):
            in_sample = cert0 >= cal.NEVER
            predicted = predicting and not fixed and pdraw[i] < PREDICTION_RATE
            if futile0 or (in_sample and strong.draws[i] >= rate):
                if predicted and not futile0:  # judged for the split's prediction only
                    judged0 += 1
                    common.append(i)
                strong.route(i)
                continue
            judged0 += 1
            if predicted:
                common.append(i)
            fits = score0[i] > 0 and score0[i] >= s.cold_threshold
            if fits and score0[i] >= cert0:
                pi0[i], seen0[i], labelled0[i] = s.audit_rate, draw0[i], draw0[i] < s.audit_rate
                if labelled0[i]:
                    audits0 += 1
                else:
                    accepted0.append(i)
                continue
            pi, labelled, draw = strong.route(i)
            if in_sample:
                pi, draw = planned.given_sample(pi, draw, rate)
            if fits:
                pi0[i], labelled0[i], seen0[i] = pi, labelled, draw
        if not fixed:
            fixed = fix_shares(final=False)
        strong.watch_drift()
        if fixed:  # no look while the split is pending (not even for futility)
            look0(final=False)  # the real loop calibrates its tiers in order, the first first
            strong.look(final=False)
        strong.out.history.append(
            {"round": start // s.per_round + 1, "first": cert0, "threshold": strong.certified_at}
        )
    if not fixed:
        fix_shares(final=True)
    look0(final=True)
    strong.look(final=True)
    out = strong.out
    out.human_labels += len(strong.waiting) + audits0
    strong.waiting.clear()
    certified = [(1, i) for i in strong.certified] + [(0, i) for i in accepted0]
    out.certified = len(certified)
    out.tier_judged = [judged0, n - len(accepted0) - audits0]
    out.tier_certified = [len(accepted0), len(strong.certified)]
    out.invariant_broken = sum(1 for i in accepted0 if score0[i] < cert0) + sum(
        1 for i in strong.certified if strong.scores[i] < strong.certified_at
    )
    if certified:
        out.agreement = float(np.mean([true_agreement(tiers[k][i]) for k, i in certified]))
    out.tier_agreement = [
        float(np.mean([true_agreement(tiers[k][i]) for i in mine])) if mine else None
        for k, mine in enumerate((accepted0, strong.certified))
    ]
    return out
