"""Benchmark of certification against the statistical limit (issue 17), on the same splits
in the same run:

* ``retest`` — the procedure before issue 17: every sync re-tests every pair judged so far
  (stratified exact test, fit-split start, learned score), 5% audit of certified pairs;
* ``planned_before`` — the planned procedure as it was before a certificate was extended
  on the sample drawn alike: after the first certificate, each look tested the whole grid
  again with the stratified test on the two inclusion probabilities, at its own level;
* ``planned`` — one uniform calibration sample, looks at label milestones, one fixed
  label-free sequence on the judge's own confidence per phase, each region's exact
  group-sequential boundary over the phase's looks, the certificate kept once given and
  extended by the same test on the sample drawn alike (``planned.uniform_sample``), the
  project's end (``labeler.planned`` docstring);
* ``limit`` — the oracle of issue 17: it knows the best threshold on the judge's
  confidence and proves it with a uniform audit of the accepted region (exact one-sided
  Clopper-Pearson at delta); humans label the audit and every pair below the threshold:
  ``limit = max over coverage c of N / (n_audit(c) + (1 - c) N)``, n_audit(c) the
  size at which a sample that shows the region's rate *exactly* passes;
* ``sampling_limit`` — the same oracle with the audit a random sample, as every real
  audit is (``labeler.planned.sampling_limit``): the threshold and audit size with the
  best expected savings among audits that pass at least 80% of the time. A random sample
  of ``limit``'s size passes only about half the time, so no procedure can expect
  ``limit``; this one it can.

Data: ``../shared/data/pandalm`` (999 pairs, three annotators each, gpt-3.5-turbo's
verdicts without probabilities). A reviewer answers with one annotator's label, drawn at
random; a judge label's true agreement with humans is the share of the three annotators
who gave it. Projects larger than 999 pairs draw rows with replacement (a fresh verdict
and a fresh reviewer each time).

``gpt4-class-world`` is not PandaLM: the simulated judge of issue 17's measurements
(``labeler.simulation.gpt4_class_world``: half the pairs above 0.995 and right 92% of the
time there, 80% on the next quarter, 68% below; the reviewer answers the truth).

Judges on those pairs (simulated where PandaLM has no probabilities; stated assumptions):
* ``gpt-3.5`` — PandaLM's real gpt-3.5-turbo verdicts; no confidence at all;
* ``synthetic-saturated`` — a GPT-4-class judge whose probabilities saturate as real
  logprobs do: p > 0.995 on pairs all three annotators agree on (right 95% of the time
  there), 0.9-0.995 on 2-of-3 pairs (right 80%), 0.55-0.9 on split pairs (right 60%);
  it says TIE on 70% of the pairs whose annotators' majority is a tie;
* ``synthetic-calibrated`` — right with probability q (from how much the annotators
  agreed), reports q;
* ``synthetic-overconfident`` — the same, always reports >= 0.95.

Per judge and project size: certified coverage (judge labels delivered / pairs), savings
(pairs / human labels — judge cost is under 2% of human cost here and left out), share of
splits whose certified pairs meet the target (true agreement), human labels, and planned
/ limit. Target 0.85, confidence 0.9, rounds of a tenth of the project (100 at 500).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from labeler.calibration import Signals, scores_of
from labeler.planned import oracle_limit, sampling_limit
from labeler.simulation import (
    Outcome,
    Settings,
    SimPair,
    gpt4_class_world,
    run_loop,
    run_planned,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pandalm"
LABEL = {"1": "A", "2": "B", "0": "TIE"}
TARGET, DELTA = 0.85, 0.1
SIZES = {500: 100, 2_000: 24, 20_000: 3}  # project size: splits (BENCH_SIZES=500,2000)


def load() -> list[dict[str, Any]]:
    rows = json.loads((DATA / "testset-v1.json").read_text())
    gpt = {
        g["idx"]: g["gpt_result"]
        for g in json.loads((DATA / "gpt-3.5-turbo-testset-v1.json").read_text())
    }
    out = []
    for r in rows:
        votes = [LABEL[str(r[f"annotator{i}"])] for i in (1, 2, 3)]
        label, n = Counter(votes).most_common(1)[0]
        g = gpt.get(r["idx"], "")
        out.append(
            {
                "truth": label if n >= 2 else "TIE",
                "votes": votes,
                "agreement": n / 3,
                "gpt": {"1": "A", "2": "B", "Tie": "TIE"}.get(g),
            }
        )
    return out


def judge_gpt(row: dict[str, Any], rng: random.Random) -> Signals:
    label = row["gpt"]
    return Signals(label, 1.0, 1.0, None, True, label is None)


def _flip(truth: str, q: float, rng: random.Random) -> str:
    truth = truth if truth != "TIE" else rng.choice(["A", "B"])
    return truth if rng.random() < q else ("B" if truth == "A" else "A")


def judge_saturated(row: dict[str, Any], rng: random.Random) -> Signals:
    if row["truth"] == "TIE" and rng.random() < 0.7:  # a strong judge often sees the tie
        p = rng.uniform(0.5, 0.9)
        return Signals("TIE", p, 1.0, p, True, False)
    if row["agreement"] == 1:
        q, p = 0.95, 1 - 10 ** rng.uniform(-6, -2.31)
    elif row["agreement"] > 0.5:
        q, p = 0.8, rng.uniform(0.9, 0.995)
    else:
        q, p = 0.6, rng.uniform(0.55, 0.9)
    return Signals(_flip(row["truth"], q, rng), p, 1.0, p, True, False)


def judge_synthetic(row: dict[str, Any], rng: random.Random, kind: str) -> Signals:
    # easy when the three annotators agreed, harder when they split
    q = 0.97 if row["agreement"] == 1 else 0.78 if row["agreement"] > 0.5 else 0.6
    q = min(0.999, max(0.5, q + rng.uniform(-0.08, 0.08)))
    label = _flip(row["truth"], q, rng)
    reported = q if kind == "calibrated" else max(q, 0.95 + rng.random() * 0.049)
    high = 1.0 if (kind != "calibrated" or reported >= 0.8) else 0.0
    return Signals(label, reported, high, reported, True, False)


WORLD = "gpt4-class-world"  # not PandaLM: labeler.simulation.gpt4_class_world, issue 17's judge
JUDGES: dict[str, Callable[[dict[str, Any], random.Random], Signals]] = {
    "gpt-3.5": judge_gpt,
    "synthetic-saturated": judge_saturated,
    "synthetic-calibrated": lambda r, rng: judge_synthetic(r, rng, "calibrated"),
    "synthetic-overconfident": lambda r, rng: judge_synthetic(r, rng, "overconfident"),
}


def p_agree(row: dict[str, Any], label: str | None) -> float:
    return sum(v == label for v in row["votes"]) / 3


def project(rows: list[dict[str, Any]], judge: Any, seed: int, size: int) -> list[SimPair]:
    """One split: a shuffle of the rows (with replacement beyond 999), judged afresh."""
    rng = random.Random(seed)
    order = rows[:]
    rng.shuffle(order)
    if size > len(order):
        order = [rng.choice(rows) for _ in range(size)]
    out = []
    for row in order[:size]:
        s = judge(row, rng)
        out.append(SimPair(s, rng.choice(row["votes"]), p_agree(row, s.label)))
    return out


def _row(outs: list[Outcome], size: int) -> dict[str, Any]:
    agree = [o.agreement for o in outs]
    return {
        "coverage": round(float(np.mean([o.coverage for o in outs])), 3),
        "savings": round(float(np.mean([o.savings_factor for o in outs])), 3),
        "target_met": round(float(np.mean([a is None or a >= TARGET for a in agree])), 3),
        "human_labels": round(float(np.mean([o.humans_needed for o in outs])), 1),
        "certified_runs": round(float(np.mean([o.certified > 0 for o in outs])), 3),
    }


def one(rows: list[dict[str, Any]], name: str, size: int, splits: int) -> dict[str, Any]:
    s = Settings(alpha=1 - TARGET, delta=DELTA, per_round=max(size // 10, 100))
    before = dataclasses.replace(s, drawn_alike=False)
    retest, planned, was, limits, reachable = [], [], [], [], []
    started = time.perf_counter()
    for seed in range(splits):
        if name == WORLD:
            # the world's generator is not the loop's (seed): their draws must not coincide
            pairs = gpt4_class_world(np.random.default_rng(10**6 + seed), size)
        else:
            pairs = project(rows, JUDGES[name], seed, size)
        scores = scores_of([p.signals for p in pairs], None)
        agree = np.array([p.p_agree or 0.0 for p in pairs])
        limits.append(oracle_limit(scores, agree, 1 - TARGET, DELTA))
        reachable.append(sampling_limit(scores, agree, 1 - TARGET, DELTA))
        retest.append(run_loop(pairs, dataclasses.replace(s, audit_rate=0.05), seed))
        planned.append(run_planned(pairs, s, seed))
        was.append(run_planned(pairs, before, seed))
    limit = float(np.mean([x[0] for x in limits]))
    sampled = float(np.mean([x[0] for x in reachable]))
    out = {
        "splits": splits,
        "retest": _row(retest, size),
        "planned_before": _row(was, size),
        "planned": _row(planned, size),
        "limit": {
            "savings": round(limit, 3),
            "coverage": round(float(np.mean([x[1] for x in limits])), 3),
            "audit_labels": round(float(np.mean([x[2] for x in limits])), 1),
        },
        "sampling_limit": {
            "savings": round(sampled, 3),
            "coverage": round(float(np.mean([x[1] for x in reachable])), 3),
            "audit_labels": round(float(np.mean([x[2] for x in reachable])), 1),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    for method in ("retest", "planned_before", "planned"):
        out[method]["of_limit"] = round(out[method]["savings"] / limit, 3)
        out[method]["of_sampling_limit"] = round(out[method]["savings"] / sampled, 3)
    return out


def main() -> dict[str, Any]:
    if not DATA.exists():
        return {"skipped": f"{DATA} not found"}
    rows = load()
    results: dict[str, Any] = {"target": TARGET, "delta": DELTA}
    only = os.environ.get("BENCH_SIZES")
    sizes = {int(s): SIZES[int(s)] for s in only.split(",")} if only else SIZES
    for size, splits in sizes.items():
        for name in (*JUDGES, WORLD):
            key = f"{name} x{size}"
            results[key] = one(rows, name, size, splits)
            print(key, json.dumps(results[key]), flush=True)
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
