"""Shared fixtures: a real OpenAI-protocol judge server and a project folder wired to it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from labeler.cli import main
from labeler.demo.judge_server import JudgeServer, Responder, Scripted, Shown
from labeler.setup import write_starter_files


def oracle(shown: Shown) -> Scripted:
    """A judge that prefers the response containing 'good', confidently, with logprobs."""
    if "good" in shown.a and "good" not in shown.b:
        return Scripted("A HIGH\nA is good.", {"A": 0.95, "B": 0.04, "TIE": 0.01})
    if "good" in shown.b and "good" not in shown.a:
        return Scripted("B HIGH\nB is good.", {"B": 0.95, "A": 0.04, "TIE": 0.01})
    return Scripted("TIE LOW\nno idea", {"TIE": 0.5, "A": 0.25, "B": 0.25})


@pytest.fixture
def judge_server() -> Iterator[Callable[..., JudgeServer]]:
    """Start judge servers with a responder; all are stopped at teardown."""
    servers: list[JudgeServer] = []

    def start(responder: Responder = oracle, latency: float = 0.0) -> JudgeServer:
        server = JudgeServer(responder, latency=latency).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def good_bad_rows(n: int, start: int = 0) -> list[dict[str, str]]:
    """n pairs where one response says 'good'; the good one is first on even rows."""
    rows = []
    for i in range(start, start + n):
        good, bad = f"answer {i} is good", f"answer {i} is poor"
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        rows.append({"prompt": f"question {i}?", "response_a": a, "response_b": b})
    return rows


class Project:
    """A labeler project in a temp folder: config.toml, guidelines, a pairs file."""

    def __init__(self, root: Path, judge_url: str):
        self.root = root
        write_starter_files(root)
        self.judge_url = judge_url
        self.config = root / "config.toml"
        self.set(
            judge={
                "base_url": judge_url,
                "api_key_required": False,
                "concurrency": 4,
                "max_retries": 2,
                "timeout_s": 5.0,
            },
            routing={"audit_rate": 0.0},
            calibration={"cold_start_audit_rate": 0.0},
            quality={"min_review_seconds": 0.0},  # test reviewers answer in milliseconds
            # these projects never audit, so nothing can be certified: pipeline tests see
            # judge labels in the dataset (marked provisional); certification is tested
            # with output.certified_only = true (the default) where it matters
            output={"certified_only": False},
        )

    def set(self, **sections: dict[str, Any]) -> None:
        """Append overriding keys to config.toml (TOML allows re-opening via dotted keys)."""
        import tomllib

        data = tomllib.loads(self.config.read_text())
        for section, values in sections.items():
            data.setdefault(section, {}).update(values)
        lines, tables = [], []
        for section, values in data.items():
            lines.append(f"[{section}]")
            for k, v in values.items():
                if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                    for table in v:  # an array of tables: [[judge.tiers]]
                        tables.append(f"[[{section}.{k}]]")
                        tables.extend(f"{kk} = {json.dumps(vv)}" for kk, vv in table.items())
                else:
                    lines.append(f"{k} = {json.dumps(v)}")
        self.config.write_text("\n".join(lines + tables) + "\n")

    def pairs(self, rows: list[Any], name: str = "pairs.jsonl") -> Path:
        return write_jsonl(self.root / name, rows)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            main,
            ["--config", str(self.config), *args],
            env={k: v for k, v in (env or {}).items()},
            catch_exceptions=False,
        )

    def run_json(self, *args: str) -> dict[str, Any]:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data


@pytest.fixture
def project(tmp_path: Path, judge_server: Callable[..., JudgeServer]) -> Project:
    server = judge_server()
    proj = Project(tmp_path / "proj", server.url)
    proj.server = server  # type: ignore[attr-defined]
    return proj


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LABELER_"):
            monkeypatch.delenv(name)


ARGILLA_KEY_ENV = "TEST_ARGILLA_API_KEY"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def argilla(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real embedded Argilla server for the whole test session."""
    from labeler.server.manager import EmbeddedArgilla

    server = EmbeddedArgilla(
        tmp_path_factory.mktemp("argilla") / ".labeler", port=free_port(), workspace="labeler"
    )
    server.start()
    yield server
    server.stop()


_names = iter(range(10**6))


@pytest.fixture
def review_project(
    project: Project, argilla: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """A project whose review goes to the session's Argilla, in a dataset of its own."""
    monkeypatch.setenv(ARGILLA_KEY_ENV, argilla.credentials().api_key)
    name = f"test-{next(_names)}-{os.getpid()}"
    project.set(
        project={"name": name}, review={"api_url": argilla.url, "api_key_env": ARGILLA_KEY_ENV}
    )
    project.argilla = argilla  # type: ignore[attr-defined]
    yield project
    from labeler.review import ArgillaReview

    with ArgillaReview(argilla.url, argilla.credentials().api_key, "labeler", name) as review:
        review.delete_dataset()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item (the browser fixture screenshots failures)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def round_and_sync(project: Project, total: int) -> Result:
    """One round of a project whose source has grown to ``total`` pairs (``good_bad_rows``):
    `labeler round`, reviewers answering every pair sent to them (``decide_as_humans``),
    then `labeler calibrate`, whose result it returns."""
    project.pairs(good_bad_rows(total))
    assert project.run("round").exit_code == 0
    decide_as_humans(project)
    out = project.run("calibrate")
    assert out.exit_code == 0, out.output
    return out


def decide_as_humans(project: Project) -> int:
    """Reviewers answer the truth for every pair waiting for them, stored the way
    `labeler sync` stores what it reads from Argilla (a shortcut for tests about the judge
    side; the Argilla path itself is tested in test_review)."""
    from labeler.config import load_config
    from labeler.consensus import Consensus
    from labeler.store import Store

    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        rows = store.db.execute(
            "SELECT id, response_a FROM pairs WHERE state = 'needs_review'"
        ).fetchall()
        store.db.execute("UPDATE pairs SET state = 'in_review' WHERE state = 'needs_review'")
        truth = {r["id"]: "A" if "good" in r["response_a"] else "B" for r in rows}
        return store.save_decisions(
            {pid: Consensus(label, {label: 1}, 1, True, False) for pid, label in truth.items()}
        )
