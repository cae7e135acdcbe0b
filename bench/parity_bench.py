"""Benchmark of human parity (issue 18) against the absolute target, on the same splits in
the same run.

Data: ``../shared/data/pandalm`` (999 pairs, three annotators each; the judges of
``calibration_bench``: PandaLM's real gpt-3.5-turbo verdicts and three simulated ones).
Annotators 1 and 2 are the two reviewers; **annotator 3 is held out**: the procedure never
sees it, and the realised parity gap is measured against it.

Each split: every pair the judge could accept joins the calibration sample with chance
0.4 (a uniform draw); a ``double_share`` of 0.5 of the sampled pairs is decided by both
reviewers. One look with all of delta, on the same label-free grid:

* ``absolute`` — ``planned.certify_planned`` on reviewer 1's verdicts, target 0.85;
* ``human_parity`` — ``parity.certify_parity`` on the two reviewers' pairs, margin 0.03.

Per judge and size: certified coverage (judge labels delivered / pairs), savings (pairs
/ human verdicts paid — a doubled pair costs two; judge cost left out, as in the
calibration benchmark), share of splits certifying, and on the delivered judge labels:
agreement with the held-out annotator 3, the agreement of reviewer 1 with annotator 3 on
the same pairs, their gap, and the share of splits whose gap is >= -margin (parity held)
or whose agreement with annotator 3 is >= 0.85 (target held).
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

import numpy as np

from bench.calibration_bench import DATA, JUDGES, load
from labeler import parity, planned
from labeler.calibration import NEVER, scores_of

TARGET, DELTA, MARGIN = 0.85, 0.1, 0.03
RATE, DOUBLE, FLOOR = 0.4, 0.5, 0.8
SIZES = {500: 40, 2_000: 12}  # project size: splits (BENCH_SIZES=500 for a subset)


def split(rows: list[dict[str, Any]], name: str, seed: int, size: int) -> dict[str, Any]:
    """One project: rows shuffled (drawn with replacement beyond 999), judged afresh."""
    rng = random.Random(seed)
    order = rows[:]
    rng.shuffle(order)
    if size > len(order):
        order = [rng.choice(rows) for _ in range(size)]
    order = order[:size]
    signals = [JUDGES[name](row, rng) for row in order]
    draws = np.random.default_rng(seed)
    return {
        "scores": scores_of(signals, None),
        "judge": np.array([s.label or "" for s in signals]),
        "votes": np.array([row["votes"] for row in order]),  # annotators 1, 2, 3
        "u": draws.random(size),
        "double": draws.random(size) < DOUBLE,
    }


def one_split(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    scores, judge, votes = p["scores"], p["judge"], p["votes"]
    a1, a2, a3 = votes[:, 0], votes[:, 1], votes[:, 2]
    eligible = scores >= FLOOR
    sampled = eligible & (p["u"] < RATE)
    doubled = sampled & p["double"]
    grid = planned.plan_grid(scores[eligible], FLOOR)
    e = eligible
    absolute = planned.certify_planned(
        scores[e], sampled[e], (judge != a1)[e], 1 - TARGET, DELTA, grid
    )
    z = np.array([parity.parity_z(j, x, y) for j, x, y in zip(judge, a1, a2, strict=True)])
    at_parity = parity.certify_parity(
        scores[e],
        np.where(doubled, z, np.nan)[e],
        MARGIN,
        DELTA,
        grid,
        p["u"][e],
        (a1 == a2)[e],
    )
    out = {}
    n = len(scores)
    for mode, choice, extra in (
        ("absolute", absolute, 0),
        ("human_parity", at_parity, int(doubled.sum())),
    ):
        delivered = eligible & ~sampled & (scores >= choice.threshold)
        k = int(delivered.sum())
        labels = n - k + extra
        held = float(np.mean(judge[delivered] == a3[delivered])) if k else None
        peer = float(np.mean(a1[delivered] == a3[delivered])) if k else None
        out[mode] = {
            "certified": choice.threshold < NEVER,
            "coverage": k / n,
            "savings": n / labels,
            "labels": labels,
            "judge_vs_held_out": held,
            "reviewer_vs_held_out": peer,
        }
    return out


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str) -> float | None:
        vals = [r[key] for r in runs if r[key] is not None]
        return round(float(np.mean(vals)), 3) if vals else None

    gaps = [
        r["judge_vs_held_out"] - r["reviewer_vs_held_out"]
        for r in runs
        if r["judge_vs_held_out"] is not None
    ]
    held = [r for r in runs if r["judge_vs_held_out"] is not None]
    return {
        "coverage": mean("coverage"),
        "savings": mean("savings"),
        "human_labels": mean("labels"),
        "certified_runs": round(float(np.mean([r["certified"] for r in runs])), 3),
        "judge_vs_held_out": mean("judge_vs_held_out"),
        "reviewer_vs_held_out": mean("reviewer_vs_held_out"),
        "gap": round(float(np.mean(gaps)), 3) if gaps else None,
        "parity_held": round(float(np.mean([g >= -MARGIN for g in gaps])), 3) if gaps else None,
        "target_held": round(float(np.mean([r["judge_vs_held_out"] >= TARGET for r in held])), 3)
        if held
        else None,
    }


def main() -> dict[str, Any]:
    if not DATA.exists():
        return {"skipped": f"{DATA} not found"}
    rows = load()
    results: dict[str, Any] = {"target": TARGET, "delta": DELTA, "margin": MARGIN}
    only = os.environ.get("BENCH_SIZES")
    sizes = {int(s): SIZES[int(s)] for s in only.split(",")} if only else SIZES
    for size, splits in sizes.items():
        for name in JUDGES:
            started = time.perf_counter()
            runs = [one_split(split(rows, name, seed, size)) for seed in range(splits)]
            key = f"{name} x{size}"
            results[key] = {
                mode: _summary([r[mode] for r in runs]) for mode in ("absolute", "human_parity")
            } | {"splits": splits, "seconds": round(time.perf_counter() - started, 1)}
            print(key, json.dumps(results[key]), flush=True)
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
