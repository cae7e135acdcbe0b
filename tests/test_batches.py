"""`labeler round --batch` against a local server that implements OpenAI's files and
batches endpoints (a fake of the paid service), including kill -9 at each step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from labeler.demo.judge_server import JudgeServer, by_model
from labeler.store import Store
from tests.conftest import Project, decide_as_humans, good_bad_rows, oracle


def chat_requests(server: JudgeServer) -> int:
    """Online chat-completions requests (batch lines are not among them)."""
    return len(server.requests)


def ok_calls(project: Project) -> list[tuple[str, int]]:
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        return store.db.execute(
            "SELECT cache_key, COUNT(*) FROM calls WHERE status = 'ok' GROUP BY cache_key"
        ).fetchall()


def test_a_batch_round_is_collected_and_routed_like_an_online_one(
    project: Project, judge_server: Callable[..., JudgeServer], tmp_path: Path
) -> None:
    server = project.server  # type: ignore[attr-defined]
    server.batch_api.hold_batches = True
    project.pairs(good_bad_rows(30))
    estimate = project.run_json("round", "--dry-run", "--batch")["judge_cost"]
    assert estimate == pytest.approx(0.5 * project.run_json("round", "--dry-run")["judge_cost"])
    first = project.run_json("round", "--batch")
    assert first["status"] == "batch_waiting" and first["batch_waiting"] == 1
    assert first["judged"] == 0 and chat_requests(server) == 0
    assert server.batch_api.created == 1
    [batch] = first["batches"]
    assert batch["requests"] == 60 and batch["status"] == "submitted"
    # still running: nothing routed, nothing submitted twice
    again = project.run_json("batches")
    assert again["status"] == "batch_waiting" and server.batch_api.created == 1
    # a trial: `status` called a round at the Batch API "open", as if killed
    assert [r["status"] for r in project.run_json("status")["rounds"]] == ["batch_waiting"]
    server.batch_api.release()
    done = project.run_json("batches")
    assert done["status"] == "completed" and done["accepted"] == 30
    assert chat_requests(server) == 0  # every reply came from the batch
    # a trial: they were shown as 0 sent, 60 cached
    assert (done["requests_sent"], done["batch_replies"], done["cached_replies"]) == (60, 60, 0)
    assert project.run_json("status")["rounds"][0]["status"] == "completed"
    assert done["batches"][0]["results"] == 60
    assert sorted(set(server.batch_api.billed.values())) == [1]
    # at batch prices: half what the same requests cost online
    online = Project(tmp_path / "online", server.url)
    online.pairs(good_bad_rows(30))
    live = online.run_json("round")
    assert live["status"] == "completed" and chat_requests(server) == 60
    assert done["judge_cost"] == pytest.approx(live["judge_cost"] * 0.5)
    assert project.run_json("round")["status"] == "nothing_to_do"
    table = project.run("batches")
    assert "No round is waiting" in table.output and "collected" in table.output


def test_a_batch_line_that_fails_is_asked_again_in_the_next_batch(
    project: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    from labeler.demo.judge_server import Scripted, Shown

    failing = {"first": True}

    def flaky(shown: Shown) -> Scripted:
        if "question 3?" in shown.prompt and failing["first"]:
            return Scripted(None, status=500)
        return oracle(shown)

    server = judge_server(flaky)
    project.set(judge={"base_url": server.url})
    project.pairs(good_bad_rows(6))
    project.run_json("round", "--batch")
    second = project.run_json("round")  # collects: one pair's two lines failed
    assert second["status"] == "batch_waiting" and server.batch_api.created == 2
    failing["first"] = False
    third = project.run_json("round")
    assert third["status"] == "completed" and third["judged"] == 6
    assert {n for _, n in ok_calls(project)} == {1} and len(ok_calls(project)) == 12


def test_an_endpoint_without_the_batch_api_is_one_line_and_the_round_resumes_online(
    project: Project,
) -> None:
    server = project.server  # type: ignore[attr-defined]
    server.batch_api.offered = False  # 404 on /files and /batches, as many servers answer
    project.pairs(good_bad_rows(6))
    for args in (("round", "--batch"), ("round",)):  # a --batch round keeps to it
        result = project.run(*args)
        assert result.exit_code == 1, result.output
        assert "does not offer the Batch API" in result.output
        assert "labeler round --online" in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert chat_requests(server) == 0
    folder = project.root / ".labeler" / "batches"
    assert list(folder.glob("*.jsonl"))  # the written request file waits
    said = project.run("round", "--online")
    assert said.exit_code == 0 and "Resumed online: 1 batch file that" in said.output
    resumed = project.run_json("report")["rounds"][0]
    assert resumed["pairs"] == 6
    assert chat_requests(server) == 12  # both orders of each pair, online
    assert not list(folder.glob("*.jsonl"))
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        assert not store.batches()
    assert project.run_json("round")["status"] == "nothing_to_do"


def test_online_is_refused_once_a_batch_reached_the_batch_api(project: Project) -> None:
    server = project.server  # type: ignore[attr-defined]
    server.batch_api.hold_batches = True
    project.pairs(good_bad_rows(6))
    assert project.run_json("round", "--batch")["status"] == "batch_waiting"
    result = project.run("round", "--online")
    assert result.exit_code == 2, result.output
    assert "batch_1 at the Batch API" in result.output and "labeler batches" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert chat_requests(server) == 0 and server.batch_api.created == 1
    assert project.run("round", "--batch", "--online").exit_code == 2
    server.batch_api.release()
    assert project.run_json("batches")["status"] == "completed"
    assert chat_requests(server) == 0


def test_online_with_no_open_round_is_refused_and_judges_nothing(project: Project) -> None:
    """A user trial: `round --online` in a project with no open --batch round ran a full,
    unlimited round, though its help says it resumes one."""
    server = project.server  # type: ignore[attr-defined]
    project.pairs(good_bad_rows(6))
    said = "error: --online: no open --batch round to resume (run `labeler round` to start one)"
    for first in (True, False):  # no state yet; then a state whose rounds are all done
        result = project.run("round", "--online")
        assert result.exit_code == 2, result.output
        assert result.stderr.strip().splitlines() == [said]
        assert chat_requests(server) == 0
        assert (project.root / ".labeler" / "state.sqlite").exists() is not first
        if first:
            assert project.run_json("round", "--limit", "2")["status"] == "completed"
            server.requests.clear()
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        assert len(store.rounds()) == 1


def test_online_finds_a_batch_created_before_its_id_was_stored(project: Project) -> None:
    server = project.server  # type: ignore[attr-defined]
    server.batch_api.hold_batches = True
    project.pairs(good_bad_rows(6))
    assert project.run_json("round", "--batch")["status"] == "batch_waiting"
    with Store(project.root / ".labeler" / "state.sqlite") as store:  # killed before the id
        assert len(store.batches()) == 1
        store.db.execute("UPDATE batches SET batch_id = NULL, status = 'uploaded'")
        store.db.commit()
    result = project.run("round", "--online")
    assert result.exit_code == 2 and "batch_1 at the Batch API" in result.output
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        assert store.batches()[0]["batch_id"] == "batch_1"  # found, and kept
    assert chat_requests(server) == 0 and server.batch_api.created == 1


@pytest.mark.slow
@pytest.mark.parametrize("step", ["upload", "create", "content"])
def test_kill_9_at_each_batch_step_then_resume_loses_nothing_and_pays_nothing_twice(
    project: Project, step: str
) -> None:
    server = project.server  # type: ignore[attr-defined]
    api = server.batch_api
    project.pairs(good_bad_rows(20))
    cmd = [sys.executable, "-m", "labeler", "--config", str(project.config), "round"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if step == "content":  # submitted cleanly; the kill comes while downloading results
        first = subprocess.run([*cmd, "--batch", "--json"], env=env, capture_output=True)
        assert first.returncode == 0, first.stderr
        reached = lambda: any(b["status"] == "completed" for b in api.batches.values())  # noqa: E731
        run = cmd
    else:
        reached = (lambda: len(api.files) >= 1) if step == "upload" else (lambda: api.created >= 1)
        run = [*cmd, "--batch"]
    api.hang.add(step)
    proc = subprocess.Popen(run, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not reached() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the server has done the step and holds its answer
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    api.hang.clear()
    for _ in range(3):  # resume: upload / create if needed, then collect and route
        done = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        if json.loads(done.stdout)["status"] == "completed":
            break
    data = json.loads(done.stdout)
    assert data["status"] == "completed" and data["judged"] == 20
    assert api.created == 1  # the killed run's batch was found, not created again
    assert len(api.billed) == 40 and set(api.billed.values()) == {1}  # 0 paid twice
    calls = ok_calls(project)
    assert len(calls) == 40 and {n for _, n in calls} == {1}  # 0 lost, 0 recorded twice
    assert chat_requests(server) == 0


def test_a_union_cascade_in_batches_ends_like_its_online_twin(
    judge_server: Callable[..., JudgeServer], tmp_path: Path
) -> None:
    """A two-tier union cascade judged through the Batch API: each tier's requests go in
    its own batches (the strong tier's once the cheap tier's replies are routed, and
    after the certificate only for what the cheap tier passes on); every round ends
    with the verdicts, labels and certificate of a twin judged online, no chat request
    is sent, and the judges cost half."""
    from tests.test_union_loop import CHEAP, STRONG, as_union, assert_twins

    server = judge_server(by_model({"small": CHEAP, "big": STRONG}))
    batch, online = (as_union(Project(tmp_path / n, server.url), server) for n in ("b", "o"))
    cost = {}
    for p in (batch, online):
        p.pairs(good_bad_rows(600))
        for _ in range(3):
            server.requests.clear()
            if p is batch:
                out = p.run_json("round", "--limit", "200", "--batch")
                polls = 0
                while out["status"] == "batch_waiting":
                    out = p.run_json("batches")
                    polls += 1
                    assert polls <= 4, out
                assert chat_requests(server) == 0
                # (review: the earlier tier's, collected by an earlier run, went uncounted)
                sent = sum(t["requests"] for t in out["tiers"])
                assert out["requests_sent"] == out["batch_replies"] == sent > 0
            else:
                out = p.run_json("round", "--limit", "200")
            assert out["status"] == "completed", out
            decide_as_humans(p)
            assert p.run("calibrate").exit_code == 0
        cost[p] = p.run_json("report")["total"]["judge_cost"]
    assert_twins(batch, online)
    with Store(batch.root / ".labeler" / "state.sqlite") as store:
        tiers = store.db.execute("SELECT tier, COUNT(*) FROM calls GROUP BY tier").fetchall()
    assert dict(tiers)[1] < 2 * 600  # after the certificate the strong tier judged less
    assert cost[batch] == pytest.approx(0.5 * cost[online])


def test_a_batch_the_endpoint_no_longer_knows_can_be_given_up_online(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial: the endpoint forgot a submitted batch (404 for it: another key, or the
    provider dropped it). `labeler batches` said the endpoint had no Batch API and sent
    the user to `round --online`, which sent them back: no round could run again. And
    (review) the round's other batches are still collected, then the lost one given up."""
    import labeler.batches

    monkeypatch.setattr(labeler.batches, "MAX_REQUESTS", 6)  # two batches of 6 requests
    server = project.server  # type: ignore[attr-defined]
    server.batch_api.hold_batches = True
    project.pairs(good_bad_rows(6))
    assert project.run_json("round", "--batch")["status"] == "batch_waiting"
    assert sorted(server.batch_api.batches) == ["batch_1", "batch_2"]
    del server.batch_api.batches["batch_1"]  # the endpoint forgot it
    result = project.run("batches")  # batch_2 still running: said
    assert result.exit_code == 1, result.output
    assert "; 1 other batch of the round still runs at the Batch API" in result.stderr
    server.batch_api.release()
    for args in (("batches",), ("round",)):
        result = project.run(*args)
        assert result.exit_code == 1, result.output
        (line,) = result.stderr.strip().splitlines()
        assert "does not know batch batch_1 (batch status: 404)" in line
        assert "give it up with `labeler round --online`" in line
        assert "still run" not in line  # (batch_2 collected)
    assert len(ok_calls(project)) == 6  # batch_2's replies, collected all the same
    done = project.run_json("round", "--online")
    assert done["status"] == "completed" and done["judged"] == 6 and done["batches_dropped"] == 1
    assert chat_requests(server) == 6  # batch_1's requests, online
    # (review: batch_2's replies were counted as cached)
    assert (done["requests_sent"], done["batch_replies"], done["cached_replies"]) == (12, 6, 0)


def test_an_endpoint_without_the_batch_api_does_not_give_up_a_batch_made_elsewhere(
    project: Project,
) -> None:
    """Review: judge.base_url moved to a server without the Batch API (404 on every
    batch route) took the round's submitted batch for lost, and `round --online` judged
    its pairs again while the batch still ran where it was made: paid twice."""
    server = project.server  # type: ignore[attr-defined]
    server.batch_api.hold_batches = True
    project.pairs(good_bad_rows(4))
    assert project.run_json("round", "--batch")["status"] == "batch_waiting"
    server.batch_api.offered = False  # (as if judge.base_url named another server)
    for args in (("batches",), ("round", "--online")):
        result = project.run(*args)
        assert result.exit_code == 1, result.output
        (line,) = result.stderr.strip().splitlines()
        assert "does not offer the Batch API (batch status and list: 404), but batch " in line
        assert "restore judge.base_url" in line
    assert chat_requests(server) == 0
    server.batch_api.offered = True  # restored: collected as it should be
    server.batch_api.release()
    assert project.run_json("batches")["status"] == "completed"
    assert chat_requests(server) == 0


def test_an_online_round_resumed_with_batch_stays_a_batch_round(
    tmp_path: Path, judge_server: Callable[..., JudgeServer]
) -> None:
    """Review: an online round left unfinished, resumed with --batch, was still an online
    round: `status` said "open", `labeler batches` had nothing to collect, and the next
    plain `labeler round` sent the batched requests online again (paid twice)."""
    from labeler.demo.judge_server import Scripted

    failing = {"on": True}

    def responder(shown: object) -> Scripted:
        if failing["on"] and getattr(shown, "a", "") == "answer 3 is good":
            return Scripted(status=500, error_message="boom")
        return oracle(shown)  # type: ignore[arg-type]

    server = judge_server(responder)
    p = Project(tmp_path / "p", server.url)
    p.pairs(good_bad_rows(6))
    assert p.run("round").exit_code == 1  # unfinished: a pair failed
    failing["on"] = False
    server.batch_api.hold_batches = True
    waiting = p.run_json("round", "--batch")
    assert waiting["status"] == "batch_waiting" and waiting["batch_replies"] == 0
    assert [r["status"] for r in p.run_json("status")["rounds"]] == ["batch_waiting"]
    before = chat_requests(server)
    server.batch_api.release()
    done = p.run_json("round")  # plain: collects the batch, sends nothing online
    assert done["status"] == "completed" and chat_requests(server) == before
    assert done["batch_replies"] == 1 and done["cached_replies"] > 0  # (the order that failed)
