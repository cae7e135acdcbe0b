"""The thresholds in force, and recalibrating them from human verdicts (orchestration).

``current`` gives the thresholds the next round routes with: the configured cold-start
rule (``routing.threshold``, a HIGH self-report required, the cold-start audit rate) until
the audit sample holds ``calibration.min_labels`` human verdicts, then the latest version
chosen by ``labeler.calibration``. ``recalibrate`` runs after every sync (and on
``labeler calibrate``). The maths is
in ``calibration``; this module only reads the state and writes new versions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from labeler import calibration as cal
from labeler import looks, planned, split, terms, union_loop, versions
from labeler.agreement import parity_evidence
from labeler.config import Config
from labeler.errors import ConfigError
from labeler.parity import parity_drifted
from labeler.routing import (
    CERTIFIED,
    PROVISIONAL,
    RECHECK,
    Thresholds,
    audit_draw,
    in_prediction_set,
    status_of,
)
from labeler.store import Store
from labeler.summary import terms_notice
from labeler.terms import asked_terms, claimed_terms


@dataclass
class Recalibration:
    previous: dict[str, Any]
    current: dict[str, Any]
    changed: bool
    drift: bool
    sample: int  # human verdicts that are evidence (sampled and decided)
    min_labels: int
    message: str
    calibrated: dict[str, Any] | None = None
    reliability: list[tuple[float, float, int]] = field(default_factory=list)
    ece: float | None = None
    guarantee: str = "high_probability"
    quality: str = "absolute"  # calibration.quality: absolute | human_parity
    rechecked: int = 0  # judge-accepted pairs sent back to humans now
    certified: int = 0  # judge-accepted pairs the thresholds in force certify
    provisional: int = 0  # judge-accepted pairs waiting for evidence
    tiers: list[dict[str, Any]] = field(default_factory=list)  # each tier's, when several
    target: float = 0.0  # calibration.target_agreement, for the guarantee said in words
    confidence: float = 0.0  # calibration.confidence
    # [target, confidence] a certificate in force was tested at, when weaker than the
    # config's (raised since): what its labels are guaranteed (the weakest, with tiers)
    tested_at: list[float] | None = None
    # [target, confidence] this calibration phase tests at, fixed at its first look, when
    # not the config's (changed since: applies from the next phase)
    phase_terms: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cold_start(cfg: Config) -> Thresholds:
    """Before any evidence: HIGH verdicts at ``routing.threshold`` are accepted
    provisionally (audited at the cold-start rate); nothing is certified."""
    t = cfg.routing.threshold
    return Thresholds(
        t,
        t,
        0,
        None,
        cfg.routing.audit_rate,
        cal.NEVER,
        cal.NEVER,
        cfg.calibration.cold_start_audit_rate,
        cfg.calibration.guarantee,
    )


def current(store: Store, cfg: Config, tier: int = 0) -> Thresholds:
    """The thresholds tier ``tier`` routes with next (each tier has its own versions; a
    panel's judge version starts from cold start, never from an older version's). A
    cascade's tier with no share of delta (``tier_shares``; planned procedure) can never
    be certified: it accepts nothing, so it judges nothing (``routing.sample_only_rate``)."""
    if union_loop.is_union(store, cfg):  # one set for the cascade, in the last tier's slot
        return union_loop.with_phase_rate(store, _latest(store, cfg, len(cfg.judges) - 1))
    found = _latest(store, cfg, tier)
    planned = cfg.calibration.procedure == "planned"
    shares = split_shares(fixed_split(store), cfg) if len(cfg.judges) > 1 and planned else None
    if shares and shares[tier] <= 0:
        return replace(found, a=cal.NEVER, b=cal.NEVER)  # never certified: see tier_shares
    return found


def _latest(store: Store, cfg: Config, tier: int) -> Thresholds:
    judge_version = _judge_version(store, cfg, tier)
    row = store.latest_thresholds(tier)
    if row is None:
        return replace(cold_start(cfg), judge_version=judge_version)
    if row["params"]:
        found = Thresholds.from_params(json.loads(row["params"]))
        if found.judge_version != judge_version:
            # a new calibration phase: its evidence is what was routed from the version
            # in force now on (a judge version used before, A -> B -> A, does not reuse
            # its first stint's labels or looks, which spent their own delta)
            return replace(
                cold_start(cfg),
                version=found.version,
                judge_version=judge_version,
                phase=found.version,
            )
        return found
    if judge_version:  # (a version written before certification, another judge's)
        return replace(cold_start(cfg), version=row["version"], judge_version=judge_version)
    # a version written before certification existed: its thresholds were certified
    weights = tuple(json.loads(row["weights"])) if row["weights"] else None
    return Thresholds(
        row["a"], row["b"], row["version"], weights, row["audit_rate"], row["a"], row["b"]
    )


def _judge_version(store: Store, cfg: Config, tier: int) -> str:
    """The panel tier's current judge version; a single judge's stint
    (``versions.stint``: "" for the project's first judge)."""
    if cfg.judges[tier].panel <= 1:
        return versions.stint(store) if tier == 0 else ""
    version = versions.latest(store, tier)
    return "" if version is None else version.hash


def _of_version(store: Store, cfg: Config, tier: int) -> Callable[[Any], bool]:
    """Which verdict rows are evidence for the tier's current judge version: made by it,
    and not one of the pairs it shows as examples; without a panel, made in the judge's
    current stint (all rows while the project's first judge judges)."""
    if cfg.judges[tier].panel <= 1:
        name = _judge_version(store, cfg, tier)
        if not name:
            return lambda row: True
        return lambda row: json.loads(row["signals"]).get("judge_version", "") == name
    version = versions.latest(store, tier)
    name = "" if version is None else version.hash
    shown = frozenset() if version is None else version.example_ids
    return lambda row: (
        row["pair_id"] not in shown and json.loads(row["signals"]).get("judge_version") == name
    )


def judged(
    store: Store, cfg: Config, tier: int = 0, prediction: bool = False
) -> list[tuple[Any, cal.Judged]]:
    """Every pair tier ``tier`` routed, in routing order, as calibration weighs it: its
    inclusion probability and sampling as stored when it was finally routed (verdicts
    stored before they were kept: re-derived from the round's audit rate), its human
    decision unless the judge's verdict was shown to the reviewer. A pair the tier passed
    on to the next tier carries this tier's signals and the final routing's chance of
    reaching a human; one the tier judged as part of its calibration sample, drawn with
    the last tier's draw (``routing.calibration_draw``; the tier whose draw it was is
    stored with it) and finally routed by that tier, its chance given that it was in the
    sample (``planned.given_sample``). A pair an earlier tier judged only for its
    cascade's split (``routing.prediction_draw``) is no evidence: left out unless
    ``prediction``."""
    out = []
    share = cfg.calibration.fit_share
    # each round's settings, parsed once (rounds are few, verdicts many)
    rounds = {rid: json.loads(text) for rid, text in store.round_settings().items()}
    evidence = _of_version(store, cfg, tier)
    for row in store.routed_verdicts(tier):
        if not evidence(row):
            continue
        round_t = rounds[row["round_id"]]
        if row["pi"] is not None:
            pi, sampled = float(row["pi"]), bool(row["sampled"])
        else:
            rate = float(round_t.get("audit_rate", cfg.routing.audit_rate))
            # pairs sent to humans after routing (a re-check, a reward model's or the
            # fact-check's flag) were not drawn: not evidence
            later = ("recheck", "rm_disagrees", "chosen_has_errors", "fact_check_failed")
            sampled = row["reason"] != "confident" and row["reason"] not in later
            pi = rate if row["reason"] in ("audit", "confident", *later) else 1.0
        human = row["human"] if sampled and not row["hint"] else None
        seed = round_t.get("seed")
        draw_tier = int(row["draw_tier"] or 0)
        draw = None if seed is None else audit_draw(int(seed), row["pair_id"], draw_tier)
        signals = json.loads(row["signals"])
        if signals.get("prediction_only") and not prediction:
            continue
        rate, gate = signals.get("calibration_sample"), signals.get("calibration_draw_tier")
        if rate and draw is not None and draw_tier == gate != tier:
            pi, draw = planned.given_sample(pi, draw, float(rate))
        fit = cal.in_fit_split(row["pair_id"], share)
        item = cal.Judged(cal.row_signals(row, signals), pi, sampled, human, fit, draw)
        out.append((row, item))
    return out


def _same(a: Thresholds, b: Thresholds) -> bool:
    def key(t: Thresholds) -> tuple[Any, ...]:
        w = None if t.weights is None else tuple(round(x, 4) for x in t.weights)
        return (
            round(t.a, 4),
            round(t.b, 4),
            round(t.certified_a, 4),
            round(t.certified_b, 4),
            w,
            t.audit_rate,
            t.provisional_audit_rate,
            t.guarantee,
            t.judge_version,
            t.looks,
            round(t.spent, 9),
            t.phase,
            t.finished,
            t.caps,
            t.terms,
            t.mode,
        )

    return key(a) == key(b)


def recheck(store: Store, cfg: Config, t: Thresholds, tier: int = 0) -> dict[str, int]:
    """Re-check every pair tier ``tier`` accepted against ``t``: certified, provisional,
    or back to humans (reason ``recheck``). Keeps the invariant: every judge label in the
    dataset passes the thresholds in force of the tier that accepted it."""
    if union_loop.is_union(store, cfg):  # (a cascade's judges cannot change: none ended)
        return {"ended": 0, **union_loop.recheck(store, cfg, t)}
    mine = _of_version(store, cfg, tier)
    accepted = [r for r in store.judge_accepted() if int(r["tier"]) == tier]
    rows = [r for r in accepted if mine(r)]
    scores = cal.scores_of([cal.row_signals(r) for r in rows], t.weights)
    status = {
        r["pair_id"]: status_of(float(s), r["label"], t) for r, s in zip(rows, scores, strict=True)
    }
    # an earlier judge version's pairs keep a certificate they hold; those still waiting go
    # to humans: its phase is over (a version's phase never reads another's), so no test
    # will cover them
    ended = [r["pair_id"] for r in accepted if not mine(r) and r["status"] == PROVISIONAL]
    # write only what moved: a sync with unchanged thresholds touches no row
    moved = {pid: st for r in rows if r["status"] != (st := status[pid := r["pair_id"]])}
    back = store.apply_recheck(moved | dict.fromkeys(ended, RECHECK))
    values = list(status.values())
    return {
        "rechecked": back - len(ended),
        "certified": values.count(CERTIFIED),
        "provisional": values.count(PROVISIONAL),
        "ended": len(ended),
    }


def recalibrate(store: Store, cfg: Config, finish: bool = False) -> Recalibration:
    """Choose each judge tier's thresholds from every human verdict so far; store a new
    version where one changed; re-check every judge-accepted pair against the thresholds
    in force. With several tiers, tier k is tested at ``delta * share_k`` with the shares
    adding up to at most 1 (``Config.delta_shares``; Bonferroni): all tiers' guarantees
    hold at once with probability >= 1 - delta, and then so does the
    guarantee for the union of what they accept (a mixture of sets each agreeing with
    humans at least at the target agrees at least at the target). The first tier's result
    is returned; the others are in its ``tiers``. ``finish``: the end of the project (the
    planned procedure's final look; then nothing waits any more)."""
    judges = cfg.judges
    union_loop.check_mode(store, cfg)
    terms.check_mode([current(store, cfg, k) for k in range(len(judges))], cfg)
    if union_loop.is_union(store, cfg):  # one test of what the whole cascade delivers
        first = _recalibrate_planned(store, cfg, len(judges) - 1, 1.0, finish)
        return _with_terms(store, cfg, first, [len(judges) - 1])
    shares = tier_shares(store, cfg, finish)
    one = _recalibrate_planned if cfg.calibration.procedure == "planned" else _recalibrate_tier
    # a split still pending (``split.may_wait``): no look, not even futility's (its
    # floors would carry labels into the split's prediction)
    hold = {"hold": True} if split_pending(store, cfg) else {}
    results = [one(store, cfg, k, shares[k], finish, **hold) for k in range(len(judges))]
    first = results[0]
    if len(judges) > 1:
        first.tiers = [r.to_dict() | {"tier": judges[k].label} for k, r in enumerate(results)]
        first.message = "; ".join(f"{judges[k].label}: {r.message}" for k, r in enumerate(results))
        first.changed = any(r.changed for r in results)
        first.rechecked = sum(r.rechecked for r in results)
        first.certified = sum(r.certified for r in results)
        first.provisional = sum(r.provisional for r in results)
        if any(j.delta_share for j in judges) and not np.allclose(shares, cfg.delta_shares):
            first.message += (
                f"; judge.delta_share is not applied: the project's split of the confidence "
                f"budget ({', '.join(f'{x:.3g}' for x in shares)}) is fixed for the project"
            )
    return _with_terms(store, cfg, first, list(range(len(judges))))


def _with_terms(store: Store, cfg: Config, first: Recalibration, tiers: list[int]) -> Recalibration:
    """``first`` with the terms its certificates were tested at, when weaker than the
    config's (``claimed_terms``, over the thresholds slots ``tiers``)."""
    asked = asked_terms(cfg)
    claimed = claimed_terms(store, tiers)
    weaker = claimed is not None and min(np.subtract(claimed, asked)) < -1e-9
    first.tested_at = list(claimed) if weaker and claimed is not None else None
    return first


SPLIT_KEY = "delta_split"  # the meta entry that fixes a cascade's split of delta
SPLIT_WAITS = "delta_split_waits"  # set: calibrated while the split was left pending


def fixed_split(store: Store) -> dict[str, Any] | None:
    """The cascade's split of delta as fixed for the project (``tier_shares``): its
    ``shares`` (one per tier), whether it was ``predicted``, and what the prediction read;
    None while it is not fixed."""
    stored = store.get_meta(SPLIT_KEY)
    return None if stored is None else dict(json.loads(stored))


def split_shares(split: dict[str, Any] | None, cfg: Config) -> tuple[float, ...] | None:
    """Each tier's share in a stored split (``fixed_split``); None while none is fixed, or
    when it was fixed for another number of tiers (``tier_shares`` raises on that)."""
    if split is None or len(split["shares"]) != len(cfg.judges):
        return None
    return tuple(split["shares"])


def tier_shares(store: Store, cfg: Config, finish: bool = False) -> tuple[float, ...]:
    """Each tier's share of delta, fixed for a cascade once, before any look spends delta
    (``store`` meta ``delta_split``), and kept for the project: at the end of the first
    round whose prediction set suffices (``fix_predicted_split``), else at the first
    calibration with judged pairs at which a look could be due (``split.may_wait``; or
    ``finish``): until then a calibration uses ``Config.delta_shares`` and spends nothing,
    and the split stays pending. Under the planned procedure in high_probability mode
    with no ``judge.delta_share`` set it is predicted from every tier's scores on the
    prediction set judged so far and the judge prices measured on it
    (``split.predict_shares``, ``routing.prediction_draw``: no human label, no audit draw
    read); otherwise (or with too few such pairs) it is ``Config.delta_shares``. A project
    calibrated before it was stored keeps what its config says now."""
    judges = cfg.judges
    stored = check_tier_count(store, cfg)
    if len(judges) == 1:
        return (1.0,)
    if stored is not None:
        return tuple(stored["shares"])
    configured = {"shares": list(cfg.delta_shares), "predicted": False}
    if not split_pending(store, cfg):
        return _fix_split(store, configured)
    if not any(tier == len(judges) - 1 for tier, _ in store.tier_decisions()):
        return cfg.delta_shares  # nothing judged yet: no look can spend delta either
    record = _predicted_split(store, cfg)
    c = cfg.calibration
    alpha, delta = 1 - c.target_agreement, 1 - c.confidence
    if record is None and not finish and split.may_wait(store.decided_count(), alpha, delta):
        store.set_meta(SPLIT_WAITS, "1")  # its rounds go on judging the prediction set
        return cfg.delta_shares
    return _fix_split(store, record or configured)


def check_tier_count(store: Store, cfg: Config) -> dict[str, Any] | None:
    """The project's fixed split (``fixed_split``), refused in one line when it was fixed
    for another number of judge tiers than the config has: checked before a round pays
    a judge, not only at the next calibration."""
    stored = fixed_split(store)
    if stored is not None and len(stored["shares"]) != len(cfg.judges):
        raise ConfigError(
            f"{cfg.file or 'config'}: this project's split of the confidence budget was fixed "
            f"for {len(stored['shares'])} judge tiers, and the config has {len(cfg.judges)} "
            "([[judge.tiers]]): restore them, or start a new project (project.state_dir)"
        )
    return stored


def fix_predicted_split(store: Store, cfg: Config) -> None:
    """At a round's end: fix a cascade's pending split (``split_pending``) if the
    prediction set judged so far suffices. It reads no label, so it need not wait for a
    calibration, and the next rounds' earlier tiers judge no more of the prediction set.
    With too few pairs (``split.MIN_SAMPLE``) it stays pending."""
    record = _predicted_split(store, cfg) if split_pending(store, cfg) else None
    if record is not None:
        _fix_split(store, record)


def _predicted_split(store: Store, cfg: Config) -> dict[str, Any] | None:
    """The predicted split's record, from every tier's scores on the prediction set
    judged so far; None with too few such pairs (``split.predict_shares``)."""
    judges = cfg.judges
    tiers = [judged(store, cfg, k, prediction=True) for k in range(len(judges))]
    floors = [current(store, cfg, k).a for k in range(len(judges))]
    seed = cfg.routing.seed

    def chosen(pair_id: str) -> bool:
        return in_prediction_set(seed, pair_id)

    ids, scores = split.common_scores(tiers, floors, chosen)
    # what a pair costs each tier, from its calls on the prediction set alone (the pairs
    # of its calibration sample were drawn with the audit draw: no part of the split may be)
    spent: dict[int, list[float]] = {k: [] for k in range(len(judges))}
    for (tier, pair_id), cost in store.tier_pair_costs().items():
        if tier in spent and chosen(pair_id):
            spent[tier].append(cost)
    costs = [float(np.mean(spent[k])) if spent[k] else 0.0 for k in range(len(judges))]
    pred = split.predict_shares(scores, costs, split_terms(cfg, store.pair_count()))
    if pred is None:
        return None
    expected = {str(f): v for f, v in pred.costs.items()}
    record = {"shares": list(pred.shares), "predicted": True, "costs": costs}
    return record | {"sample": pred.sample, "pairs": split.digest(ids), "expected": expected}


def split_terms(cfg: Config, size: int) -> split.Terms:
    """The terms of a project of ``size`` pairs a split is predicted for."""
    c = cfg.calibration
    return split.Terms(
        size, cold_start(cfg).provisional_audit_rate, cfg.routing.audit_rate,
        1 - c.target_agreement, 1 - c.confidence,
        cfg.costs.human_price_per_pair * cfg.reviewers_needed(False),
    )  # fmt: skip


def _predictable(store: Store | None, cfg: Config) -> bool:
    """Is this cascade's split of delta predicted (``tier_shares``)?"""
    c = cfg.calibration
    return not (
        union_loop.is_union(store, cfg)
        or any(j.delta_share for j in cfg.judges)
        or c.procedure != "planned"
        or c.guarantee != "high_probability"
        or c.quality == "human_parity"
    )


def split_pending(store: Store | None, cfg: Config) -> bool:
    """Is this cascade's split of delta still to be predicted (``store`` None: no project
    yet)? Not once it is fixed, nor in a project calibrated before splits were stored
    (it keeps its config's; a calibration that leaves it pending says so:
    ``SPLIT_WAITS``). Until it is, its earlier tiers also judge the pairs it is predicted
    from (``routing.prediction_draw``)."""
    if len(cfg.judges) == 1 or not _predictable(store, cfg):
        return False
    if store is None:
        return True
    if fixed_split(store) is not None:
        return False
    if store.get_meta(SPLIT_WAITS) is not None:
        return True
    return all(store.latest_thresholds(k) is None for k in range(len(cfg.judges)))


def _fix_split(store: Store, record: dict[str, Any]) -> tuple[float, ...]:
    store.set_meta(SPLIT_KEY, json.dumps(record))
    return tuple(record["shares"])


def _tier_test(cfg: Config, tier: int, alpha: float, delta: float) -> tuple[float, float, str]:
    """The (alpha, delta, guarantee) tier ``tier``'s test takes: a tier that is not the
    last takes ``planned.earlier_tier_test`` (human parity has one judge)."""
    if tier < len(cfg.judges) - 1 and cfg.calibration.quality != "human_parity":
        return planned.earlier_tier_test(alpha, delta, cfg.calibration.guarantee)
    return alpha, delta, cfg.calibration.guarantee


def _recalibrate_tier(
    store: Store, cfg: Config, tier: int, share: float, finish: bool = False
) -> Recalibration:
    c = cfg.calibration
    alpha, delta = 1 - c.target_agreement, (1 - c.confidence) * share
    test_alpha, test_delta, guarantee = _tier_test(cfg, tier, alpha, delta)
    prev = current(store, cfg, tier)
    data = judged(store, cfg, tier)
    sample = sum(1 for _, d in data if d.sampled and d.human)
    recent = _recent_audits(data, prev, prev.version)  # no row is newer than prev
    drift = prev.version > 0 and cal.drifted(recent, alpha, delta)
    use = [d for row, d in data if not drift or row["thresholds_version"] == prev.version]
    chosen = cal.calibrate(
        use,
        test_alpha,
        test_delta,
        guarantee=guarantee,
        min_labels=c.min_labels,
        min_count=c.min_per_threshold,
        learn=c.learn_combination,
        previous=(prev.weights, prev.fitted_on),
        previous_certified=prev.certified_a if c.guarantee == prev.guarantee else cal.NEVER,
    )
    if chosen is None and drift:
        new = replace(prev, a=cal.NEVER, b=cal.NEVER, certified_a=cal.NEVER, certified_b=cal.NEVER)
    elif chosen is None:
        new = prev
    else:
        new = Thresholds(
            chosen.proposal,
            chosen.proposal,
            prev.version,
            chosen.weights,
            cfg.routing.audit_rate,
            chosen.certified,
            chosen.certified,
            cfg.routing.provisional_audit_rate,
            c.guarantee,  # the project's (a tier that is not the last may test stricter)
            chosen.fitted_on,
            prev.judge_version,
            phase=prev.phase,
        )
    if finish:  # the end of the project: what is not certified goes to humans
        new = replace(new, a=new.certified_a, b=new.certified_b, finished=True)
    changed = not _same(new, prev)
    new = replace(new, version=prev.version + 1) if changed else prev
    scored = [
        (cal.score(d.signals, new.weights), not d.disagrees)
        for _, d in data
        if d.sampled and d.human and d.signals.eligible
    ]
    bins, ece = cal.reliability([s for s, _ in scored], [a for _, a in scored])
    result = Recalibration(
        asdict(prev),
        asdict(new),
        changed,
        drift,
        sample,
        c.min_labels,
        "",
        None if chosen is None else asdict(chosen),
        bins,
        ece,
        c.guarantee,
        target=c.target_agreement,
        confidence=c.confidence,
    )
    saved = 0
    if changed:
        saved = store.save_thresholds(
            new.a, new.b, new.weights, new.audit_rate, result.to_dict(), asdict(new), tier
        )
    counts = recheck(store, cfg, new, tier)
    result.rechecked, result.certified = counts["rechecked"] + counts["ended"], counts["certified"]
    result.provisional = counts["provisional"]
    result.message = _message(prev, new, changed, drift, recent, sample, c.min_labels, chosen)
    if counts["rechecked"]:
        result.message += (
            f"; {counts['rechecked']} judge-accepted pairs no longer pass and went back to "
            "humans (recheck)"
        )
    result.message += looks.ended_note(counts)
    if saved:  # the history keeps what this version's sync said
        store.set_thresholds_report(saved, result.to_dict())
    return result


def _drift_audit(row: Any, d: cal.Judged, t: Thresholds, since: int) -> bool:
    """Is this a certified pair audited at ``t``'s audit rate by a round routed with
    thresholds version ``since`` or later (what the drift watch reads)?"""
    return (
        row["thresholds_version"] >= since and row["reason"] == "audit" and (d.pi == t.audit_rate)
    )


def _recent_audits(data: list[tuple[Any, cal.Judged]], t: Thresholds, since: int) -> list[bool]:
    """Agreement of the drift watch's audits that humans decided (``_drift_audit``)."""
    return [not d.disagrees for row, d in data if _drift_audit(row, d, t, since) and d.human]


def _recent_parity(
    data: list[tuple[Any, cal.Judged]], t: Thresholds, since: int, parity: np.ndarray
) -> list[float]:
    """The parity statistics of the drift watch's audits (``_recent_audits``) that two
    reviewers decided."""
    return [
        float(parity[i])
        for i, (row, d) in enumerate(data)
        if _drift_audit(row, d, t, since) and not np.isnan(parity[i])
    ]


def _recalibrate_planned(
    store: Store, cfg: Config, tier: int, share: float, finish: bool = False, hold: bool = False
) -> Recalibration:
    """The planned procedure (``planned`` docstring): while nothing is certified, a
    look at the calibration sample when it is due; a certificate, once given, is kept
    (its region audited at ``routing.audit_rate`` for drift); drift starts a new
    calibration phase. ``finish``: a final look with all of delta that is left, after
    which nothing waits: what is not certified goes to humans. ``hold``: no look."""
    c = cfg.calibration
    prev = current(store, cfg, tier)
    # the phase's terms, fixed at its first look (``Thresholds.terms``); the config's before
    target, confidence = terms.first_look_terms(store, tier, prev) or asked_terms(cfg)
    alpha, delta = 1 - target, (1 - confidence) * share
    # a tier that is not the last takes its own test (``planned.earlier_tier_test``); its
    # drift watch keeps the target itself
    test_alpha, test_delta, guarantee = _tier_test(cfg, tier, alpha, delta)
    # a union cascade reads each pair's verdicts from every tier (``union_loop``)
    in_union = union_loop.is_union(store, cfg)
    union_run = union_loop.judged(store, cfg, prev) if in_union else None
    data = judged(store, cfg, tier) if union_run is None else union_run[0]
    sample = sum(1 for _, d in data if d.sampled and d.human)
    evidence = parity_evidence(store, cfg, data) if c.quality == "human_parity" else None
    parity = None if evidence is None else evidence[0]
    recent: list[bool] = []
    drift, look, new, pulled = False, None, prev, 0
    if prev.certified_a < cal.NEVER:
        recent = _recent_audits(data, prev, prev.certified_at)
        drift = (
            cal.drifted(recent, alpha, delta)
            if parity is None
            else parity_drifted(
                _recent_parity(data, prev, prev.certified_at, parity), c.parity_margin, delta
            )
        )
        if drift:
            # the certificate ends: every pair it accepted goes to humans (a later phase's
            # test never covered them), and a new phase begins with the pairs routed now
            withdrawn = replace(prev, a=cal.NEVER, b=cal.NEVER, certified_a=cal.NEVER)
            gone = recheck(store, cfg, replace(withdrawn, certified_b=cal.NEVER), tier)
            pulled = gone["rechecked"] + gone["ended"]
            new = replace(cold_start(cfg), phase=prev.version + 1, judge_version=prev.judge_version)
    if not (drift or hold or prev.finished) and prev.a < cal.NEVER:  # (NEVER: futile, no share)
        # only the exact test reads the phase's earlier looks (after a certificate, only
        # the last tier's: an earlier one's labels reach humans through the next tier),
        # and only when a look may be due (the phase's sample is part of ``sample``)
        uniform = parity is None and guarantee == "high_probability"
        last = tier == len(cfg.judges) - 1
        recorded = (
            store.look_history(tier, prev.judge_version, prev.phase, prev.looks)
            if uniform
            and (last or prev.certified_a >= cal.NEVER)
            # (a union cascade's always: a mismatch ends its looks, and calibrate says so)
            and (
                finish
                or union_run is not None
                or planned.look_due(sample, prev.spent, test_alpha, test_delta)
            )
            else None
        )
        caps, union = prev.caps, None
        if union_run is not None:  # the caps, until fixed, from pairs outside the sample
            _, seen, dis = union_run
            caps = caps or union_loop.caps_for(seen, data, prev, prev.provisional_audit_rate)
            union = (seen.scores(caps), dis)
        look, counted = looks.take_look(
            data, prev, test_alpha, test_delta, guarantee, c.min_labels, finish, evidence,
            c.parity_margin, recorded, last, union,
        )  # fmt: skip
        if look.futile:  # nothing can be certified: no more waiting, pairs go to humans
            new = replace(prev, a=cal.NEVER, b=cal.NEVER)
        if look.taken:
            # (a union cascade's caps are fixed at its phase's first look)
            # (and its terms: a target or confidence changed later applies from the next)
            new = replace(
                prev, looks=prev.looks + 1, spent=prev.spent + look.level, caps=caps,
                terms=(target, confidence), mode=terms.mode_of(cfg),
            )  # fmt: skip
            if look.evidence is not None:  # the group-sequential test's later looks need it
                store.record_look(
                    tier, prev.judge_version, prev.phase, prev.looks, look.allowed,
                    list(look.sequence or ()), counted,
                )  # fmt: skip
            else:  # tested at its own level: an older record of this look is no history
                store.forget_looks(tier, prev.judge_version, prev.phase, prev.looks)
        if look.choice.threshold < min(cal.NEVER, prev.certified_a):
            lam = look.choice.threshold
            first = prev.certified_a >= cal.NEVER
            # pairs between the floor and the certificate keep joining the calibration
            # sample (they wait); those above it are accepted, audited for drift
            new = replace(
                new,
                certified_at=prev.version + 1 if first else prev.certified_at,
                certified_a=lam,
                certified_b=lam,
                weights=None,
                audit_rate=cfg.routing.audit_rate,
                guarantee=c.guarantee,
            )
    if finish:
        new = replace(new, a=new.certified_a, b=new.certified_b, finished=True)
    changed = not _same(new, prev)
    new = replace(new, version=prev.version + 1) if changed else prev
    chosen = None if not (look and look.taken) else _as_calibrated(data, new, look, c, union_run)
    labelled = [d for _, d in data if d.sampled and d.human and d.signals.eligible]
    raw = cal.scores_of([d.signals for d in labelled], None)
    bins, ece = cal.reliability(raw.tolist(), [not d.disagrees for d in labelled])
    result = Recalibration(
        asdict(prev), asdict(new), changed, drift, sample, c.min_labels, "",
        None if chosen is None else asdict(chosen), bins, ece, guarantee=c.guarantee,
        quality=c.quality, target=c.target_agreement, confidence=c.confidence,
        phase_terms=None if new.terms in (None, asked_terms(cfg)) else list(new.terms),
    )  # fmt: skip
    saved = 0
    if changed:
        saved = store.save_thresholds(
            new.a, new.b, new.weights, new.audit_rate, result.to_dict(), asdict(new), tier
        )
    counts = recheck(store, cfg, new, tier)
    counts["rechecked"] += pulled
    result.rechecked, result.certified = counts["rechecked"] + counts["ended"], counts["certified"]
    result.provisional = counts["provisional"]
    result.message = looks.message(
        prev, new, drift, recent, look, counts, alpha, delta, c.min_labels,
        parity is not None, None if guarantee == c.guarantee else (test_alpha, test_delta),
    )  # fmt: skip
    result.message += looks.ended_note(counts)
    if union_run is not None and look is not None and look.taken:
        result.message += union_loop.describe(cfg, new)
    if notice := terms_notice(new, cfg):
        result.message += f"; {notice}"
    if hold and new.certified_a >= cal.NEVER:  # ``recalibrate``: the split is pending
        need = planned.first_look_count(alpha, 1 - confidence)
        result.message = (
            f"no look yet: the cascade's split of the confidence budget is pending (fixed once "
            f"{split.MIN_SAMPLE} pairs of its prediction set are judged, or once the project's "
            f"human verdicts reach {need}, or at --finish); the project has "
            f"{store.decided_count()} human-decided pairs so far; {counts['provisional']} "
            "judge-accepted pairs wait for evidence"
        )
    if share <= 0 and new.certified_a >= cal.NEVER:
        result.message = (
            "no share of the confidence budget (the split predicted from the tiers' scores "
            "gives it to the later tiers; judge.delta_share sets it): judges nothing, "
            "passes every pair on"
        )
    if saved:  # the history keeps what this version's sync said (no empty "v1: " lines)
        store.set_thresholds_report(saved, result.to_dict())
    return result


def _as_calibrated(
    data: list[tuple[Any, cal.Judged]], t: Thresholds, look: planned.Look, c: Any, union: Any
) -> cal.Calibrated:
    """A look's result in the form reports read (labels behind it, coverage, agreement);
    ``union``: a union cascade's reading (``union_loop.judged``), whose scores count."""
    kept = np.array([not d.pending for _, d in data], bool)
    if union is None:
        scores = cal.scores_of([d.signals for _, d in data], None)[kept]
    else:
        scores = union[1].scores(t.caps).max(axis=0)[kept]
    n = max(len(scores), 1)
    ch = look.choice
    return cal.Calibrated(
        certified=t.certified_a,
        proposal=t.a,
        weights=None,
        guarantee=c.guarantee,
        labelled=look.labels if ch.threshold >= cal.NEVER else ch.labelled,
        fitted_on=0,
        coverage=float((scores >= t.certified_a).sum() / n),
        provisional_coverage=float((scores >= t.a).sum() / n)
        - float((scores >= t.certified_a).sum() / n),
        # under human parity the estimate is a gap to the reviewers, not a rate
        agreement=None if ch.estimate is None or c.quality == "human_parity" else 1 - ch.estimate,
        notes=[f"look {t.looks} spent {look.level:.4g} of delta"],
    )


def _message(
    prev: Thresholds,
    new: Thresholds,
    changed: bool,
    drift: bool,
    recent: list[bool],
    sample: int,
    min_labels: int,
    chosen: cal.Calibrated | None,
) -> str:
    if drift:
        agree = sum(recent) / len(recent)
        return (
            f"DRIFT: certified pairs audited since version {prev.version} agree with "
            f"humans {agree:.0%} of {len(recent)} times, below target; thresholds "
            f"now {looks.fmt(new)} (version {new.version})"
        )
    if chosen is None:
        return (
            f"held at {looks.fmt(prev)}: {sample} of {min_labels} human verdicts needed "
            "before thresholds may move (cold start: judge-accepted pairs stay provisional)"
        )
    if not changed:
        return f"unchanged at {looks.fmt(prev)} (version {prev.version})"
    if new.certified_a >= cal.NEVER:
        return (
            f"no threshold is certified yet by {chosen.labelled} human verdicts "
            f"(version {new.version}, {looks.fmt(new)}): judge-accepted pairs stay provisional, "
            "out of the certified dataset, until the evidence covers them"
        )
    estimate = "n/a" if chosen.agreement is None else f"{chosen.agreement:.1%}"
    test = f"{chosen.guarantee} guarantee"
    if chosen.guarantee != new.guarantee:  # planned.earlier_tier_test
        test = f"{chosen.guarantee} test, the stricter test of a tier that is not the last"
    return (
        f"{looks.fmt(prev)} -> {looks.fmt(new)} (version {new.version}, {test}) "
        f"from {chosen.labelled} human verdicts: forecast certified "
        f"coverage {chosen.coverage:.0%} of judged pairs, estimated agreement {estimate}"
    )
