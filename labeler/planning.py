"""``labeler round --dry-run``: what a round would send and what it would cost; writes
nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import asdict

from labeler import costs
from labeler.config import Config
from labeler.pairs import Pair, read_source
from labeler.rounds import RoundSummary, SourceTally, make_context
from labeler.store import Store
from labeler.thresholds import current as current_thresholds


def plan_round(cfg: Config, *, limit: int | None = None) -> RoundSummary:
    """What ``run_round`` would do, and its estimated judge cost; writes nothing."""
    ctx = make_context(cfg)
    summary = RoundSummary(status="dry_run")
    tally = SourceTally()
    store = Store(cfg.db_path) if cfg.db_path.exists() else None
    try:
        open_round = store.open_round() if store else None
        if store:
            ctx = dataclasses.replace(ctx, thresholds=current_thresholds(store, cfg))
            summary.chars_per_token = store.chars_per_token()
        if store and open_round is not None:
            summary.round_id, summary.resumed = int(open_round["id"]), True
            todo = list(store.iter_round_pairs(int(open_round["id"])))
        else:
            todo = _unjudged(store, tally.pairs_of(read_source(cfg.source)), limit)
    finally:
        if store:
            store.close()
    summary.source_pairs, summary.skipped = tally.pairs, dict(tally.skipped)
    summary.bad_row_examples = tally.examples
    summary.pairs_in_round = len(todo)
    per_order = [
        sum(len(m["content"]) for m in ctx.messages(p, o)) for p in todo for o in ctx.orders
    ]
    chars = [c for c in per_order for _ in range(cfg.judge.samples)]  # each order, N samples
    tokens_in, tokens_out, cost = costs.estimate_round_cost(
        chars, cfg.judge.max_tokens, ctx.prices, summary.chars_per_token or costs.CHARS_PER_TOKEN
    )
    summary.prompt_tokens, summary.completion_tokens, summary.judge_cost = (
        tokens_in,
        tokens_out,
        cost,
    )
    summary.requests_sent = len(chars)  # what a round would send (orders x samples)
    summary.baseline_cost = len(todo) * cfg.costs.human_price_per_pair
    summary.currency = cfg.costs.currency
    summary.thresholds = asdict(ctx.thresholds)
    return summary


def _unjudged(store: Store | None, pairs: Iterable[Pair], limit: int | None) -> list[Pair]:
    """The first ``limit`` distinct pairs that no round has judged yet (reads them all)."""
    todo: list[Pair] = []
    seen: set[str] = set()
    batch: list[Pair] = []

    def flush() -> None:
        done = store.known_pair_ids([p.id for p in batch]) if store else set()
        todo.extend(p for p in batch if p.id not in done)
        batch.clear()

    for pair in pairs:
        if pair.id not in seen:
            seen.add(pair.id)
            batch.append(pair)
        if len(batch) >= 500:
            flush()
    flush()
    return todo if limit is None else todo[:limit]
