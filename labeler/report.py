"""``labeler report``: money and quality per round, the chart, the quality flags."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from labeler import consensus, costs
from labeler.agreement import reviewer_votes
from labeler.config import Config
from labeler.errors import StateError
from labeler.ledger import round_ledgers, tier_totals
from labeler.routing import ACCEPT
from labeler.store import Store
from labeler.thresholds import round_report


def _thr(x: float) -> str:
    return "never" if x > 1 else f"{x:.2f}"


def _row(
    rid: Any, led: costs.Ledger, quality: dict[str, Any] | None, review: dict[str, int]
) -> dict[str, Any]:
    q = quality or {}
    return {
        "round": rid,
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
        "all_human_cost": led.baseline,
        "saved": led.saved,
        "savings_factor": led.factor,
        "cost_per_accepted": led.cost_per_accepted,
        "coverage": led.coverage,
        "audited_agreement": q.get("audited_agreement"),
        "audited_agreement_lower": q.get("audited_agreement_lower"),
        "audited": q.get("audited", 0),
        "thresholds": None
        if not q
        else f"v{q['thresholds_version']} {_thr(q['threshold_a'])}/{_thr(q['threshold_b'])}",
    }


def build_report(cfg: Config) -> dict[str, Any]:
    if not cfg.db_path.exists():
        raise StateError(f"{cfg.db_path}: no state yet; run `labeler round` first")
    with Store(cfg.db_path) as store:
        ledgers = round_ledgers(store, cfg)
        human_human = consensus.human_agreement(reviewer_votes(store, cfg))
        quality = {q["round"]: q for q in round_report(store, cfg, human_human)}
        rows, total = [], None
        for rid, led in ledgers.items():
            review: dict[str, int] = {}
            for (action, reason), n in store.round_decisions(rid).items():
                if action != ACCEPT:
                    review[reason] = review.get(reason, 0) + n
            rows.append(_row(rid, led, quality.get(rid), review))
            total = led if total is None else total + led
        flags = [dict(r) for r in store.flags()]
        labels = store.label_status_counts()
        tiers = tier_totals(store, cfg) if len(cfg.judges) > 1 else []
    return {
        "currency": cfg.costs.currency,
        "target": cfg.calibration.target_agreement,
        "mode": cfg.costs.human_cost_mode,
        "rounds": rows,
        "total": None if total is None else _row("total", total, None, {}),
        "savings_basis": "delivered",  # certified judge labels + human-decided pairs
        "savings_notes": [] if total is None else costs.savings_notes(total, cfg.costs.currency),
        "flags": flags,
        # two reviewers on the same pairs (review.double_share), next to the judge there
        "human_human_agreement": human_human,
        "labels": labels,  # human / certified / provisional (held out of the dataset)
        "tiers": tiers,  # what each judge tier of a cascade decided and cost (all rounds)
        "ledger_total": None if total is None else asdict(total),
    }


def write_chart(report: dict[str, Any], path: Path) -> Path:
    from labeler.charts import rounds_png

    return rounds_png(report["rounds"], report["currency"], path, report["target"])
