"""``labeler round --dry-run``: what a round would send and what it would cost; writes
nothing."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import asdict

from labeler import costs, versions
from labeler.config import Config
from labeler.pairs import Pair, read_source
from labeler.rounds import Context, RoundSummary, SourceTally, make_context, round_seed
from labeler.routing import Thresholds, round_draw, sample_only_rate, tier_judges
from labeler.store import Store
from labeler.thresholds import cold_start, split_pending
from labeler.thresholds import current as current_thresholds


def plan_round(cfg: Config, *, limit: int | None = None, batch: bool = False) -> RoundSummary:
    """What ``run_round`` would do, and its estimated judge cost (at Batch API prices with
    ``batch``); writes nothing."""
    ctx = make_context(cfg)
    summary = RoundSummary(status="dry_run")
    tally = SourceTally()
    store = Store(cfg.db_path) if cfg.db_path.exists() else None
    decisions: dict[tuple[int, str], int] = {}
    tiers = [make_context(cfg, tier=k) for k in range(len(cfg.judges))]
    tier_thresholds = [cold_start(cfg)] * len(cfg.judges)
    try:
        pending = split_pending(store, cfg)
        open_round = store.open_round() if store else None
        if store:
            ctx = dataclasses.replace(ctx, thresholds=current_thresholds(store, cfg))
            summary.chars_per_token = store.chars_per_token()
            decisions = store.tier_decisions() if len(cfg.judges) > 1 else {}
            tiers = [_tier_context(store, cfg, k) for k in range(len(cfg.judges))]
            tier_thresholds = [current_thresholds(store, cfg, k) for k in range(len(tiers))]
        if store and open_round is not None:
            summary.round_id, summary.resumed = int(open_round["id"]), True
            todo = list(store.iter_round_pairs(int(open_round["id"])))
        else:
            todo = _unjudged(store, tally.pairs_of(read_source(cfg.source)), limit, round_seed(cfg))
    finally:
        if store:
            store.close()
    summary.source_pairs, summary.skipped = tally.pairs, dict(tally.skipped)
    summary.bad_row_examples = tally.examples
    summary.pairs_in_round = len(todo)
    reach = _reach_shares(decisions, len(cfg.judges))
    summary.judge_cost = 0.0
    for k, judge in enumerate(cfg.judges):
        tctx = tiers[k]  # every request: each order x panel variant x sample
        chars = [
            sum(len(m["content"]) for m in tctx.messages(p, slot))
            for p in todo
            for slot in tctx.slots
        ]
        tokens_in, tokens_out, cost = costs.estimate_round_cost(
            chars, judge.max_tokens, tctx.prices, summary.chars_per_token or costs.CHARS_PER_TOKEN
        )
        # a later tier judges only what the earlier ones pass on: the share observed so far
        # (all of it before any history: the worst case)
        share = reach[k] * _sampled_share(cfg, tier_thresholds[k], k, todo, pending)
        cost *= judge.batch_price_share if batch else 1.0
        summary.prompt_tokens += round(tokens_in * share)
        summary.completion_tokens += round(tokens_out * share)
        summary.judge_cost += cost * share
        summary.requests_sent += round(len(chars) * share)
        if len(cfg.judges) > 1:
            summary.tiers.append(
                {
                    "tier": judge.label,
                    "model": judge.model,
                    "reach_share": share,
                    "requests": round(len(chars) * share),
                    "cost": cost * share,
                    "cost_worst": cost,
                }
            )
    if cfg.quality.fact_check and todo and not batch:  # online rounds only
        _plan_fact_check(cfg, summary, todo)
    summary.baseline_cost = len(todo) * cfg.costs.human_price_per_pair
    summary.currency = cfg.costs.currency
    summary.thresholds = asdict(ctx.thresholds)
    return summary


def _plan_fact_check(cfg: Config, summary: RoundSummary, todo: list[Pair]) -> None:
    """The fact-check's calls (``quality.fact_check``): one per accepted pair, at most one
    per pair (the worst case: every pair accepted), each with the longer response."""
    from labeler import factcheck, prompts
    from labeler.judging import judge_prices

    judge = cfg.judges[-1]
    template = prompts.load_fact_template(cfg.quality.fact_check_template)
    chars = [
        sum(
            len(m["content"])
            for m in prompts.fact_messages(
                template, p.prompt, max(p.response_a, p.response_b, key=len)
            )
        )
        for p in todo
    ]
    prices = judge_prices(judge)
    tokens_in, tokens_out, cost = costs.estimate_round_cost(
        chars,
        max(judge.max_tokens, factcheck.MAX_TOKENS),
        prices,
        summary.chars_per_token or costs.CHARS_PER_TOKEN,
    )
    summary.prompt_tokens += tokens_in
    summary.completion_tokens += tokens_out
    summary.judge_cost += cost
    summary.requests_sent += len(chars)
    summary.fact_checked = len(chars)


def _sampled_share(
    cfg: Config, t: Thresholds, tier: int, todo: list[Pair], pending: bool = False
) -> float:
    """The share of the pairs a tier judges itself: a tier that is not the last and has
    no certificate yet (planned procedure) judges only its calibration sample, and while
    its cascade's split of delta is ``pending`` (``thresholds.split_pending``) the
    prediction set too (``routing.prediction_draw``)."""
    tiers = len(cfg.judges)
    rate = sample_only_rate(t, tier == tiers - 1, cfg.calibration.procedure)
    if rate is None or not todo:
        return 1.0
    seed = cfg.routing.seed
    return sum(tier_judges(seed, p.id, tiers, rate, pending) for p in todo) / len(todo)


def _tier_context(store: Store, cfg: Config, tier: int) -> Context:
    """A tier's calls as the next round makes them: a panel with its latest version's
    examples (none before the first version: one prompt)."""
    version = versions.latest(store, tier) if cfg.judges[tier].panel > 1 else None
    examples = versions.examples(store, version) if version is not None else ((),)
    return make_context(cfg, None, tier, version, examples)


def _reach_shares(decisions: dict[tuple[int, str], int], tiers: int) -> list[float]:
    """The share of a round's pairs each tier judges: 1 for the first; for a later tier,
    the share the tiers before it passed on over all rounds so far (``decisions``:
    ``Store.tier_decisions``; 1 without history)."""
    shares = [1.0]
    for k in range(1, tiers):
        judged = sum(n for (t, _), n in decisions.items() if t == k - 1)
        passed = decisions.get((k - 1, "escalate"), 0)
        shares.append(shares[-1] * (passed / judged if judged else 1.0))
    return shares


def _unjudged(
    store: Store | None, pairs: Iterable[Pair], limit: int | None, seed: int | None
) -> list[Pair]:
    """The ``limit`` distinct pairs no round has judged yet that the next round would
    take (reads them all): those of the source and those stored from any earlier source
    that no round took; the lowest draws under ``seed`` (kept ones, and
    ``routing.round_draw`` above the store's cut for the rest), or the first in import
    order when it is None (``Store.start_round``)."""
    todo: list[Pair] = []
    seen: set[str] = set()
    batch: list[Pair] = []
    kept: dict[str, float] = {}

    def flush() -> None:
        done = store.known_pair_ids([p.id for p in batch]) if store else set()
        todo.extend(p for p in batch if p.id not in done)
        if store and seed is not None:
            kept.update(store.waiting_draws([p.id for p in batch]))
        batch.clear()

    # the round imports the source first, then takes from every pair waiting: those
    # stored come first in import order
    stored = store.iter_round_pairs(None) if store else iter(())
    for pair in itertools.chain(stored, pairs):
        if pair.id not in seen:
            seen.add(pair.id)
            batch.append(pair)
        if len(batch) >= 500:
            flush()
    flush()
    if seed is not None and limit is not None:
        cut = store.round_cut() if store else 0.0
        todo = heapq.nsmallest(
            limit, todo, key=lambda p: kept.get(p.id, round_draw(seed, p.id, cut))
        )
    return todo[:limit]
