"""The fact-check of chosen responses (``quality.fact_check``), one step of a round.

A factual error in the chosen response poisons DPO more than a close call does: the model
is taught to prefer it. After the judge tiers of a round, every pair of the round the
judge accepted with an A/B verdict has its chosen response checked by the last tier's
judge with the fact-check template (``templates/fact_check.txt``: "does the answer state
something objectively false — a claim, a calculation, code that cannot run?"). A pair
whose chosen response is said to have errors goes to humans with reason
``chosen_has_errors`` (out of the dataset until they decide it).

The calls are the judge's: the same endpoint, retries, cache (a checked response is never
asked about again) and ledger (each call is a ``calls`` row of the round, ``order =
"fact"``, so round, report and status count its cost), and the dry run estimates them.

A fact-check flag is not human evidence: it never changes the thresholds or the
certificate; it only sends pairs to humans, which costs money and never quality. The
calibration sample is untouched (its pairs were drawn before the check).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labeler import costs, prompts
from labeler.config import Config
from labeler.judging import (
    Halt,
    adapted_key,
    allowance,
    interruptible,
    judge_prices,
    run_coroutine,
)
from labeler.store import CallRecord, Store

REASON = "chosen_has_errors"
ORDER = "fact"
MAX_TOKENS = 96  # the verdict line and one sentence


@dataclass
class FactCheck:
    checked: int = 0  # accepted pairs whose chosen response was checked
    sent: int = 0  # requests sent now (the rest came from the cache)
    cost: float = 0.0
    flagged: int = 0  # chosen responses with errors: sent to humans
    unreadable: int = 0  # replies that were neither ERRORS nor NO_ERRORS (left as they were)
    failed: int = 0  # requests that failed (left as they were; asked again next round)
    skipped: int = 0  # not asked: the judge budget was spent (asked in a later round)


def fact_key(model: str, template_hash: str, pair_id: str, chosen: str) -> str:
    text = "\0".join((ORDER, model, template_hash, pair_id, chosen))
    return hashlib.sha256(text.encode()).hexdigest()


def run_fact_check(store: Store, cfg: Config, round_id: int) -> FactCheck:
    """Check the chosen response of every pair of round ``round_id`` the judge accepted;
    flagged pairs go to humans. Returns what was done."""
    out = FactCheck()
    judge = dataclasses.replace(cfg.judges[-1], logprobs=False, samples=1)
    judge = dataclasses.replace(judge, max_tokens=max(judge.max_tokens, MAX_TOKENS))
    template = prompts.load_fact_template(cfg.quality.fact_check_template)
    prices = judge_prices(judge)
    rows = store.accepted_in_round(round_id)
    todo: list[tuple[str, str, list[dict[str, str]]]] = []  # (pair id, key, messages)
    keys: dict[str, str] = {}
    for r in rows:
        chosen = r["response_a"] if r["label"] == "A" else r["response_b"]
        key = fact_key(judge.model, template.hash, r["id"], chosen)
        keys[r["id"]] = key
        todo.append((r["id"], key, prompts.fact_messages(template, r["prompt"], chosen)))
    out.checked = len(todo)
    cached = store.cached_calls(list(keys.values()))
    texts = {key: row["reply"] for key, row in cached.items()}
    ask = [t for t in todo if t[1] not in cached]
    budget = allowance(store, cfg, round_id)

    def record(pair_id: str, key: str, messages: list[dict[str, str]], reply: Any) -> None:
        """Each reply is stored as it returns (paid work is never lost)."""
        cost = prices.call_cost(reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens)
        out.sent += 1
        out.cost += cost
        store.record_call(
            CallRecord(
                key, pair_id, ORDER, judge.model, template.hash, "", round_id,
                "ok" if not reply.error else "refused" if reply.permanent else "error",
                reply.text, None, reply.prompt_tokens, reply.completion_tokens, cost,
                round(reply.latency_s * 1000, 3), reply.error,
                sum(len(m["content"]) for m in messages), reply.cached_tokens,
                len(cfg.judges) - 1,
            )
        )  # fmt: skip
        if reply.error:
            out.failed += 1
        else:
            texts[key] = reply.text

    reserved = [0.0]  # the worst cost of the requests in flight

    def affordable(messages: list[dict[str, str]]) -> float | None:
        """The worst cost reserved for this request, within ``costs.max_cost_per_round`` /
        ``total_budget`` with what is spent and in flight; None: over budget."""
        chars = sum(len(m["content"]) for m in messages)
        worst = prices.call_cost(costs.estimate_tokens(chars), judge.max_tokens)
        if budget is not None and out.cost + reserved[0] + worst > budget:
            return None
        reserved[0] += worst
        return worst

    def release(worst: float) -> None:
        reserved[0] -= worst

    if ask:
        run_coroutine(lambda: _ask(store, judge, ask, record, affordable, release))
    out.skipped = len(ask) - out.sent
    flagged = []
    for pair_id, key in keys.items():
        if key not in texts:
            continue
        verdict = prompts.read_fact_reply(texts[key])
        if verdict is None:
            out.unreadable += 1
        elif verdict:
            flagged.append(pair_id)
    out.flagged = store.send_to_review(flagged, REASON)
    return out


async def _ask(
    store: Store,
    judge: Any,
    todo: list[tuple[str, str, list[dict[str, str]]]],
    record: Callable[[str, str, list[dict[str, str]], Any], None],
    affordable: Callable[[list[dict[str, str]]], float | None],
    release: Callable[[float], None],
) -> None:
    from labeler.judge import OpenAIJudge

    learned = json.loads(store.get_meta(adapted_key(judge)) or "{}")
    client = OpenAIJudge(judge, judge.api_key(), learned)
    limit = asyncio.Semaphore(judge.concurrency)
    halt = Halt(judge.concurrency)  # the first Ctrl-C: what is in flight finishes, kept

    async def one(pair_id: str, key: str, messages: list[dict[str, str]]) -> None:
        async with limit:
            if halt.asked:
                return  # asked again by the resume
            worst = affordable(messages)
            if worst is None:
                return  # over budget: asked again in a later round
            try:
                reply = await client.judge(messages)
            finally:
                release(worst)
            record(pair_id, key, messages, reply)

    try:
        with interruptible(halt):
            await asyncio.gather(*(one(*t) for t in todo))
    finally:
        await client.aclose()
    if halt.asked:  # the round stays open; the replies that came back are kept
        raise KeyboardInterrupt
