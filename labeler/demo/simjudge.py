"""A simulated LLM judge with a stated noise model, served by ``JudgeServer``.

For a pair with known truth and difficulty ``d`` in [0, 1], shown in some order:

* the judge picks the better response with probability
  ``p = accuracy_easy - (accuracy_easy - accuracy_hard) * d``, plus ``position_bias`` when
  the better response is shown first and minus it when shown second (clipped to [0.5, 1]);
* the probability it *reports* for its verdict is ``q = p`` when ``calibration == 1``
  (calibrated: among verdicts reported with q, a share q is right); with
  ``calibration > 1`` it is overconfident: ``q = 1 - (1 - p) / calibration``;
* it says HIGH when q >= ``high_at``, else LOW;
* on a true tie it says TIE with probability ``tie_recall``, else picks A or B with a
  reported q near 0.6;
* logprobs put q on the verdict token, and split 1 - q between the other two;
* few-shot examples in the request (a judge panel's) that are *relevant* — pairs of the
  same kind as the judged one — add ``few_shot_gain`` per relevant example (up to
  ``few_shot_cap``) to p; irrelevant ones add nothing;
* the reported q wobbles by up to +- ``report_noise`` (uniform), per pair, order and prompt
  variant; each variant (its examples) also draws its verdict independently.

Draws are a hash of (seed, pair, order): the same request always gets the same answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labeler.demo.data import DemoPair
from labeler.demo.judge_server import Scripted, Shown, by_model, read_shown


@dataclass(frozen=True)
class NoiseModel:
    accuracy_easy: float = 0.98
    accuracy_hard: float = 0.62
    position_bias: float = 0.04
    calibration: float = 1.0
    high_at: float = 0.75
    tie_recall: float = 0.5
    seed: int = 0
    few_shot_gain: float = 0.0
    few_shot_cap: int = 2
    report_noise: float = 0.0


def _uniform(*parts: object) -> float:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SimulatedJudge:
    """A responder for ``JudgeServer`` that judges demo pairs by the noise model."""

    def __init__(self, pairs: list[DemoPair], noise: NoiseModel | None = None):
        self.noise = noise or NoiseModel()
        self.truth: dict[tuple[str, str, str], DemoPair] = {}
        self.by_prompt: dict[str, list[DemoPair]] = {}
        for p in pairs:
            self.truth[(p.prompt, p.response_a, p.response_b)] = p
            self.by_prompt.setdefault(p.prompt, []).append(p)

    def _lookup(self, shown: Shown) -> tuple[DemoPair, bool] | None:
        """The pair and whether it is shown in stored order."""
        if (pair := self.truth.get((shown.prompt, shown.a, shown.b))) is not None:
            return pair, True
        if (pair := self.truth.get((shown.prompt, shown.b, shown.a))) is not None:
            return pair, False
        return None

    def fact_check(self, body: dict[str, Any]) -> Scripted:
        """A fact-check request (``quality.fact_check``): the checked answer of a known
        pair is objectively wrong when it is the worse response of an arithmetic or
        capitals pair (a wrong sum or city); the checker finds such an error 90% of the
        time and sees one in a correct answer 3% of the time (draws fixed per answer)."""
        text = str(body["messages"][-1]["content"])
        prompt = text.split("<prompt>\n", 1)[-1].split("\n</prompt>", 1)[0]
        answer = text.split("<answer>\n", 1)[-1].split("\n</answer>", 1)[0]
        wrong = False
        for pair in self.by_prompt.get(prompt, []):
            if answer in (pair.response_a, pair.response_b):
                worse = pair.response_b if pair.truth == "A" else pair.response_a
                objective = pair.kind in ("arithmetic", "capitals") and pair.truth != "TIE"
                wrong = objective and answer == worse
                break
        u = _uniform(self.noise.seed, "fact", prompt, answer)
        if u < (0.9 if wrong else 0.03):
            return Scripted("ERRORS\nThe answer states something false.")
        return Scripted("NO_ERRORS\nnone")

    def __call__(self, shown: Shown) -> Scripted:
        messages = shown.body.get("messages", [])
        if messages and "objectively false" in str(messages[-1].get("content", "")):
            return self.fact_check(shown.body)
        found = self._lookup(shown)
        if found is None:
            return Scripted("TIE LOW\nI do not know this pair.", {"A": 0.3, "B": 0.3, "TIE": 0.4})
        pair, stored_order = found
        n = self.noise
        # a prompt variant (its few-shot examples) draws independently of the others
        variant = [str(m.get("content", "")) for m in shown.body.get("messages", [])[1:-1]]
        u = _uniform(n.seed, shown.prompt, shown.a, shown.b, *variant)
        if pair.truth == "TIE":
            if u < n.tie_recall:
                return self._reply("TIE", 0.55, other="A")
            return self._reply("A" if u < (1 + n.tie_recall) / 2 else "B", 0.6)
        better_shown = pair.truth if stored_order else ("B" if pair.truth == "A" else "A")
        p = n.accuracy_easy - (n.accuracy_easy - n.accuracy_hard) * pair.difficulty
        p += n.few_shot_gain * min(n.few_shot_cap, self._relevant(shown, pair))
        p += n.position_bias if better_shown == "A" else -n.position_bias
        p = min(1.0, max(0.5, p))
        verdict = better_shown if u < p else ("B" if better_shown == "A" else "A")
        q = 1 - (1 - p) / n.calibration
        if n.report_noise:  # what it reports wobbles around q, prompt by prompt
            q += n.report_noise * (2 * _uniform(n.seed, "report", shown.a, shown.b, *variant) - 1)
        return self._reply(verdict, q)

    def _relevant(self, shown: Shown, pair: DemoPair) -> int:
        """How many of the request's few-shot examples are pairs of the judged pair's kind."""
        found = 0
        for message in shown.body.get("messages", [])[:-1]:
            ex = read_shown({"messages": [message]})
            known = self._lookup(ex)
            if known is not None and known[0] is not pair and known[0].kind == pair.kind:
                found += 1
        return found

    def _reply(self, verdict: str, q: float, other: str | None = None) -> Scripted:
        q = min(0.999, max(0.34, q))
        rest = [x for x in ("A", "B", "TIE") if x != verdict]
        main_other = other or next(x for x in rest if x != "TIE")
        minor = next(x for x in rest if x != main_other)
        alternatives = {verdict: q, main_other: (1 - q) * 0.9, minor: (1 - q) * 0.1}
        confidence = "HIGH" if q >= self.noise.high_at else "LOW"
        reason = {
            "A": "Response A is better.",
            "B": "Response B is better.",
            "TIE": "Neither response is better.",
        }[verdict]
        return Scripted(f"{verdict} {confidence}\n{reason}", alternatives)


def responder_for(pairs: list[DemoPair], specs: list[str]) -> Callable[[Shown], Scripted]:
    """Several simulated judges on one server, by model name: each spec is
    ``NAME[:ACCURACY_EASY[:ACCURACY_HARD]][:nologprobs]`` (a model without logprobs
    answers only its verdict line, as many endpoints and reasoning models do)."""
    judges: dict[str, Callable[[Shown], Scripted]] = {}
    for spec in specs:
        name, *rest = spec.split(":")
        plain = "nologprobs" in rest
        numbers = [float(x) for x in rest if x != "nologprobs"]
        easy, hard = (numbers + [0.995, NoiseModel.accuracy_hard][len(numbers) :])[:2]
        noise = NoiseModel(accuracy_easy=easy, accuracy_hard=hard)
        judge = SimulatedJudge(pairs, noise)
        judges[name] = _without_logprobs(judge) if plain else judge
    return by_model(judges)


def _without_logprobs(judge: SimulatedJudge) -> Callable[[Shown], Scripted]:
    def respond(shown: Shown) -> Scripted:
        return dataclasses.replace(judge(shown), alternatives=None)

    return respond


def main(argv: list[str] | None = None) -> None:
    """Serve the simulated demo judge for a demo project's pairs (after `labeler demo`):
    python -m labeler.demo.simjudge --truth truth.jsonl --port N
    [--model cheap:0.9:0.55 --model strong:0.99:0.7:nologprobs]"""
    import argparse
    from pathlib import Path

    from labeler.demo.data import read_truth
    from labeler.demo.judge_server import JudgeServer, serve_forever

    parser = argparse.ArgumentParser(description="the simulated judge of `labeler demo`")
    parser.add_argument("--truth", type=Path, required=True, help="the demo's truth.jsonl")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="serve this model (repeatable): NAME[:ACCURACY_EASY[:ACCURACY_HARD]][:nologprobs]",
    )
    args = parser.parse_args(argv)
    pairs = read_truth(args.truth)
    judge = (
        responder_for(pairs, args.model)
        if args.model
        else SimulatedJudge(pairs, NoiseModel(accuracy_easy=0.995))
    )
    serve_forever(JudgeServer(judge, args.host, args.port))


if __name__ == "__main__":
    main()
