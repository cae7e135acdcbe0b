"""labeler as a library: ``labeler.Project``, also inside a running event loop (Jupyter),
and the README's Python example run as written."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

import labeler
from labeler.errors import ConfigError, ProjectBusy
from labeler.lock import project_lock
from tests.conftest import Project, good_bad_rows
from tests.test_lock import hold, release

ROOT = Path(__file__).resolve().parent.parent


def test_a_round_from_python(project: Project) -> None:
    project.pairs(good_bad_rows(6))
    p = labeler.Project(project.config)
    assert p.plan()["status"] == "dry_run"
    summary = p.round()
    assert summary["status"] == "completed" and summary["judged"] == 6
    assert p.status()["states"]
    assert p.report()["rounds"]
    out = p.export(project.root / "prefs.jsonl", to="jsonl")
    assert out["rows"] == 6 and Path(out["path"]).exists()
    assert p.dataset().num_rows == 6


def test_a_round_inside_a_running_event_loop(project: Project) -> None:
    """Issue 11: run_round called asyncio.run, which raises in a notebook's loop."""
    project.pairs(good_bad_rows(4))

    async def notebook_cell() -> dict:
        loop_before = asyncio.get_running_loop()
        summary = labeler.Project(project.config).round()
        assert asyncio.get_running_loop() is loop_before
        return summary

    summary = asyncio.run(notebook_cell())
    assert summary["status"] == "completed" and summary["judged"] == 4


def test_overrides_and_the_lock(project: Project) -> None:
    project.pairs(good_bad_rows(2))
    p = labeler.Project(project.config, overrides={"judge.concurrency": 1})
    assert p.cfg.judge.concurrency == 1
    # a trial: a bad override was blamed on the "command line"
    with pytest.raises(ConfigError, match=r"^overrides: unknown key judge.concurency"):
        labeler.Project(project.config, overrides={"judge.concurency": 8})
    with project_lock(p.cfg.project.state_dir, "sync"):
        pass  # the same process may nest; another process is refused (test_lock.py)
    assert p.round()["judged"] == 2
    holder = hold(p.cfg.project.state_dir, "round", 30)  # another process writes
    try:
        with pytest.raises(ProjectBusy):
            p.round()
    finally:
        release(holder)


def test_the_readme_python_example_runs_in_a_notebook_loop(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    project.pairs(good_bad_rows(25))
    monkeypatch.chdir(project.root)
    printed: list[str] = []

    async def cell() -> None:  # a Jupyter cell runs inside the kernel's event loop
        exec(code, {"print": lambda *a: printed.append(" ".join(map(str, a)))})

    asyncio.run(cell())
    assert (project.root / "prefs.parquet").exists()
    assert printed[-1] == "20 ['prompt', 'chosen', 'rejected']"
    assert os.path.exists(project.root / ".labeler" / "dataset")
