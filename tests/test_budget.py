"""Budget guardrails: a round stops at its cost limit, then resumes after it is raised."""

from __future__ import annotations

import json

import pytest

from labeler.store import Store
from tests.conftest import Project, good_bad_rows


def test_budget_stop_then_resume_loses_nothing(project: Project, judge_server) -> None:
    server = judge_server(latency=0.01)
    project.set(
        judge={
            "base_url": server.url,
            "concurrency": 2,
            "price_input_per_mtok": 100.0,
            "price_output_per_mtok": 100.0,
        }
    )
    project.pairs(good_bad_rows(30))
    with_price = project.run_json("round", "--dry-run")
    per_pair = with_price["judge_cost"] / 30
    limit = round(per_pair * 10, 6)  # room for about ten pairs (worst case)
    project.set(costs={"max_cost_per_round": limit})
    result = project.run("round", "--json")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["status"] == "budget_stopped" and 0 < data["judged"] < 30
    assert data["judge_cost"] <= limit
    assert "stopped before its next request could pass costs.max_cost_per_round" in result.stderr
    assert "Raise the limit" in result.stderr
    # a user trial: `status` said this round was "running" with its 30 assigned pairs
    (stopped,) = project.run_json("status")["rounds"]
    assert stopped["status"] == "open" and stopped["pairs"] == data["judged"]
    assert stopped["assigned"] == 30
    shown = " ".join(project.run("status").stdout.split())
    assert f"1 │ open │ {data['judged']} of 30 │" in shown
    sent_before = len(server.requests)
    # no room left at all (the limit is what was spent): nothing more is sent
    project.set(costs={"max_cost_per_round": data["judge_cost"]})
    again = project.run("round", "--json")
    assert again.exit_code == 3 and len(server.requests) == sent_before
    # (a currency set since prices the next round: the resumed one keeps its own, as the
    # report says)
    project.set(costs={"max_cost_per_round": 0.0, "currency": "EUR"})
    done = project.run_json("round")
    assert done["round_id"] == 1 and done["resumed"] and done["status"] == "completed"
    assert done["currency"] == project.run_json("report")["rounds"][0]["currency"] == "USD"
    assert done["judged"] == 30 and done["unjudged"] == 0
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        per_key = store.db.execute(
            "SELECT COUNT(*) FROM calls WHERE status = 'ok' GROUP BY pair_id, presented_order"
        ).fetchall()
        assert len(per_key) == 60 and {r[0] for r in per_key} == {1}  # none judged twice
        billed = store.db.execute("SELECT SUM(cost) FROM calls").fetchone()[0]
    assert done["judge_cost"] == billed  # the ledger is the sum of billed calls
    assert len(server.requests) == 60


def test_total_budget(project: Project, judge_server) -> None:
    project.set(judge={"price_input_per_mtok": 100.0}, costs={"total_budget": 1e-9})
    project.pairs(good_bad_rows(3))
    result = project.run("round")
    assert result.exit_code == 3 and "costs.total_budget" in result.stderr
    assert project.server.requests == []  # type: ignore[attr-defined]


def test_dry_run_learns_chars_per_token_from_usage(project: Project) -> None:
    project.pairs(good_bad_rows(4))
    first = project.run_json("round", "--dry-run", "--limit", "2")
    assert first["chars_per_token"] is None
    project.run_json("round", "--limit", "2")
    second = project.run_json("round", "--dry-run")
    # the test server bills one token per 4 characters of the messages
    assert second["chars_per_token"] is not None and 3.5 < second["chars_per_token"] < 4.5
    assert second["pairs_in_round"] == 2
    assert "chars/token seen in earlier rounds" in project.run("round", "--dry-run").stdout


def test_the_ledger_prices_cached_input_tokens(project: Project, judge_server) -> None:
    from labeler.demo.judge_server import Scripted
    from tests.conftest import oracle

    def cached(shown: object) -> Scripted:
        reply = oracle(shown)  # type: ignore[arg-type]
        return Scripted(reply.content, reply.alternatives, cached_tokens=10**6)  # all cached

    server = judge_server(cached)
    project.set(
        judge={
            "base_url": server.url,
            "price_input_per_mtok": 10.0,
            "price_cached_input_per_mtok": 1.0,
            "price_output_per_mtok": 0.0,
        }
    )
    project.pairs(good_bad_rows(2))
    data = project.run_json("round")
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        tokens, cached, billed = store.db.execute(
            "SELECT SUM(prompt_tokens), SUM(cached_tokens), SUM(cost) FROM calls"
        ).fetchone()
    assert cached == tokens > 0  # every input token was a cache hit
    assert billed == pytest.approx(tokens * 1.0 / 1e6)  # at the cached price, not 10.0
    assert data["judge_cost"] == pytest.approx(billed)


def test_a_stopped_round_resumes_only_with_the_seed_it_routes_with(project: Project) -> None:
    """A round's pairs are drawn, and their draws read by calibration, with the seed it
    began with: resuming it under another `routing.seed` is refused in one line, nothing
    sent; with the seed restored it resumes."""
    server = project.server  # type: ignore[attr-defined]
    project.set(judge={"concurrency": 1, "price_input_per_mtok": 100.0})
    project.pairs(good_bad_rows(30))
    per_pair = project.run_json("round", "--dry-run")["judge_cost"] / 30
    project.set(costs={"max_cost_per_round": round(per_pair * 10, 6)})
    assert project.run("round").exit_code == 3  # stopped by the budget, left open
    project.set(costs={"max_cost_per_round": 0.0}, routing={"seed": 7})
    sent = len(server.requests)
    out = project.run("round")
    assert out.exit_code == 2 and len(server.requests) == sent
    said = " ".join(out.output.split())
    assert "routing.seed = 7, but the open round 1 routes with seed 0: restore it" in said
    assert len(out.output.strip().splitlines()) == 1
    project.set(routing={"seed": 0})
    assert project.run_json("round")["status"] == "completed"
