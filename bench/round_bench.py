"""Benchmarks of `labeler round` (issue 2), each against a baseline measured in the same run.

1. Throughput: `labeler round` at concurrency 64 against a judge server (its own process)
   with 500 ms of injected latency, vs a bare asyncio loop sending the same requests with
   the `openai` client at the same concurrency. Ratio = labeler pairs/hour / bare pairs/hour.
2. Memory: peak RSS of a 100,000-pair round with the server answering at once, vs a
   1,000-pair round (the ratio shows what grows with the round size); and of `labeler
   calibrate` on each project afterwards (it reads every verdict, as each sync does).
3. Start-up: `labeler --help` vs `python -c pass`.
4. The rounds' draw (``routing.round_order = "random"``): starting a round of 1,000 of
   100,000 stored pairs, the first time (every waiting pair's draw computed and kept) and
   the next, vs taking the source's first rows; and vs importing those pairs.
5. Memory of ``round --dry-run`` (it reads every pair to price the round): peak RSS
   pricing 100,000 pairs of ~1,000-word answers vs 1,000 of them.
6. A union cascade at scale (``calibration.cascade = "union"``): a round of 20,000 pairs
   through two judge tiers, reviewers deciding what was sent to them, then `labeler
   calibrate` (the first certificate: every waiting pair re-checked, and those an
   earlier tier now labels swapped to its verdict), vs the same with the strong judge
   alone; seconds and peak RSS of each, and their ratios.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The judge server in its own process, so it does not share a GIL with the client."""

    def __init__(self, latency: float):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                PY,
                "-m",
                "labeler.demo.judge_server",
                "--port",
                str(self.port),
                "--latency",
                str(latency),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def make_project(folder: Path, n: int, url: str, concurrency: int, words: int = 0) -> Path:
    """A project of ``n`` pairs: short answers, or answers of ``words`` words."""
    from labeler.setup import write_starter_files

    write_starter_files(folder, force=True)
    long = "".join(f" word{k % 97}" for k in range(words))  # "" without words
    with (folder / "pairs.jsonl").open("w") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "prompt": f"Question {i}: what is {i} + {i}?",
                        "response_a": f"It is {2 * i}.{long}",
                        "response_b": f"It is {2 * i + 1}.{long}",
                    }
                )
                + "\n"
            )
    (folder / "config.toml").write_text(
        "[judge]\n"
        f'base_url = "{url}"\napi_key_required = false\nconcurrency = {concurrency}\n'
        'model = "bench-judge"\ntemplate = "templates/judge.txt"\n'
        "[output]\nparquet = false\n"
    )
    return folder / "config.toml"


def run_labeler(config: Path) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    out = subprocess.run(
        [PY, "-m", "labeler", "--config", str(config), "round", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - start, json.loads(out.stdout)


def bare_loop(config: Path, concurrency: int) -> tuple[float, int]:
    """The same requests (rendered by labeler's own prompt code) with a plain openai loop."""
    import openai

    from labeler.config import load_config
    from labeler.pairs import Pair, read_source
    from labeler.rounds import make_context

    cfg = load_config(config, environ={})
    ctx = make_context(cfg)
    pairs = [p for p in read_source(cfg.source) if isinstance(p, Pair)]
    bodies = [ctx.messages(p, o) for p in pairs for o in ctx.orders]

    async def go() -> None:
        client = openai.AsyncOpenAI(base_url=cfg.judge.base_url, api_key="x", max_retries=0)
        sem = asyncio.Semaphore(concurrency)

        async def one(messages: list[dict[str, str]]) -> None:
            async with sem:
                await client.chat.completions.create(
                    model="bench-judge",
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=64,
                    temperature=0,
                    logprobs=True,
                    top_logprobs=5,
                )

        await asyncio.gather(*(one(b) for b in bodies))
        await client.close()

    start = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - start, len(pairs)


def throughput(n_pairs: int = 3000, concurrency: int = 64) -> dict[str, Any]:
    server = Server(latency=0.5)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = make_project(Path(tmp) / "bare", n_pairs, server.url, concurrency)
            bare_s, n = bare_loop(config, concurrency)
            config = make_project(Path(tmp) / "labeler", n_pairs, server.url, concurrency)
            lab_s, summary = run_labeler(config)
    finally:
        server.stop()
    assert summary["judged"] == n_pairs, summary
    bare_rate, lab_rate = n / bare_s * 3600, n_pairs / lab_s * 3600
    judging_rate = n_pairs / summary["elapsed_s"] * 3600
    return {
        "pairs": n_pairs,
        "requests": 2 * n_pairs,
        "concurrency": concurrency,
        "latency_s": 0.5,
        "bare_loop_s": round(bare_s, 2),
        "labeler_round_s": round(lab_s, 2),
        "bare_pairs_per_hour": round(bare_rate),
        "labeler_pairs_per_hour": round(lab_rate),
        "labeler_in_process_pairs_per_hour": round(judging_rate),
        "ratio": round(lab_rate / bare_rate, 3),
        "labeler_phases_s": {k: round(v, 2) for k, v in summary["timings"].items()},
    }


def peak_rss_mb(
    config: Path, *args: str, command: str = "round"
) -> tuple[float, float, dict[str, Any]]:
    """Run `labeler round` (or ``command``, with ``args``) in a child; its peak RSS (MB)
    via a fork-per-measure helper."""
    code = (
        "import resource,subprocess,sys,json,time;t=time.perf_counter();"
        "o=subprocess.run(sys.argv[1:],capture_output=True,text=True,check=True);"
        "d=time.perf_counter()-t;"
        "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,d]));"
        "print(o.stdout)"
    )
    out = subprocess.run(
        [PY, "-c", code, PY, "-m", "labeler", "--config", str(config), command, "--json", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    first, rest = out.stdout.split("\n", 1)
    kb, seconds = json.loads(first)
    return kb / 1024, seconds, json.loads(rest)


def memory(n_big: int = 100_000, n_small: int = 1_000) -> dict[str, Any]:
    server = Server(latency=0.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            small = make_project(Path(tmp) / "s", n_small, server.url, 64)
            small_mb, _, _ = peak_rss_mb(small)
            big = make_project(Path(tmp) / "b", n_big, server.url, 64)
            big_mb, seconds, summary = peak_rss_mb(big)
            # a calibration reads every verdict of the project (what each sync does)
            cal_small, _, _ = peak_rss_mb(small, command="calibrate")
            cal_big, cal_s, _ = peak_rss_mb(big, command="calibrate")
    finally:
        server.stop()
    assert summary["judged"] == n_big, summary
    return {
        "calibrate_peak_rss_mb": round(cal_big, 1),
        "calibrate_seconds": round(cal_s, 2),
        "baseline_calibrate_peak_rss_mb": round(cal_small, 1),
        "calibrate_ratio": round(cal_big / cal_small, 2),
        "pairs": n_big,
        "peak_rss_mb": round(big_mb, 1),
        "baseline_pairs": n_small,
        "baseline_peak_rss_mb": round(small_mb, 1),
        "ratio": round(big_mb / small_mb, 2),
        "seconds": round(seconds, 1),
        "pairs_per_hour_instant_server": round(n_big / seconds * 3600),
    }


def dry_run(n_big: int = 100_000, n_small: int = 1_000, words: int = 1_000) -> dict[str, Any]:
    """Peak RSS of ``round --dry-run`` over ``n_big`` pairs of ``words``-word answers vs
    ``n_small`` of them (nothing is judged: the judge's address is never called)."""
    url = "http://127.0.0.1:9/v1"
    with tempfile.TemporaryDirectory() as tmp:
        small_mb, _, _ = peak_rss_mb(
            make_project(Path(tmp) / "s", n_small, url, 8, words), "--dry-run"
        )
        big_mb, seconds, summary = peak_rss_mb(
            make_project(Path(tmp) / "b", n_big, url, 8, words), "--dry-run"
        )
    assert summary["pairs_in_round"] == n_big, summary
    return {
        "pairs": n_big,
        "words_per_answer": words,
        "peak_rss_mb": round(big_mb, 1),
        "baseline_pairs": n_small,
        "baseline_peak_rss_mb": round(small_mb, 1),
        "ratio": round(big_mb / small_mb, 2),
        "seconds": round(seconds, 1),
    }


def best_of(cmd: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def startup() -> dict[str, Any]:
    labeler = str(Path(PY).parent / "labeler")
    base = best_of([PY, "-c", "pass"])
    help_s = best_of([labeler, "--help"])
    return {
        "python_pass_s": round(base, 3),
        "labeler_help_s": round(help_s, 3),
        "ratio": round(help_s / base, 2),
    }


def draw(n: int = 100_000, size: int = 1_000) -> dict[str, Any]:
    from labeler.pairs import make_pair
    from labeler.store import Store

    pairs = [make_pair(f"question {i}?", "an answer " * 50, "another " * 50) for i in range(n)]
    out: dict[str, Any] = {"pairs": n, "round": size}
    with tempfile.TemporaryDirectory() as folder:
        for name, seed in (("source", None), ("random", 0)):
            with Store(Path(folder) / f"{name}.sqlite") as store:
                start = time.perf_counter()
                store.import_pairs(pairs, [])
                out["import_s"] = round(time.perf_counter() - start, 3)
                for when in ("first", "next"):
                    start = time.perf_counter()
                    store.start_round(size, "m", "t", "g", {}, order_seed=seed)
                    out[f"{name}_{when}_s"] = round(time.perf_counter() - start, 4)
    out["first_vs_source"] = round(out["random_first_s"] / out["source_first_s"], 1)
    out["first_vs_import"] = round(out["random_first_s"] / out["import_s"], 3)
    out["next_vs_source"] = round(out["random_next_s"] / out["source_next_s"], 1)
    return out


def _graded(salt: int, high: float) -> Any:
    """A judge whose confidence spreads over 0.80-0.999 by a hash of the question, right
    ``high`` of the time (also by a hash) above 0.86 and 0.7 below."""
    from labeler.demo.judge_server import Scripted

    def judge(shown: Any) -> Scripted:
        number = int(shown.prompt.split()[1].rstrip("?:"))
        spread = (number * salt % 1000) / 1000
        p = round(0.80 + 0.199 * spread, 4)
        good = "A" if "right" in shown.a else "B"
        right = (number * 7919 * salt % 997) / 997 < (high if spread >= 0.3 else 0.7)
        said = good if right else ("B" if good == "A" else "A")
        other = "B" if said == "A" else "A"
        return Scripted(f"{said} HIGH\nsure", {said: p, other: (1 - p) * 0.9, "TIE": (1 - p) * 0.1})

    return judge


def graded_pairs(path: Path, n: int, right: str = "", wrong: str = "") -> None:
    """``n`` pairs for ``_graded`` judges: one response "right" (followed by ``right``), the
    other "wrong" (by ``wrong``), the right one first on odd rows."""
    with path.open("w") as fh:
        for i in range(n):
            a, b = f"{i} is right{right}", f"{i} is wrong{wrong}"
            a, b = (a, b) if i % 2 else (b, a)
            row = {"prompt": f"Question {i}: what?", "response_a": a, "response_b": b}
            fh.write(json.dumps(row) + "\n")


def union(n: int = 20_000) -> dict[str, Any]:
    from labeler.config import load_config
    from labeler.consensus import Consensus
    from labeler.demo.judge_server import JudgeServer, by_model
    from labeler.store import Store

    server = JudgeServer(by_model({"small": _graded(7, 0.995), "big": _graded(13, 0.99)}))
    server.start()
    out: dict[str, Any] = {"pairs": n}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, tiers in (("single", ("big",)), ("union", ("small", "big"))):
                folder = Path(tmp) / name
                config = make_project(folder, 0, server.url, 64)
                graded_pairs(folder / "pairs.jsonl", n)
                text = config.read_text().replace('model = "bench-judge"\n', "")
                text += '[calibration]\ntarget_agreement = 0.85\ncascade = "union"\n'
                text += "".join(f'[[judge.tiers]]\nmodel = "{m}"\n' for m in tiers)
                config.write_text(text)
                mb, seconds, summary = peak_rss_mb(config)
                cfg = load_config(config, environ={})
                with Store(cfg.db_path) as store:  # reviewers answer every pair sent to them
                    rows = store.db.execute(
                        "SELECT id, response_a FROM pairs WHERE state = 'needs_review'"
                    ).fetchall()
                    store.db.execute(
                        "UPDATE pairs SET state = 'in_review' WHERE state = 'needs_review'"
                    )
                    store.save_decisions(
                        {
                            r["id"]: Consensus(label, {label: 1}, 1, True, False)
                            for r in rows
                            for label in ("A" if "right" in r["response_a"] else "B",)
                        }
                    )
                cal_mb, cal_s, _ = peak_rss_mb(config, command="calibrate")
                with Store(cfg.db_path) as store:
                    counts = store.label_status_counts()
                out[name] = {
                    "round_s": round(seconds, 1),
                    "round_peak_rss_mb": round(mb, 1),
                    "calibrate_s": round(cal_s, 2),
                    "calibrate_peak_rss_mb": round(cal_mb, 1),
                    "requests": summary["requests_sent"],
                    "certified": counts["certified"],
                    "human": counts["human"],
                }
    finally:
        server.stop()
    for key in ("round_s", "round_peak_rss_mb", "calibrate_s", "calibrate_peak_rss_mb"):
        out[f"{key}_ratio"] = round(out["union"][key] / out["single"][key], 2)
    return out


def _sampled_peaks(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd`` and sample its memory every 10 ms: what it printed, peak RSS (VmHWM),
    peak anonymous memory (RssAnon) and peak file pages mapped (RssFile), in MB, and its
    seconds. Peak
    RSS counts the pages of files the process maps, which the kernel can drop (an Arrow
    file read back); anonymous memory it cannot."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                key, _, value = line.partition(":")
                if key in peak:
                    peak[key] = max(peak[key], int(value.split()[0]))
        except (OSError, ValueError, IndexError):  # (gone, or a zombie's short status)
            pass
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    said, err = proc.communicate()
    assert proc.returncode == 0, err
    return {
        "printed": said.strip(),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak["VmHWM"] / 1024, 1),
        "peak_anon_mb": round(peak["RssAnon"] / 1024, 1),
        "peak_file_mb": round(peak["RssFile"] / 1024, 1),
    }


REWRITE = (
    "import sys;from labeler.config import load_config;from labeler.store import Store;"
    "from labeler.dataset import write_dataset;cfg=load_config(sys.argv[1],environ={});"
    "s=Store(cfg.db_path);print(write_dataset(s,cfg));s.close()"
)


def dataset(n: int = 10_000, words: int = 1_000) -> dict[str, Any]:
    """The rewrite of a project's whole dataset that every round, sync and calibration
    (one that changes the thresholds) ends with (``write_dataset``), in a fresh process,
    on ``n`` pairs of ``words``-word answers, every one a dataset row; against the same
    rewrite of ``n`` pairs of short answers: peak RSS, anonymous memory, time. The same
    for ``labeler export --to parquet`` of those rows, and for the write after it with
    nothing changed (the dataset is kept as it is: ``unchanged``)."""
    from labeler.config import load_config
    from labeler.consensus import Consensus
    from labeler.store import Store

    server = Server(latency=0.0)
    out: dict[str, Any] = {"pairs": n, "words_per_answer": words}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, size in (("short", 0), ("long", words)):
                config = make_project(Path(tmp) / name, n, server.url, 64, size)
                # every judge label in the dataset, certified or not
                config.write_text(config.read_text() + "certified_only = false\n")
                _, _, summary = peak_rss_mb(config)
                assert summary["judged"] == n, summary
                cfg = load_config(config, environ={})
                with Store(cfg.db_path) as store:  # and reviewers decide the rest
                    ids = [
                        r[0]
                        for r in store.db.execute(
                            "SELECT id FROM pairs WHERE state = 'needs_review'"
                        )
                    ]
                    store.db.execute(
                        "UPDATE pairs SET state = 'in_review' WHERE state = 'needs_review'"
                    )
                    store.save_decisions({i: Consensus("A", {"A": 1}, 1, True, False) for i in ids})
                out[name] = _sampled_peaks([PY, "-c", REWRITE, str(config)])
                out[name]["rows"] = int(out[name].pop("printed"))
                assert out[name]["rows"] == n, out[name]
                # the same again, nothing changed since (a sync that brought no decision)
                same = _sampled_peaks([PY, "-c", REWRITE, str(config)])
                assert int(same.pop("printed")) == n, same
                out[name]["unchanged"] = same
                parquet = Path(tmp) / f"{name}.parquet"  # and `labeler export` of them
                export = [PY, "-m", "labeler", "--config", str(config), "export"]
                done = _sampled_peaks(
                    [*export, "--include-provisional", "--to", "parquet", "--out", str(parquet)]
                )
                out[name]["export"] = {k: v for k, v in done.items() if k != "printed"}
    finally:
        server.stop()
    for key in ("seconds", "peak_rss_mb", "peak_anon_mb"):
        out[f"{key}_ratio"] = round(out["long"][key] / out["short"][key], 2)
        long, short = out["long"]["unchanged"][key], out["long"][key]
        out[f"unchanged_{key}_ratio"] = round(long / short, 2)  # (long pairs: kept / written)
        long, short = out["long"]["export"][key], out["short"]["export"][key]
        out[f"export_{key}_ratio"] = round(long / short, 2)
    return out


def factcheck(n: int = 10_000, words: int = 1_000) -> dict[str, Any]:
    """A round of ``n`` pairs of ``words``-word answers with ``quality.fact_check`` (every
    accepted pair's chosen response checked), in a fresh process: peak anonymous memory,
    peak RSS and time, against the same round without the check, on the same pairs."""
    from labeler.demo.judge_server import JudgeServer, Scripted

    graded = _graded(13, 0.99)

    def judge(shown: Any) -> Scripted:
        if "objectively false" in shown.body["messages"][-1]["content"]:
            return Scripted("NO_ERRORS\nnone")
        return graded(shown)

    server = JudgeServer(judge)
    server.start()
    out: dict[str, Any] = {"pairs": n, "words_per_answer": words}
    long = "".join(f" word{k % 97}" for k in range(words))
    other = "".join(f" term{k % 89}" for k in range(words))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, check in (("plain", "false"), ("checked", "true")):
                folder = Path(tmp) / name
                config = make_project(folder, 0, server.url, 64)
                graded_pairs(folder / "pairs.jsonl", n, f".{long}", f".{other}")
                config.write_text(config.read_text() + f"[quality]\nfact_check = {check}\n")
                cmd = [PY, "-m", "labeler", "--config", str(config), "round", "--json"]
                done = _sampled_peaks(cmd)
                summary = json.loads(done.pop("printed"))
                assert summary["judged"] == n, summary
                out[name] = done | {
                    "requests": summary["requests_sent"],
                    "accepted": summary["accepted"],
                    "fact_checked": summary.get("fact_checked", 0),
                }
    finally:
        server.stop()
    assert out["checked"]["fact_checked"] > n / 2, out
    for key in ("seconds", "peak_rss_mb", "peak_anon_mb"):
        out[f"{key}_ratio"] = round(out["checked"][key] / out["plain"][key], 2)
    return out


def main(which: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if not which or "startup" in which:
        results["startup"] = startup()
        print("startup", results["startup"], flush=True)
    if not which or "throughput" in which:
        results["throughput"] = throughput()
        print("throughput", results["throughput"], flush=True)
    if not which or "memory" in which:
        results["memory"] = memory()
        print("memory", results["memory"], flush=True)
    if not which or "dry_run" in which:
        results["dry_run"] = dry_run()
        print("dry_run", results["dry_run"], flush=True)
    if not which or "draw" in which:
        results["draw"] = draw()
        print("draw", results["draw"], flush=True)
    if not which or "union" in which:
        results["union"] = union()
        print("union", results["union"], flush=True)
    if not which or "dataset" in which:
        results["dataset"] = dataset()
        print("dataset", results["dataset"], flush=True)
    if not which or "factcheck" in which:
        results["factcheck"] = factcheck()
        print("factcheck", results["factcheck"], flush=True)
    return results
