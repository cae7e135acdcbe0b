"""Benchmark of the threshold choice (issue 4) on real human verdicts and synthetic judges.

Data: ``../shared/data/pandalm`` (999 pairs, three annotators each, and gpt-3.5-turbo's
verdicts without probabilities). Truth = the annotators' majority ("0" = tie). A
simulated reviewer answers with one annotator's label, drawn at random.

Judges:
* ``gpt-3.5`` — PandaLM's real gpt-3.5-turbo verdicts; no confidence at all (every
  parseable A/B verdict scores the same, reported HIGH);
* ``synthetic-calibrated`` — on the same pairs: right with probability q, q depending on
  how much the annotators agreed (difficulty), reported probability q;
* ``synthetic-overconfident`` — the same, but always reports >= 0.95 and HIGH.

For each of 200 random splits (half "past", half "future"): the past pairs are judged
and routed in one cold-start round (audit rate 0.3 of would-be-accepted; everything else
reviewed), reviewers decide the reviewed pairs, thresholds are chosen, and the future
pairs are routed with them. Reported: coverage of the future pairs, their agreement with
the truth, and the share of splits where that agreement reached the target (the
guarantee asks >= 1 - delta = 0.9). In the same run, two baselines route the same
future pairs: the seed recipe (accept every HIGH self-report) and a fixed threshold
(confidence >= 0.9).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from labeler.calibration import Labeled, Signals, calibrate, score

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pandalm"
LABEL = {"1": "A", "2": "B", "0": "TIE"}


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
        truth = label if n >= 2 else "TIE"
        agreement = n / 3
        g = gpt.get(r["idx"], "")
        out.append(
            {
                "truth": truth,
                "votes": votes,
                "agreement": agreement,
                "gpt": {"1": "A", "2": "B", "Tie": "TIE"}.get(g),
            }
        )
    return out


def judge_gpt(row: dict[str, Any], rng: random.Random) -> Signals:
    label = row["gpt"]
    return Signals(label, 1.0, 1.0, None, True, label is None)


def judge_synthetic(row: dict[str, Any], rng: random.Random, overconfident: bool) -> Signals:
    # easy when the three annotators agreed, harder when they split
    q = 0.97 if row["agreement"] == 1 else 0.78 if row["agreement"] > 0.5 else 0.6
    q = min(0.999, max(0.5, q + rng.uniform(-0.08, 0.08)))
    truth = row["truth"] if row["truth"] != "TIE" else rng.choice(["A", "B"])
    label = truth if rng.random() < q else ("B" if truth == "A" else "A")
    reported = max(q, 0.95 + rng.random() * 0.049) if overconfident else q
    high = 1.0 if (overconfident or reported >= 0.8) else 0.0
    return Signals(label, reported, high, reported, True, False)


JUDGES = {
    "gpt-3.5": judge_gpt,
    "synthetic-calibrated": lambda r, rng: judge_synthetic(r, rng, False),
    "synthetic-overconfident": lambda r, rng: judge_synthetic(r, rng, True),
}


def one_split(
    rows: list[dict[str, Any]],
    judge: Any,
    seed: int,
    target: float,
    delta: float = 0.1,
    audit: float = 0.3,
) -> dict[str, Any]:
    rng = random.Random(seed)
    order = rows[:]
    rng.shuffle(order)
    past, future = order[: len(order) // 2], order[len(order) // 2 :]
    cold = 0.9  # cold-start threshold on the raw confidence, HIGH required
    data = []
    for row in past:
        s = judge(row, rng)
        would_accept = score(s, None) >= cold
        in_sample = rng.random() < audit
        if would_accept and not in_sample:
            continue  # accepted without review in the cold-start round
        reviewer = rng.choice(row["votes"])  # one annotator decides it
        data.append(Labeled(s, reviewer, in_sample))
    cal = calibrate(data, 1 - target, delta, min_labels=50, min_count=20)
    labels = sum(1 for d in data if d.in_sample)
    results: dict[str, Any] = {"labels": len(data), "sample": labels}
    fut = [(row, judge(row, rng)) for row in future]

    def evaluate(accept: list[bool]) -> tuple[float, float | None]:
        taken = [row["truth"] == s.label for (row, s), a in zip(fut, accept, strict=True) if a]
        return len(taken) / len(fut), (sum(taken) / len(taken) if taken else None)

    if cal is None:
        ours = [False] * len(fut)
    else:
        ours = [score(s, cal.weights) >= (cal.a if s.label == "A" else cal.b) for _, s in fut]
    results["ours"] = evaluate(ours)
    results["seed_recipe"] = evaluate([s.eligible and s.self_high_share >= 1 for _, s in fut])
    results["fixed_0.9"] = evaluate([s.eligible and s.confidence >= 0.9 for _, s in fut])
    return results


def summarise(runs: list[dict[str, Any]], target: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mean_human_labels": round(float(np.mean([r["labels"] for r in runs])), 1),
        "mean_audit_sample": round(float(np.mean([r["sample"] for r in runs])), 1),
    }
    for method in ("ours", "seed_recipe", "fixed_0.9"):
        cov = [r[method][0] for r in runs]
        agree = [r[method][1] for r in runs]
        held = [a is None or a >= target for a in agree]
        known = [a for a in agree if a is not None]
        out[method] = {
            "coverage": round(float(np.mean(cov)), 3),
            "agreement": round(float(np.mean(known)), 3) if known else None,
            "target_met_share": round(float(np.mean(held)), 3),
        }
    return out


def main(splits: int = 200) -> dict[str, Any]:
    if not DATA.exists():
        return {"skipped": f"{DATA} not found"}
    rows = load()
    results: dict[str, Any] = {}
    for name, judge in JUDGES.items():
        for target in (0.85, 0.90):
            runs = [one_split(rows, judge, seed, target) for seed in range(splits)]
            results[f"{name}@{target}"] = summarise(runs, target)
            print(name, target, results[f"{name}@{target}"], flush=True)
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
