"""``labeler status``: pairs per state, rounds so far, money spent, savings on delivered
pairs."""

from __future__ import annotations

import json
from typing import Any

from labeler import costs
from labeler.config import Config
from labeler.ledger import project_ledger, round_currencies, round_ledgers, total_currency
from labeler.routing import ACCEPT
from labeler.store import Store


def savings(led: costs.Ledger, currency: str, mixed: str | None = None) -> dict[str, Any]:
    """The delivered figures of a ledger (see ``costs.Ledger``); ``mixed``: the note that
    its rounds were priced in different currencies (``ledger.total_currency``)."""
    return {
        "delivered": led.delivered,
        "certified": led.certified,
        "human_decided": led.human_decided,
        "provisional": led.provisional,
        "waiting": led.waiting,
        "waiting_labels": led.waiting_labels,
        "waiting_cost": led.waiting_cost,
        "coverage": led.coverage,
        "all_human_cost": led.baseline,
        "spent": led.total,
        "saved": led.saved,
        "savings_factor": led.factor,
        "notes": costs.savings_notes(led, currency, mixed),
    }


def project_status(cfg: Config) -> dict[str, Any]:
    """Counts per lifecycle state, and per round: pairs, accepted, sent to review, cost."""
    if not cfg.db_path.exists():
        return {
            "states": {},
            "rounds": [],
            "cost": 0.0,
            "savings": None,
            "currency": cfg.costs.currency,
            "state_db": str(cfg.db_path),
            "fact_checks_owed": 0,
            "initialised": False,
        }
    with Store(cfg.db_path) as store:
        by_round = round_ledgers(store, cfg)
        currencies = round_currencies(store, cfg)
        currency, mixed = total_currency(currencies, cfg)  # the rounds', as `report` says
        rounds = []
        for row in store.rounds():
            decisions = store.round_decisions(row["id"])
            accepted = sum(n for (a, _), n in decisions.items() if a == ACCEPT)
            led = by_round.get(row["id"])
            judged = sum(decisions.values())
            rounds.append(
                {
                    "id": row["id"],
                    # a round not completed is open (killed, stopped at its budget) or
                    # waiting for its batches: the next `labeler round` resumes it
                    "status": _round_status(row),
                    "pairs": judged,
                    "assigned": store.count_round_pairs(row["id"]),
                    "accepted": accepted,
                    "review": judged - accepted,
                    "judge_cost": store.call_totals(row["id"])["cost"],
                    "human_cost": led.human_cost if led else 0.0,
                    "currency": currencies[row["id"]],  # the one it was priced in
                }
            )
        ledgers = list(by_round.values())
        total = project_ledger(store, cfg, ledgers)  # as `labeler report` totals it
        return {
            "states": store.state_counts(),
            # savings on delivered pairs, as `labeler report` totals them
            "savings": None if total is None else savings(total, currency, mixed),
            "rounds": rounds,
            "disputed": len(disputed := store.disputed()),
            "disputed_open": sum(not r["decided"] for r in disputed),  # no majority yet
            # accepted pairs whose fact-check (quality.fact_check) an online round still owes
            "fact_checks_owed": store.fact_pending_count() if cfg.quality.fact_check else 0,
            "cost": store.call_totals()["cost"],
            "human_cost": sum(led.human_cost for led in ledgers),
            "currency": currency,
            "state_db": str(cfg.db_path),
            "initialised": True,
        }


def project_savings(cfg: Config) -> tuple[dict[str, Any] | None, str]:
    """The whole project's delivered figures (``savings``) as `labeler status` totals
    them, with their currency (None: no state or no round yet)."""
    if not cfg.db_path.exists():
        return None, cfg.costs.currency
    with Store(cfg.db_path) as store:
        total = project_ledger(store, cfg)
        currency, mixed = total_currency(round_currencies(store, cfg), cfg)
    return (None if total is None else savings(total, currency, mixed)), currency


def _round_status(row: Any) -> str:
    """A round's status as `labeler status` shows it: completed, or, not completed, open
    (killed, stopped at its budget) or batch_waiting (a --batch round: its batches are at
    the Batch API or still to collect)."""
    if row["status"] != "running":
        return str(row["status"])
    return "batch_waiting" if json.loads(row["thresholds"]).get("batch") else "open"


def audits_out(store: Store, cfg: Config) -> int:
    """Audited pairs still with reviewers that a sync may yet bring a verdict for: in the
    review datasets it reads, below ``review.max_reviewers`` answers
    (``Store.audits_with_reviewers``). ``round --finish`` waits for them."""
    datasets = (cfg.review_dataset, cfg.double_dataset)
    return store.audits_with_reviewers(datasets, cfg.review.max_reviewers)


def waiting_for_evidence(cfg: Config) -> tuple[int, str, int]:
    """(judge-accepted pairs still waiting for a certificate, what deciding all of them by
    hand may cost, in words: at most its price per pair, or about its measured review time
    in time mode; audited pairs still with reviewers, whose verdicts are evidence still to
    come). Nothing waits in a project without state."""
    if not cfg.db_path.exists():
        return 0, "", 0
    with Store(cfg.db_path) as store:
        n = store.label_status_counts()["provisional"]
        total = project_ledger(store, cfg)
        currency, _ = total_currency(round_currencies(store, cfg), cfg)
        audits = audits_out(store, cfg)
    # each round's pairs at the prices it was run with, as `status` and `report` price them
    return n, costs.provisional_cost(total, currency), audits


def fact_checks_owed(cfg: Config) -> int:
    """Accepted pairs whose fact-check (``quality.fact_check``) an online round still owes
    (0 with the check off or no state)."""
    if not cfg.quality.fact_check or not cfg.db_path.exists():
        return 0
    with Store(cfg.db_path) as store:
        return store.fact_pending_count()
