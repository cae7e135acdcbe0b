"""``labeler status``: pairs per state, rounds so far, money spent."""

from __future__ import annotations

from typing import Any

from labeler.config import Config
from labeler.routing import ACCEPT
from labeler.store import Store


def project_status(cfg: Config) -> dict[str, Any]:
    """Counts per lifecycle state, and per round: pairs, accepted, sent to review, cost."""
    if not cfg.db_path.exists():
        return {
            "states": {},
            "rounds": [],
            "cost": 0.0,
            "currency": cfg.costs.currency,
            "state_db": str(cfg.db_path),
            "initialised": False,
        }
    with Store(cfg.db_path) as store:
        rounds = []
        for row in store.rounds():
            decisions = store.round_decisions(row["id"])
            accepted = sum(n for (a, _), n in decisions.items() if a == ACCEPT)
            rounds.append(
                {
                    "id": row["id"],
                    "status": row["status"],
                    "pairs": store.count_round_pairs(row["id"]),
                    "accepted": accepted,
                    "review": sum(decisions.values()) - accepted,
                    "judge_cost": store.call_totals(row["id"])["cost"],
                }
            )
        return {
            "states": store.state_counts(),
            "rounds": rounds,
            "disputed": len(store.disputed()),
            "cost": store.call_totals()["cost"],
            "currency": cfg.costs.currency,
            "state_db": str(cfg.db_path),
            "initialised": True,
        }


def waiting_for_evidence(cfg: Config) -> tuple[int, str]:
    """(judge-accepted pairs still waiting for a certificate, what deciding all of them by
    hand would cost at most, formatted). Nothing waits in a project without state."""
    if not cfg.db_path.exists():
        return 0, ""
    with Store(cfg.db_path) as store:
        n = store.label_status_counts()["provisional"]
    price = cfg.costs.human_price_per_pair * cfg.review.min_submitted
    return n, f"{n * price:,.2f} {cfg.costs.currency}"
