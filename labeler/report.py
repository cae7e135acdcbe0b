"""``labeler report``: money and quality per round, the chart, the quality flags."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from labeler import calibration as cal
from labeler import consensus, costs
from labeler.agreement import reviewer_votes
from labeler.config import Config
from labeler.errors import StateError
from labeler.ledger import (
    ASKED,
    project_ledger,
    round_currencies,
    round_ledgers,
    round_money,
    tier_totals,
    total_currency,
)
from labeler.routing import ACCEPT
from labeler.store import Store
from labeler.terms import claimed_terms
from labeler.thresholds import current as current_thresholds
from labeler.union_loop import history_slot
from labeler.verify import ONE_MORE


def in_force(t: dict[str, Any]) -> str:
    """The thresholds a round routed with, for a table cell, in the judge's own terms:
    the certified threshold (the verdicts that go into the dataset), or that none was
    certified yet (judge-accepted pairs then wait, provisional). A learned score (the
    retest procedure) is named as one: it is not a probability."""
    version = t.get("version", 0)
    a, b = t.get("certified_a", t.get("a")), t.get("certified_b", t.get("b"))
    if a is None or b is None or (a >= cal.NEVER and b >= cal.NEVER):
        return f"v{version}: none certified"

    def one(x: float) -> str:
        if x >= cal.NEVER:
            return "none"
        return f"score >= {x:.3f}" if t.get("weights") is not None else f">= {x:.1%}"

    return f"v{version}: {one(a)}" if a == b else f"v{version}: A {one(a)}, B {one(b)}"


def _row(
    rid: Any,
    led: costs.Ledger,
    quality: dict[str, Any] | None,
    review: dict[str, int],
    currency: str,
) -> dict[str, Any]:
    q = quality or {}
    return {
        "round": rid,
        "currency": currency,  # the round's money is in the currency it was priced in
        "pairs": led.pairs,
        "accepted": led.accepted,
        "to_humans": led.to_humans,
        "to_humans_by_reason": review,
        "human_responses": led.human_responses,
        "judge_cost": led.judge_cost,
        "human_cost": led.human_cost,
        "human_cost_per_pair": led.human_cost_per_pair,
        "human_cost_time": led.human_cost_time,
        # savings count delivered pairs only (costs.Ledger): certified + human-decided
        "certified": led.certified,
        "provisional": led.provisional,
        "human_decided": led.human_decided,
        "delivered": led.delivered,
        "waiting": led.waiting,
        "waiting_labels": led.waiting_labels,
        "waiting_cost": led.waiting_cost,
        "dropped": led.dropped,  # rows labeler verify dropped: not delivered, not waiting
        "check_cost": led.check_cost,  # the reward model's (total row only)
        "all_human_cost": led.baseline,
        "saved": led.saved,
        "savings_factor": led.factor,
        "cost_per_accepted": led.cost_per_accepted,
        "coverage": led.coverage,
        "audited_agreement": q.get("audited_agreement"),
        "audited_agreement_lower": q.get("audited_agreement_lower"),
        "audited": q.get("audited", 0),
        "thresholds": q.get("thresholds_in_force"),
    }


def build_report(cfg: Config) -> dict[str, Any]:
    if not cfg.db_path.exists():
        raise StateError(f"{cfg.db_path}: no state yet; run `labeler round` first")
    with Store(cfg.db_path) as store:
        ledgers = round_ledgers(store, cfg)
        human_human = consensus.human_agreement(reviewer_votes(store, cfg))
        quality = {q["round"]: q for q in round_report(store, cfg, human_human, ledgers)}
        currencies = round_currencies(store, cfg)
        rounds = store.rounds()
        currency, mixed = total_currency(currencies, cfg)
        rows = []
        reasons: dict[str, int] = {}
        for rid, led in ledgers.items():
            review: dict[str, int] = {}
            for (action, reason), n in store.round_decisions(rid).items():
                if action != ACCEPT:
                    review[reason] = review.get(reason, 0) + n
                    reasons[reason] = reasons.get(reason, 0) + n
            rows.append(_row(rid, led, quality.get(rid), review, currencies[rid]))
        total = project_ledger(store, cfg, ledgers.values())
        # (a verdict asked of one more reviewer is said by its ``escalated`` flags)
        flags = [dict(r) for r in store.flags() if r["kind"] != ASKED]
        bad = store.bad_rows(str(cfg.source.path))
        skipped = [f"{r['source']}:{r['row']}: {r['reason']}" for r in bad]
        labels = store.label_status_counts()
        tiers = tier_totals(store, cfg) if len(cfg.judges) > 1 else []
        verify = verify_summary(store)
        claimed = claimed_terms(store, range(len(cfg.judges)))
        # with none, the terms the phase tests at (fixed at its first look), else the config's
        phase = current_thresholds(store, cfg, history_slot(store, cfg)).terms
    return {
        "currency": currency,  # the rounds' (not costs.currency's, which prices the next)
        # what the certificates in force were tested at (a phase's terms are fixed at its
        # first look), else what the config asks
        "target": (claimed or phase or (cfg.calibration.target_agreement, 0))[0],
        # the rounds' (their snapshot), not costs.human_cost_mode's, which prices the next
        "mode": "+".join(sorted({str(round_money(r, cfg)["human_cost_mode"]) for r in rounds}))
        or cfg.costs.human_cost_mode,
        "rounds": rows,
        "total": None
        if total is None
        else _row("total", total, pooled_audits(quality.values(), cfg), reasons, currency),
        "savings_basis": "delivered",  # certified judge labels + human-decided pairs
        "savings_notes": [] if total is None else costs.savings_notes(total, currency, mixed),
        "flags": flags,
        "skipped_rows": skipped,  # every source row the latest read skipped, and why
        # two reviewers on the same pairs (review.double_share), next to the judge there
        "human_human_agreement": human_human,
        "labels": labels,  # human / certified / provisional (held out of the dataset)
        "tiers": tiers,  # what each judge tier of a cascade decided and cost (all rounds)
        "ledger_total": None if total is None else asdict(total),
        "verify": verify,  # labeler verify: rows checked and flagged by label source
    }


def pooled_audits(rounds: Iterable[dict[str, Any]], cfg: Config) -> dict[str, Any]:
    """The rounds' audits taken together: how many, the share agreeing, and its lower
    bound at the project's confidence (as each round's is)."""
    rounds = list(rounds)
    n = sum(q["audited"] for q in rounds if q["audited"])
    k = sum(round(q["audited_agreement"] * q["audited"]) for q in rounds if q["audited"])
    delta = 1 - cfg.calibration.confidence
    lower = cal.cp_lower(k, n, delta) if n else None
    return {"audited": n, "audited_agreement": k / n if n else None} | {
        "audited_agreement_lower": lower
    }


def verify_summary(store: Store) -> dict[str, Any] | None:
    """What ``labeler verify`` found for the rows' current labels (None: never run)."""
    counts = store.verify_counts()
    money = store.reward_totals()
    if not counts and not money["requests"]:
        return None
    return {
        "checked": {k: v["checked"] for k, v in counts.items()},
        "flagged": {k: v["flagged"] for k, v in counts.items() if v["flagged"]},
        "dropped": sum(v["dropped"] for v in counts.values()),
        "sent_to_review": sum(v["sent_to_review"] for v in counts.values()),
        "asked_again": len(store.flagged_ids(ONE_MORE)),  # human labels: one more reviewer
        **money,
    }


def write_chart(report: dict[str, Any], path: Path, own: bool = False) -> Path:
    """The rounds chart at ``path`` (``own``: a path of labeler's own, the demo's in the
    state folder, replaced whatever it holds; else only an earlier chart is replaced)."""
    from labeler.charts import rounds_png

    checks = (report["total"] or {}).get("check_cost", 0.0)  # as the total counts it
    return rounds_png(report["rounds"], report["currency"], path, report["target"], checks, own)


def decided(store: Store) -> list[tuple[Any, cal.Judged]]:
    """Every judged pair with a human decision (for the per-round quality report)."""
    return [
        (row, cal.Judged(cal.row_signals(row), 1.0, True, row["human"], False))
        for row in store.human_decided_verdicts()
    ]


def round_report(
    store: Store,
    cfg: Config,
    human_human: dict[str, Any] | None = None,
    ledgers: dict[int, costs.Ledger] | None = None,
) -> list[dict[str, Any]]:
    """Per round: thresholds in force (``in_force``), what was delivered (the round's
    ``costs.Ledger``: certified judge labels, human decisions, coverage = certified /
    delivered, the one coverage every command shows), the judge-accepted share of judged
    pairs at routing (provisional included), audited agreement, judge-human agreement
    with and without ties, Cohen's kappa, agreement between reviewers (from
    ``human_human``, ``consensus.human_agreement``'s result, when the caller has it)."""
    if ledgers is None:
        ledgers = round_ledgers(store, cfg)
    delta = 1 - cfg.calibration.confidence
    versions = {
        json.loads(r["params"]).get("version", r["version"]) if r["params"] else r["version"]: (
            json.loads(r["report"])
        )
        for r in store.thresholds_history(history_slot(store, cfg))
    }
    if human_human is None:
        human_human = consensus.human_agreement(reviewer_votes(store, cfg))
    two_reviewers = {r["round"]: r["agreement"] for r in human_human["rounds"]}
    by_round: dict[int, list[tuple[Any, cal.Judged]]] = {}
    for row, d in decided(store):
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
        both = [(d.signals.label, d.human or "") for _, d in rows if d.signals.label]
        no_ties = [(j, h) for j, h in both if j in ("A", "B") and h in ("A", "B")]
        basis = versions.get(t.get("version", 0), {}).get("calibrated") or {}
        led = ledgers.get(rid)
        out.append(
            {
                "round": rid,
                "thresholds_in_force": in_force(t),
                "thresholds_version": t.get("version", 0),
                "threshold_a": t.get("a"),
                "threshold_b": t.get("b"),
                "audit_rate": t.get("audit_rate"),
                "certified_threshold": t.get("certified_a", t.get("a")),
                "labels_behind_thresholds": basis.get("labelled", basis.get("sample", 0)),
                "expected_coverage": basis.get("coverage"),
                "expected_agreement_lower": basis.get("agreement", basis.get("agreement_lower")),
                "judged": judged,
                "accepted": accepted,
                "accepted_share": accepted / judged if judged else None,
                # delivered figures, as `labeler report` and `status` count them
                "certified": led.certified if led else 0,
                "delivered": led.delivered if led else 0,
                "coverage": led.coverage if led else None,
                "audited": len(audits),
                "audited_agreement": sum(audits) / len(audits) if audits else None,
                "audited_agreement_lower": cal.cp_lower(sum(audits), len(audits), delta)
                if audits
                else None,
                "human_decided": led.human_decided if led else len(rows),
                "agreement_with_ties": sum(j == h for j, h in both) / len(both) if both else None,
                "agreement_without_ties": sum(j == h for j, h in no_ties) / len(no_ties)
                if no_ties
                else None,
                "kappa": cal.cohen_kappa([j for j, _ in both], [h for _, h in both]),
                # the first two verdicts of pairs two reviewers were asked to decide,
                # decided or tied (consensus.human_agreement)
                "reviewer_agreement": two_reviewers.get(rid),
            }
        )
    return out
