"""The fact-check of chosen responses (``quality.fact_check``), one step of a round.

A factual error in the chosen response poisons DPO more than a close call does: the model
is taught to prefer it. After the judge tiers of a round, every pair the judge accepted
with an A/B verdict has its chosen response checked by the last tier's
judge with the fact-check template (``templates/fact_check.txt``: "does the answer state
something objectively false — a claim, a calculation, code that cannot run?"). A pair
whose chosen response is said to have errors goes to humans with reason
``chosen_has_errors`` (out of the dataset until they decide it).

The calls are the judge's: the same endpoint, retries, cache (a checked response is never
asked about again) and ledger (each call is a ``calls`` row of the round, ``order =
"fact"``, so round, report and status count its cost), and the dry run estimates them.

What was checked is kept per pair and label (``fact_checks``), so a check is never lost:
a request that failed or did not fit the judge budget, a round stopped in its check or
resumed in batch mode (batch rounds run none), a union cascade's re-check that gave a
pair another tier's label: each online round checks every accepted pair still to check,
and ``labeler round`` with the source exhausted runs a round of those checks alone. A
check the endpoint refused, or that failed ``judge.max_failed_attempts`` times, sends
its pair to humans (``fact_check_failed``): its chosen response cannot be checked.

A fact-check flag is not human evidence: it never changes the thresholds or the
certificate; it only sends pairs to humans, which costs money and never quality. The
calibration sample is untouched (its pairs were drawn before the check).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from labeler import costs, prompts
from labeler.config import Config, JudgeConfig
from labeler.errors import JudgeError, shown_url
from labeler.interrupt import Halt, interruptible, stopped
from labeler.judging import (
    ABANDONED,
    adapted_key,
    allowance,
    is_fault,
    judge_prices,
    run_coroutine,
)
from labeler.store import CallRecord, Store
from labeler.summary import budget_limits

REASON = "chosen_has_errors"
GAVE_UP = "fact_check_failed"  # the check was refused, or failed judge.max_failed_attempts times
ORDER = "fact"
MAX_TOKENS = 96  # the verdict line and one sentence
Check = tuple[str, str, str, list[dict[str, str]]]  # (pair id, label, cache key, messages)
FAILED = "failed"  # refused, or failed judge.max_failed_attempts times: humans decide it


@dataclass
class FactCheck:
    sent: int = 0  # requests sent now (the rest came from the cache)
    cost: float = 0.0
    skipped: int = 0  # requests that did not fit the judge budget (asked by a later round)
    failures: Counter[str] = field(default_factory=Counter)  # failed requests, by kind
    fault: str | None = None  # the endpoint is failing (``judging.is_fault``): stopped


def run_fact_check(store: Store, cfg: Config, round_id: int) -> FactCheck:
    """Check the chosen response of every judge-accepted pair not checked yet for its
    label (``Store.fact_pending``): this round's, and any an earlier round left (a failed
    or unaffordable request, a round stopped or resumed in batch mode, a union cascade's
    re-check that gave a pair another tier's label). Flagged pairs go to humans. Reads
    500 pairs at a time. A failing endpoint stops the check as it stops the judging
    (JudgeError; none of its failures counts against a pair). Returns what was done."""
    out = FactCheck()
    judge = fact_judge(cfg)
    template = prompts.load_fact_template(cfg.quality.fact_check_template)
    prices = judge_prices(judge)
    budget = allowance(store, cfg, round_id)
    reserved = [0.0]  # the worst cost of the requests in flight
    started = time.time()
    deferred: list[str] = []  # pairs whose check was given up: to humans if no fault

    def record(pair_id: str, key: str, messages: list[dict[str, str]], reply: Any) -> None:
        """Each reply is stored as it returns (paid work is never lost); one abandoned by
        the second Ctrl-C (``abandoned``) at its worst cost."""
        cost = prices.call_cost(reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens)
        out.sent += 1
        out.cost += cost
        status = "refused" if reply.permanent else "error"
        status = "ok" if not reply.error else ABANDONED if reply.error == ABANDONED else status
        store.record_call(
            CallRecord(
                key, pair_id, ORDER, judge.model, template.hash, "", round_id, status,
                reply.text, None, reply.prompt_tokens, reply.completion_tokens, cost,
                round(reply.latency_s * 1000, 3), reply.error,
                sum(len(m["content"]) for m in messages), reply.cached_tokens,
                len(cfg.judges) - 1,
            )
        )  # fmt: skip
        if reply.error and out.fault is None and reply.error != ABANDONED:
            share = judge.max_failure_share
            if is_fault(out.failures, reply.error, reply.permanent, out.sent, share):
                out.fault = reply.error

    def affordable(messages: list[dict[str, str]]) -> float | None:
        """The worst cost reserved for this request, within ``costs.max_cost_per_round`` /
        ``total_budget`` with what is spent and in flight; None: over budget (this request
        waits for a later round; a smaller one may still fit)."""
        chars = sum(len(m["content"]) for m in messages)
        worst = prices.call_cost(costs.estimate_tokens(chars), judge.max_tokens)
        if budget is not None and out.cost + reserved[0] + worst > budget:
            out.skipped += 1
            return None
        reserved[0] += worst
        return worst

    def release(worst: float) -> None:
        reserved[0] -= worst

    def chunks() -> Iterator[list[Check]]:
        """(pair id, label, key, messages) of the pairs still to check, 500 at a time."""
        after = 0
        while rows := store.fact_pending(after):
            after = int(rows[-1]["seq"])
            yield [
                (
                    r["id"],
                    r["label"],
                    prompts.fact_key(judge.model, template.hash, r["id"], r["chosen"]),
                    prompts.fact_messages(template, r["prompt"], r["chosen"]),
                )
                for r in rows
            ]

    def given_up(keys: list[str]) -> set[str]:
        """Checks the endpoint refused for good, or that failed ``judge.max_failed_attempts``
        times over the runs: never asked again."""
        tries = store.failed_attempts(keys)
        worn = {k for k, (n, _) in tries.items() if n >= judge.max_failed_attempts}
        return worn | set(store.refused(keys))

    def to_ask(chunk: list[Check]) -> list[tuple[str, str, list[dict[str, str]]]]:
        """(pair id, key, messages) of the checks of ``chunk`` to send: not in the cache,
        not given up."""
        cached = store.cached_calls([t[2] for t in chunk])
        missing = [t for t in chunk if t[2] not in cached]
        dead = given_up([t[2] for t in missing]) if missing else set()
        return [(t[0], t[2], t[3]) for t in missing if t[2] not in dead]

    def read(chunk: list[Check]) -> None:
        """Keep the verdict of each pair of ``chunk`` that has a reply (new or cached);
        flagged pairs go to humans. A pair whose check was given up waits for the run's
        end: its chosen response cannot be checked, so humans decide it, unless the
        endpoint turned out to be failing."""
        replies = {k: row["reply"] for k, row in store.cached_calls([t[2] for t in chunk]).items()}
        dead = given_up([t[2] for t in chunk if t[2] not in replies])
        deferred.extend(t[0] for t in chunk if t[2] in dead)
        done, flagged = [], []
        for pair_id, label, key, _ in chunk:
            if key not in replies:
                continue  # failed or not asked: still to check
            errors = prompts.read_fact_reply(replies[key])
            done.append((pair_id, label, prompts.FACT_OUTCOMES[errors]))
            if errors:
                flagged.append(pair_id)
        store.send_to_review(flagged, REASON)
        store.save_fact_checks(done, round_id)

    def failing() -> bool:
        return out.fault is not None

    run_coroutine(
        lambda: _ask(store, judge, chunks(), to_ask, read, record, affordable, release, failing)
    )
    if out.fault is not None:  # not the pairs' fault: their failures count against none
        store.mark_fault_calls(round_id, started)
        raise JudgeError(
            f"judge at {shown_url(judge.base_url)} failed {sum(out.failures.values())} of "
            f"{out.sent} fact-check requests, e.g. {out.fault}; stopped the round (the checks "
            "still to do stay so, none went to humans); fix the endpoint or judge settings "
            "and run `labeler round` again"
        )
    if deferred:
        labels = store.labels_of(deferred)
        store.send_to_review(deferred, GAVE_UP)
        store.save_fact_checks([(p, labels[p], FAILED) for p in deferred], round_id)
    return out


def abandoned(messages: list[dict[str, str]], max_tokens: int) -> Any:
    """The reply of a request abandoned in flight: its worst tokens, so its worst cost."""
    from labeler.judge import JudgeReply

    tokens = costs.estimate_tokens(sum(len(m["content"]) for m in messages))
    return JudgeReply(None, None, tokens, max_tokens, 0.0, ABANDONED, False)


def fact_judge(cfg: Config) -> JudgeConfig:
    """The judge that checks: the last tier's, one plain reply of at least MAX_TOKENS."""
    judge = dataclasses.replace(cfg.judges[-1], logprobs=False, samples=1)
    return dataclasses.replace(judge, max_tokens=max(judge.max_tokens, MAX_TOKENS))


def check_sizes(store: Store, cfg: Config) -> list[int]:
    """The request size (characters) of each check still to do: what the dry run prices
    and what ``affordable_now`` compares with the budget."""
    template = prompts.load_fact_template(cfg.quality.fact_check_template)

    def size(prompt: str, response: str) -> int:
        return sum(len(m["content"]) for m in prompts.fact_messages(template, prompt, response))

    # each placeholder counted as often as the template uses it
    frame = size("", "")
    per_prompt, per_response = size("x", "") - frame, size("", "x") - frame
    return [frame + per_prompt * p + per_response * r for p, r in store.fact_pending_chars()]


def affordable_now(store: Store, cfg: Config, sizes: list[int]) -> bool:
    """Is one of the checks still to do (their ``check_sizes``) paid for by a new round's
    budget (``judging.allowance``: ``costs.max_cost_per_round``, what
    ``costs.total_budget`` leaves)?"""
    budget = allowance(store, cfg, None)
    if not sizes or budget is None:
        return bool(sizes)
    judge = fact_judge(cfg)
    worst = judge_prices(judge).call_cost(costs.estimate_tokens(min(sizes)), judge.max_tokens)
    return worst <= budget


def unaffordable(cfg: Config, n: int) -> str:
    """Why no round opens for the ``n`` checks still to do (``affordable_now``)."""
    return (
        f"{n} fact-checks still to do, and none fits {budget_limits(cfg, cfg.costs.currency)}: "
        "raise the limit and run `labeler round` again"
    )


async def _ask(
    store: Store,
    judge: Any,
    chunks: Iterator[list[Check]],
    to_ask: Callable[[list[Check]], list[tuple[str, str, list[dict[str, str]]]]],
    read: Callable[[list[Check]], None],
    record: Callable[[str, str, list[dict[str, str]], Any], None],
    affordable: Callable[[list[dict[str, str]]], float | None],
    release: Callable[[float], None],
    failing: Callable[[], bool],
) -> None:
    """Send each chunk's checks ``to_ask``, then ``read`` it; the next chunk is read only
    after (its pairs are found by what is checked so far). Once ``failing`` (the endpoint
    is, ``judging.is_fault``) or after Ctrl-C, nothing more is sent."""
    from labeler.judge import OpenAIJudge

    learned = json.loads(store.get_meta(adapted_key(judge)) or "{}")
    client: OpenAIJudge | None = None
    limit = asyncio.Semaphore(judge.concurrency)
    halt = Halt(judge.concurrency)  # the first Ctrl-C: what is in flight finishes, kept

    async def one(pair_id: str, key: str, messages: list[dict[str, str]]) -> None:
        async with limit:
            if halt.asked or failing():
                return  # asked again by the resume
            worst = affordable(messages)
            if worst is None:
                return  # over budget: asked by a later round
            assert client is not None
            try:
                reply = await client.judge(messages)
            except asyncio.CancelledError:  # the second Ctrl-C's: sent, so billed all the same
                if halt.abandoned:
                    record(pair_id, key, messages, abandoned(messages, judge.max_tokens))
                    halt.dropped += 1
                raise
            finally:
                release(worst)
            record(pair_id, key, messages, reply)

    try:
        with interruptible(halt):
            for chunk in chunks:
                ask = to_ask(chunk)
                if ask:
                    client = client or OpenAIJudge(judge, judge.api_key(), learned)
                    await asyncio.gather(*(one(*t) for t in ask))
                if failing():
                    break  # (no give-up is read: the run's failures are the endpoint's)
                read(chunk)
                if halt.asked:
                    break
    finally:
        if client is not None:
            await client.aclose()
    if halt.asked and not failing():  # the round stays open; the replies that came back are kept
        raise stopped(halt)
