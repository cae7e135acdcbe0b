"""``labeler demo``: the whole loop offline, with a simulated judge on a real HTTP server.

It writes a demo project (config, guidelines, generated pairs with known answers) into a
folder, starts the simulated judge (``simjudge``) behind ``JudgeServer`` on 127.0.0.1, runs
several rounds through the same code path as ``labeler round``, and stops the server.
With ``judge_url`` it uses a real OpenAI-compatible judge instead.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labeler.config import Config, load_config
from labeler.demo.data import DemoPair, demo_pairs, write_jsonl
from labeler.demo.judge_server import JudgeServer
from labeler.demo.simjudge import NoiseModel, SimulatedJudge
from labeler.errors import UsageError
from labeler.rounds import Progress, RoundSummary, run_round
from labeler.setup import write_starter_files

MARKER = ".labeler-demo"


@dataclass
class DemoOptions:
    folder: Path
    pairs: int = 600
    rounds: int = 3
    per_round: int = 200
    judge_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    noise: NoiseModel = field(default_factory=NoiseModel)
    seed: int = 7


@dataclass
class DemoResult:
    folder: Path
    judge_url: str
    simulated_judge: bool
    rounds: list[RoundSummary]
    truth_agreement: list[float | None]


def write_project(opts: DemoOptions, judge_url: str, pairs: list[DemoPair]) -> Path:
    """A demo project folder with its config pointing at ``judge_url``."""
    folder = opts.folder
    marker = folder / MARKER
    if folder.exists() and any(folder.iterdir()):
        if not marker.exists():
            raise UsageError(
                f"{folder} exists and is not a labeler demo folder; choose another with --dir"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by `labeler demo`; the folder is replaced on every run\n")
    write_starter_files(folder, force=True)
    write_jsonl(pairs, folder / "pairs.jsonl")
    write_jsonl(pairs, folder / "truth.jsonl", with_truth=True)
    simulated = opts.judge_url is None
    judge = {
        "base_url": judge_url,
        "model": opts.model or ("simulated-judge" if simulated else "gpt-4o-mini"),
        "api_key_env": opts.api_key_env,
        "api_key_required": not simulated,
        "concurrency": 32,
        "price_input_per_mtok": 0.15,
        "price_output_per_mtok": 0.60,
    }
    lines = [
        "# Demo project written by `labeler demo`; the judge is "
        + ("SIMULATED (labeler/demo/simjudge.py)." if simulated else f"at {judge_url}."),
        "[project]",
        'name = "labeler-demo"',
        "[source]",
        'path = "pairs.jsonl"',
        "[judge]",
        *(f"{k} = {json.dumps(v)}" for k, v in judge.items()),
        'template = "templates/judge.txt"',
        "[routing]",
        "threshold = 0.8",
        "audit_rate = 0.05",
    ]
    (folder / "config.toml").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


@contextmanager
def judge_endpoint(opts: DemoOptions, pairs: list[DemoPair]) -> Iterator[str]:
    if opts.judge_url:
        yield opts.judge_url
        return
    server = JudgeServer(SimulatedJudge(pairs, opts.noise), latency=0.02).start()
    try:
        yield server.url
    finally:
        server.stop()


def truth_agreement(cfg: Config, pairs: list[DemoPair]) -> float | None:
    """Share of auto-accepted pairs whose chosen response is the truly better one."""
    import sqlite3

    truth = {(p.prompt, p.response_a, p.response_b): p.truth for p in pairs}
    db = sqlite3.connect(cfg.db_path)
    try:
        rows = db.execute(
            "SELECT p.prompt, p.response_a, p.response_b, v.label FROM pairs p "
            "JOIN verdicts v ON v.pair_id = p.id WHERE v.action = 'accept'"
        ).fetchall()
    finally:
        db.close()
    if not rows:
        return None
    return sum(truth.get((p, a, b)) == label for p, a, b, label in rows) / len(rows)


def run_demo(
    opts: DemoOptions,
    on_round: Callable[[int, RoundSummary], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> DemoResult:
    pairs = demo_pairs(opts.pairs, seed=opts.seed)
    with judge_endpoint(opts, pairs) as url:
        folder = write_project(opts, url, pairs)
        cfg = load_config(folder / "config.toml", environ={})
        summaries: list[RoundSummary] = []
        agreement: list[float | None] = []
        for number in range(1, opts.rounds + 1):
            summary = run_round(cfg, limit=opts.per_round, on_progress=on_progress)
            summaries.append(summary)
            agreement.append(truth_agreement(cfg, pairs))
            if on_round:
                on_round(number, summary)
            if summary.status == "nothing_to_do":
                break
    return DemoResult(folder, url, opts.judge_url is None, summaries, agreement)


def result_dict(result: DemoResult) -> dict[str, Any]:
    return {
        "folder": str(result.folder),
        "judge_url": result.judge_url,
        "simulated_judge": result.simulated_judge,
        "rounds": [s.to_dict() for s in result.rounds],
        "truth_agreement": result.truth_agreement,
    }
