"""``labeler round --dry-run``: what a round would send and what it would cost; writes
nothing."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict

from labeler import costs, prompts, versions
from labeler.calibration import NEVER
from labeler.config import Config
from labeler.dataset import check_dataset_dir
from labeler.errors import check_url
from labeler.factcheck import check_sizes
from labeler.importing import check_source, no_pairs
from labeler.judging import tier_thresholds_from_json
from labeler.pairs import Pair, read_source
from labeler.rounds import Context, RoundSummary, SourceTally, make_context, round_seed
from labeler.routing import Thresholds, round_draw, sample_only_rate, tier_judges
from labeler.store import Store
from labeler.summary import setting_notices
from labeler.sync import check_guidelines_fit
from labeler.terms import check_mode as check_phase_mode
from labeler.thresholds import cold_start, split_pending
from labeler.thresholds import current as current_thresholds
from labeler.union_loop import is_union
from labeler.union_loop import reach as union_reach


@dataclasses.dataclass(frozen=True, slots=True)
class _Priced:
    """What pricing a pair needs, without its texts: its id and the characters of each
    request each tier would send (each order x panel variant x sample), and of the
    fact-check's request (0 without one)."""

    id: str
    chars: tuple[tuple[int, ...], ...]
    fact: int


def plan_round(
    cfg: Config, *, limit: int | None = None, batch: bool = False, strict: bool = False
) -> RoundSummary:
    """What ``run_round`` would do, and its estimated judge cost (at Batch API prices with
    ``batch``); writes nothing. Reads the pairs once, keeping only their request sizes.
    Refuses what the round would refuse: a bad row under ``strict``, a source without a
    usable pair, an output.dataset_dir it may not write."""
    ctx = make_context(cfg)
    check_dataset_dir(cfg)
    check_guidelines_fit(cfg)  # (Argilla's limit: before the judge is paid)
    for judge in cfg.judges:  # (the round refuses a bad URL: so does its dry run)
        check_url(judge.base_url)
    if strict:
        check_source(cfg)
    summary = RoundSummary(status="dry_run")
    tally = SourceTally()
    at: list[tuple[int, _Priced]] = []  # a resumed union round's pairs, by the tier they wait at
    store = Store(cfg.db_path) if cfg.db_path.exists() else None
    decisions: dict[tuple[int, str], int] = {}
    forecast: list[float] | None = None  # a union cascade's reach (``union_loop.reach``)
    tiers = [make_context(cfg, tier=k) for k in range(len(cfg.judges))]
    tier_thresholds = [cold_start(cfg)] * len(cfg.judges)
    fact = bool(cfg.quality.fact_check) and not batch  # online rounds only
    unchecked: list[int] = []  # the request sizes of the fact-checks still to do
    try:
        new_judge = ""  # (a single judge changed: its own stint and calibration phase)
        if store is not None:  # (refused as the round would refuse it)
            new_judge = versions.check_judges(store, cfg)
        pending = split_pending(store, cfg)
        union = is_union(store, cfg)
        open_round = store.open_round() if store else None
        if store:
            ctx = dataclasses.replace(ctx, thresholds=current_thresholds(store, cfg))
            summary.chars_per_token = store.chars_per_token()
            decisions = store.tier_decisions() if len(cfg.judges) > 1 else {}
            tiers = [_tier_context(store, cfg, k) for k in range(len(cfg.judges))]
            tier_thresholds = [current_thresholds(store, cfg, k) for k in range(len(tiers))]
            if open_round is not None:  # a resumed round keeps the thresholds it began with
                began = tier_thresholds_from_json(open_round["thresholds"], len(tiers))
                tier_thresholds = [b or t for b, t in zip(began, tier_thresholds, strict=True)]
            if new_judge:  # the next round begins its stint: from cold start
                waiting = store.label_status_counts()["provisional"]  # (all the earlier's)
                new_judge += versions.ended_words(cfg, waiting, "would go")
                tier_thresholds = [cold_start(cfg)]
                ctx = dataclasses.replace(ctx, thresholds=tier_thresholds[0])
            in_force = tier_thresholds[-1:] if union else tier_thresholds
            check_phase_mode(tier_thresholds, cfg)  # (refused as the round refuses it)
            summary.notices = setting_notices(in_force, cfg) + ([new_judge] if new_judge else [])
            if union:  # under the certificate in force, from the earlier tiers' verdicts
                forecast = union_reach(store, cfg, tier_thresholds[-1])
            if fact:  # accepted pairs an earlier run left unchecked: this round asks them
                unchecked = check_sizes(store, cfg)
        price = _pricer(cfg, tiers, fact)
        if store and open_round is not None:
            summary.round_id, summary.resumed = int(open_round["id"]), True
            rid = int(open_round["id"])
            if len(tiers) > 1:  # each pair priced from the tier it waits for
                at = [
                    (k, price(p))
                    for k in range(len(tiers))
                    for p in store.iter_round_pairs(rid, tier=k)
                ]
                todo = [p for _, p in at]
            else:
                todo = [price(p) for p in store.iter_round_pairs(rid)]
        else:
            source = tally.pairs_of(read_source(cfg.source))
            todo = _unjudged(store, source, limit, round_seed(cfg), price)
            if tally.pairs == 0:
                no_pairs(cfg, tally)
    finally:
        if store:
            store.close()
    summary.source_pairs, summary.skipped = tally.pairs, dict(tally.skipped)
    summary.bad_row_examples = tally.examples
    summary.pairs_in_round = len(todo)
    reach = forecast or _reach_shares(decisions, len(cfg.judges), union)
    summary.judge_cost = 0.0
    ids = [p.id for p in todo]
    futile = union and tier_thresholds[-1].a >= NEVER  # (only the last tier judges)
    for k, judge in enumerate(cfg.judges):
        chars = [c for p in todo for c in p.chars[k]]
        tokens_in, tokens_out, cost = costs.estimate_round_cost(
            chars,
            judge.max_tokens,
            tiers[k].prices,
            summary.chars_per_token or costs.CHARS_PER_TOKEN,
        )
        # a later tier judges only what the earlier ones pass on: the share observed so far
        # (all of it before any history: the worst case), and of it what the tier judges
        # itself (an uncertified per-tier cascade's sample; none once a union is futile)
        itself = 1.0 if union else _sampled_share(cfg, tier_thresholds[k], k, ids, pending)
        itself = 0.0 if futile and k < len(tiers) - 1 else itself
        # (a resumed round: what waits at tier k, or may reach it from an earlier one)
        share = itself * (_resumed_share(reach, [j for j, _ in at], k) if at else reach[k])
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
    if fact and (todo or unchecked):
        _plan_fact_check(cfg, summary, [p.fact for p in todo] + unchecked)
    summary.baseline_cost = len(todo) * cfg.costs.human_price_per_pair
    summary.currency = cfg.costs.currency
    summary.thresholds = asdict(ctx.thresholds)
    return summary


def _pricer(cfg: Config, tiers: list[Context], fact: bool) -> Callable[[Pair], _Priced]:
    """A pair's request sizes (``_Priced``): each tier's requests as it would render them,
    and with ``fact`` the fact-check's, on the longer response (its template read at the
    first pair: a dry run with nothing to price reads none)."""
    templates: list[prompts.Template] = []

    def price(p: Pair) -> _Priced:
        chars = tuple(
            tuple(sum(len(m["content"]) for m in t.messages(p, slot)) for slot in t.slots)
            for t in tiers
        )
        checked = 0
        if fact:
            if not templates:
                templates.append(prompts.load_fact_template(cfg.quality.fact_check_template))
            longer = max(p.response_a, p.response_b, key=len)
            checked = sum(
                len(m["content"]) for m in prompts.fact_messages(templates[0], p.prompt, longer)
            )
        return _Priced(p.id, chars, checked)

    return price


def _plan_fact_check(cfg: Config, summary: RoundSummary, chars: list[int]) -> None:
    """The fact-check's calls (``quality.fact_check``): one per accepted pair, at most one
    per pair (the worst case: every pair accepted), each with the longer response, and
    one per pair accepted earlier whose check is still to do."""
    from labeler import factcheck
    from labeler.judging import judge_prices

    judge = cfg.judges[-1]
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
    cfg: Config, t: Thresholds, tier: int, ids: list[str], pending: bool = False
) -> float:
    """The share of the pairs a tier judges itself: a tier that is not the last and has
    no certificate yet (planned procedure) judges only its calibration sample, and while
    its cascade's split of delta is ``pending`` (``thresholds.split_pending``) the
    prediction set too (``routing.prediction_draw``)."""
    tiers = len(cfg.judges)
    rate = sample_only_rate(t, tier == tiers - 1, cfg.calibration.procedure)
    if rate is None or not ids:
        return 1.0
    seed = cfg.routing.seed
    return sum(tier_judges(seed, i, tiers, rate, pending) for i in ids) / len(ids)


def _tier_context(store: Store, cfg: Config, tier: int) -> Context:
    """A tier's calls as the next round makes them: a panel with its latest version's
    examples (none before the first version: one prompt)."""
    version = versions.latest(store, tier) if cfg.judges[tier].panel > 1 else None
    examples = versions.examples(store, version) if version is not None else ((),)
    return make_context(cfg, None, tier, version, examples)


def _resumed_share(reach: list[float], waits_at: list[int], k: int) -> float:
    """The share of a resumed round's pairs that reach tier ``k``: those waiting for it,
    and of those waiting for an earlier tier j, the share that reaches k from j
    (``reach[k] / reach[j]``, ``reach`` the share of a round that reaches each tier)."""

    def one(j: int) -> float:
        if j >= k:
            return float(j == k)
        return reach[k] / reach[j] if reach[j] > 0 else 1.0

    return sum(one(j) for j in waits_at) / len(waits_at) if waits_at else 0.0


def _reach_shares(
    decisions: dict[tuple[int, str], int], tiers: int, union: bool = False
) -> list[float]:
    """The share of a round's pairs each tier judges: 1 for the first; for a later tier,
    the share the tiers before it passed on over all rounds so far (``decisions``:
    ``Store.tier_decisions``; 1 without history). In a union cascade a pair the tier
    passed on may hold its label later (``union_loop``): the pairs each tier judged."""
    if union:
        seen = [sum(n for (t, _), n in decisions.items() if t == k) for k in range(tiers)]
        return [1.0] + [n / seen[0] if seen[0] else 1.0 for n in seen[1:]]
    shares = [1.0]
    for k in range(1, tiers):
        judged = sum(n for (t, _), n in decisions.items() if t == k - 1)
        passed = decisions.get((k - 1, "escalate"), 0)
        shares.append(shares[-1] * (passed / judged if judged else 1.0))
    return shares


def _unjudged(
    store: Store | None,
    pairs: Iterable[Pair],
    limit: int | None,
    seed: int | None,
    price: Callable[[Pair], _Priced],
) -> list[_Priced]:
    """The ``limit`` distinct pairs no round has judged yet that the next round would
    take, priced (reads them all, keeping only their request sizes): those of the source
    and those stored from any earlier source that no round took; the lowest draws under
    ``seed`` (kept ones, and ``routing.round_draw`` above the store's cut for the rest),
    or the first in import order when it is None (``Store.start_round``)."""
    seen: set[str] = set()
    kept: dict[str, float] = {}

    def unjudged() -> Iterator[Pair]:
        batch: list[Pair] = []

        def flush() -> Iterator[Pair]:
            done = store.known_pair_ids([p.id for p in batch]) if store else set()
            if store and seed is not None:
                kept.update(store.waiting_draws([p.id for p in batch]))
            out = [p for p in batch if p.id not in done]
            batch.clear()
            return iter(out)

        # the round imports the source first, then takes from every pair waiting: those
        # stored come first in import order
        stored = store.iter_round_pairs(None) if store else iter(())
        for pair in itertools.chain(stored, pairs):
            if pair.id not in seen:
                seen.add(pair.id)
                batch.append(pair)
            if len(batch) >= 500:
                yield from flush()
        yield from flush()

    if seed is None or limit is None:  # import order; the whole source is still read
        return [price(p) for n, p in enumerate(unjudged()) if limit is None or n < limit]
    cut = store.round_cut() if store else 0.0
    return _lowest(unjudged(), lambda p: kept.get(p.id, round_draw(seed, p.id, cut)), limit, price)


def _lowest(
    pairs: Iterable[Pair],
    key: Callable[[Pair], float],
    limit: int,
    price: Callable[[Pair], _Priced],
) -> list[_Priced]:
    """The ``limit`` pairs of lowest ``key``, earlier first among equal ones (as
    ``heapq.nsmallest``), priced as they enter: only those kept are held."""
    heap: list[tuple[float, int, _Priced]] = []  # a max-heap of (-key, -position)
    for n, pair in enumerate(pairs):
        k = key(pair)  # read as the pair arrives (``kept`` grows a batch at a time)
        if len(heap) < limit:
            heapq.heappush(heap, (-k, -n, price(pair)))
        elif limit and k < -heap[0][0]:
            heapq.heapreplace(heap, (-k, -n, price(pair)))
    return [p for _, _, p in sorted(heap, reverse=True)]
