"""The offline demo and the repository's example config."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from click.testing import CliRunner

from labeler.cli import main
from labeler.config import load_config
from labeler.demo.data import demo_pairs
from labeler.demo.judge_server import read_shown
from labeler.demo.simjudge import NoiseModel, SimulatedJudge
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_demo_pairs_are_deterministic_distinct_and_balanced() -> None:
    pairs = demo_pairs(300, seed=3)
    assert pairs == demo_pairs(300, seed=3)
    assert len({(p.prompt, p.response_a, p.response_b) for p in pairs}) == 300
    truths = [p.truth for p in pairs]
    assert 100 < truths.count("A") < 200 and truths.count("TIE") > 0
    assert {p.kind for p in pairs} == {"arithmetic", "capitals", "format", "safety", "paraphrase"}


def test_simulated_judge_follows_its_noise_model() -> None:
    pairs = [p for p in demo_pairs(600, seed=5) if p.truth != "TIE"]
    judge = SimulatedJudge(
        pairs, NoiseModel(accuracy_easy=0.95, accuracy_hard=0.95, position_bias=0.0)
    )
    right = 0
    for p in pairs:
        shown = read_shown(
            {
                "messages": [
                    {
                        "content": f"<prompt>\n{p.prompt}\n</prompt>\n"
                        f"<response_a>\n{p.response_a}\n</response_a>\n"
                        f"<response_b>\n{p.response_b}\n</response_b>"
                    }
                ]
            }
        )
        reply = judge(shown)
        assert reply.content is not None and reply.alternatives is not None
        right += reply.content.split()[0] == p.truth
        assert abs(sum(reply.alternatives.values()) - 1) < 1e-9
    assert 0.9 < right / len(pairs) <= 1.0


def listening_ports(folder: Path) -> set[int]:
    """Ports listened on by this test's processes: this process, what it started (even if
    it outlived its parent: its command line or working folder is in the demo's
    ``folder``), or a process whose owner ``ss`` does not show. Other tests' servers
    running on the machine at the same time are not counted."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ports = set()
    for line in out.splitlines():
        if not line:
            continue
        pids = [int(p) for p in re.findall(r"pid=(\d+)", line)]
        if not pids or any(_ours(pid, folder) for pid in pids):
            ports.add(int(line.split()[3].rsplit(":", 1)[1]))
    return ports


def _ours(pid: int, folder: Path) -> bool:
    proc = Path(f"/proc/{pid}")
    try:
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        cwd = os.readlink(proc / "cwd")
    except OSError:
        return True  # gone or hidden: count it (the check errs towards a leak)
    if str(folder) in cmdline or cwd.startswith(str(folder)):
        return True
    while pid > 1:  # a descendant of this test process
        if pid == os.getpid():
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


@pytest.mark.slow
def test_demo_small_runs_the_whole_loop(tmp_path: Path) -> None:
    """Three rounds against the simulated judge, the embedded Argilla and simulated
    reviewers: thresholds move, coverage rises, agreement holds, money is saved, and
    nothing is left running."""
    before_ports, before_kids = listening_ports(tmp_path), children()
    argilla_port, judge_port = free_port(), free_port()
    result = CliRunner().invoke(
        main,
        [
            "demo",
            "--small",
            "--dir",
            str(tmp_path / "d"),
            "--json",
            "--port",
            str(argilla_port),
            "--judge-port",
            str(judge_port),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["simulated_judge"] is True
    assert [r["round_id"] for r in data["rounds"]] == [1, 2, 3]
    assert all(r["judged"] == 80 for r in data["rounds"])
    assert all(n > 0 for n in data["reviewed"])
    versions = [s["calibration"]["current"]["version"] for s in data["syncs"]]
    # the planned procedure looks once the calibration sample has 77 verdicts; by the
    # project's end (`round --finish`, the demo's last sync) the thresholds have moved
    assert versions[-1] >= 1, "thresholds never moved"
    assert data["syncs"][-1]["calibration"]["current"]["finished"] is True
    assert data["report"]["total"]["waiting"] == 0  # nothing is left in limbo
    quality = data["quality"]
    target = 0.85
    for q in quality:  # audited agreement may not fall below target beyond its bound
        if q["audited"]:
            assert q["audited_agreement_lower"] <= target or q["audited_agreement"] >= target
    accepted_right = [a for a in data["truth_agreement"] if a is not None]
    assert accepted_right and min(accepted_right) >= target
    # money is saved on what was delivered by the end (issue 17: a round's own summary,
    # printed before its reviewers decide, counts only its certified labels)
    total = data["report"]["total"]
    assert total["certified"] > 0 and total["saved"] > 0 and total["savings_factor"] > 1
    assert total["all_human_cost"] == pytest.approx(0.5 * total["delivered"])  # 1 reviewer
    assert Path(data["reliability_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ds = datasets.load_from_disk(data["dataset"])
    assert ds.num_rows > 0
    # issue 21: the demo ends with `labeler verify` against its simulated reward model
    verify = data["verify"]
    assert verify["rows"] == ds.num_rows and verify["scored_now"] > 0
    assert sum(ds["rm_flag"]) == sum(verify["flagged"].values())
    assert listening_ports(tmp_path) - before_ports == set()
    assert set(children()) - set(before_kids) == set()
    # issue 11: the project left behind works after the demo, on the ports asked for
    cfg = load_config(tmp_path / "d" / "config.toml", environ={})
    assert cfg.review.port == argilla_port and f":{judge_port}/" in cfg.judge.base_url
    assert (
        CliRunner()
        .invoke(main, ["--config", str(tmp_path / "d" / "config.toml"), "status"])
        .exit_code
        == 0
    )
    judge = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labeler.demo.simjudge",
            "--truth",
            "truth.jsonl",
            "--port",
            str(judge_port),
        ],
        cwd=tmp_path / "d",
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert judge.stdout is not None and judge.stdout.readline().startswith("http://")
        with (tmp_path / "d" / "pairs.jsonl").open("a") as fh:
            fh.write(
                json.dumps({"prompt": "after the demo?", "response_a": "yes", "response_b": "no"})
                + "\n"
            )
        more = CliRunner().invoke(
            main, ["--config", str(tmp_path / "d" / "config.toml"), "round", "--json"]
        )
        assert more.exit_code == 0, more.output
        assert json.loads(more.stdout)["judged"] == 1
    finally:
        judge.terminate()
        judge.wait()
        assert judge.stdout is not None
        judge.stdout.close()


def children() -> list[int]:
    """Processes this test process started (the `ps` asked is not one of them)."""
    out = subprocess.run(
        ["ps", "-o", "pid=,comm=", "--ppid", str(os.getpid())], capture_output=True, text=True
    ).stdout
    return [
        int(pid)
        for pid, comm in (line.split(None, 1) for line in out.splitlines())
        if comm.strip() != "ps"
    ]


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["demo", "--small", "--dir", str(tmp_path / "mine")])
    assert result.exit_code == 2 and "not a labeler demo folder" in result.stderr
    assert (tmp_path / "mine" / "notes.txt").exists()


def test_repository_config_is_a_working_example() -> None:
    result = CliRunner().invoke(
        main, ["--config", str(ROOT / "config.toml"), "round", "--dry-run", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["pairs_in_round"] == 200 and data["judge_cost"] > 0


def test_the_simulated_judge_serves_models_of_different_strength() -> None:
    """`python -m labeler.demo.simjudge --model ...`: one server, several judges."""
    from labeler.demo.simjudge import responder_for

    pairs = [p for p in demo_pairs(400, seed=9) if p.truth != "TIE"]
    respond = responder_for(pairs, ["weak:0.6:0.55", "strong:0.99:0.95:nologprobs"])
    right = {"weak": 0, "strong": 0}
    for p in pairs:
        for model in right:
            text = (
                f"<prompt>\n{p.prompt}\n</prompt>\n<response_a>\n{p.response_a}\n"
                f"</response_a>\n<response_b>\n{p.response_b}\n</response_b>"
            )
            reply = respond(read_shown({"model": model, "messages": [{"content": text}]}))
            assert reply.content is not None
            assert (reply.alternatives is None) == (model == "strong")
            right[model] += reply.content.split()[0] == p.truth
    assert right["strong"] / len(pairs) > 0.9 > 0.7 > right["weak"] / len(pairs)
    unknown = respond(read_shown({"model": "other", "messages": []}))
    assert unknown.status == 404


@pytest.mark.slow
def test_demo_parity_has_two_realistic_reviewers_on_every_review_pair(tmp_path: Path) -> None:
    """`labeler demo --parity`: human parity, every review pair in the doubled
    dataset, decided by two of three reviewers who err more on hard pairs and each on their
    own; the report measures how often they agree; the third settles ties, so nothing is
    left waiting at the end."""
    result = CliRunner().invoke(
        main,
        [
            *("demo", "--small", "--parity", "--dir", str(tmp_path / "d"), "--json"),
            *("--port", str(free_port()), "--judge-port", str(free_port())),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert all(s["calibration"]["quality"] == "human_parity" for s in data["syncs"])
    hh = data["report"]["human_human_agreement"]
    decided_by_humans = data["report"]["total"]["human_decided"]
    assert hh["total"]["pairs"] == decided_by_humans > 0  # every review pair, both verdicts
    assert 0.55 < hh["total"]["agreement"] < 0.95  # realistic: they disagree on hard pairs
    assert {r["reviewer"] for r in hh["reviewers"]} <= {f"sim-reviewer-{i}" for i in (1, 2, 3)}
    assert data["report"]["total"]["waiting"] == 0
    # the second verdicts are paid for, and each third one asked for (a tie, a verdict
    # too fast to count): human cost = price x (pairs to humans + doubled + asked again)
    total = data["report"]["total"]
    again = sum(f["kind"] == "escalated" for f in data["report"]["flags"])
    paid = total["to_humans"] + hh["total"]["pairs"] + again
    assert total["human_cost"] == pytest.approx(0.5 * paid)
