"""Benchmark of the judge panel (issue 12): one prompt against a 3-prompt panel with
human-corrected in-context examples, on the demo's simulated judge, same pairs, same run.

2,000 generated demo pairs (known truth, kind and difficulty); 400 are already decided by
humans (the example pool), the other 1,600 are judged. The simulated judge
(``labeler/demo/simjudge.py``) reports its probability with +-0.15 noise per prompt, draws
each prompt variant's verdict independently (an assumption: real variants' errors are
correlated, which shrinks the gain), and gains 0.03 accuracy per relevant example (a pair
of the same kind; at most two). Both orders are judged; the panel's verdict is its
averaged probability per order (``verdicts.pool``), and examples are chosen by
``panel.choose`` (pairs where the single prompt was wrong first).

Per setting: requests per pair, label agreement with the truth, and the oracle coverage at
targets 0.90 and 0.85 (the largest share of pairs, taken by score from the top, whose
agreement meets the target: what a perfect calibration could accept).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from labeler import panel, prompts
from labeler.demo.data import DemoPair, demo_pairs
from labeler.demo.judge_server import read_shown
from labeler.demo.simjudge import NoiseModel, SimulatedJudge
from labeler.verdicts import OrderReply, combine, pool

PAIRS, POOL, VARIANTS, PER_VARIANT = 2000, 400, 3, 2
NOISE = NoiseModel(accuracy_easy=0.95, accuracy_hard=0.6, report_noise=0.15, few_shot_gain=0.03)


def ask(
    judge: SimulatedJudge, p: DemoPair, order: str, examples: tuple[panel.Example, ...]
) -> OrderReply:
    template = prompts.load_template(None)
    guidelines = prompts.Guidelines("Prefer the correct, helpful, safe answer.", "g", ())
    messages = prompts.render_messages(
        template, guidelines, p.prompt, p.response_a, p.response_b, order, examples
    )
    reply = judge(read_shown({"messages": messages, "logprobs": True}))
    verdict, confidence = (reply.content or "").split("\n")[0].split()
    return OrderReply(order, verdict, confidence, reply.alternatives)


def judged(
    judge: SimulatedJudge, pairs: list[DemoPair], variants: list[tuple[panel.Example, ...]]
) -> list[tuple[str | None, float]]:
    out = []
    for p in pairs:
        per_order = []
        for order in ("ab", "ba"):
            replies = [ask(judge, p, order, ex) for ex in variants]
            per_order.append(replies[0] if len(replies) == 1 else pool(order, replies))
        j = combine(per_order)
        out.append((j.label, j.confidence if j.label in ("A", "B") else 0.0))
    return out


def oracle(results: list[tuple[str | None, float]], truth: list[str], target: float) -> float:
    scores = np.array([s for _, s in results])
    right = np.array([lab == t for (lab, _), t in zip(results, truth, strict=True)], float)
    order = np.argsort(-scores, kind="stable")
    running = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero((running >= target) & (scores[order] > 0))[0]
    return float((ok.max() + 1) / len(results)) if len(ok) else 0.0


def main() -> dict[str, Any]:
    pairs = demo_pairs(PAIRS, seed=11)
    judge = SimulatedJudge(pairs, NOISE)
    labelled, evaluated = pairs[:POOL], pairs[POOL:]
    truth = [p.truth for p in evaluated]
    single = judged(judge, labelled, [()])
    candidates = [
        panel.Candidate(str(i), p.truth, lab)
        for i, (p, (lab, _)) in enumerate(zip(labelled, single, strict=True))
        if p.truth in ("A", "B")
    ]
    version = panel.choose(candidates, VARIANTS, PER_VARIANT, seed=0)
    by_id = {str(i): p for i, p in enumerate(labelled)}
    variants = [
        tuple(
            panel.Example(by_id[i].prompt, by_id[i].response_a, by_id[i].response_b, lab)
            for i, lab in v
        )
        for v in version.variants
    ]
    out: dict[str, Any] = {}
    for name, sets in (("one prompt", [()]), ("3-prompt panel", variants)):
        results = judged(judge, evaluated, sets)
        out[name] = {
            "requests_per_pair": 2 * len(sets),
            "agreement": float(
                np.mean([lab == t for (lab, _), t in zip(results, truth, strict=True)])
            ),
            "oracle_coverage_0.90": oracle(results, truth, 0.90),
            "oracle_coverage_0.85": oracle(results, truth, 0.85),
        }
        print(name, json.dumps(out[name]), flush=True)
    one, three = out["one prompt"], out["3-prompt panel"]
    out["gain_points_0.90"] = 100 * (three["oracle_coverage_0.90"] - one["oracle_coverage_0.90"])
    out["corrected_examples"] = sum(
        1 for c in candidates if c.corrected and c.pair_id in version.example_ids
    )
    print("gain at 0.90 (points):", round(out["gain_points_0.90"], 1), flush=True)
    return out
