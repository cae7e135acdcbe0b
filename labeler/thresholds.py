"""The thresholds in force, and recalibrating them from human verdicts (orchestration).

``current`` gives the thresholds the next round routes with: the configured cold-start
rule (``routing.threshold``, a HIGH self-report required, the cold-start audit rate) until
the audit sample holds ``calibration.min_labels`` human verdicts, then the latest version
chosen by ``labeler.calibration``. ``recalibrate`` runs after every sync (and on
``labeler calibrate``); ``round_report`` computes the per-round quality table. The maths is
in ``calibration``; this module only reads the state and writes new versions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from labeler import calibration as cal
from labeler.config import Config
from labeler.routing import Thresholds, audit_draw
from labeler.store import Store


@dataclass
class Recalibration:
    previous: dict[str, Any]
    current: dict[str, Any]
    changed: bool
    drift: bool
    sample: int
    min_labels: int
    message: str
    calibrated: dict[str, Any] | None = None
    reliability: list[tuple[float, float, int]] = field(default_factory=list)
    ece: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cold_start(cfg: Config) -> Thresholds:
    t = cfg.routing.threshold
    return Thresholds(t, t, 0, None, cfg.calibration.cold_start_audit_rate)


def current(store: Store, cfg: Config) -> Thresholds:
    row = store.latest_thresholds()
    if row is None:
        return cold_start(cfg)
    weights = tuple(json.loads(row["weights"])) if row["weights"] else None
    return Thresholds(row["a"], row["b"], row["version"], weights, row["audit_rate"])


def labeled(store: Store, cfg: Config) -> list[tuple[Any, cal.Labeled]]:
    """Every human-decided judged pair, marked in or out of the uniform audit sample."""
    out = []
    for row in store.human_decided_verdicts():
        rate = json.loads(row["round_thresholds"]).get("audit_rate", cfg.routing.audit_rate)
        signals = json.loads(row["signals"])
        share = signals.get("self_high_share", 1.0 if row["self_high"] else 0.0)
        s = cal.Signals(
            row["label"],
            row["confidence"],
            float(share),
            signals.get("p_verdict"),
            bool(signals.get("orders_agree", True)),
            bool(signals.get("malformed")) or row["reason"] == "judge_error",
        )
        in_sample = audit_draw(cfg.routing.seed, row["pair_id"]) < rate
        out.append((row, cal.Labeled(s, row["human"], in_sample)))
    return out


def _same(a: Thresholds, b: Thresholds) -> bool:
    def key(t: Thresholds) -> tuple[Any, ...]:
        w = None if t.weights is None else tuple(round(x, 4) for x in t.weights)
        return (round(t.a, 4), round(t.b, 4), w, t.audit_rate)

    return key(a) == key(b)


def recalibrate(store: Store, cfg: Config) -> Recalibration:
    """Choose thresholds from the human verdicts so far; store a new version if changed."""
    c = cfg.calibration
    alpha, delta = 1 - c.target_agreement, 1 - c.confidence
    prev = current(store, cfg)
    data = labeled(store, cfg)
    sample = sum(d.in_sample for _, d in data)
    recent = [
        not d.disagrees
        for row, d in data
        if row["thresholds_version"] == prev.version and row["reason"] == "audit"
    ]
    drift = prev.version > 0 and cal.drifted(recent, alpha, delta)
    use = [d for row, d in data if not drift or row["thresholds_version"] == prev.version]
    chosen = cal.calibrate(
        use, alpha, delta, c.min_labels, c.min_per_threshold, c.learn_combination
    )
    if chosen is None and drift:
        new = Thresholds(cal.NEVER, cal.NEVER, prev.version + 1, prev.weights, 1.0)
    elif chosen is None:
        new = prev
    else:
        # while nothing can be accepted every pair is reviewed whatever its score, so the
        # whole round joins the uniform sample (audit rate 1)
        rate = 1.0 if min(chosen.a, chosen.b) >= cal.NEVER else cfg.routing.audit_rate
        new = Thresholds(chosen.a, chosen.b, prev.version + 1, chosen.weights, rate)
    changed = not _same(new, prev)
    if not changed:
        new = prev
    message = _message(prev, new, changed, drift, recent, sample, c.min_labels, chosen)
    scored = [
        (cal.score(d.signals, new.weights), not d.disagrees)
        for _, d in data
        if d.in_sample and d.signals.eligible
    ]
    bins, ece = cal.reliability([s for s, _ in scored], [a for _, a in scored])
    result = Recalibration(
        asdict(prev),
        asdict(new),
        changed,
        drift,
        sample,
        c.min_labels,
        message,
        None if chosen is None else asdict(chosen),
        bins,
        ece,
    )
    if changed:
        store.save_thresholds(new.a, new.b, new.weights, new.audit_rate, result.to_dict())
    return result


def _fmt(t: Thresholds) -> str:
    def one(x: float) -> str:
        return "never" if x >= cal.NEVER else f"{x:.3f}"

    return f"A >= {one(t.a)}, B >= {one(t.b)}"


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
            f"DRIFT: auto-accepted pairs audited since version {prev.version} agree with "
            f"humans {agree:.0%} of {len(recent)} times, below target; thresholds "
            f"tightened to {_fmt(new)} (version {new.version})"
        )
    if chosen is None:
        return (
            f"held at {_fmt(prev)}: {sample} of {min_labels} audit-sample verdicts needed "
            "before thresholds may move (cold start)"
        )
    if not changed:
        return f"unchanged at {_fmt(prev)} (version {prev.version})"
    if new.a >= cal.NEVER and new.b >= cal.NEVER:
        return (
            f"no threshold passes the test yet with {chosen.sample} audit-sample verdicts "
            f"(version {new.version}): every pair goes to humans until the sample grows "
            "or the judge is more reliable"
        )
    lower = "n/a" if chosen.agreement_lower is None else f"{chosen.agreement_lower:.1%}"
    return (
        f"{_fmt(prev)} -> {_fmt(new)} (version {new.version}, {chosen.scheme} thresholds) "
        f"from {chosen.sample} audit-sample verdicts: expected coverage "
        f"{chosen.coverage:.0%}, agreement lower bound {lower}"
    )


def round_report(store: Store, cfg: Config) -> list[dict[str, Any]]:
    """Per round: thresholds in force, coverage, audited agreement, judge-human agreement
    with and without ties, Cohen's kappa, agreement between reviewers."""
    delta = 1 - cfg.calibration.confidence
    versions = {r["version"]: json.loads(r["report"]) for r in store.thresholds_history()}
    by_round: dict[int, list[tuple[Any, cal.Labeled]]] = {}
    for row, d in labeled(store, cfg):
        by_round.setdefault(row["round_id"], []).append((row, d))
    out = []
    for r in store.rounds():
        rid = r["id"]
        t = json.loads(r["thresholds"])
        decisions = store.round_decisions(rid)
        judged = sum(decisions.values())
        accepted = sum(n for (a, _), n in decisions.items() if a == "accept")
        rows = by_round.get(rid, [])
        audits = [not d.disagrees for row, d in rows if row["reason"] == "audit"]
        both = [(d.signals.label, d.human) for _, d in rows if d.signals.label]
        no_ties = [(j, h) for j, h in both if j in ("A", "B") and h in ("A", "B")]
        multi = [json.loads(row["votes"]) for row, _ in rows if row["reviewers"] > 1]
        basis = versions.get(t.get("version", 0), {}).get("calibrated") or {}
        out.append(
            {
                "round": rid,
                "thresholds_version": t.get("version", 0),
                "threshold_a": t.get("a"),
                "threshold_b": t.get("b"),
                "audit_rate": t.get("audit_rate"),
                "labels_behind_thresholds": basis.get("sample", 0),
                "expected_coverage": basis.get("coverage"),
                "expected_agreement_lower": basis.get("agreement_lower"),
                "judged": judged,
                "accepted": accepted,
                "coverage": accepted / judged if judged else None,
                "audited": len(audits),
                "audited_agreement": sum(audits) / len(audits) if audits else None,
                "audited_agreement_lower": cal.cp_lower(sum(audits), len(audits), delta)
                if audits
                else None,
                "human_decided": len(rows),
                "agreement_with_ties": sum(j == h for j, h in both) / len(both) if both else None,
                "agreement_without_ties": sum(j == h for j, h in no_ties) / len(no_ties)
                if no_ties
                else None,
                "kappa": cal.cohen_kappa([j for j, _ in both], [h for _, h in both]),
                "reviewer_agreement": sum(len(v) == 1 for v in multi) / len(multi)
                if multi
                else None,
            }
        )
    return out
