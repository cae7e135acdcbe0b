"""A judge panel: prompt variants with human-corrected in-context examples, frozen into
judge versions (pure parts, and end to end against the real local judge server)."""

from __future__ import annotations

import json
from collections.abc import Callable

from labeler import panel, prompts
from labeler.config import load_config
from labeler.demo.judge_server import JudgeServer, Scripted, Shown
from labeler.store import Store
from labeler.thresholds import current, judged
from labeler.verdicts import OrderReply, pool
from tests.conftest import Project, decide_as_humans, good_bad_rows, oracle


def test_choose_prefers_corrected_pairs_and_never_repeats_one() -> None:
    cands = [panel.Candidate(f"p{i}", "A", "A" if i % 3 else "B") for i in range(30)]
    corrected = {c.pair_id for c in cands if c.corrected}  # 10 pairs
    v = panel.choose(cands, variants=3, per_variant=3, seed=1)
    ids = [pid for variant in v.variants for pid, _ in variant]
    assert len(v.variants) == 3 and all(len(x) == 3 for x in v.variants)
    assert len(ids) == len(set(ids)) == 9 and set(ids) <= corrected
    assert v == panel.choose(cands, 3, 3, seed=1) and v.hash == panel.choose(cands, 3, 3, 1).hash
    assert panel.Version.from_json(v.to_json()) == v
    few = panel.choose(cands[:2], variants=3, per_variant=3, seed=1)
    assert len(few.variants) == 2  # fewer candidates, fewer variants
    assert panel.choose([], 3, 3, seed=1).variants == ((),)  # none: one prompt


def test_examples_come_after_the_shared_part_and_before_the_pair() -> None:
    template = prompts.load_template(None)
    guidelines = prompts.Guidelines("Prefer correct answers.", "g", ())
    ex = [panel.Example("q1?", "right", "wrong", "A"), panel.Example("q2?", "bad", "ok", "B")]
    one = prompts.render_messages(template, guidelines, "Q?", "x", "y", "ab", ex)
    two = prompts.render_messages(template, guidelines, "Other?", "u", "v", "ba", ex)
    assert [m["role"] for m in one] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert one[2]["content"].startswith("A HIGH") and one[4]["content"].startswith("B HIGH")
    assert one[:-1] == two[:-1]  # the same prefix for every pair: endpoint prompt caching
    assert "Q?" in one[-1]["content"] and "q1?" in one[1]["content"]


def test_pool_averages_the_panels_probabilities() -> None:
    a = OrderReply("ab", "A", "HIGH", {"A": 0.9, "B": 0.1, "TIE": 0.0})
    b = OrderReply("ab", "B", "LOW", {"A": 0.4, "B": 0.6, "TIE": 0.0})
    c = OrderReply("ab", "A", "HIGH", {"A": 0.8, "B": 0.2, "TIE": 0.0})
    pooled = pool("ab", [a, b, c])
    assert pooled.verdict == "A" and pooled.self_confidence == "HIGH"
    assert pooled.probs is not None and abs(pooled.probs["A"] - 0.7) < 1e-9
    split = pool("ab", [a, OrderReply("ab", "B", "HIGH", {"A": 0.1, "B": 0.9, "TIE": 0.0})])
    assert split.malformed and "panel split" in split.malformed
    no_probs = pool("ab", [OrderReply("ab", "B", "HIGH"), OrderReply("ab", None, None, None, "x")])
    assert no_probs.verdict == "B" and no_probs.probs == {"A": 0.0, "B": 0.5, "TIE": 0.0}


def learner(shown: Shown) -> Scripted:
    """Right and sure when the request carries in-context examples; unsure without."""
    if len(shown.body["messages"]) > 2:
        return oracle(shown)
    return Scripted("A LOW\nnot sure", {"A": 0.5, "B": 0.45, "TIE": 0.05})


def test_a_refreshed_panel_learns_from_human_corrections(
    project: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    server = judge_server(learner)
    project.set(
        judge={"base_url": server.url, "panel": 3, "panel_examples": 2},
        review={"enabled": False},
    )
    project.pairs(good_bad_rows(12))
    first = project.run_json("round")
    # no human verdict yet: a version without examples is one prompt (2 orders)
    assert len(server.requests) == 24 and first["accepted"] == 0
    assert decide_as_humans(project) == 12
    refreshed = project.run_json("judge", "refresh")["versions"]
    [row] = refreshed
    assert row["variants"] == 3 and row["examples"] == 6 and row["corrected"] == 6
    assert row["changed"] and row["previous"]
    # a user trial: every refresh made a new version, even with no new verdict (and
    # threw away the evidence of the one in force)
    [again] = project.run_json("judge", "refresh")["versions"]
    assert again["version"] == row["version"] and not again["changed"]

    server.requests.clear()
    project.pairs(good_bad_rows(10, start=100), name="more.jsonl")
    project.set(source={"path": "more.jsonl"})
    plan = project.run_json("round", "--dry-run")
    assert plan["requests_sent"] == 60 and not server.requests  # the panel, estimated
    second = project.run_json("round")
    assert len(server.requests) == 60  # 10 pairs x 2 orders x 3 variants
    for body in server.requests:
        roles = [m["role"] for m in body["messages"]]
        assert roles[0] == "system" and roles.count("assistant") == 2  # two examples each
    assert second["accepted"] == 10  # the examples made the judge sure (and right)
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        rows = store.db.execute("SELECT round_id, template_hash, signals FROM verdicts").fetchall()
        by_round = {r["round_id"]: r for r in rows}
        assert by_round[1]["template_hash"] != by_round[2]["template_hash"]
        assert json.loads(by_round[2]["signals"])["judge_version"] == row["version"]
        # the new version's thresholds start from its own evidence: rounds 1's verdicts
        # (another version) and the pairs it shows as examples are not evidence for it
        assert current(store, cfg).judge_version == row["version"]
        evidence = {r["pair_id"] for r, _ in judged(store, cfg)}
        round_two = {
            r[0] for r in store.db.execute("SELECT pair_id FROM verdicts WHERE round_id = 2")
        }
        assert evidence == round_two


def test_a_panel_refreshes_itself_every_n_human_verdicts(
    project: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    server = judge_server(learner)
    project.set(
        judge={"base_url": server.url, "panel": 2, "panel_examples": 1, "refresh_every": 5},
        review={"enabled": False},
    )
    project.pairs(good_bad_rows(6))
    project.run_json("round")
    decide_as_humans(project)
    project.pairs(good_bad_rows(4, start=50), name="more.jsonl")
    project.set(source={"path": "more.jsonl"})
    server.requests.clear()
    project.run_json("round")
    assert len(server.requests) == 16  # refreshed: 4 pairs x 2 orders x 2 variants
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        assert len(store.judge_versions()) == 2


def test_an_earlier_versions_waiting_pairs_go_to_humans(
    project: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    """A new judge version begins its own calibration phase, which never reads another
    version's labels: the pairs an earlier version accepted and no test certified can
    never be certified. They stayed provisional for good, even after ``round --finish``
    (issue 17: no pair in limbo); the next calibration sends them to humans, saying so."""
    project.set(
        judge={"base_url": judge_server(oracle).url, "panel": 2, "panel_examples": 1},
        review={"enabled": False},
        calibration={"cold_start_audit_rate": 0.3, "min_labels": 10, "target_agreement": 0.8},
    )
    project.pairs(good_bad_rows(60))
    first = project.run_json("round")
    assert first["provisional"] == 45 and first["certified"] == 0
    decide_as_humans(project)
    assert project.run_json("judge", "refresh")["versions"][0]["changed"]
    project.pairs(good_bad_rows(40, start=100), name="more.jsonl")
    project.set(source={"path": "more.jsonl"})
    project.run_json("round")
    recal = project.run_json("calibrate")["recalibration"]
    said = "45 pairs an earlier judge version accepted and no test certified went to humans"
    assert said in recal["message"] and recal["rechecked"] == 45
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        rows = store.db.execute(
            "SELECT v.reason, v.round_id, p.state FROM verdicts v JOIN pairs p ON p.id = v.pair_id"
        ).fetchall()
        ended = [r for r in rows if r["reason"] == "recheck"]
        assert len(ended) == 45 and {r["round_id"] for r in ended} == {1}
        assert {r["state"] for r in ended} == {"needs_review"}
    decide_as_humans(project)
    assert project.run("round", "--finish", "--now").exit_code == 0
    with Store(cfg.db_path) as store:
        assert store.label_status_counts()["provisional"] == 0  # nothing left waiting


def test_refresh_without_a_panel_is_one_line(project: Project) -> None:
    project.set(judge={"panel": 2})  # a fresh project: no state made by a refresh
    fresh = project.run("judge", "refresh")
    assert fresh.exit_code == 1 and "no state yet; run `labeler round` first" in fresh.stderr
    assert not (project.root / ".labeler" / "state.sqlite").exists()
    project.set(judge={"panel": 1})
    result = project.run("judge", "refresh")
    assert result.exit_code == 2 and "no judge has a panel" in result.output
