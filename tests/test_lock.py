"""One writer per project: a second labeler command stops (or waits) instead of paying for
the same replies or rewriting the dataset under the first; kill -9 leaves no stale lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labeler.errors import ProjectBusy
from labeler.lock import project_lock, stopped_uncleanly
from tests.conftest import Project, good_bad_rows

HOLD = """
import sys, time
from pathlib import Path
from labeler.lock import project_lock
with project_lock(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold(state_dir: Path, command: str, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the project's lock for ``seconds``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state_dir), command, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_a_second_taker_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    proc = hold(tmp_path, "round", 30)
    try:
        with pytest.raises(ProjectBusy) as err, project_lock(tmp_path, "sync"):
            pass
        assert f"another labeler round (pid {proc.pid}) is running on this project" in str(
            err.value
        )
    finally:
        release(proc)


def test_a_state_dir_that_is_a_file_is_named(project: Project) -> None:
    """It said "cannot create the project lock (File exists)"."""
    (project.root / "state").write_text("not a folder")
    project.set(project={"state_dir": "state"})
    project.pairs(good_bad_rows(2))
    result = project.run("round")
    assert result.exit_code == 1 and "project.state_dir is a file, not a folder" in result.stderr


def test_kill_minus_9_leaves_no_stale_lock(tmp_path: Path) -> None:
    proc = hold(tmp_path, "round", 30)
    os.kill(proc.pid, signal.SIGKILL)
    release(proc)
    # the lock file still names the dead holder, but the kernel released its lock
    assert json.loads((tmp_path / "lock").read_text())["pid"] == proc.pid
    with project_lock(tmp_path, "round"):
        assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
        assert stopped_uncleanly(tmp_path)  # the state opened now gets a quick_check
    assert (tmp_path / "lock").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "lock").read_text() == ""  # a clean release empties the file


def test_a_clean_release_is_not_an_unclean_stop(tmp_path: Path) -> None:
    with project_lock(tmp_path, "round"):
        pass
    with project_lock(tmp_path, "sync"):
        assert not stopped_uncleanly(tmp_path)


def test_nested_takes_in_one_process_do_not_block(tmp_path: Path) -> None:
    with project_lock(tmp_path, "sync"), project_lock(tmp_path, "calibrate"):
        pass
    with project_lock(tmp_path, "round"):  # released after the outer one ends
        pass


def test_wait_queues_behind_the_holder(tmp_path: Path) -> None:
    proc = hold(tmp_path, "sync", 1.0)
    notes: list[str] = []
    started = time.monotonic()
    try:
        with project_lock(tmp_path, "round", wait=True, on_wait=notes.append, poll_s=0.05):
            # the holder has let go: its lock file no longer names it
            assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
    finally:
        release(proc)
    assert time.monotonic() - started > 0.3
    assert notes == [f"waiting for labeler sync (pid {proc.pid}) to finish ..."]


def test_round_stops_with_one_line_when_another_command_runs(project: Project) -> None:
    project.pairs(good_bad_rows(6))
    state = project.root / ".labeler"
    proc = hold(state, "sync", 30)
    try:
        result = project.run("round")
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines() == [
            f"error: another labeler sync (pid {proc.pid}) is running on this project "
            f"({state}); run this again when it ends, or pass --wait"
        ]
        assert project.server.requests == []  # type: ignore[attr-defined]  # nothing paid
        for command in (["calibrate"], ["export", "--out", str(project.root / "x.jsonl")]):
            assert project.run(*command).exit_code == 1
    finally:
        release(proc)
    assert project.run("round").exit_code == 0  # and it runs once the other has gone


@pytest.mark.slow
def test_two_rounds_at_once_never_pay_twice(project: Project) -> None:
    """The issue's scenario: two `labeler round` started together against a slow judge."""
    project.pairs(good_bad_rows(40))
    project.server.latency = 0.05  # type: ignore[attr-defined]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELER_")}
    cmd = [sys.executable, "-m", "labeler", "--config", str(project.config), "round"]
    procs = [
        subprocess.Popen(
            cmd,
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    assert any("is running on this project" in err for _, err in outs)
    from labeler.store import Store

    with Store(project.root / ".labeler" / "state.sqlite") as store:
        paid = store.call_totals()["calls"]
    # every request the judge server answered is in the ledger exactly once
    assert paid == len(project.server.requests) > 0  # type: ignore[attr-defined]


def test_two_threads_of_one_process_are_two_writers(tmp_path: Path) -> None:
    """Review finding: the nesting count was per process, so two threads (two notebook
    calls) both got in."""
    import threading

    inside = threading.Event()
    leave = threading.Event()

    def hold_in_thread() -> None:
        with project_lock(tmp_path, "round"):
            inside.set()
            leave.wait(10)

    worker = threading.Thread(target=hold_in_thread)
    worker.start()
    try:
        assert inside.wait(10)
        with pytest.raises(ProjectBusy), project_lock(tmp_path, "sync"):
            pass
    finally:
        leave.set()
        worker.join()
    with project_lock(tmp_path, "sync"):
        pass
