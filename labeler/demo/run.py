"""``labeler demo``: the whole loop offline, with a simulated judge and simulated reviewers.

It writes a demo project (config, guidelines, generated pairs with known answers) into a
folder, starts the embedded Argilla (the ``labeler serve`` machinery) and the simulated
judge (``simjudge`` behind ``JudgeServer``, a real HTTP server on 127.0.0.1), then runs
rounds through the same code as the CLI: judge, route, push, simulated reviewers decide
the pairs through Argilla's HTTP API, sync, recalibrate. With ``judge_url`` it uses a real
OpenAI-compatible judge; with ``keep_serving`` the Argilla server stays up for a person.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labeler.config import Config, load_config
from labeler.demo.data import DemoPair, demo_pairs, write_jsonl
from labeler.demo.judge_server import JudgeServer
from labeler.demo.reviewers import ReviewerSession
from labeler.demo.simjudge import NoiseModel, SimulatedJudge
from labeler.demo.simreviewers import SimulatedReviewer, truth_index
from labeler.errors import ReviewError, UsageError
from labeler.rounds import Progress, RoundSummary, run_round
from labeler.server.manager import EmbeddedArgilla
from labeler.setup import write_starter_files
from labeler.store import Store
from labeler.sync import SyncSummary, connect, run_sync

MARKER = ".labeler-demo"
PARITY_DOUBLE_SHARE = 1.0  # --parity: every review pair is decided by two reviewers


@dataclass
class DemoOptions:
    folder: Path
    pairs: int = 600
    rounds: int = 3
    per_round: int = 200
    judge_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    # a strong judge on these pairs: right 99.5% of the time on the easiest, 85% on the
    # hardest (issue 17: with 62% on the hardest, three quarters of the pairs got no
    # confident verdict in both orders and the demo could show no real savings)
    noise: NoiseModel = field(
        default_factory=lambda: NoiseModel(accuracy_easy=0.995, accuracy_hard=0.85)
    )
    reviewers: int = 2
    reviewer_error: float = 0.02
    # human parity (issue 18): every review pair decided by two realistic reviewers, who
    # err more on harder pairs, and calibration.quality = "human_parity"
    parity: bool = False
    keep_serving: bool = False
    min_labels: int = 40
    seed: int = 7
    port: int | None = None  # Argilla's port (None: 6900 when free, else any free port)
    judge_port: int | None = None  # the simulated judge's port (None: any free port)


@dataclass
class DemoResult:
    folder: Path
    config: Path
    judge_url: str
    simulated_judge: bool
    argilla_url: str
    rounds: list[RoundSummary]
    syncs: list[SyncSummary]
    truth_agreement: list[float | None]
    reviewed: list[int]
    server: EmbeddedArgilla | None = None
    verify: dict[str, Any] | None = None  # what the simulated reward model caught
    fact_check: dict[str, int] | None = None  # what the judge's fact-check sent to humans


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _argilla_port(wanted: int | None) -> int:
    """--port, or labeler's usual 6900 when it is free (the project then works with a
    plain `labeler serve` after the demo), or any free port."""
    from labeler.server.manager import port_is_free

    if wanted is not None:
        if not port_is_free("127.0.0.1", wanted):
            raise UsageError(f"--port {wanted} is in use; choose another")
        return wanted
    return 6900 if port_is_free("127.0.0.1", 6900) else _free_port()


def write_project(opts: DemoOptions, judge_url: str, pairs: list[DemoPair], port: int) -> Path:
    """A demo project folder with its config pointing at the judge and the Argilla port."""
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
    sections: dict[str, dict[str, Any]] = {
        "project": {"name": "labeler-demo"},
        "source": {"path": "pairs.jsonl"},
        "judge": {
            "base_url": judge_url,
            "model": opts.model or ("simulated-judge" if simulated else "gpt-4o-mini"),
            "api_key_env": opts.api_key_env,
            "api_key_required": not simulated,
            "concurrency": 32,
            "template": "templates/judge.txt",
        },
        # every confident verdict joins the calibration sample; looks certify what they can
        "routing": {"threshold": 0.6, "audit_rate": 0.1},
        "review": {
            "port": port,
            "min_submitted": 1,
            "double_share": PARITY_DOUBLE_SHARE if opts.parity else 0.0,
        },
        # simulated reviewers answer in milliseconds: no fast-verdict flags in the demo;
        # the judge fact-checks every chosen response (a wrong sum or capital goes to humans)
        "quality": {"min_review_seconds": 0.0, "fact_check": True},
        "calibration": {
            "target_agreement": 0.85,
            "confidence": 0.9,
            "min_labels": opts.min_labels,
            "min_per_threshold": 15,
            "cold_start_audit_rate": 0.4,
            "quality": "human_parity" if opts.parity else "absolute",
        },
    }
    who = "SIMULATED (labeler/demo/simjudge.py)" if simulated else f"at {judge_url}"
    lines = [f"# Demo project written by `labeler demo`; the judge is {who}."]
    lines.append("# After the demo, `labeler status`, `report` and `export` work here as they are.")
    if simulated:
        import urllib.parse

        judge_port = urllib.parse.urlsplit(judge_url).port
        lines.append(
            "# For more rounds, start the simulated judge again (it knows truth.jsonl):\n"
            f"#   python -m labeler.demo.simjudge --truth truth.jsonl --port {judge_port}\n"
            "# and Argilla for the reviewers: `labeler serve`; then `labeler round`."
        )
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items())
    (folder / "config.toml").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


@contextmanager
def judge_endpoint(opts: DemoOptions, pairs: list[DemoPair]) -> Iterator[str]:
    if opts.judge_url:
        yield opts.judge_url
        return
    server = JudgeServer(
        SimulatedJudge(pairs, opts.noise), port=opts.judge_port or 0, latency=0.02
    ).start()
    try:
        yield server.url
    finally:
        server.stop()


def truth_agreement(cfg: Config, pairs: list[DemoPair], round_id: int) -> float | None:
    """Share of the round's auto-accepted pairs whose chosen response is truly better."""
    import sqlite3

    truth = {(p.prompt, p.response_a, p.response_b): p.truth for p in pairs}
    db = sqlite3.connect(cfg.db_path)
    try:
        rows = db.execute(
            "SELECT p.prompt, p.response_a, p.response_b, v.label FROM pairs p "
            "JOIN verdicts v ON v.pair_id = p.id WHERE v.action = 'accept' AND v.round_id = ?",
            (round_id,),
        ).fetchall()
    finally:
        db.close()
    if not rows:
        return None
    return sum(truth.get((p, a, b)) == label for p, a, b, label in rows) / len(rows)


def _reviewers(
    cfg: Config, server: EmbeddedArgilla, pairs: list[DemoPair], opts: DemoOptions
) -> list[SimulatedReviewer]:
    index = truth_index(pairs)
    out = []
    with connect(cfg) as review:
        for i in range(opts.reviewers):
            name, password = f"sim-reviewer-{i + 1}", secrets.token_urlsafe(12)
            review.add_reviewer(name, password)
            session = ReviewerSession(server.url, name, password)
            if opts.parity:  # realistic: 97% consistent on easy pairs, 65% on the hardest
                out.append(SimulatedReviewer(name, session, index, 0.03, hard_error=0.32))
            else:
                out.append(SimulatedReviewer(name, session, index, opts.reviewer_error))
    return out


def _review(reviewers: list[SimulatedReviewer], cfg: Config) -> int:
    """The reviewers share the queues (the doubled dataset's too, once it exists): each
    takes its turn until nothing is pending."""
    total = 0
    for dataset in (cfg.review_dataset, cfg.double_dataset):
        try:
            dataset_id = reviewers[0].session.dataset_id(dataset)
        except LookupError:  # nothing was pushed there (yet)
            continue
        while True:
            done = sum(r.review(dataset_id, limit=25) for r in reviewers)
            total += done
            if not done:
                break
    return total


def _start_argilla(
    opts: DemoOptions, url: str, pairs: list[DemoPair]
) -> tuple[Path, Config, EmbeddedArgilla]:
    """Write the demo project and start its Argilla. A port chosen here (not --port) that
    another server takes between the check and the start (two demos at once) is traded
    for a free one, once."""
    try:
        return _start_at(opts, url, pairs, _argilla_port(opts.port))
    except ReviewError:
        if opts.port is not None:
            raise
        return _start_at(opts, url, pairs, _free_port())


def _start_at(
    opts: DemoOptions, url: str, pairs: list[DemoPair], port: int
) -> tuple[Path, Config, EmbeddedArgilla]:
    folder = write_project(opts, url, pairs, port)
    cfg = load_config(folder / "config.toml", environ={})
    server = EmbeddedArgilla(cfg.project.state_dir, cfg.review.host, port, cfg.review.workspace)
    return folder, cfg, server.start()


def run_demo(
    opts: DemoOptions,
    on_round: Callable[[int, RoundSummary], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> DemoResult:
    pairs = demo_pairs(opts.pairs, seed=opts.seed)
    with judge_endpoint(opts, pairs) as url:
        folder, cfg, server = _start_argilla(opts, url, pairs)
        result = DemoResult(
            folder, folder / "config.toml", url, opts.judge_url is None, server.url, [], [], [], []
        )
        try:
            reviewers = _reviewers(cfg, server, pairs, opts) if opts.reviewers else []
            for number in range(1, opts.rounds + 1):
                summary = run_round(cfg, limit=opts.per_round, on_progress=on_progress)
                if summary.status == "nothing_to_do":
                    break
                result.rounds.append(summary)
                result.truth_agreement.append(truth_agreement(cfg, pairs, summary.round_id or 0))
                result.reviewed.append(_review(reviewers, cfg) if reviewers else 0)
                result.syncs.append(run_sync(cfg))
                if on_round:
                    on_round(number, summary)
            # the end of the project: a last look, then no pair is left waiting (ties
            # between two reviewers go to a third: a few passes until the queue is empty);
            # with --rounds too few for the source, no end: pairs are left to judge
            with Store(cfg.db_path) as store:
                exhausted = store.unassigned_count() == 0 and store.open_round() is None
            # (the last look waits for audited pairs still with reviewers: a tie's third)
            result.syncs.append(run_sync(cfg, finish=exhausted, now=not reviewers))
            for _ in range(5):
                last = result.syncs[-1]
                if not reviewers or not (last.awaiting or last.finish_waits):
                    break
                done = _review(reviewers, cfg)
                result.reviewed.append(done)
                result.syncs.append(run_sync(cfg, finish=bool(last.finish_waits)))
                if not done:
                    break
            if result.syncs[-1].finish_waits:  # reviewers who never decide: finish anyway
                result.syncs.append(run_sync(cfg, finish=True, now=True))
            result.verify = demo_verify(cfg, pairs)
            result.fact_check = demo_fact_check(cfg, pairs, result.rounds)
        finally:
            if opts.keep_serving:
                result.server = server
            else:
                server.stop()
    return result


def demo_verify(cfg: Config, pairs: list[DemoPair]) -> dict[str, Any]:
    """`labeler verify` at the end of the demo, against a SIMULATED reward model (a local
    server speaking vLLM's /pooling; ``reward_server.demo_scorer``'s stated noise model
    over the known answers), and what it caught: flagged rows whose label is wrong by the
    known answers, and wrong rows it did not flag."""
    import dataclasses

    from labeler.demo.reward_server import RewardServer, demo_scorer
    from labeler.verify import run_verify

    good: dict[tuple[str, str], bool] = {}
    for p in pairs:
        if p.truth in ("A", "B"):
            better = p.response_a if p.truth == "A" else p.response_b
            worse = p.response_b if p.truth == "A" else p.response_a
            good[(p.prompt, better)], good[(p.prompt, worse)] = True, False
    truth = {(p.prompt, p.response_a, p.response_b): p.truth for p in pairs}
    with RewardServer(demo_scorer(good)) as server:
        vcfg = dataclasses.replace(cfg.verify, base_url=server.url, model="simulated-reward")
        result = run_verify(dataclasses.replace(cfg, verify=vcfg)).to_dict()
    from labeler.store import Store

    flagged = set(result["flagged_ids"])
    caught = missed = 0
    with Store(cfg.db_path) as store:
        for r in store.dataset_rows(cfg.output.certified_only, True):
            wrong = truth.get((r["prompt"], r["response_a"], r["response_b"])) != r["label"]
            caught += wrong and r["id"] in flagged
            missed += wrong and r["id"] not in flagged
    return {**result, "wrong_caught": caught, "wrong_missed": missed}


def demo_fact_check(
    cfg: Config, pairs: list[DemoPair], rounds: list[RoundSummary]
) -> dict[str, int]:
    """What the fact-check (``quality.fact_check``) did over the demo: chosen responses
    checked, sent to humans, and of those how many the judge had chosen wrongly (by the
    known answers: the worse response of its pair)."""
    import sqlite3

    truth = {(p.prompt, p.response_a, p.response_b): p.truth for p in pairs}
    db = sqlite3.connect(cfg.db_path)
    try:
        rows = db.execute(
            "SELECT p.prompt, p.response_a, p.response_b, v.label FROM pairs p JOIN verdicts v "
            "ON v.pair_id = p.id WHERE v.reason = 'chosen_has_errors'"
        ).fetchall()
    finally:
        db.close()
    return {
        "checked": sum(r.fact_checked for r in rounds),
        "flagged": len(rows),
        "judge_was_wrong": sum(truth.get((r[0], r[1], r[2])) not in (r[3], None) for r in rows),
    }


def result_dict(result: DemoResult) -> dict[str, Any]:
    return {
        "folder": str(result.folder),
        "config": str(result.config),
        "judge_url": result.judge_url,
        "simulated_judge": result.simulated_judge,
        "argilla_url": result.argilla_url,
        "rounds": [s.to_dict() for s in result.rounds],
        "syncs": [s.to_dict() for s in result.syncs],
        "truth_agreement": result.truth_agreement,
        "reviewed": result.reviewed,
        "verify": result.verify,
        "fact_check": result.fact_check,
    }


def finish_demo(result: DemoResult) -> dict[str, Any]:
    """The quality table, the reliability diagram and the dataset path of a demo run."""
    from labeler.quality import run_calibration
    from labeler.report import build_report, write_chart

    cfg = load_config(result.config, environ={})
    quality = run_calibration(cfg)
    report = build_report(cfg)
    chart = write_chart(report, cfg.project.state_dir / "rounds.png", own=True)
    return {
        "quality": quality["rounds"],
        "reliability_png": quality["plot"],
        "rounds_png": str(chart),
        "report": report,
        "dataset": str(cfg.output.dataset_dir),
    }
