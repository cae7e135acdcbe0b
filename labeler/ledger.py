"""The money of each round, from the state: one function for every command.

The round summary, ``labeler report``, ``status``, the demo and the charts all read
``round_ledgers``. Prices and the reviewers per pair are those *snapshotted when the
round started* (``money_snapshot``, stored with the round), so today's config never
re-prices history; rounds stored before snapshots existed use the config in force.
Savings count what each round has *delivered* by now (``costs.Ledger``): its certified
judge labels and its human-decided pairs.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from labeler import costs
from labeler.config import Config
from labeler.routing import ACCEPT
from labeler.store import Store
from labeler.thresholds import fixed_split, split_shares
from labeler.union_loop import is_union


def money_snapshot(cfg: Config) -> dict[str, Any]:
    """What a round's money is computed with, fixed when it starts."""
    return {
        "human_price_per_pair": cfg.costs.human_price_per_pair,
        "reviewers_per_pair": cfg.review.min_submitted,
        "hourly_rate": cfg.costs.hourly_rate,
        "human_cost_mode": cfg.costs.human_cost_mode,
        "currency": cfg.costs.currency,
        "price_input_per_mtok": cfg.judge.price_input_per_mtok,
        "price_output_per_mtok": cfg.judge.price_output_per_mtok,
    }


def round_money(row: Any, cfg: Config) -> dict[str, Any]:
    """A stored round's snapshot, or today's config for rounds stored before snapshots."""
    try:
        stored = json.loads(row["thresholds"] or "{}").get("money")
    except (TypeError, ValueError):
        stored = None
    return {**money_snapshot(cfg), **(stored or {})}


def round_currencies(store: Store, cfg: Config) -> dict[int, str]:
    """The currency each round's money is in: the one it was priced in (its snapshot)."""
    return {int(r["id"]): str(round_money(r, cfg)["currency"]) for r in store.rounds()}


def total_currency(currencies: dict[int, str], cfg: Config) -> tuple[str, str | None]:
    """The label of money added up over the rounds: their own currency, whatever
    ``costs.currency`` says now (it prices the rounds to come). Rounds priced in several:
    all of them ("EUR+USD"), and a one-line note that totals add unlike money."""
    found = sorted(set(currencies.values())) or [cfg.costs.currency]
    if len(found) == 1:
        return found[0], None
    ids = {c: [str(r) for r, x in currencies.items() if x == c] for c in found}
    which = "; ".join(f"{c}: round{'s' * (len(i) > 1)} {', '.join(i)}" for c, i in ids.items())
    return "+".join(found), (
        f"rounds were priced in different currencies ({which}): each round's money is in its "
        "own, and totals add them as they are (no exchange rate), in no one currency"
    )


def epoch(timestamp: str) -> float:
    """Argilla's timestamps are ISO 8601 in UTC without an offset."""
    when = datetime.fromisoformat(timestamp)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def review_times(store: Store, cfg: Config) -> tuple[list[Any], dict[tuple[str, str], Any]]:
    """Every submitted response, and the seconds each took (None: unknown)."""
    rows = store.submitted_responses()
    seconds = costs.review_seconds(
        [(r["reviewer"], r["pair_id"], epoch(r["updated_at"])) for r in rows], cfg.costs.break_cap_s
    )
    return rows, seconds


ASKED = "one_more_asked"  # a flag per verdict asked of one more reviewer (``sync.Hold``)


def one_more_asked(store: Store) -> Counter[int]:
    """Each round's verdicts asked of one more reviewer: a tie between reviewers, a label a
    reward model contradicts, a verdict too fast to count (``sync.Hold``) — one more to pay,
    counted when it is asked for, as the first ones were. One per event, however many
    responses it held back (a tie in a one-reviewer dataset holds both); a pair reopened
    before events were kept counts the responses held back then."""
    asked = store.flags(ASKED)
    first: dict[str, float] = {}  # each pair's first event kept
    for r in asked:
        first[r["pair_id"]] = min(first.get(r["pair_id"], r["created_at"]), r["created_at"])
    older = (
        r
        for r in store.flags("escalated")
        if r["created_at"] < first.get(r["pair_id"], float("inf"))
    )
    return Counter(r["round_id"] for r in asked) + Counter(r["round_id"] for r in older)


def round_ledgers(store: Store, cfg: Config, only: int | None = None) -> dict[int, costs.Ledger]:
    """Each round's ledger (or just round ``only``'s)."""
    rows, seconds = review_times(store, cfg)
    times: dict[int, list[float | None]] = {}
    for r in rows:
        if r["round_id"] is not None:
            times.setdefault(r["round_id"], []).append(seconds[(r["reviewer"], r["pair_id"])])
    escalated = one_more_asked(store)
    out = {}
    for rnd in store.rounds():
        if only is not None and rnd["id"] != only:
            continue
        money = round_money(rnd, cfg)
        decisions = store.round_decisions(rnd["id"])
        judged = sum(decisions.values())
        accepted = sum(n for (a, _), n in decisions.items() if a == ACCEPT)
        delivery = store.round_delivery(rnd["id"])
        out[rnd["id"]] = costs.ledger(
            judged,
            accepted,
            judged - accepted,
            store.call_totals(rnd["id"])["cost"],
            times.get(rnd["id"], []),
            float(money["human_price_per_pair"]),
            int(money["reviewers_per_pair"]),
            float(money["hourly_rate"]),
            str(money["human_cost_mode"]),
            certified=delivery["certified"],
            human_decided=delivery["human"],
            provisional=delivery["provisional"],
            # pairs two reviewers decide (review.double_share) pay the second verdict
            extra_reviews=store.round_pushed_to(rnd["id"], cfg.double_dataset)
            * max(0, 2 - int(money["reviewers_per_pair"]))
            + escalated[rnd["id"]],
            dropped=delivery["dropped"],
        )
    return out


def project_ledger(
    store: Store, cfg: Config, ledgers: Iterable[costs.Ledger] | None = None
) -> costs.Ledger | None:
    """Every round's ledger summed (None: no round yet; ``ledgers``: the rounds' already
    built), with what ``labeler verify`` paid its reward model (spent money like the
    judge's; it is no round's)."""
    total = summed(round_ledgers(store, cfg).values() if ledgers is None else ledgers)
    cost = store.reward_totals()["cost"]
    return None if total is None else dataclasses.replace(total, check_cost=cost)


def summed(ledgers: Iterable[costs.Ledger]) -> costs.Ledger | None:
    """The ledgers added up (None: none)."""
    total = None
    for led in ledgers:
        total = led if total is None else total + led
    return total


def tier_totals(store: Store, cfg: Config, round_id: int | None = None) -> list[dict[str, Any]]:
    """What each judge tier did (in one round, or in all): pairs it judged, accepted,
    passed on to the next tier, sent to humans; its requests and cost; and its share of
    the confidence budget once the project's split is fixed (``thresholds.tier_shares``)."""
    decisions = store.tier_decisions(round_id)
    unjudged_by_tier = store.tier_passed_unjudged(round_id)
    calls = store.tier_call_totals(round_id)
    split = fixed_split(store)
    shares = split_shares(split, cfg) or (None,) * len(cfg.judges)
    out = []
    last, union = len(cfg.judges) - 1, is_union(store, cfg)
    for k, judge in enumerate(cfg.judges):
        accepted = decisions.get((k, "accept"), 0)
        escalated = decisions.get((k, "escalate"), 0)
        # a union cascade's last tier passes nothing on: a verdict of its kept beside
        # the pair's is one an earlier tier's label overrides (``union_loop``)
        overridden = escalated if union and k == last else 0
        humans = decisions.get((k, "review"), 0)
        unjudged = unjudged_by_tier.get(k, 0)  # passed on outside its sample
        spent = calls.get(k, {"calls": 0, "cost": 0.0})
        out.append(
            {
                "tier": judge.label,
                "model": judge.model,
                "judged": accepted + escalated + humans - unjudged,
                "passed_unjudged": unjudged,
                "accepted": accepted,
                "escalated": escalated - overridden,
                "overridden": overridden,
                "to_humans": humans,
                "requests": int(spent["calls"]),
                "cost": float(spent["cost"]),
                # its share of 1 - confidence (None until it is fixed)
                "delta_share": shares[k],
                "split_predicted": bool(split and split.get("predicted")),
                "union": union,
            }
        )
    return out
