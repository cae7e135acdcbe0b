"""Benchmark of the whole calibration loop (issue 9): five rounds of 100 pairs, humans
answering what routing sends them, thresholds recalibrated after every round — on the
same splits in the same run:

* ``today`` — the procedure before issue 9 (``bench/legacy_calibration.py``);
* ``top_start`` — issue 9's first version: the high-probability sequence starts at the
  highest threshold with enough labels;
* ``high_probability`` — the current one: the sequence starts where the fit split says the
  judge is good (``calibration.fit_start``);
* ``expected`` — the expected-disagreement guarantee (conformal selection).

A second part runs the two synthetic judges on a larger project (20,000 pairs drawn with
replacement from PandaLM's rows, rounds of 2,000), where the 5% audits of certified pairs
pile up into real evidence.

Data: ``../shared/data/pandalm`` (999 pairs, three annotators each, gpt-3.5-turbo's
verdicts without probabilities). A reviewer answers with one annotator's label, drawn at
random; a judge label's true agreement with humans is the share of the three annotators
who gave it (the chance a random reviewer agrees).

Judges on those pairs:
* ``gpt-3.5`` — PandaLM's real gpt-3.5-turbo verdicts; no confidence at all;
* ``synthetic-calibrated`` — right with probability q (q from how much the annotators
  agreed), reports q;
* ``synthetic-overconfident`` — the same, always reports >= 0.95;
* ``synthetic-extreme`` — like a small judge: its most extreme reports (p >= 0.9999) are
  less accurate than its merely high ones.

Per setting: coverage (share of pairs certified to the judge alone), realised agreement of
those with humans, share of splits meeting the target, human labels needed (sampled,
re-checked, and provisional pairs never certified, which humans must still decide),
savings factor (pairs / human labels), and the oracle coverage (the largest threshold set
on the final score whose true agreement meets the target, chosen knowing all truth).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import legacy_calibration as legacy
from labeler.calibration import Signals, scores_of
from labeler.simulation import Settings, SimPair, run_loop

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pandalm"
LABEL = {"1": "A", "2": "B", "0": "TIE"}
ROUNDS, PER_ROUND = 5, 100
SCALE, SCALE_SPLITS = (20_000, 2_000), 10  # (pairs, per round) of the larger project


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


def judge_synthetic(row: dict[str, Any], rng: random.Random, kind: str) -> Signals:
    # easy when the three annotators agreed, harder when they split
    q = 0.97 if row["agreement"] == 1 else 0.78 if row["agreement"] > 0.5 else 0.6
    q = min(0.999, max(0.5, q + rng.uniform(-0.08, 0.08)))
    truth = row["truth"] if row["truth"] != "TIE" else rng.choice(["A", "B"])
    label = truth if rng.random() < q else ("B" if truth == "A" else "A")
    reported = q
    if kind == "overconfident":
        reported = max(q, 0.95 + rng.random() * 0.049)
    elif kind == "extreme" and rng.random() < 0.2:
        # a fifth of its verdicts are pushed to p ~ 1, at a coin flip's accuracy
        label = rng.choice(["A", "B"])
        reported = 1 - 10 ** rng.uniform(-6, -4)
    high = 1.0 if (kind != "calibrated" or reported >= 0.8) else 0.0
    return Signals(label, reported, high, reported, True, False)


JUDGES: dict[str, Callable[[dict[str, Any], random.Random], Signals]] = {
    "gpt-3.5": judge_gpt,
    "synthetic-calibrated": lambda r, rng: judge_synthetic(r, rng, "calibrated"),
    "synthetic-overconfident": lambda r, rng: judge_synthetic(r, rng, "overconfident"),
    "synthetic-extreme": lambda r, rng: judge_synthetic(r, rng, "extreme"),
}


def p_agree(row: dict[str, Any], label: str | None) -> float:
    return sum(v == label for v in row["votes"]) / 3


def legacy_loop(
    pairs: list[SimPair],
    rng: np.random.Generator,
    target: float,
    delta: float,
    per_round: int = PER_ROUND,
) -> dict[str, float]:
    """Today's loop: cold start accepts HIGH verdicts >= 0.8 on the judge's word (audit
    0.2), then thresholds from the uniform audit sample, audit 0.05 (1 when none pass)."""
    a = b = 0.8
    weights: tuple[float, ...] | None = None
    rate = 0.2
    draws = rng.random(len(pairs))
    data: list[legacy.Labeled] = []
    accepted: list[int] = []
    humans = 0
    for start in range(0, len(pairs), per_round):
        for i in range(start, min(start + per_round, len(pairs))):
            s = pairs[i].signals
            sc = legacy.score(s, weights)
            would = s.eligible and sc >= (a if s.label == "A" else b)
            if would and draws[i] >= rate:
                accepted.append(i)
                continue
            humans += 1
            data.append(legacy.Labeled(s, pairs[i].human, bool(draws[i] < rate)))
        c = legacy.calibrate(data, 1 - target, delta, 50, 20)
        if c is not None:
            a, b, weights = c.a, c.b, c.weights
            rate = 1.0 if min(a, b) >= legacy.NEVER else 0.05
    right = [pairs[i].p_agree or 0.0 for i in accepted]
    return {
        "coverage": len(accepted) / len(pairs),
        "agreement": float(np.mean(right)) if right else float("nan"),
        "humans": humans,
    }


def oracle_coverage(pairs: list[SimPair], weights: Any, target: float) -> float:
    """The largest {score >= λ} set whose true agreement meets the target."""
    best = 0.0
    for w in (weights, None):
        s = scores_of([p.signals for p in pairs], w)
        agree = np.array([p.p_agree or 0.0 for p in pairs])
        order = np.argsort(-s, kind="stable")
        running = np.cumsum(agree[order]) / np.arange(1, len(order) + 1)
        ok = np.nonzero((running >= target) & (s[order] > 0))[0]
        if len(ok):
            best = max(best, (ok.max() + 1) / len(pairs))
    return best


def one_split(
    rows: list[dict[str, Any]],
    judge: Any,
    seed: int,
    target: float,
    delta: float = 0.1,
    pairs_total: int = ROUNDS * PER_ROUND,
    per_round: int = PER_ROUND,
) -> dict[str, Any]:
    """One split: ``pairs_total`` pairs in rounds of ``per_round``. Up to the 999 PandaLM
    pairs, a shuffle of them; beyond, rows drawn with replacement (each draw a fresh judge
    verdict and a fresh reviewer) — a larger project with the same mix of difficulty."""
    rng = random.Random(seed)
    order = rows[:]
    rng.shuffle(order)
    if pairs_total > len(order):
        order = [rng.choice(rows) for _ in range(pairs_total)]
    pairs = []
    for row in order[:pairs_total]:
        s = judge(row, rng)
        pairs.append(SimPair(s, rng.choice(row["votes"]), p_agree(row, s.label)))
    out: dict[str, Any] = {}
    for mode in ("high_probability", "expected", "top_start"):
        settings = Settings(
            alpha=1 - target,
            delta=delta,
            guarantee="high_probability" if mode == "top_start" else mode,
            per_round=per_round,
            start_from_fit=mode != "top_start",
        )
        res = run_loop(pairs, settings, seed=seed)
        out[mode] = {
            "coverage": res.coverage,
            "agreement": res.agreement if res.agreement is not None else float("nan"),
            "humans": res.humans_needed,
            "oracle": oracle_coverage(pairs, res.final_weights, target),
        }
    out["today"] = legacy_loop(pairs, np.random.default_rng(seed), target, delta, per_round)
    return out


def summarise(
    runs: list[dict[str, Any]], target: float, pairs_total: int = ROUNDS * PER_ROUND
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in ("today", "top_start", "high_probability", "expected"):
        cov = [r[method]["coverage"] for r in runs]
        agree = [r[method]["agreement"] for r in runs]
        humans = [r[method]["humans"] for r in runs]
        known = [a for a in agree if a == a]
        out[method] = {
            "coverage": round(float(np.mean(cov)), 3),
            "agreement": round(float(np.mean(known)), 3) if known else None,
            "mean_disagreement": round(float(np.mean([1 - a if a == a else 0 for a in agree])), 3),
            "target_met_share": round(float(np.mean([a != a or a >= target for a in agree])), 3),
            "human_labels": round(float(np.mean(humans)), 1),
            "savings_factor": round(pairs_total / max(float(np.mean(humans)), 1), 2),
        }
        if method != "today":
            out[method]["oracle_coverage"] = round(
                float(np.mean([r[method]["oracle"] for r in runs])), 3
            )
    return out


def main(splits: int = 100) -> dict[str, Any]:
    if not DATA.exists():
        return {"skipped": f"{DATA} not found"}
    rows = load()
    results: dict[str, Any] = {"splits": splits, "rounds": ROUNDS, "per_round": PER_ROUND}
    for name, judge in JUDGES.items():
        for target in (0.85, 0.90):
            runs = [one_split(rows, judge, seed, target) for seed in range(splits)]
            results[f"{name}@{target}"] = summarise(runs, target)
            print(name, target, json.dumps(results[f"{name}@{target}"]), flush=True)
    # a larger project: the same judges on 20,000 pairs in rounds of 2,000
    for name in ("synthetic-calibrated", "synthetic-overconfident"):
        runs = [
            one_split(rows, JUDGES[name], seed, 0.85, pairs_total=SCALE[0], per_round=SCALE[1])
            for seed in range(SCALE_SPLITS)
        ]
        key = f"{name}@0.85 x{SCALE[0]}"
        results[key] = summarise(runs, 0.85, SCALE[0])
        print(key, json.dumps(results[key]), flush=True)
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
