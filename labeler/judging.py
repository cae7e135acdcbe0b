"""Judging: what one judge tier's calls share (``Context``: template, guidelines,
thresholds, prices), and the async engine that sends each pair's requests, caches every
reply as it returns and stores the verdict routed with the thresholds in force."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from labeler import costs, prompts, versions
from labeler.batches import BatchWriter, Recording, custom_id
from labeler.calibration import NEVER, Signals, row_signals, signals_of
from labeler.config import Config, JudgeConfig
from labeler.confusables import fold_table
from labeler.errors import JudgeError, shown_url
from labeler.injection import suspect_pair
from labeler.interrupt import Halt, interruptible, stopped
from labeler.pairs import Pair
from labeler.panel import Version
from labeler.routing import (
    ACCEPT,
    ESCALATE,
    SUSPECTED_INJECTION,
    Decision,
    Thresholds,
    audit_draw,
    calibration_draw,
    route,
    route_union,
    sample_only_rate,
    tier_judges,
    unfit_reason,
)
from labeler.store import CallRecord, Store, VerdictRecord
from labeler.summary import Progress
from labeler.thresholds import cold_start, split_pending
from labeler.union_loop import is_union, pair_scores
from labeler.verdicts import Judgement, OrderReply, combine, pool, read_reply, vote
from labeler.versions import Examples, prompt_hash

ABANDONED = "abandoned"  # a call's status: sent, its reply given up by the second Ctrl-C
FAULT_MIN = 12  # failures of one kind before a failing endpoint can stop a round


@dataclass(frozen=True)
class Context:
    """What every judge call of one judge tier in a round shares."""

    cfg: Config
    template: prompts.Template
    guidelines: prompts.Guidelines
    thresholds: Thresholds
    prices: costs.Prices
    judge: JudgeConfig
    tier: int = 0  # position in the cascade (0: the first judge)
    last: bool = True  # the last tier: what it cannot accept goes to humans
    examples: Examples = ((),)  # a panel's in-context examples, per prompt variant
    judge_version: str = ""  # the panel's judge version, or a single judge's stint

    @property
    def orders(self) -> tuple[str, ...]:
        return prompts.ORDERS if self.judge.both_orders else prompts.ORDERS[:1]

    @property
    def slots(self) -> tuple[str, ...]:
        """One request per slot: each order, for each panel variant ("ab@1", ...), sampled
        ``judge.samples`` times ("ab#1", ...); the first of each keeps the plain name."""
        n, variants = self.judge.samples, len(self.examples)
        return tuple(
            o + (f"@{v}" if v else "") + (f"#{i}" if i else "")
            for o in self.orders
            for v in range(variants)
            for i in range(n)
        )

    def cache_key(self, pair_id: str, order: str) -> str:
        blob = json.dumps(
            [self.judge.model, self.template.hash, self.guidelines.hash, pair_id, order]
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def messages(self, pair: Pair, slot: str) -> list[dict[str, str]]:
        return prompts.render_messages(
            self.template,
            self.guidelines,
            pair.prompt,
            pair.response_a,
            pair.response_b,
            order_of(slot),
            self.examples[variant_of(slot)],
        )

    def per_order(self, have: dict[str, OrderReply]) -> list[OrderReply]:
        """One reply per order from its slots: samples voted (``vote``), panel variants
        pooled (``pool``: their averaged verdict probabilities)."""
        out = []
        for o in self.orders:
            variants = []
            for v in range(len(self.examples)):
                mine = [
                    r for slot, r in have.items() if order_of(slot) == o and variant_of(slot) == v
                ]
                variants.append(vote(o, mine) if self.judge.samples > 1 else mine[0])
            out.append(variants[0] if len(variants) == 1 else pool(o, variants))
        return out


def order_of(slot: str) -> str:
    """The presentation order of a request slot ("ba@1#2" -> "ba")."""
    return re.split(r"[#@]", slot, maxsplit=1)[0]


def variant_of(slot: str) -> int:
    """The panel variant of a request slot ("ba@1#2" -> 1; 0 without one)."""
    return int(slot.split("@", 1)[1].split("#", 1)[0]) if "@" in slot else 0


def _thresholds(data: dict[str, Any]) -> Thresholds:
    # a round stores its own settings (seed, order, money, later tiers...) beside its
    # thresholds: only the thresholds' fields are read back
    return Thresholds.from_params(data)


def thresholds_from_json(text: str) -> Thresholds:
    return _thresholds(json.loads(text))


def tier_thresholds_from_json(text: str, tiers: int) -> list[Thresholds | None]:
    """Each tier's thresholds as a round stored them (None: a tier the round did not have)."""
    data = json.loads(text)
    later = [_thresholds(t) for t in data.get("tiers", [])]
    out: list[Thresholds | None] = [_thresholds(data), *later]
    return (out + [None] * tiers)[:tiers]


def round_thresholds_json(tiers: list[Thresholds]) -> dict[str, Any]:
    """What a round stores: the first tier's thresholds (every reader's), later tiers'
    under "tiers"."""
    out = asdict(tiers[0])
    if len(tiers) > 1:
        out["tiers"] = [asdict(t) for t in tiers[1:]]
    return out


def judge_prices(judge: JudgeConfig) -> costs.Prices:
    """What a judge's calls cost, from its config."""
    return costs.Prices(
        judge.price_input_per_mtok, judge.price_output_per_mtok, judge.price_cached_input_per_mtok
    )


def make_context(
    cfg: Config,
    thresholds: Thresholds | None = None,
    tier: int = 0,
    version: Version | None = None,
    examples: Examples = ((),),
    stint: str = "",
) -> Context:
    """What a tier's calls share; with a panel ``version`` (and its ``examples``), the
    version is folded into the prompt hash (verdicts, cache keys, dataset rows). A single
    judge's ``stint`` (``versions.stint``) is in its verdicts' signals, as a version is."""
    judges = cfg.judges
    judge = judges[tier]
    template = prompts.load_template(judge.template)
    if version is not None:
        template = dataclasses.replace(template, hash=prompt_hash(template.hash, version))
    return Context(
        cfg,
        template,
        prompts.load_guidelines(cfg.judge.guidelines),
        thresholds or cold_start(cfg),
        judge_prices(judge),
        judge,
        tier,
        tier == len(judges) - 1,
        examples if version is not None else ((),),
        version.hash if version is not None else stint,
    )


def _reply_from_row(row: Any) -> OrderReply:
    positions = json.loads(row["logprobs"]) if row["logprobs"] else None
    return read_reply(order_of(row["presented_order"]), row["reply"], positions)


class Judging:
    """The async engine of one run of a round: a producer and ``concurrency`` workers."""

    def __init__(
        self,
        store: Store,
        ctx: Context,
        round_id: int,
        on_progress: Callable[[Progress], None] | None,
        judge: Any,
        queue: BatchWriter | None = None,
    ):
        self.store, self.ctx, self.round_id = store, ctx, round_id
        self.on_progress = on_progress
        self.judge = judge
        self.queue = queue  # --batch: requests are written for the Batch API, not sent
        self.total = store.count_round_pairs(round_id, "imported", ctx.tier)
        self.escalated = 0
        self.done = 0
        self.sent = 0
        self.cached = 0
        self.cost = store.call_totals(round_id)["cost"]
        self.failed: dict[str, str] = {}
        self.retry: dict[str, str] = {}  # of them, those left unjudged for the next run
        self.replies: dict[str, dict[str, OrderReply]] = {}
        self.near_identical = store.flagged_ids("near_duplicate")
        self.allowance = allowance(store, ctx.cfg, round_id)
        # worst case per request: input tokens from the prompt's length (conservatively,
        # fewer characters per token than observed) plus max_tokens of output
        observed = store.chars_per_token()
        self.chars_per_token = 0.9 * observed if observed else 3.0
        self.reserved = 0.0  # worst-case cost of the requests in flight
        self.spent = 0.0  # billed in this run
        self.stopped = False
        self.halt = Halt(ctx.judge.concurrency)  # Ctrl-C: send nothing new
        # a judge that fails systematically stops the round (no pair goes to humans for a
        # judge fault): failures by kind; permanent ones wait here until the run ends
        self.failures: Counter[str] = Counter()
        self.fault: str | None = None
        self.deferred: list[tuple[Pair, str]] = []
        # an earlier tier also judges the pairs its cascade's split is predicted from
        self.predicting = not ctx.last and split_pending(store, ctx.cfg)
        self.union = is_union(store, ctx.cfg)  # a union cascade (``union_loop``)

    def _progress(self) -> None:
        if self.on_progress:
            phase = (
                "judging"
                if self.ctx.tier == 0 and self.ctx.last
                else (f"judging ({self.ctx.judge.label})")
            )
            self.on_progress(Progress(self.done, self.total, self.cost, self.sent, phase))

    async def run(self) -> None:
        queue: asyncio.Queue[tuple[Pair, str, str] | None] = asyncio.Queue(
            maxsize=self.ctx.judge.concurrency * 2
        )
        workers = self.ctx.judge.concurrency
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(self._worker(queue))
            await self._produce(queue)
            for _ in range(workers):
                await queue.put(None)

    async def _produce(self, queue: asyncio.Queue[tuple[Pair, str, str] | None]) -> None:
        orders = self.ctx.slots  # each order, once per sample
        for pair in self.store.iter_round_pairs(self.round_id, tier=self.ctx.tier):
            if self.fault is not None or self.halt.asked:
                break  # the endpoint is failing, or the user stops: queue nothing more
            if self.ctx.tier == 0 and self._screened_out(pair):
                self.done += 1
                continue
            if self._passed_on_unjudged(pair):
                self.done += 1
                continue
            keys = {order: self.ctx.cache_key(pair.id, order) for order in orders}
            rows = self.store.cached_calls(list(keys.values()))
            have = {o: _reply_from_row(rows[k]) for o, k in keys.items() if k in rows}
            batched = sum(  # (brought by this round's batches: sent, not cached)
                1
                for k in keys.values()
                if k in rows and rows[k]["batch"] and rows[k]["round_id"] == self.round_id
            )
            self.cached += len(have) - batched
            if len(have) == len(orders):
                self._finish(pair, have)
                continue
            missing = [k for o, k in keys.items() if o not in have]
            refused = self.store.refused(missing)
            if refused:  # refused for good before (a killed run): not paid for again
                self._fail(pair, next(iter(refused.values())), permanent=True)
                continue
            failed = self.store.failed_attempts(missing)
            worst = max(failed.values(), default=(0, ""))
            if worst[0] >= self.ctx.judge.max_failed_attempts:
                # a poison pair: it failed on every earlier run; humans decide it
                self._fail(pair, self._gave_up(worst), permanent=True)
                continue
            self.replies[pair.id] = have
            for order in orders:
                if order not in have:
                    await queue.put((pair, order, keys[order]))

    def _sample_rate(self) -> float | None:
        ctx = self.ctx
        if self.union:  # every tier judges what reaches it, unless nothing can be certified
            return 0.0 if not ctx.last and ctx.thresholds.a >= NEVER else None
        return sample_only_rate(ctx.thresholds, ctx.last, ctx.cfg.calibration.procedure)

    def _passed_on_unjudged(self, pair: Pair) -> bool:
        """A tier that is not the last and has no certificate yet (planned procedure)
        judges only its calibration sample, drawn like any audit (independent of the
        pair's content) with the last tier's draw (``routing.calibration_draw``: the
        sample then reaches humans through the last tier): every other pair goes straight
        to the next tier, so a cascade does not pay its cheap tier for pairs that tier
        cannot accept yet."""
        rate, cfg = self._sample_rate(), self.ctx.cfg
        if tier_judges(cfg.routing.seed, pair.id, len(cfg.judges), rate, self.predicting):
            return False
        self._store_verdict(pair, None, 0.0, False, {"not_sampled": True}, ESCALATE, "not_sampled")
        return True

    def _screened_out(self, pair: Pair) -> bool:
        """A pair no judge should decide goes to humans unjudged (checked once, before
        the first tier): near-identical responses (a likely tie), or a response talking
        to the judge."""
        if pair.id in self.near_identical:
            self._store_verdict(
                pair, None, 0.0, False, {"near_identical": True}, "review", "near_duplicate"
            )
            return True
        injected = suspect_pair(pair.response_a, pair.response_b, pair.prompt, fold_table())
        if injected:
            self.store.flag(pair.id, "suspected_injection", injected)
            self._store_verdict(
                pair, None, 0.0, False, {"injection": injected}, "review", SUSPECTED_INJECTION
            )
            return True
        return False

    async def _worker(self, queue: asyncio.Queue[tuple[Pair, str, str] | None]) -> None:
        while (job := await queue.get()) is not None:
            pair, order, key = job
            messages = self.ctx.messages(pair, order)
            chars = sum(len(m["content"]) for m in messages)
            worst = self.ctx.prices.call_cost(
                costs.estimate_tokens(chars, self.chars_per_token), self.ctx.judge.max_tokens
            )
            if self.fault is not None or self.halt.asked:
                continue  # the endpoint is failing, or the user stops: send nothing more
            if self.allowance is not None and (
                self.stopped or self.spent + self.reserved + worst > self.allowance
            ):
                self.stopped = True  # start nothing new; what is in flight finishes
                continue
            self.reserved += worst
            if self.queue is not None:  # held until the batch is billed: stays reserved
                self.queue.add(custom_id(key, pair.id, order), messages)
                continue
            try:
                reply = await self.judge.judge(messages)
            except asyncio.CancelledError:  # the second Ctrl-C's: sent, so billed all the same
                if self.halt.abandoned:  # (not a sibling's failure cancelling this one)
                    self.store.record_call(self._abandoned(pair, order, key, worst, chars))
                    self.halt.dropped += 1
                raise
            finally:
                self.reserved -= worst
            self.sent += 1
            cost = self.ctx.prices.call_cost(
                reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens
            )
            self.cost += cost
            self.spent += cost
            self.store.record_call(
                CallRecord(
                    key,
                    pair.id,
                    order,
                    self.ctx.judge.model,
                    self.ctx.template.hash,
                    self.ctx.guidelines.hash,
                    self.round_id,
                    "ok" if not reply.error else "refused" if reply.permanent else "error",
                    reply.text,
                    reply.positions,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    cost,
                    round(reply.latency_s * 1000, 3),
                    reply.error,
                    chars,
                    reply.cached_tokens,
                    self.ctx.tier,
                )
            )
            if reply.error:
                self._count_failure(reply.error, reply.permanent)
            if pair.id in self.failed or self.fault is not None:
                continue
            if reply.error:
                error, permanent = reply.error, reply.permanent
                if not permanent:
                    tries = self.store.failed_attempts([key]).get(key, (0, ""))
                    if tries[0] >= self.ctx.judge.max_failed_attempts:
                        error, permanent = self._gave_up(tries), True
                self._fail(pair, error, permanent)
                continue
            have = self.replies[pair.id]
            have[order] = read_reply(order_of(order), reply.text, reply.positions)
            if len(have) == len(self.ctx.slots):
                del self.replies[pair.id]
                self._finish(pair, have)

    def _abandoned(self, pair: Pair, order: str, key: str, worst: float, chars: int) -> CallRecord:
        """A request abandoned in flight, in the ledger at its worst cost (its reply lost)."""
        c, tokens = self.ctx, costs.estimate_tokens(chars, self.chars_per_token)
        return CallRecord(
            key, pair.id, order, c.judge.model, c.template.hash, c.guidelines.hash, self.round_id,
            ABANDONED, None, None, tokens, c.judge.max_tokens, worst, None, ABANDONED, chars, 0,
            c.tier,
        )  # fmt: skip

    def _count_failure(self, error: str, permanent: bool) -> None:
        share = self.ctx.judge.max_failure_share
        if self.fault is None and is_fault(self.failures, error, permanent, self.sent, share):
            self.fault = error

    def flush_deferred(self) -> None:
        """The run ended without a judge fault: pairs the endpoint refused for good go to
        the next tier, or to humans after the last (judge_error)."""
        action = "review" if self.ctx.last else ESCALATE
        for pair, error in self.deferred:
            self._store_verdict(pair, None, 0.0, False, {"error": error}, action, "judge_error")
        self.deferred.clear()

    @staticmethod
    def _gave_up(tries: tuple[int, str]) -> str:
        return f"failed {tries[0]} times (judge.max_failed_attempts), last: {tries[1]}"

    def _fail(self, pair: Pair, error: str, permanent: bool) -> None:
        self.failed[pair.id] = error
        if not permanent:
            self.retry[pair.id] = error
        self.replies.pop(pair.id, None)
        if permanent:  # the endpoint will never answer it: humans decide, if the run holds
            self.deferred.append((pair, error))
        self.done += 1
        self._progress()

    def _finish(self, pair: Pair, have: dict[str, OrderReply]) -> None:
        judgement = combine(self.ctx.per_order(have))
        if self.ctx.judge_version:
            judgement.signals["judge_version"] = self.ctx.judge_version
        rate, cfg = self._sample_rate(), self.ctx.cfg
        if rate is not None:
            drawn = calibration_draw(cfg.routing.seed, pair.id, len(cfg.judges))
            if drawn >= rate:  # judged only for its cascade's split (``tier_judges``)
                judgement.signals["prediction_only"] = True
            else:  # judged as part of its calibration sample: how it was drawn
                judgement.signals["calibration_sample"] = rate
                judgement.signals["calibration_draw_tier"] = len(cfg.judges) - 1
        holder = self.ctx.tier
        if self.union:
            decision, holder = self._route_union(pair, judgement)
        else:
            draw = audit_draw(cfg.routing.seed, pair.id, self.ctx.tier)
            decision = route(judgement, self.ctx.thresholds, draw, self.ctx.last)
        self._store_verdict(
            pair,
            judgement.label,
            judgement.confidence,
            judgement.self_high,
            judgement.signals,
            decision.action,
            decision.reason,
            decision.pi,
            decision.status,
            None if holder in (-1, self.ctx.tier) else holder,  # (a union cascade's holder)
        )
        self.done += 1
        self._progress()

    def _route_union(self, pair: Pair, judgement: Judgement) -> tuple[Decision, int]:
        """``routing.route_union`` at this tier: the last tier reads the earlier tiers'
        verdicts of the pair; every tier draws with the last tier's audit draw."""
        ctx, signals = self.ctx, signals_of(judgement)
        k_tiers = len(ctx.cfg.judges)
        verdicts: list[Signals | None] = [None] * k_tiers
        if ctx.last:
            for row in self.store.escalations_of(pair.id):
                verdicts[int(row["tier"])] = row_signals(row)
        verdicts[ctx.tier] = signals
        scores = pair_scores(verdicts, ctx.thresholds.caps)[: ctx.tier + 1]
        draw = audit_draw(ctx.cfg.routing.seed, pair.id, k_tiers - 1)
        return route_union(list(scores), ctx.thresholds, draw, ctx.last, unfit_reason(signals))

    def _store_verdict(
        self,
        pair: Pair,
        label: str | None,
        confidence: float,
        self_high: bool,
        signals: dict[str, Any],
        action: str,
        reason: str,
        pi: float = 1.0,
        status: str | None = None,
        hold: int | None = None,
    ) -> None:
        ctx = self.ctx
        record = VerdictRecord(
            pair.id,
            self.round_id,
            ctx.judge.model,
            ctx.template.hash,
            ctx.guidelines.hash,
            label,
            confidence,
            self_high,
            signals,
            action,
            reason,
            ctx.thresholds.version,
            pi,
            action not in (ACCEPT, ESCALATE),
            status,
            ctx.tier,
        )
        if action == ESCALATE:
            # the next tier judges it; what this tier said is evidence for its thresholds
            self.store.record_escalation(record)
            self.escalated += 1
            return
        self.store.record_verdict(record, "accepted" if action == ACCEPT else "needs_review", hold)


def is_fault(failures: Counter[str], error: str, permanent: bool, sent: int, share: float) -> bool:
    """Count one failed request in ``failures`` (by kind); is the judge failing, not the
    pairs? After FAULT_MIN failures of one kind making up more than ``share``
    (``judge.max_failure_share``) of the ``sent`` requests of this run: stop sending (the
    round stops with an error naming the endpoint's words). A refusal (400) is of one kind
    only when its text is the same: refusals that name something of the pair (its length
    in tokens, ...) are the pairs' own, and go to humans; a transient failure's kind is its
    status (the endpoint's trouble)."""
    kind = error if permanent else error.split(":", 1)[0]
    failures[kind] += 1
    return failures[kind] >= FAULT_MIN and failures[kind] / max(sent, 1) > share


def allowance(store: Store, cfg: Config, round_id: int | None) -> float | None:
    """What this run may still spend on the judge (None: no limit); ``round_id`` None: a
    round not opened yet (nothing spent in it)."""
    left = []
    if cfg.costs.max_cost_per_round > 0:
        spent = store.call_totals(round_id)["cost"] if round_id is not None else 0.0
        left.append(cfg.costs.max_cost_per_round - spent)
    if cfg.costs.total_budget > 0:
        left.append(cfg.costs.total_budget - store.call_totals()["cost"])
    return max(0.0, min(left)) if left else None


def adapted_key(j: JudgeConfig) -> str:
    """Where what an endpoint refuses is remembered: per endpoint, model and settings."""
    form = [j.base_url, j.model, j.max_tokens, j.temperature, j.logprobs, j.top_logprobs]
    return "judge-adapted:" + hashlib.sha256(json.dumps(form).encode()).hexdigest()[:16]


async def judge_async(
    store: Store,
    ctx: Context,
    round_id: int,
    on_progress: Callable[[Progress], None] | None,
    queue: BatchWriter | None = None,
) -> Judging:
    from labeler.judge import OpenAIJudge

    key = adapted_key(ctx.judge)
    learned = json.loads(store.get_meta(key) or "{}")
    judge = OpenAIJudge(ctx.judge, ctx.judge.api_key(), learned)
    engine = Judging(store, ctx, round_id, on_progress, judge, queue)
    try:  # (a batch round sends nothing: Ctrl-C stops it at once)
        with interruptible(engine.halt) if queue is None else contextlib.nullcontext():
            try:
                await engine.run()
            except* Exception as group:
                raise group.exceptions[0] from None
    finally:
        await judge.aclose()
        if judge.adapted != learned:  # remembered: later runs ask the right way at once
            store.set_meta(key, json.dumps(judge.adapted, sort_keys=True))
    if engine.halt.asked and engine.fault is None:  # the round stays open; all is kept
        raise stopped(engine.halt)  # (a fault is said as one: its calls count against no pair)
    return engine


def run_coroutine(make: Callable[[], Any]) -> Any:
    """Run ``make()``'s coroutine to the end from synchronous code — also when this thread
    already runs an event loop (Jupyter, an async app), where ``asyncio.run`` refuses: then
    it runs on a private loop in a worker thread while the caller waits."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    box: dict[str, Any] = {}
    loop = asyncio.new_event_loop()
    task: asyncio.Future[Any] = loop.create_task(make())

    def target() -> None:
        try:
            box["value"] = loop.run_until_complete(task)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            loop.close()

    worker = threading.Thread(target=target, name="labeler-round")
    worker.start()
    try:
        worker.join()
    except KeyboardInterrupt:
        # stop the work before the caller lets go of the state: nothing runs on unseen
        loop.call_soon_threadsafe(task.cancel)
        worker.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


def judge_tier(
    store: Store,
    ctx: Context,
    round_id: int,
    on_progress: Callable[[Progress], None] | None,
    queue: BatchWriter | None = None,
) -> Judging:
    """Judge the round's pairs waiting for ``ctx``'s tier (with ``queue``: route those
    whose replies are all in, write the missing requests for the Batch API); a failing
    endpoint stops the round (JudgeError)."""
    started_calls = time.time()
    engine = run_coroutine(lambda: judge_async(store, ctx, round_id, on_progress, queue))
    if engine.fault is not None:
        # not the pairs' fault: their failed calls do not count towards
        # judge.max_failed_attempts, and they stay unjudged for the next run
        store.mark_fault_calls(round_id, started_calls)
        failed = sum(engine.failures.values())
        raise JudgeError(
            f"judge at {shown_url(ctx.judge.base_url)} failed {failed} of {engine.sent} requests, "
            f"e.g. {engine.fault}; stopped the round (its pairs stay unjudged, none went "
            "to humans); fix the endpoint or judge settings and run `labeler round` again"
        )
    engine.flush_deferred()
    return engine


def batch_tier(
    store: Store, ctx: Context, round_id: int, on_progress: Callable[[Progress], None] | None
) -> tuple[Judging | None, int]:
    """One tier of a --batch round: collect its finished batches; while none is running,
    route what has all its replies and submit the missing requests as new batches.
    Returns the engine (None: it waited for running batches) and how many still run."""
    from labeler import batches
    from labeler.judge import OpenAIBatches, request_body

    judge = ctx.judge
    rec = Recording(
        judge.model, ctx.template.hash, ctx.guidelines.hash, ctx.prices, judge.batch_price_share
    )
    folder = ctx.cfg.project.state_dir / "batches"
    batches.sweep_temp(folder)
    api = OpenAIBatches(judge, judge.api_key())
    try:
        running = batches.advance(store, api, rec, round_id, ctx.tier)
        if running:  # routing waits too: the missing requests are in those batches
            return None, running
        learned = json.loads(store.get_meta(adapted_key(judge)) or "{}")
        writer = BatchWriter(
            folder, round_id, ctx.tier, lambda messages: request_body(judge, learned, messages)
        )
        try:
            engine = judge_tier(store, ctx, round_id, on_progress, writer)
        except BaseException:
            writer.discard()
            raise
        if writer.files:
            batches.submit(store, api, writer)
            running = len(writer.files)
        return engine, running
    finally:
        api.close()


def panel_versions(store: Store, cfg: Config, open_round: Any) -> dict[int, Version]:
    """The judge version of each panel tier: the one a resumed round started with, else
    the latest (made, or refreshed when due, now)."""
    stored = json.loads(open_round["thresholds"]).get("judge_versions", {}) if open_round else {}
    out = {}
    for k, judge in enumerate(cfg.judges):
        if judge.panel <= 1:
            continue
        found = versions.named(store, k, stored[str(k)]) if str(k) in stored else None
        out[k] = found or versions.for_new_round(store, judge, k)
    return out
