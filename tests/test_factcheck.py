"""The fact-check of chosen responses (issue 21, item 2), through a round against a real
HTTP server speaking the OpenAI protocol."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labeler import prompts
from labeler.demo.judge_server import JudgeServer, Scripted, Shown
from labeler.store import Store
from tests.conftest import Project, good_bad_rows, oracle

WRONG = "answer 4 is good"  # the checker finds an error in this chosen response


def checker(unreadable: str = "") -> Callable[[Shown], Scripted]:
    def respond(shown: Shown) -> Scripted:
        messages = shown.body["messages"]
        if "objectively false" not in messages[-1]["content"]:
            return oracle(shown)
        answer = messages[-1]["content"].split("<answer>\n", 1)[1].split("\n</answer>")[0]
        if unreadable and unreadable in answer:
            return Scripted("I think it is fine")
        return Scripted("ERRORS\nthe claim is false" if WRONG in answer else "NO_ERRORS\nnone")

    return respond


def checked(project: Project, server: JudgeServer, **judge: object) -> JudgeServer:
    """``project`` judged and fact-checked by ``server`` (with these judge settings), no
    Argilla."""
    project.set(
        judge={"base_url": server.url, **judge},
        review={"enabled": False},
        quality={"fact_check": True},
    )
    return server


@pytest.fixture
def fact_project(project: Project, judge_server: Callable[..., JudgeServer]) -> Project:
    server = checked(
        project,
        judge_server(checker(unreadable="answer 6 is good")),
        price_input_per_mtok=1.0,
        price_output_per_mtok=2.0,
    )
    project.server = server  # type: ignore[attr-defined]
    return project


def test_a_chosen_response_with_errors_goes_to_humans(fact_project: Project) -> None:
    p = fact_project
    p.pairs(good_bad_rows(10))
    summary = p.run_json("round")
    assert summary["accepted"] == 10 - 1  # the accepted pair the checker flagged left
    assert summary["fact_checked"] == 10 and summary["chosen_has_errors"] == 1
    assert summary["review"] == {"chosen_has_errors": 1}
    with Store(p.root / ".labeler" / "state.sqlite") as store:
        fact = store.db.execute(
            "SELECT COUNT(*), SUM(cost) FROM calls WHERE presented_order = 'fact'"
        ).fetchone()
        all_calls = store.db.execute("SELECT SUM(cost) FROM calls WHERE round_id = 1").fetchone()
        state = store.db.execute(
            "SELECT state FROM pairs WHERE response_a = ? OR response_b = ?", (WRONG, WRONG)
        ).fetchone()[0]
    assert fact[0] == 10 and fact[1] > 0  # in the ledger, priced like judge calls
    assert state == "needs_review"
    # the round's judge cost includes the checks; the unreadable reply flagged nothing
    assert summary["judge_cost"] == pytest.approx(all_calls[0])
    assert all_calls[0] > fact[1]
    report = p.run_json("report")
    assert report["rounds"][0]["to_humans_by_reason"] == {"chosen_has_errors": 1}
    # a checked response is never asked about again: the next round checks only new pairs
    before = sum(p.server.request_keys().values())  # type: ignore[attr-defined]
    p.pairs(good_bad_rows(12))
    second = p.run_json("round")
    sent = sum(p.server.request_keys().values()) - before  # type: ignore[attr-defined]
    assert second["fact_checked"] == 2 and sent == 2 * 2 + 2  # two orders each, two checks


def test_the_fact_check_template_is_checked_and_read() -> None:
    t = prompts.load_fact_template(None)
    messages = prompts.fact_messages(t, "What is 2+2?", "5")
    assert "<answer>\n5\n</answer>" in messages[-1]["content"]
    assert messages[0]["role"] == "system"
    assert prompts.read_fact_reply("ERRORS\n2+2 is 4") is True
    assert prompts.read_fact_reply("no_errors.\nnone") is False
    assert prompts.read_fact_reply("It looks fine") is None


def test_a_fact_check_template_without_its_placeholders_is_refused(
    project: Project, tmp_path: object
) -> None:
    bad = project.root / "templates" / "bad.txt"
    bad.write_text("Is {{prompt}} right?")
    project.set(quality={"fact_check": True, "fact_check_template": "templates/bad.txt"})
    project.pairs(good_bad_rows(2))
    result = project.run("round")
    assert result.exit_code == 2
    assert "fact-check template must contain {{response}}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_dry_run_counts_the_fact_check(fact_project: Project) -> None:
    p = fact_project
    p.pairs(good_bad_rows(10))
    plain = p.run_json("round", "--dry-run")
    shown = p.run("round", "--dry-run").stdout  # a user trial: the row did not say so
    assert "judge requests (with fact-checks)" in shown
    assert "of them fact-checks (at most)" in shown
    p.set(quality={"fact_check": False})
    without = p.run_json("round", "--dry-run")
    assert plain["fact_checked"] == 10 and without["fact_checked"] == 0
    assert "fact-checks" not in p.run("round", "--dry-run").stdout
    assert plain["requests_sent"] == without["requests_sent"] + 10
    assert plain["judge_cost"] > without["judge_cost"]


def test_ctrl_c_in_the_fact_check_keeps_the_checks_in_flight(
    project: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    """As in the judging: the first Ctrl-C during the fact-check sends no new check, lets
    those in flight finish and keeps them (exit 130); the resume asks only the rest."""
    import dataclasses
    import signal

    from tests.test_rounds import signalled_round

    def slow_checks(shown: Shown) -> Scripted:
        reply = checker()(shown)
        if "objectively false" in shown.body["messages"][-1]["content"]:
            return dataclasses.replace(reply, delay=1.0)
        return reply

    server = checked(project, judge_server(slow_checks), concurrency=3)
    project.pairs(good_bad_rows(12))  # 24 judge requests, then 12 checks (3 at a time)
    code, err = signalled_round(project, server, signal.SIGINT, after=24 + 4)
    assert code == 130 and "stopping: up to 3 requests in flight" in err, err
    asked = [r for r in server.requests if "objectively false" in r["messages"][-1]["content"]]
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        kept = store.db.execute(
            "SELECT COUNT(*) FROM calls WHERE presented_order = 'fact' AND status = 'ok'"
        ).fetchone()[0]
    assert 4 <= len(asked) < 12 and kept == len(asked)  # every check sent was kept
    done = project.run_json("round")
    assert done["status"] == "completed" and done["fact_checked"] == 12
    checks = [r for r in server.requests if "objectively false" in r["messages"][-1]["content"]]
    assert len(checks) == 12  # none asked twice


def test_a_check_that_failed_is_asked_at_the_next_round(
    project: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    """A fact-check whose request failed leaves its pair unchecked, said so, and the next
    online round asks it (the dry run between counts it); it was never asked again."""
    down = [True]

    def flaky(shown: Shown) -> Scripted:
        content = shown.body["messages"][-1]["content"]
        if down[0] and "objectively false" in content and WRONG in content:
            return Scripted(status=500, error_message="overloaded")
        return checker()(shown)

    checked(project, judge_server(flaky), max_retries=0)
    project.pairs(good_bad_rows(6))
    first = project.run_json("round")
    assert first["fact_checked"] == 5 and first["fact_pending"] == 1
    assert first["chosen_has_errors"] == 0 and first["accepted"] == 6  # delivered unchecked
    assert project.run_json("status")["fact_checks_owed"] == 1
    assert "Fact-checks still to do: 1 judge-accepted pairs" in project.run("status").stdout
    shown = project.run("round")  # no new pair: a round of the check alone, failing again
    assert "fact-checks left for the next round" in shown.stdout
    report = project.run_json("report")  # (a round of the check alone: no pair, its cost)
    assert [r["pairs"] for r in report["rounds"]] == [6, 0]
    down[0] = False
    project.pairs(good_bad_rows(8))
    plan = project.run_json("round", "--dry-run")
    assert plan["fact_checked"] == 2 + 1  # the two new pairs and the one left
    second = project.run_json("round")
    assert second["fact_checked"] == 3 and second["fact_pending"] == 0
    assert second["chosen_has_errors"] == 1  # (a pair of round 1: its review reasons)
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        state = store.db.execute(
            "SELECT state FROM pairs WHERE response_a = ? OR response_b = ?", (WRONG, WRONG)
        ).fetchone()[0]
    assert state == "needs_review"


def test_a_pair_whose_label_changed_is_checked_again(fact_project: Project) -> None:
    """A check holds for the response it read: a pair given the other label since (as a
    union cascade's re-check swaps a pair to another tier's verdict) is checked again."""
    p = fact_project
    p.pairs(good_bad_rows(4))
    p.run_json("round")
    db = p.root / ".labeler" / "state.sqlite"
    with Store(db) as store:
        pid = store.db.execute("SELECT pair_id FROM fact_checks LIMIT 1").fetchone()[0]
        assert store.fact_pending_count() == 0
        store.db.execute(
            "UPDATE verdicts SET label = CASE label WHEN 'A' THEN 'B' ELSE 'A' END "
            "WHERE pair_id = ?",
            (pid,),
        )
        assert [r["id"] for r in store.fact_pending()] == [pid]
    p.pairs(good_bad_rows(5))
    second = p.run_json("round")
    assert second["fact_checked"] == 2  # the new pair and the swapped one
    with Store(db) as store:
        assert store.fact_pending_count() == 0


def test_checks_kept_before_the_table_existed_count_as_done(fact_project: Project) -> None:
    """A state file from before ``fact_checks`` (schema 8) is filled from the replies it
    kept: no check is counted as still to do, none is asked again; a reply about the
    response a pair no longer chooses does not count."""
    p = fact_project
    p.pairs(good_bad_rows(6))
    p.run_json("round")
    db = p.root / ".labeler" / "state.sqlite"
    query = "SELECT pair_id, label, outcome FROM fact_checks"
    with Store(db) as store:
        before = {tuple(r) for r in store.db.execute(query)}
        swapped = store.db.execute(
            "SELECT pair_id FROM fact_checks WHERE outcome = 'no_errors' LIMIT 1"
        ).fetchone()[0]
        store.db.execute("DELETE FROM fact_checks")
        store.db.execute(
            "UPDATE verdicts SET label = CASE label WHEN 'A' THEN 'B' ELSE 'A' END "
            "WHERE pair_id = ?",
            (swapped,),
        )
        store.db.execute("UPDATE meta SET value = '8' WHERE key = 'schema_version'")
    with Store(db) as store:
        after = {tuple(r) for r in store.db.execute(query)}
        assert [r["id"] for r in store.fact_pending()] == [swapped]
    assert after == {r for r in before if r[0] != swapped} and len(before) == 6
    assert {r[2] for r in before} == {"errors", "no_errors"}
    sent = sum(p.server.request_keys().values())  # type: ignore[attr-defined]
    assert p.run_json("round", "--dry-run")["fact_checked"] == 1
    p.pairs(good_bad_rows(7))
    assert p.run_json("round")["fact_checked"] == 2  # the new pair's, the swapped one's
    assert sum(p.server.request_keys().values()) == sent + 2 + 2  # type: ignore[attr-defined]


def test_a_check_refused_for_good_sends_its_pair_to_humans(
    project: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    """A check the endpoint refuses (a 400) is never asked again: its pair's chosen
    response cannot be checked, so humans decide it (reason ``fact_check_failed``)."""

    def refusing(shown: Shown) -> Scripted:
        content = shown.body["messages"][-1]["content"]
        if "objectively false" in content and "answer 2 is good" in content:
            return Scripted(status=400, error_message="content policy")
        return checker()(shown)

    server = checked(project, judge_server(refusing))
    project.pairs(good_bad_rows(6))
    first = project.run_json("round")
    assert first["review"] == {"chosen_has_errors": 1, "fact_check_failed": 1}
    assert first["fact_check_failed"] == 1 and first["fact_pending"] == 0
    assert first["fact_checked"] == 5
    asked = len(server.requests)
    project.pairs(good_bad_rows(7))
    assert project.run_json("round")["fact_checked"] == 1
    assert len(server.requests) == asked + 2 + 1  # the new pair's judging and check only


def test_turned_on_later_it_checks_the_pairs_accepted_before(fact_project: Project) -> None:
    """``quality.fact_check`` turned on in a project under way checks every accepted pair,
    those of the rounds before it too; the dry run prices them first."""
    p = fact_project
    p.set(quality={"fact_check": False})
    p.pairs(good_bad_rows(6))
    assert p.run_json("round")["fact_checked"] == 0
    p.set(quality={"fact_check": True})
    assert p.run_json("status")["fact_checks_owed"] == 6
    assert p.run_json("round", "--dry-run")["fact_checked"] == 6
    done = p.run_json("round")  # nothing new to judge: a round of the checks alone
    assert done["fact_checked"] == 6 and done["chosen_has_errors"] == 1
    assert p.run_json("status")["fact_checks_owed"] == 0


def test_rows_verify_dropped_are_not_checked(fact_project: Project) -> None:
    """A row `labeler verify` left out of the dataset (``verify.action = "drop"``) is
    not fact-checked: no request is paid for a pair the dataset does not hold."""
    from labeler.demo.reward_server import Faults, RewardServer
    from tests.test_verify import scorer

    p = fact_project
    p.set(quality={"fact_check": False})
    p.pairs(good_bad_rows(6))
    p.run_json("round")
    reward = RewardServer(scorer, Faults()).start()
    try:
        p.set(verify={"api": "tei", "base_url": reward.url, "action": "drop"})
        assert p.run_json("verify")["dropped"] == 1  # "question 3?"
    finally:
        reward.stop()
    p.set(quality={"fact_check": True})
    assert p.run_json("status")["fact_checks_owed"] == 5
    assert p.run_json("round")["fact_checked"] == 5


def test_a_failing_endpoint_stops_the_check_and_sends_no_pair_to_humans(
    project: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    """As in the judging: when most fact-check requests fail alike (here a setting the
    endpoint refuses for every request), the endpoint is failing, not the pairs: the
    round stops with one line (exit 1), no pair goes to humans, the failures count against
    none, and once the endpoint is fixed the resumed round checks them all."""
    broken = [True]

    def refusing(shown: Shown) -> Scripted:
        if broken[0] and "objectively false" in shown.body["messages"][-1]["content"]:
            return Scripted(status=400, error_message="max_tokens is too large for this model")
        return checker()(shown)

    checked(project, judge_server(refusing), max_failed_attempts=1)
    project.pairs(good_bad_rows(20))
    cut = project.run("round", "--json")
    assert cut.exit_code == 1 and "fact-check requests" in cut.stderr, cut.stderr
    assert len(cut.stderr.strip().splitlines()) == 1
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        sent_back = store.db.execute(
            "SELECT COUNT(*) FROM verdicts WHERE reason = 'fact_check_failed'"
        ).fetchone()[0]
        statuses = {
            r[0]
            for r in store.db.execute("SELECT status FROM calls WHERE presented_order = 'fact'")
        }
    assert sent_back == 0 and statuses == {"fault"}
    broken[0] = False
    done = project.run_json("round")  # the open round resumes: its checks, all of them
    assert done["status"] == "completed" and done["fact_checked"] == 20
    assert done["fact_check_failed"] == 0 and done["chosen_has_errors"] == 1


def test_a_check_over_the_round_budget_waits_and_the_rest_are_asked(
    project: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    """A check whose request alone does not fit ``costs.max_cost_per_round`` waits; the
    smaller ones are asked. With only such checks left, no round opens (exit 3, one line
    saying why), until the limit is raised."""
    server = judge_server(checker())
    project.set(
        judge={"base_url": server.url, "price_input_per_mtok": 1000.0},
        review={"enabled": False},
    )
    rows = good_bad_rows(6)
    rows[1]["prompt"] = rows[1]["prompt"] + " " + "context " * 3000  # ~40x the others' check
    project.pairs(rows)
    assert project.run_json("round")["accepted"] == 6  # judged, no check yet
    project.set(quality={"fact_check": True})
    plan = project.run_json("round", "--dry-run")
    assert plan["fact_checked"] == 6
    project.set(costs={"max_cost_per_round": plan["judge_cost"] / 2})  # not the big one
    first = project.run_json("round")
    assert first["fact_pending"] == 1 and first["fact_checked"] == 5
    again = project.run("round")
    assert again.exit_code == 3 and "1 fact-checks still to do, and none fits" in again.stderr
    assert "costs.max_cost_per_round" in again.stderr and len(again.stderr.splitlines()) == 1
    assert len(project.run_json("status")["rounds"]) == 2  # no round opened for nothing
    project.set(costs={"max_cost_per_round": 0})
    assert project.run_json("round")["fact_checked"] == 1


def test_checks_abandoned_by_a_second_ctrl_c_are_in_the_ledger(
    project: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    """As in the judging: checks the second Ctrl-C abandons in flight are billed, so the
    ledger keeps each at its worst cost (status ``abandoned``); the resume asks them."""
    import dataclasses
    import signal

    from tests.test_rounds import signalled_round

    def slow_checks(shown: Shown) -> Scripted:
        reply = checker()(shown)
        if "objectively false" in shown.body["messages"][-1]["content"]:
            return dataclasses.replace(reply, delay=2.0)
        return reply

    server = checked(project, judge_server(slow_checks), concurrency=3, price_input_per_mtok=1.0)
    project.pairs(good_bad_rows(6))  # 12 judge requests, then 6 checks (3 at a time)
    code, err = signalled_round(project, server, signal.SIGINT, after=12 + 3, twice=True)
    assert code != 0, err
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        gone = store.db.execute(
            "SELECT COUNT(*), MIN(cost) FROM calls WHERE presented_order = 'fact' "
            "AND status = 'abandoned'"
        ).fetchone()
        calls = store.call_totals()["calls"]
    assert gone[0] == 3 and gone[1] > 0 and calls == len(server.requests) == 12 + 3
    done = project.run_json("round")
    assert done["status"] == "completed" and done["fact_checked"] == 6


def test_a_check_is_priced_as_its_template_renders_it(fact_project: Project) -> None:
    """A review: the checks still to do were sized as the template plus the prompt and the
    response once, but a template may use a placeholder twice; the budget pre-check then
    let a round open for a check the round could not pay for, run after run."""
    from labeler.config import load_config
    from labeler.factcheck import check_sizes

    p = fact_project
    twice = p.root / "templates" / "twice.txt"
    twice.write_text(
        "Is there an objectively false claim?\n{{prompt}}\n<answer>\n{{response}}\n</answer>\n"
        "Again: {{response}}\nFirst line ERRORS or NO_ERRORS."
    )
    p.set(quality={"fact_check": False})
    p.pairs(good_bad_rows(4))
    p.run_json("round")
    p.set(quality={"fact_check": True, "fact_check_template": "templates/twice.txt"})
    cfg = load_config(p.config, environ={})
    template = prompts.load_fact_template(cfg.quality.fact_check_template)
    with Store(cfg.db_path) as store:
        real = [
            sum(
                len(m["content"]) for m in prompts.fact_messages(template, r["prompt"], r["chosen"])
            )
            for r in store.fact_pending()
        ]
        assert check_sizes(store, cfg) == real and len(real) == 4
