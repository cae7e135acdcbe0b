"""Benchmark of judge tiers (issue 12): on PandaLM's 999 pairs, with simulated judges of
two strengths, in the same run and on the same splits —

* ``cheap`` alone, ``strong`` alone, and the ``cascade`` cheap -> strong (its split of
  delta predicted from the first round's scores, ``split.predict_shares``, as the real
  loop does; and ``cascade_fixed``, the fixed split it had before: the last tier 0.8);
* ``union``: the cascade under the union test (``labeler.union``: one test of what the
  whole cascade accepts, each pair labelled by the tier deciding it; its simulation is
  the real loop's, ``calibration.cascade = "union"``), high_probability mode;
* under the ``planned`` procedure (the default since issue 17: until the cheap tier is
  certified it judges only its calibration sample, every other pair goes straight to the
  strong tier) and the ``retest`` procedure before it;

at target agreement 0.85 (confidence 0.9), in both guarantee modes, on the 999-pair
project (rounds of 200) and on a 20,000-pair one (rows drawn with replacement, rounds of
2,000). Per setting: coverage (share of pairs certified to a judge), realised agreement of
those with humans (the share of PandaLM's three annotators who gave the label), share of
splits meeting the target, human labels needed (as in ``calibration_bench``), judge cost,
total cost per pair (judge + humans at 0.50 a verdict), savings factor against labeling
everything by hand, and the share of pairs the strong judge saw.

The judges: a pair is easy when the three annotators agreed, harder when two did, hardest
when they split. The cheap judge is right with probability 0.92 / 0.70 / 0.55 on them,
the strong one with 0.97 / 0.80 / 0.62 (each +- 0.06 per pair), both reporting that
probability (calibrated) and right independently of each other. Prices per pair (two
orders): cheap 0.0003 (a gpt-4o-mini-sized call), strong 0.005 (gpt-4o-sized).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np

from bench.calibration_bench import load, p_agree
from labeler.calibration import Signals
from labeler.simulation import (
    Settings,
    SimPair,
    run_cascade,
    run_planned,
    run_planned_cascade,
)
from labeler.union_simulation import run_union

TARGET, DELTA, HUMAN = 0.85, 0.1, 0.50
ACCURACY = {"cheap": (0.92, 0.70, 0.55), "strong": (0.97, 0.80, 0.62)}
PRICE = {"cheap": 0.0003, "strong": 0.005}
SIZES = {"999 pairs": (None, 200, 10), "20,000 pairs": (20_000, 2_000, 3)}


def judge(row: dict[str, Any], truth: str, rng: random.Random, kind: str) -> Signals:
    easy, mid, hard = ACCURACY[kind]
    q = easy if row["agreement"] == 1 else mid if row["agreement"] > 0.5 else hard
    q = min(0.999, max(0.5, q + rng.uniform(-0.06, 0.06)))
    label = truth if rng.random() < q else ("B" if truth == "A" else "A")
    return Signals(label, q, 1.0 if q >= 0.8 else 0.0, q, True, False)


def world(rows: list[dict[str, Any]], seed: int) -> dict[str, list[SimPair]]:
    rng = random.Random(seed)
    out: dict[str, list[SimPair]] = {"cheap": [], "strong": []}
    for row in rows:
        truth = row["truth"] if row["truth"] != "TIE" else rng.choice(["A", "B"])
        human = rng.choice(row["votes"])  # one reviewer: a random annotator
        for kind in out:
            s = judge(row, truth, rng, kind)
            out[kind].append(SimPair(s, human, p_agree(row, s.label)))
    return out


def one(
    tiers: list[str],
    w: dict[str, list[SimPair]],
    s: Settings,
    seed: int,
    procedure: str,
    shares: tuple[float, float] | None = None,
) -> dict[str, Any]:
    if procedure == "retest":  # as it was before issue 17: a 5% audit of certified pairs
        o = run_cascade([w[k] for k in tiers], dataclasses.replace(s, audit_rate=0.05), seed)
    elif procedure == "union":  # one test of what the whole cascade accepts (labeler.union)
        o = run_union([w[k] for k in tiers], s, seed)
    elif len(tiers) == 1:
        o = run_planned(w[tiers[0]], s, seed)
        o.tier_judged = [o.pairs]  # one judge: it judges every pair
    else:
        prices = (PRICE[tiers[0]], PRICE[tiers[1]], HUMAN)
        o = run_planned_cascade([w[k] for k in tiers], s, seed, shares, prices=prices)
    judge_cost = sum(n * PRICE[k] for n, k in zip(o.tier_judged, tiers, strict=True))
    total = judge_cost + o.humans_needed * HUMAN
    return {
        "coverage": o.coverage,
        "agreement": o.agreement,
        "met": o.agreement is None or o.agreement >= TARGET,
        "humans": o.humans_needed,
        "judge_cost": judge_cost,
        "total_per_pair": total / o.pairs,
        "savings": o.pairs * HUMAN / total,
        "strong_share": (o.tier_judged[tiers.index("strong")] / o.pairs)
        if "strong" in tiers
        else 0.0,
    }


def main() -> dict[str, Any]:
    rows = load()
    results: dict[str, Any] = {}
    for size, (n, per_round, splits) in SIZES.items():
        for guarantee, procedure in (
            ("high_probability", "planned"),
            ("high_probability", "retest"),
            ("expected", "planned"),
        ):
            s = Settings(alpha=1 - TARGET, delta=DELTA, guarantee=guarantee, per_round=per_round)
            runs: dict[str, list[dict[str, Any]]] = {
                "cheap": [],
                "strong": [],
                "cascade": [],
                "cascade_fixed": [],
                "union": [],
            }
            for split in range(splits):
                rng = random.Random(split)
                picked = rows[:] if n is None else [rng.choice(rows) for _ in range(n)]
                rng.shuffle(picked)
                w = world(picked, 1000 + split)
                for name, tiers in (
                    ("cheap", ["cheap"]),
                    ("strong", ["strong"]),
                    ("cascade", ["cheap", "strong"]),
                ):
                    runs[name].append(one(tiers, w, s, split, procedure))
                if procedure == "planned":
                    fixed = one(["cheap", "strong"], w, s, split, procedure, (0.2, 0.8))
                    runs["cascade_fixed"].append(fixed)
                if procedure == "planned" and guarantee == "high_probability":
                    runs["union"].append(one(["cheap", "strong"], w, s, split, "union"))
            for name, r in runs.items():
                if not r:
                    continue
                agreement = [x["agreement"] for x in r if x["agreement"] is not None]
                summary = {
                    "coverage": float(np.mean([x["coverage"] for x in r])),
                    "agreement": float(np.mean(agreement)) if agreement else None,
                    "met": float(np.mean([x["met"] for x in r])),
                    "humans": float(np.mean([x["humans"] for x in r])),
                    "judge_cost": float(np.mean([x["judge_cost"] for x in r])),
                    "total_per_pair": float(np.mean([x["total_per_pair"] for x in r])),
                    "savings": float(np.mean([x["savings"] for x in r])),
                    "strong_share": float(np.mean([x["strong_share"] for x in r])),
                    "splits": len(r),
                }
                key = f"{size} / {guarantee} / {procedure} / {name}"
                results[key] = summary
                print(
                    key,
                    {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()},
                    flush=True,
                )
    return results
