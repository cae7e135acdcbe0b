"""End-to-end rounds through the CLI against the real judge server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import datasets
import pytest

from labeler.config import load_config
from labeler.demo.judge_server import Scripted, Shown
from labeler.judging import round_thresholds_json, tier_thresholds_from_json
from labeler.routing import Thresholds
from labeler.store import Store
from tests.conftest import Project, good_bad_rows, oracle


def test_a_rounds_stored_thresholds_read_back_whatever_settings_are_stored_beside_them() -> None:
    """A resumed round reads its tiers' thresholds from the round's record, which also
    holds the round's own settings (seed, order, money...): any of them, including ones
    added later, are left out, never passed on as thresholds (a missing key crashed
    resumed rounds once)."""
    tiers = [Thresholds(0.9, 0.95, version=2, certified_a=0.97), Thresholds(0.8, 0.85)]
    stored = round_thresholds_json(tiers) | {"seed": 3, "order": "random", "a_new_one": [1]}
    assert tier_thresholds_from_json(json.dumps(stored), 3) == [*tiers, None]


def test_round_judges_routes_and_writes_the_dataset(project: Project) -> None:
    project.pairs(good_bad_rows(10))
    result = project.run("round")
    assert result.exit_code == 0, result.output
    assert "Round 1" in result.stdout
    assert "accepted by the judge" in result.stdout and "provisional" in result.stdout
    ds = datasets.load_from_disk(str(project.root / ".labeler" / "dataset"))
    assert ds.num_rows == 10
    assert set(ds.column_names) >= {
        "prompt",
        "chosen",
        "rejected",
        "pair_id",
        "label_source",
        "confidence",
        "round",
        "judge_model",
        "template_hash",
    }
    for row in ds:
        assert "good" in row["chosen"] and "poor" in row["rejected"]
        assert row["label_source"] == "judge" and row["round"] == 1
    assert (project.root / ".labeler" / "dataset.parquet").stat().st_size > 0
    assert len(project.server.requests) == 20  # type: ignore[attr-defined]


def test_a_dataset_that_would_come_out_the_same_is_not_rewritten(project: Project) -> None:
    """Every sync and calibration ends with the dataset written: unchanged rows keep the
    version in place (100k long pairs are not rewritten for nothing); a changed label, a
    Parquet file or version folder gone, a setting that shapes the files: written anew."""
    import shutil

    from labeler.config import load_config
    from labeler.consensus import Consensus
    from labeler.dataset import write_dataset

    project.pairs(good_bad_rows(6))
    assert project.run("round").exit_code == 0
    cfg = load_config(project.config, environ={})
    link, parquet = (
        project.root / ".labeler" / "dataset",
        project.root / ".labeler" / "dataset.parquet",
    )
    first = link.resolve()
    with Store(cfg.db_path) as store:
        assert write_dataset(store, cfg) == 6 and link.resolve() == first
        pid = datasets.load_from_disk(str(link))["pair_id"][2]
        store.db.execute("UPDATE pairs SET state = 'in_review' WHERE id = ?", (pid,))
        store.save_decisions({pid: Consensus("B", {"B": 1}, 1, True, False)})  # humans: B
        assert write_dataset(store, cfg) == 6 and link.resolve() != first and not first.exists()
        row = next(r for r in datasets.load_from_disk(str(link)) if r["pair_id"] == pid)
        assert row["label_source"] == "human" and "poor" in row["chosen"]

        def arrow_gone() -> None:
            for shard in link.resolve().glob("*.arrow"):
                shard.unlink()

        emptied = (lambda: parquet.write_bytes(b""), arrow_gone)  # (review: kept as they were)
        for remove in (parquet.unlink, lambda: shutil.rmtree(link.resolve()), *emptied):
            before = link.resolve()  # what is in place is checked, not assumed
            remove()
            assert write_dataset(store, cfg) == 6 and link.resolve() != before
            assert parquet.is_file() and datasets.load_from_disk(str(link)).num_rows == 6
        before = link.resolve()
        assert write_dataset(store, cfg) == 6 and link.resolve() == before
        # a pair decided but left unmarked (a sync stopped before its write): marked now
        store.db.execute("UPDATE pairs SET state = 'human_decided' WHERE id = ?", (pid,))
        assert write_dataset(store, cfg) == 6 and link.resolve() == before
        assert store.state_counts()["exported"] == 6
    project.set(output={"certified_only": True})  # nothing certified: an empty dataset
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        assert write_dataset(store, cfg) == 1 and link.resolve() != before  # (the human's)


def test_guidelines_longer_than_argilla_takes_are_refused_before_any_judge_call(
    project: Project,
) -> None:
    """Trial: 14 KB of guidelines crashed the round's push into Argilla (a traceback,
    after the judge was paid for). Refused first, in one line, the dry run too."""
    project.pairs(good_bad_rows(4))
    (project.root / "guidelines" / "03-big.md").write_text("Be careful. " * 1200)
    for args in (("round", "--dry-run"), ("round",)):
        result = project.run(*args)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: judge.guidelines: {project.root / 'guidelines'} make ")
        assert "Argilla takes at most 10,000: shorten them" in line
    assert project.server.requests == []  # type: ignore[attr-defined]
    project.set(review={"enabled": False})  # no Argilla: no limit
    assert project.run("round").exit_code == 0


def test_another_judge_is_refused_where_the_projects_judge_was_tested(project: Project) -> None:
    """Trial: a judge changed mid-project (a cheaper tier added in front, which moves the
    judge down; a panel's model) inherited the position's certificate: its labels entered
    the dataset as certified, tested by no human. A cascade's or a panel's judge is
    refused; a single judge begins a calibration phase of its own
    (``test_thresholds``)."""
    project.pairs(good_bad_rows(4))
    assert project.run("round", "--limit", "2").exit_code == 0
    model = load_config(project.config, environ={}).judge.model
    changes: list[tuple[Any, str]] = [
        (lambda: project.set(judge={"tiers": [
            {"name": "cheap", "model": "cheap-model"}, {"name": "big", "model": model}]}),
         "judge tier 1 (cheap) changed since its last round (model"),
        (lambda: project.set(judge={"panel": 2, "model": "another"}),
         f"the judge changed since its last round (model {model!r} -> 'another')"),
    ]  # fmt: skip
    original = project.config.read_text()
    for change, said in changes:
        change()
        for args in (("round", "--dry-run"), ("round",)):
            result = project.run(*args)
            assert result.exit_code == 2, result.output
            (line,) = result.stderr.strip().splitlines()
            assert said in line and "start a new project (project.state_dir)" in line
        project.config.write_text(original)
    assert len(project.server.requests) == 4  # type: ignore[attr-defined]
    assert project.run_json("round")["judged"] == 2  # restored: it goes on


def test_a_project_without_argilla_can_sync_and_finish(project: Project) -> None:
    """Trial: with review.enabled = false, `labeler round --finish` (and `sync`) asked
    for the embedded Argilla's secrets, so such a project could never take its last
    look. Without Argilla they calibrate and write the dataset; pairs for humans wait."""
    project.set(review={"enabled": False})
    project.pairs(good_bad_rows(6))
    assert project.run_json("round")["judged"] == 6
    assert project.run_json("sync")["awaiting"] == 0
    result = project.run("round", "--finish")
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())
    assert "pairs wait for human labels (review.enabled = false: Argilla is not asked)" in shown
    states = project.run_json("status")["states"]
    assert states["needs_review"] + states["exported"] == 6  # each decided one way


def test_round_json_summary_is_the_only_stdout(project: Project) -> None:
    rows = good_bad_rows(6)
    rows.append({"prompt": "tie?", "response_a": "x", "response_b": "y"})
    rows.append("{not json")
    project.pairs(rows)
    data = project.run_json("round")
    assert data["round_id"] == 1 and data["status"] == "completed"
    assert data["source_pairs"] == 7 and data["skipped"] == {"not_json": 1}
    assert data["accepted"] == 6 and data["review"] == {"tie": 1}
    assert data["requests_sent"] == 14
    assert data["prompt_tokens"] > 0 and data["judge_cost"] > 0
    assert data["human_cost"] == pytest.approx(0.5)
    # nothing certified (no thresholds yet), nothing decided by humans: nothing delivered
    assert (data["delivered"], data["waiting"], data["waiting_labels"]) == (0, 7, 7)
    assert data["baseline_cost"] == 0.0 and data["savings_factor"] == 0.0
    assert data["saved"] == pytest.approx(-data["human_cost"] - data["judge_cost"])
    assert data["savings_notes"][0].startswith("nothing certified yet: 6 judge-accepted")


def test_limit_then_next_round_and_rerun_sends_nothing(project: Project) -> None:
    project.pairs(good_bad_rows(10))
    first = project.run_json("round", "--limit", "4")
    assert first["pairs_in_round"] == 4 and first["round_id"] == 1
    second = project.run_json("round")
    assert second["round_id"] == 2 and second["pairs_in_round"] == 6
    sent = len(project.server.requests)  # type: ignore[attr-defined]
    assert sent == 20
    third = project.run("round")
    assert third.exit_code == 0 and "Nothing to do" in third.stdout
    assert len(project.server.requests) == sent  # type: ignore[attr-defined]


def test_a_round_takes_a_random_draw_of_the_waiting_pairs_unless_told_the_file_order(
    project: Project,
) -> None:
    """``routing.round_order``: "random" (the default) takes the waiting pairs with the
    lowest ``routing.round_draw`` under ``routing.seed``, so a file sorted by topic gives
    every round the same mix; "source" takes the file's first rows. Calibration reads the
    verdicts by round, then by draw (the order the simulation's sequence assumes)."""
    from labeler.routing import round_draw

    def taken(round_id: int) -> set[int]:
        with Store(project.root / ".labeler" / "state.sqlite") as store:
            rows = store.db.execute("SELECT source_row FROM pairs WHERE round_id = ?", (round_id,))
            return {int(r[0]) for r in rows}

    project.pairs(good_bad_rows(30))
    project.set(routing={"seed": 5})
    assert project.run_json("round", "--limit", "6")["round_id"] == 1
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        rows = store.db.execute("SELECT id, source_row FROM pairs ORDER BY seq").fetchall()
    drawn = sorted(rows, key=lambda r: round_draw(5, r[0]))
    assert taken(1) == {int(r[1]) for r in drawn[:6]} != {int(r[1]) for r in rows[:6]}
    project.set(routing={"seed": 5, "round_order": "source"})
    assert project.run_json("round", "--limit", "4")["round_id"] == 2
    first = sorted(int(r[1]) for r in rows if int(r[1]) not in taken(1))[:4]
    assert taken(2) == set(first)
    with Store(project.root / ".labeler" / "state.sqlite") as store:  # the evidence's order
        read = [(r["round_id"], r["round_draw"], r["seq"]) for r in store.routed_verdicts()]
    assert read == sorted(read) and [r[0] for r in read] == [1] * 6 + [2] * 4


def test_same_pair_from_two_files_is_judged_once(project: Project) -> None:
    rows = good_bad_rows(3)
    project.pairs(rows)
    project.run_json("round")
    import csv

    path = project.root / "again.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["prompt", "response_a", "response_b"])
        writer.writeheader()
        writer.writerows([*rows, *good_bad_rows(1, start=50)])
    project.set(source={"path": "again.csv"})
    data = project.run_json("round")
    assert data["new_pairs"] == 1 and data["pairs_in_round"] == 1
    assert len(project.server.requests) == 8  # type: ignore[attr-defined]


def test_status_counts_states_and_rounds(project: Project) -> None:
    rows = [*good_bad_rows(4), {"prompt": "tie?", "response_a": "x", "response_b": "y"}]
    project.pairs(rows)
    project.run_json("round")
    status = project.run_json("status")
    assert status["states"]["exported"] == 4
    assert status["states"]["needs_review"] == 1
    assert [r["id"] for r in status["rounds"]] == [1]
    assert status["rounds"][0]["accepted"] == 4 and status["rounds"][0]["review"] == 1
    assert status["cost"] > 0
    text = project.run("status").stdout
    assert "needs_review" in text and "Rounds" in text


def test_dry_run_estimates_and_writes_nothing(project: Project) -> None:
    project.pairs(good_bad_rows(5))
    data = project.run_json("round", "--dry-run", "--limit", "3")
    assert data["status"] == "dry_run" and data["pairs_in_round"] == 3
    assert data["prompt_tokens"] > 3 * 2 * 50  # both orders, a few hundred chars each
    assert data["completion_tokens"] == 3 * 2 * 64
    assert data["judge_cost"] > 0
    assert project.server.requests == []  # type: ignore[attr-defined]
    assert not (project.root / ".labeler" / "state.sqlite").exists()
    text = project.run("round", "--dry-run").stdout
    assert "estimated judge cost" in text


def test_dry_run_estimates_the_pairs_the_round_would_draw(project: Project) -> None:
    """``--dry-run --limit`` prices the pairs the round then takes: the lowest draws,
    those kept from an earlier round under another seed (not fresh draws of them) and
    those of pairs added to the source since (not the file's first rows; answers of
    very different lengths, so the estimates differ)."""
    from labeler.pairs import make_pair
    from labeler.routing import round_draw

    rows = [
        {"prompt": f"q{i}?", "response_a": "good " * 40 * (i + 1), "response_b": "bad"}
        for i in range(30)
    ]
    by_id = {make_pair(r["prompt"], r["response_a"], r["response_b"]).id: r for r in rows}
    project.pairs(rows[:20])
    assert project.run_json("round", "--limit", "4")["pairs_in_round"] == 4
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        waiting = [r[0] for r in store.db.execute("SELECT id FROM pairs WHERE round_id IS NULL")]
        kept = {r[0]: r[1] for r in store.db.execute("SELECT id, round_draw FROM pairs")}
        cut = store.round_cut()
    source = project.pairs(rows)  # ten more
    added = {i: round_draw(1, i, cut) for i in list(by_id)[20:]}
    draws = {i: kept[i] for i in waiting} | added
    nxt = sorted(draws, key=draws.__getitem__)[:4]
    assert set(nxt) & set(added) and set(nxt) - set(added)
    assert set(nxt) != set(sorted(draws, key=lambda i: round_draw(1, i))[:4])
    project.set(routing={"seed": 1})  # the waiting pairs keep the draws of seed 0
    planned = project.run_json("round", "--dry-run", "--limit", "4")
    # those four priced alone: the state with no other pair waiting, a source of them
    db = project.root / ".labeler" / "state.sqlite"
    saved = sqlite3.connect(":memory:")
    with closing(sqlite3.connect(db)) as state:
        state.backup(saved)
    with Store(db) as store, store.transaction() as tx:
        others = [(i,) for i in waiting if i not in nxt]
        tx.executemany("DELETE FROM pairs WHERE id = ? AND round_id IS NULL", others)
    project.pairs([by_id[i] for i in nxt], name="next.jsonl")
    project.set(routing={"seed": 1}, source={"path": str(project.root / "next.jsonl")})
    priced = project.run_json("round", "--dry-run")
    with closing(sqlite3.connect(db)) as state:
        saved.backup(state)  # the state as it was
    assert priced["pairs_in_round"] == 4 and priced["prompt_tokens"] == planned["prompt_tokens"]
    project.set(routing={"seed": 1}, source={"path": str(source)})
    assert project.run_json("round", "--limit", "4")["round_id"] == 2
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        taken = {r[0] for r in store.db.execute("SELECT id FROM pairs WHERE round_id = 2")}
    assert taken == set(nxt)
    project.set(routing={"round_order": "source"}, source={"path": str(source)})
    first = project.run_json("round", "--dry-run", "--limit", "4")
    assert first["prompt_tokens"] != planned["prompt_tokens"]


@pytest.mark.parametrize("order", ["random", "source"])
def test_dry_run_counts_the_pairs_waiting_from_an_earlier_source(
    project: Project, order: str
) -> None:
    """A round takes every pair waiting, the earlier source's too: the dry run prices
    them all, with or without a limit, and the round then takes what it priced."""
    project.set(routing={"round_order": order})
    project.pairs([{"prompt": f"q{i}?", "response_a": "good " * 60, "response_b": "bad"}
                   for i in range(10)])  # fmt: skip
    assert project.run_json("round", "--limit", "3")["pairs_in_round"] == 3
    later = [{"prompt": f"new{i}?", "response_a": "good", "response_b": "bad"} for i in range(4)]
    project.set(
        routing={"round_order": order}, source={"path": str(project.pairs(later, "b.jsonl"))}
    )
    plan = project.run_json("round", "--dry-run")
    assert plan["pairs_in_round"] == 7 + 4 and plan["source_pairs"] == 4
    assert project.run_json("round", "--dry-run", "--limit", "9")["pairs_in_round"] == 9
    done = project.run_json("round")
    assert done["pairs_in_round"] == 11


@pytest.mark.parametrize("order", ["random", "source"])
def test_a_limited_dry_run_still_reads_the_whole_source(project: Project, order: str) -> None:
    """``--dry-run --limit`` prices only what the round would take, but counts the whole
    source (its pairs and bad rows), as the round does: a source longer than the pairs
    read per batch (500) plus the limit."""
    project.set(routing={"round_order": order})
    rows = [{"prompt": f"q{i}?", "response_a": "good", "response_b": "bad"} for i in range(1200)]
    project.pairs([*rows, {"prompt": "no responses"}])
    plan = project.run_json("round", "--dry-run", "--limit", "5")
    assert plan["pairs_in_round"] == 5
    assert plan["source_pairs"] == 1200 and sum(plan["skipped"].values()) == 1


def test_malformed_replies_go_to_review_and_are_not_paid_twice(
    project: Project, judge_server
) -> None:
    def responder(shown: Shown) -> Scripted:
        if "weird" in shown.prompt:
            return Scripted("I think the first one, probably")
        return oracle(shown)

    server = judge_server(responder)
    project.set(judge={"base_url": server.url})
    project.pairs(
        [*good_bad_rows(2), {"prompt": "weird?", "response_a": "x good", "response_b": "y"}]
    )
    data = project.run_json("round")
    assert data["review"] == {"malformed": 1} and data["accepted"] == 2
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        row = store.db.execute("SELECT signals FROM verdicts WHERE reason='malformed'").fetchone()
        assert "first line is not" in json.loads(row[0])["malformed"][0]
    assert len(server.requests) == 6


def test_transient_failures_leave_the_round_open_and_a_rerun_finishes(
    project: Project, judge_server
) -> None:
    failing = {"on": True}

    def responder(shown: Shown) -> Scripted:
        if failing["on"] and "question 1?" in shown.prompt:
            return Scripted(status=500)
        return oracle(shown)

    server = judge_server(responder)
    project.set(judge={"base_url": server.url, "max_retries": 1})
    project.pairs(good_bad_rows(4))
    first = project.run("round")
    assert first.exit_code == 1  # a user trial: an unfinished round exited 0
    error = first.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: Round 1 is not finished: 1 pairs")
    assert "500" in error[0] and error[0].endswith("Run `labeler round` again.")
    assert "not judged yet (failed, retried next" in first.stdout  # the summary is shown
    failing["on"] = False
    data = project.run_json("round")
    assert data["round_id"] == 1 and data["resumed"] and data["status"] == "completed"
    assert data["unjudged"] == 0 and data["accepted"] == 4
    keys = server.request_keys()
    # the 6 answered requests were never sent again; question 1 was retried (2 + rerun)
    assert sorted(keys.values()) == [1] * 6 + [3, 3]


def test_permanent_judge_error_routes_to_humans(project: Project, judge_server) -> None:
    def responder(shown: Shown) -> Scripted:
        return Scripted(status=400) if "question 0?" in shown.prompt else oracle(shown)

    server = judge_server(responder)
    project.set(judge={"base_url": server.url})
    project.pairs(good_bad_rows(3))
    data = project.run_json("round")
    assert data["review"] == {"judge_error": 1} and data["status"] == "completed"


@pytest.mark.parametrize(
    ("status", "fault", "needle"),
    [
        (401, None, "refused the API key"),
        (404, None, "was not found"),
        (200, "html", "answered with text, not the OpenAI API's JSON"),  # a wrong base_url
    ],
)
def test_fatal_judge_errors_stop_with_one_line(
    project: Project, judge_server, status: int, fault: str | None, needle: str
) -> None:
    server = judge_server(lambda shown: Scripted(status=status, fault=fault))
    project.set(judge={"base_url": server.url})
    project.pairs(good_bad_rows(3))
    result = project.run("round")
    assert result.exit_code == 1
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_strict_stops_before_judging(project: Project) -> None:
    project.pairs([*good_bad_rows(2), {"prompt": "", "response_a": "a", "response_b": "b"}])
    result = project.run("round", "--strict")
    assert result.exit_code == 2
    assert "pairs.jsonl:3: field 'prompt' is empty" in result.stderr
    assert project.server.requests == []  # type: ignore[attr-defined]
    assert not (project.root / ".labeler" / "state.sqlite").exists()


def test_the_dry_run_refuses_what_the_round_refuses(project: Project) -> None:
    """A user trial: ``--dry-run --strict`` priced a source with a bad row (exit 0) and an
    empty source, or a CSV with its header alone, was priced at 0 where the round stops
    (the CSV's round said "every pair has been judged")."""
    project.pairs([*good_bad_rows(2), {"prompt": "", "response_a": "a", "response_b": "b"}])
    for args in (("--strict",), ("--strict", "--dry-run")):
        result = project.run("round", *args)
        assert result.exit_code == 2 and "pairs.jsonl:3: field 'prompt' is empty" in result.stderr
    (project.root / "pairs.jsonl").write_text("\n\n")
    (project.root / "pairs.csv").write_text("prompt,response_a,response_b\n")
    for name, said in (("pairs.jsonl", "is empty"), ("pairs.csv", "has no rows")):
        project.set(source={"path": name})
        for args in ((), ("--dry-run",)):
            result = project.run("round", *args)
            assert result.exit_code == 2 and f"{name}: the file {said}" in result.stderr, args
    assert project.server.requests == []  # type: ignore[attr-defined]


def test_an_empty_model_or_a_foreign_dataset_dir_is_refused_before_any_judge_call(
    project: Project,
) -> None:
    """A user trial: output.dataset_dir naming a folder labeler did not write ("." or a
    user's folder) was refused only after the round was judged and paid for, and an empty
    judge.model passed --dry-run and failed only at the endpoint's 404."""
    project.pairs(good_bad_rows(4))
    mine = project.root / "my_data"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    for where, shown in ((".", project.root), ("my_data", mine)):
        project.set(output={"dataset_dir": where})
        for args in ((), ("--dry-run",)):
            result = project.run("round", *args)
            assert result.exit_code == 2, (where, args, result.output)
            assert result.stderr.strip().splitlines() == [
                f"error: output.dataset_dir: {shown} exists and was not written by labeler (it "
                "keeps a link to its latest dataset there); move it away or set "
                "output.dataset_dir to another path"
            ]
    assert (mine / "keep.txt").read_text() == "mine"
    project.set(output={"dataset_dir": ".labeler/dataset"})
    for args in (("--model", ""), ("--dry-run", "--model", " ")):
        result = project.run("round", *args)
        assert result.exit_code == 2, result.output
        assert "command line: judge.model is empty; it may not be" in result.stderr
    assert project.server.requests == []  # type: ignore[attr-defined]
    assert not (project.root / ".labeler" / "state.sqlite").exists()  # no round opened
    assert project.run_json("round")["status"] == "completed"  # the defaults run


def test_a_dataset_dir_that_cannot_be_written_is_refused_before_any_judge_call(
    project: Project,
) -> None:
    """A user trial: an output.dataset_dir in a place that cannot be written (here under a
    file; /sys or a read-only disk alike) failed only after the round was judged and paid
    for, leaving it open. Now it is one line before the round opens."""
    project.pairs(good_bad_rows(4))
    (project.root / "afile").write_text("x")
    project.set(output={"dataset_dir": "afile/dataset"})
    result = project.run("round")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        f"error: output.dataset_dir: {project.root / 'afile' / 'dataset'}: cannot write the "
        "dataset there (Not a directory); set output.dataset_dir to a folder you can write "
        "(nothing was judged)"
    ]
    assert project.server.requests == []  # type: ignore[attr-defined]
    assert project.run_json("status")["rounds"] == []
    project.set(output={"dataset_dir": "out/dataset"})  # a folder made for it: fine
    assert project.run_json("round")["status"] == "completed"
    assert (project.root / "out" / "dataset").is_symlink()
    left = sorted(p.name for p in (project.root / "out").iterdir())
    assert left == [".dataset.versions", "dataset", "dataset.parquet"]  # (no probe left)


def test_finish_waits_until_every_pair_is_judged(project: Project) -> None:
    """A user trial: ``round --finish`` with 90 pairs still to judge spent the final look
    (all the confidence left) and said "project finished"; later rounds judged on."""
    project.set(routing={"round_order": "source"})
    project.pairs(good_bad_rows(5))
    project.run_json("round", "--limit", "2")
    result = project.run("round", "--finish")
    assert result.exit_code == 2 and "--finish: 3 pairs are not judged yet" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_nothing_to_do_says_what_waits_at_the_rounds_prices(project: Project) -> None:
    """A user trial: with the source judged, ``round`` priced the waiting pairs at today's
    price (``status``: at each round's), and its ``--json`` said nothing waited."""
    project.set(review={"enabled": False}, output={"certified_only": False})
    project.pairs(good_bad_rows(4))
    first = project.run_json("round")
    assert first["provisional"] == 4  # no evidence yet: every judge label waits
    project.set(costs={"human_price_per_pair": 2.0})
    again = project.run_json("round")
    assert again["status"] == "nothing_to_do" and again["waiting"] == 4
    assert again["waiting_cost"] == pytest.approx(4 * 0.5)  # the round's price, not today's
    # the dataset as it stands (a trial: 0, beside a dataset of rows)
    assert again["dataset_rows"] == first["dataset_rows"] == 4 and again["dataset_path"]
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:  # kept by an older labeler: no count, counted
        kept = json.loads(store.get_meta("dataset-written") or "{}")
        store.set_meta(
            "dataset-written", json.dumps({k: v for k, v in kept.items() if k != "rows"})
        )
    assert project.run_json("round")["dataset_rows"] == 4
    shutil.rmtree(kept["version"])  # deleted by hand: no rows there
    assert project.run_json("round")["dataset_rows"] == 0
    text = " ".join(project.run("round").stdout.split())
    assert "(up to 4 human labels, 2.00 USD at most)" in text


def test_every_skipped_row_is_listed_until_the_source_is_fixed(project: Project) -> None:
    """A user trial: a round showed its first 5 skipped rows and no more; only the state's
    table held the rest."""
    bad = {"prompt": "q?", "response_a": "same", "response_b": "same"}
    project.pairs([*good_bad_rows(3), *[bad] * 8])
    text = project.run("round").stdout
    lines = [line for line in text.splitlines() if line.startswith("skipped ")]
    assert len(lines) == 6 and lines[-1].startswith("skipped 3 more rows: `labeler report")
    rows = project.run_json("report")["skipped_rows"]
    assert [r.split(": ")[0].rsplit(":", 1)[1] for r in rows] == [str(n) for n in range(4, 12)]
    listed = project.run("report", "--quality").stdout
    assert "Skipped source rows: 8" in listed and "pairs.jsonl:11: " in listed
    project.pairs(good_bad_rows(4))  # fixed: re-read whole, its old bad rows are gone
    project.run_json("round")
    assert project.run_json("report")["skipped_rows"] == []
    project.pairs([*good_bad_rows(4), bad])
    project.run_json("round")  # one bad row again
    project.pairs([bad, *good_bad_rows(2, start=20)], "pairs.jsonl.old")  # another source:
    project.set(source={"path": "pairs.jsonl.old", "format": "jsonl"})  # its rows alone (the
    project.run_json("round")  # name shares a prefix with the first source's)
    (row,) = project.run_json("report")["skipped_rows"]
    assert "pairs.jsonl.old:1: " in row


def test_missing_api_key_is_a_config_error_and_opens_no_round(project: Project) -> None:
    """Refused before a round opens: the next run, key set, starts a round of its own
    --limit (a round opened by the refused run was resumed with that run's limit)."""
    project.set(judge={"api_key_required": True, "api_key_env": "LABELER_TEST_NO_SUCH_KEY"})
    project.pairs(good_bad_rows(10))
    result = project.run("round", "--limit", "2")
    assert result.exit_code == 2
    assert "LABELER_TEST_NO_SUCH_KEY is not set" in result.stderr
    assert project.run_json("status")["rounds"] == []
    env = {"LABELER_TEST_NO_SUCH_KEY": "sk-test"}
    done = json.loads(project.run("round", "--limit", "6", "--json", env=env).stdout)
    assert done["status"] == "completed" and not done["resumed"] and done["judged"] == 6


def test_api_key_goes_to_the_endpoint_and_nowhere_else(project: Project, judge_server) -> None:
    seen: list[str] = []
    server = judge_server(oracle)
    project.set(
        judge={"base_url": server.url, "api_key_required": True, "api_key_env": "TEST_JUDGE_KEY"}
    )
    project.pairs(good_bad_rows(2))
    secret = "sk-test-secret-value-123"
    result = project.run("round", env={"TEST_JUDGE_KEY": secret})
    assert result.exit_code == 0
    seen.extend(json.dumps(r) for r in server.requests)
    assert secret not in result.output
    state = (project.root / ".labeler" / "state.sqlite").read_bytes()
    assert secret.encode() not in state


def test_secrets_an_endpoint_echoes_or_a_config_misplaces_are_never_shown(
    project: Project, judge_server
) -> None:
    """A user trial (issue 17's session): an endpoint that echoes the key in its error put
    the key in the round's output and the state; a password in judge.base_url was printed
    in its errors; a key pasted into judge.api_key_env was printed as the variable's name."""
    # as long as a real project key (~164 characters): an error text is cut at 160, and
    # a key cut in two was once shown in part
    secret, password = "sk-proj-" + "A1b2C3d4" * 20, "hunter2SECRET"

    def echoes(shown: Shown) -> Scripted:
        return Scripted(status=400, error_message=f"Incorrect API key provided: Bearer {secret}")

    server = judge_server(echoes)
    project.set(
        judge={"base_url": server.url, "api_key_required": True, "api_key_env": "TEST_JUDGE_KEY"}
    )
    project.pairs(good_bad_rows(2))
    result = project.run("round", "--json", env={"TEST_JUDGE_KEY": secret})
    assert result.exit_code == 0, result.output
    assert "Incorrect API key provided: Bearer ***" in result.output
    state = (project.root / ".labeler" / "state.sqlite").read_bytes()
    for part in (secret[:24], secret[-24:]):  # no piece of it either
        assert part not in result.output and part.encode() not in state
    url = f"http://admin:{password}@127.0.0.1:9/v1"  # nothing listens on port 9
    project.set(judge={"base_url": url, "api_key_required": False})
    project.pairs(good_bad_rows(3, start=5))
    result = project.run("round")
    assert result.exit_code == 1 and "judge at http://***@127.0.0.1:9/v1 cannot" in result.stderr
    assert password not in result.output
    # no scheme; a "/" in the password (not a URL / a bad port: the setting's fault)
    for url in (f"admin:{password}@127.0.0.1:9/v1", f"http://admin:a/{password}@127.0.0.1:9"):
        project.set(judge={"base_url": url})
        result = project.run("round")
        assert result.exit_code == 2 and "***@127.0.0.1:9" in result.stderr, result.stderr
        assert password not in result.output
    for pasted in ("sk-proj-abcdefghijklmnopqrstuvwxyz0123456789", "gsk_Q9xR2mT7vLp4Wn8Kc3Hs6Yj"):
        project.set(judge={"base_url": server.url, "api_key_required": True, "api_key_env": pasted})
        result = project.run("round")
        assert result.exit_code == 2 and "judge.api_key_env must be the name of" in result.stderr
        assert pasted not in result.output


ROUND = [sys.executable, "-m", "labeler", "--config"]


def child() -> dict[str, Any]:
    """How a test runs labeler in a child process: this environment (as the test left
    it), unbuffered, its output kept as text."""
    return {"env": {**os.environ, "PYTHONUNBUFFERED": "1"}, "capture_output": True, "text": True}


def signalled_round(
    project: Project,
    server: Any,
    sig: int,
    after: int,
    ignore_ctrl_c: bool = False,
    twice: bool = False,
) -> tuple[int, str]:
    """`labeler round` in a child process, sent ``sig`` once the judge has been asked
    ``after`` requests (``ignore_ctrl_c``: started as a shell starts a background job;
    ``twice``: and again 0.3 s later): its exit code and what it said on stderr."""
    cmd = [*ROUND, str(project.config), "round"]
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_ctrl_c else None
    proc = subprocess.Popen(
        cmd, env=child()["env"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=ignore,
    )  # fmt: skip
    deadline = time.time() + 60
    while len(server.requests) < after and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    if twice:
        time.sleep(0.3)
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode()


@pytest.mark.slow
def test_sigkill_mid_round_then_rerun_loses_nothing(
    project: Project, judge_server, tmp_path: Path
) -> None:
    server = judge_server(oracle, latency=0.05)
    project.set(judge={"base_url": server.url, "concurrency": 8})
    project.pairs(good_bad_rows(200))
    signalled_round(project, server, signal.SIGKILL, after=150)
    assert len(server.requests) < 400, "the round finished before it could be killed"
    done = subprocess.run([*ROUND, str(project.config), "round", "--json"], **child(), timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["round_id"] == 1 and data["resumed"] and data["status"] == "completed"
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        states = store.state_counts()
        assert sum(states.values()) == 200 and states["exported"] == 200
        per_key = store.db.execute(
            "SELECT COUNT(*) FROM calls WHERE status='ok' GROUP BY pair_id, presented_order"
        ).fetchall()
        assert len(per_key) == 400 and {r[0] for r in per_key} == {1}
    repeats = sum(n - 1 for n in server.request_keys().values())
    assert repeats <= 8, f"{repeats} requests were sent twice (only those in flight may be)"


def test_ctrl_c_lets_the_requests_in_flight_finish_and_keeps_them(
    project: Project, judge_server
) -> None:
    """A user trial: Ctrl-C abandoned the requests in flight (a provider bills them) and
    the resume sent them again: 1,210 requests for 1,200. Now the first Ctrl-C sends
    nothing new, lets those finish and keeps their replies (exit 130, the round open);
    the resume sends each remaining request once, so none is sent twice."""
    server = judge_server(oracle, latency=1.0)
    project.set(judge={"base_url": server.url, "concurrency": 4})
    project.pairs(good_bad_rows(20))
    # Ctrl-C with requests in flight: each takes a second
    code, err = signalled_round(project, server, signal.SIGINT, after=6)
    assert code == 130, err
    sent = len(server.requests)
    assert 6 <= sent < 40, sent  # stopped mid-round
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        kept = store.db.execute("SELECT COUNT(*) FROM calls WHERE status = 'ok'").fetchone()[0]
    assert kept == sent  # every request that went out came back and was kept
    assert "stopping: up to 4 requests in flight finish and are kept" in err
    done = subprocess.run([*ROUND, str(project.config), "round", "--json"], **child(), timeout=120)
    assert done.returncode == 0 and json.loads(done.stdout)["resumed"], done.stderr
    assert len(server.requests) == 40  # 20 pairs x 2 orders, none sent twice
    assert sum(n - 1 for n in server.request_keys().values()) == 0


def test_requests_abandoned_by_a_second_ctrl_c_are_in_the_ledger(
    project: Project, judge_server
) -> None:
    """A user trial: the second Ctrl-C abandons the requests in flight; a provider bills
    them, but the ledger had no trace of them, so judge cost, savings and the budgets
    understated the bill. Each is now a call of status ``abandoned`` at its worst cost
    (its reply is lost: the resume asks it again, as before)."""
    server = judge_server(oracle, latency=2.0)
    project.set(judge={"base_url": server.url, "concurrency": 4, "price_input_per_mtok": 1.0})
    project.pairs(good_bad_rows(10))
    code, err = signalled_round(project, server, signal.SIGINT, after=4, twice=True)
    assert code == 130, err  # (the second Ctrl-C came before the four in flight returned)
    # a trial: nothing said that requests were given up, to be paid again by the resume
    assert "4 requests in flight were abandoned by the second Ctrl-C" in err
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        rows = store.db.execute("SELECT status, cost FROM calls").fetchall()
        spent = store.call_totals()["cost"]
    assert len(rows) == len(server.requests) == 4  # every request sent is in the ledger
    assert {r[0] for r in rows} == {"abandoned"} and all(r[1] > 0 for r in rows)
    assert spent == pytest.approx(sum(r[1] for r in rows))
    resumed = project.run("round")  # the resume asks them again: nothing else lost
    assert resumed.exit_code == 0, resumed.output
    # (a trial: a resumed round's requests are this run's, its tokens and cost all runs')
    shown = " ".join(resumed.stdout.split())
    assert "requests sent / cached (this run)" in shown and "judge cost (the round's)" in shown
    [done] = project.run_json("status")["rounds"]
    assert done["status"] == "completed" and done["pairs"] == 10
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        assert store.call_totals()["calls"] == len(server.requests) == 24


def test_a_request_cancelled_by_another_ones_failure_is_not_billed(
    project: Project, judge_server
) -> None:
    """A review: a 401 stops the round and cancels the requests in flight beside it; they
    were recorded as abandoned at their worst cost, a bill no provider sends. Only the
    second Ctrl-C's abandoned requests are."""

    def unauthorised(shown: Shown) -> Scripted:
        fast = "answer 0 " in shown.a + shown.b
        return Scripted(status=401, error_message="bad key", delay=0.05 if fast else 1.0)

    server = judge_server(unauthorised)
    project.set(judge={"base_url": server.url, "concurrency": 8, "price_input_per_mtok": 1.0})
    project.pairs(good_bad_rows(8))
    result = project.run("round")
    assert result.exit_code == 1, result.output
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        statuses = [r[0] for r in store.db.execute("SELECT status FROM calls")]
        assert "abandoned" not in statuses and store.call_totals()["cost"] == 0


def test_a_round_started_with_ctrl_c_ignored_does_not_stop_on_it(
    project: Project, judge_server
) -> None:
    """A review finding: a job a shell starts in the background has Ctrl-C ignored; the
    round's gentle stop took Ctrl-C over anyway, so the terminal's Ctrl-C stopped it."""
    server = judge_server(oracle, latency=0.3)
    project.set(judge={"base_url": server.url, "concurrency": 4})
    project.pairs(good_bad_rows(12))
    code, err = signalled_round(project, server, signal.SIGINT, after=4, ignore_ctrl_c=True)
    assert code == 0, err
    assert len(server.requests) == 24 and project.run_json("round")["status"] == "nothing_to_do"


def test_a_judge_outage_stops_the_round_at_once_naming_the_url(project: Project) -> None:
    """Issue 10: with the endpoint down, a round used to spend every pair's retries (49 s
    for 30 pairs) and exit 0. Now one connection check stops it, exit 1, no round opened."""
    from tests.conftest import free_port

    project.pairs(good_bad_rows(30))
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    started = time.monotonic()
    result = project.run("round", "--judge-url", url)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: judge at {url} cannot be reached: connection refused; is the server "
        "running? (check judge.base_url)"
    ]
    assert time.monotonic() - started < 10
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        assert store.rounds() == [] and store.call_totals()["calls"] == 0
    unknown = project.run("round", "--judge-url", "http://no-such-host.invalid/v1")
    assert unknown.exit_code == 1 and "unknown host 'no-such-host.invalid'" in unknown.stderr
    assert project.run("round").exit_code == 0  # the real endpoint: the round runs


def asked(server: Any, needle: str) -> int:
    """Requests the judge server received whose messages contain ``needle``."""
    return sum(needle in json.dumps(body["messages"]) for body in server.requests)


def test_a_poison_pair_goes_to_humans_after_max_failed_attempts(
    project: Project, judge_server
) -> None:
    """Issue 10: a pair the endpoint always answers with 503 kept its round open for ever,
    so pairs added later were never judged. Now, after judge.max_failed_attempts failed
    requests (across runs), it goes to humans as judge_error and the round finishes."""

    def responder(shown: Shown) -> Scripted:
        return Scripted(status=503) if "question 0?" in shown.prompt else oracle(shown)

    server = judge_server(responder)
    project.set(judge={"base_url": server.url, "max_retries": 0, "max_failed_attempts": 2})
    project.pairs(good_bad_rows(4))
    unfinished = project.run("round", "--json")
    assert unfinished.exit_code == 1 and "Round 1 is not finished" in unfinished.stderr
    first = json.loads(unfinished.stdout)  # the summary, as when it finishes
    assert first["status"] == "incomplete" and first["unjudged"] == 1
    # the dry run of the open round says it resumes it; the source is not read for it
    project.pairs(good_bad_rows(6))
    said = " ".join(project.run("round", "--dry-run").stdout.split())
    assert "Dry run: round 1 resumes, nothing judged" in said
    assert "pairs read from source" not in said and "not read (new rows: next round)" in said
    plan = project.run_json("round", "--dry-run")
    assert plan["resumed"] and plan["pairs_in_round"] == 1 and plan["requests_sent"] == 2
    project.pairs(good_bad_rows(4))
    second = project.run_json("round")
    assert second["status"] == "completed" and second["resumed"]
    assert second["review"] == {"judge_error": 1}
    requests_so_far = asked(server, "question 0?")
    assert requests_so_far == 4  # two runs, both orders
    # later pairs are judged in the next round; the poison pair is never requested again
    project.pairs(good_bad_rows(6))
    third = project.run_json("round")
    assert third["round_id"] == 2 and third["status"] == "completed" and third["judged"] == 2
    assert asked(server, "question 0?") == requests_so_far
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        row = store.db.execute(
            "SELECT reason, signals FROM verdicts WHERE reason = 'judge_error'"
        ).fetchone()
    assert "failed 2 times (judge.max_failed_attempts), last: 503" in row["signals"]


def test_a_billed_reply_with_no_choices_is_not_paid_for_twice(
    project: Project, judge_server
) -> None:
    """Issue 10: a 200 with empty choices but billed usage was requested (and paid) again
    on every run: 6 charges in 3 runs. Now it is a judge_error for humans at once."""

    def responder(shown: Shown) -> Scripted:
        if "question 0?" in shown.prompt:
            return Scripted(fault="no_choices")
        return oracle(shown)

    server = judge_server(responder)
    project.set(judge={"base_url": server.url})
    project.pairs(good_bad_rows(3))
    data = project.run_json("round")
    assert data["status"] == "completed" and data["review"] == {"judge_error": 1}
    charged = asked(server, "question 0?")
    assert charged == 2  # one per order, each billed once
    for _ in range(2):
        project.pairs(good_bad_rows(3))
        assert project.run_json("round")["status"] in ("completed", "nothing_to_do")
    assert asked(server, "question 0?") == charged


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.jsonl", b"", "the file is empty; add pairs or point source.path elsewhere"),
        ("blank.csv", b"\n\n", "the file is empty"),
        (
            "binary.jsonl",
            bytes(range(256)) * 8,
            "rows is a usable pair (first: {path}:1: ",
        ),
        ("wrong.csv", b"question,answer\nq,a\n", "columns found: question, answer; configured"),
        (
            "fields.jsonl",
            b'{"question": "q", "a": "x", "b": "y"}\n{"question": "r"}\n',
            "none of its 2 rows is a usable pair (first: {path}:1: missing field 'prompt'); "
            "is it the right file, with the field names set in [source]?",
        ),
    ],
)
def test_a_source_with_no_usable_pair_is_a_one_line_error(
    project: Project, name: str, content: bytes, needle: str
) -> None:
    """Issue 10: empty, binary and wrong-column files printed 'Nothing to do', exit 0."""
    path = project.root / name
    path.write_bytes(content)
    project.set(source={"path": str(path)})
    result = project.run("round")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ")
    assert needle.format(path=path) in lines[0]
    assert project.server.requests == []  # type: ignore[attr-defined]


def test_only_new_pairs_are_checked_and_an_unchanged_source_is_not_read(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: the near-duplicate check ran on every source row at every round."""
    import labeler.importing as importing
    import labeler.rounds as rounds_module
    from labeler.config import load_config
    from labeler.pairs import near_identical as real_check
    from labeler.pairs import read_source as real_read

    # counting wrappers around the real functions (they still do their work)
    checked: list[str] = []
    reads: list[int] = []

    def counting(a: str, b: str, threshold: float) -> float | None:
        checked.append(a)
        return real_check(a, b, threshold)

    def reading(cfg: Any) -> Any:
        reads.append(1)
        return real_read(cfg)

    monkeypatch.setattr(importing, "near_identical", counting)
    monkeypatch.setattr(importing, "read_source", reading)

    def settled(path: Path) -> None:
        """Last modified a minute ago: not 'racily clean', so an import may remember it."""
        old = time.time() - 60
        os.utime(path, (old, old))

    path = project.pairs(good_bad_rows(6))
    settled(path)
    cfg = load_config(project.config, environ={})
    phases: set[str] = set()
    first = rounds_module.run_round(cfg, on_progress=lambda p: phases.add(p.phase))
    assert first.new_pairs == 6 and len(checked) == 6 and reads == [1]
    assert phases == {"importing", "judging"}
    with path.open("a") as fh:  # two more pairs appended
        for row in good_bad_rows(2, start=6):
            fh.write(json.dumps(row) + "\n")
    settled(path)
    second = rounds_module.run_round(cfg)
    assert second.new_pairs == 2 and second.source_pairs == 8
    assert len(checked) == 8 and reads == [1, 1]  # only the two new pairs were checked
    third = rounds_module.run_round(cfg)
    assert third.status == "nothing_to_do" and third.source_pairs == 8
    assert len(checked) == 8 and reads == [1, 1]  # unchanged file: not read at all


def test_near_identical_long_answers() -> None:
    """Long answers: near copies are found, different ones are not (rapidfuzz, with the
    length bound first; difflib took minutes on a pair of 150 KB answers)."""
    from labeler.pairs import near_identical

    rng = __import__("random").Random(3)
    words = [f"w{rng.randrange(5000)}" for _ in range(25_000)]
    a = " ".join(words)
    edited = " ".join(w if i % 400 else "changed" for i, w in enumerate(words))
    similar = near_identical(a, edited, 0.95)
    assert similar is not None and 0.95 <= similar < 1.0
    other = " ".join(f"w{rng.randrange(5000)}" for _ in range(25_000))
    assert near_identical(a, other, 0.95) is None
    assert near_identical(a, a[: len(a) // 2], 0.95) is None  # the length bound alone
    assert near_identical("same", "same", 0.95) == 1.0


def test_a_swapped_copy_is_a_duplicate_not_a_contradiction(project: Project) -> None:
    """Issue 11: 40 pairs plus their 40 swapped copies exported 29 rows covering 16
    distinct pairs. A pair is the same whatever the order of its responses."""
    rows = good_bad_rows(6)
    swapped = [{**r, "response_a": r["response_b"], "response_b": r["response_a"]} for r in rows]
    project.pairs([*rows, *swapped[:3], rows[0]])  # three swapped copies, one repeated row
    data = project.run_json("round")
    assert data["new_pairs"] == 6 and data["source_pairs"] == 6
    assert data["skipped"] == {"swapped_duplicate": 3, "duplicate": 1}  # each said
    said = project.run_json("report", "--quality")["skipped_rows"]
    assert any(r.endswith(":10: the same pair as row 1") for r in said), said
    # the other swapped copies arriving later are duplicates of stored pairs
    project.pairs([*rows, *swapped, rows[1]])
    again = project.run_json("round")
    assert again["status"] == "nothing_to_do" or again.get("new_pairs", 0) == 0
    assert again["skipped"] == {"swapped_duplicate": 6, "duplicate": 1}
    out = project.root / "all.jsonl"
    assert project.run("export", "--to", "jsonl", "--out", str(out)).exit_code == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(exported) == 6 and len({r["prompt"] for r in exported}) == 6


def test_old_state_files_get_pair_keys(tmp_path: Path) -> None:
    """Migration 2 fills pair_key for pairs stored before it existed."""
    import sqlite3

    from labeler.pairs import make_pair, pair_key
    from labeler.store import SCHEMA_VERSION

    db = tmp_path / "state.sqlite"
    with Store(db) as store:
        store.import_pairs([make_pair("p", "a", "b")], [])
    raw = sqlite3.connect(db)
    raw.execute("UPDATE pairs SET pair_key = NULL")
    raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with Store(db) as store:
        assert store.existing_keys([pair_key("p", "b", "a")]) == {pair_key("p", "a", "b")}
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)


def test_a_judge_failing_on_every_request_stops_the_round(project: Project, judge_server) -> None:
    """Issue 12: a judge answering 400 to every request left the round 'completed' (exit 0)
    with every pair sent to paid human review as judge_error."""
    broken = {"on": True}

    def responder(shown: Shown) -> Scripted:
        return Scripted(status=400) if broken["on"] else oracle(shown)

    server = judge_server(responder)
    project.set(judge={"base_url": server.url, "concurrency": 2})
    project.pairs(good_bad_rows(60))
    result = project.run("round")
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"judge at {server.url} failed" in line and "injected 400" in line
    assert "none went to humans" in line
    assert len(server.requests) < 30  # stopped early, not 120 requests
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        assert store.db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == 0
        assert (
            store.failed_attempts(
                [r["cache_key"] for r in store.db.execute("SELECT cache_key FROM calls")]
            )
            == {}
        )
    for _ in range(3):  # a broken endpoint never pushes its pairs to humans, however often
        assert project.run("round").exit_code == 1
    broken["on"] = False
    data = project.run_json("round")
    assert (
        data["status"] == "completed"
        and data["judged"] == 60
        and "judge_error" not in data["review"]
    )


def test_a_judge_without_logprobs_gets_a_confidence_from_samples(
    project: Project, judge_server
) -> None:
    """Issue 12: confidence from N samples (configurable) when there are no logprobs."""
    import random

    rng = random.Random(5)

    def sampled(shown: Shown) -> Scripted:
        assert shown.body["temperature"] == 1.0 and "logprobs" not in shown.body
        good = "A" if "good" in shown.a else "B"
        other = "B" if good == "A" else "A"
        # right 80% of the time on even questions, a coin flip on odd ones
        p = 0.8 if int(shown.prompt.split()[1].rstrip("?")) % 2 == 0 else 0.5
        return Scripted(f"{good if rng.random() < p else other} HIGH\nsampled")

    server = judge_server(sampled)
    project.set(judge={"base_url": server.url, "logprobs": False, "samples": 5})
    project.pairs(good_bad_rows(8))
    plan = project.run_json("round", "--dry-run")
    data = project.run_json("round")
    assert data["judged"] == 8 and len(server.requests) == 8 * 2 * 5
    assert plan["requests_sent"] == 80  # the dry run counts the samples too
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        shares = [
            json.loads(r["signals"]).get("p_verdict")
            for r in store.db.execute("SELECT signals FROM verdicts")
        ]
    # a vote share, not a HIGH/LOW count: values like 0.6, 0.8, 1.0
    assert any(s is not None and 0.5 < s < 1.0 for s in shares)
    project.pairs(good_bad_rows(8))
    assert project.run_json("round")["status"] == "nothing_to_do"  # cached: 0 new requests
    assert len(server.requests) == 80


def test_refusals_that_name_the_pair_are_the_pairs_own(project: Project, judge_server) -> None:
    """Review finding: over-long pairs at the head of a round each get a different 400
    (their own token count); that is not a failing judge, so the round finishes and those
    pairs go to humans instead of blocking every later run."""

    def responder(shown: Shown) -> Scripted:
        number = int(shown.prompt.split()[1].rstrip("?"))
        if number < 20:
            return Scripted(
                status=400,
                error_message="This model's maximum context length is 8192 tokens. However, "
                f"your messages resulted in {9000 + number} tokens.",
            )
        return oracle(shown)

    server = judge_server(responder)
    project.set(judge={"base_url": server.url, "concurrency": 2})
    project.pairs(good_bad_rows(30))
    data = project.run_json("round")
    assert data["status"] == "completed" and data["review"].get("judge_error") == 20


def test_a_bad_value_is_not_taken_for_an_unsupported_parameter(
    project: Project, judge_server
) -> None:
    """Review finding: "top_logprobs must be between 0 and 5" switched logprobs off for
    good. A bad value is a refused request, not a parameter to drop."""

    def responder(shown: Shown) -> Scripted:
        if shown.body.get("top_logprobs", 0) > 5:
            return Scripted(status=400, error_message="top_logprobs must be between 0 and 5")
        return oracle(shown)

    server = judge_server(responder)
    project.set(judge={"base_url": server.url, "top_logprobs": 10})
    project.pairs(good_bad_rows(2))
    data = project.run_json("round")
    assert data["review"] == {"judge_error": 2}
    project.set(judge={"top_logprobs": 5})
    project.pairs(good_bad_rows(4))
    assert project.run_json("round")["accepted"] == 2
    assert all(b.get("logprobs") for b in server.requests[-4:])  # still asked for


def test_an_invalid_judge_url_is_one_line_and_a_config_error(project: Project) -> None:
    """A bad ``judge.base_url`` is the setting's fault (exit 2), refused before any work;
    a user trial: the dry run accepted ``notaurl`` and priced the round."""
    project.pairs(good_bad_rows(2))
    for url, said in [
        ("http://127.0.0.1:99999/v1", "'http://127.0.0.1:99999/v1' has an invalid port"),
        ("notaurl", "'notaurl' is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)"),
        ("http://[::1/v1", "'http://[::1/v1' is not an http(s) URL"),  # (a review)
    ]:
        for args in (("round",), ("round", "--dry-run")):
            result = project.run(*args, "--judge-url", url)
            assert result.exit_code == 2, result.output
            assert (
                result.stderr.strip().splitlines()[0].startswith(f"error: judge.base_url = {said}")
            )
            assert len(result.stderr.strip().splitlines()) == 1
    assert not (project.root / ".labeler" / "state.sqlite").exists()  # before any work


def test_a_refused_request_is_not_sent_again_after_a_kill(project: Project, judge_server) -> None:
    """A refusal (here a billed reply with no choices) waits for the end of the run before
    its pair goes to humans; a run killed in between must not pay for it again."""

    def responder(shown: Shown) -> Scripted:
        return Scripted(fault="no_choices") if "question 0?" in shown.prompt else oracle(shown)

    server = judge_server(responder)
    project.set(judge={"base_url": server.url})
    project.pairs(good_bad_rows(3))
    assert project.run_json("round")["review"] == {"judge_error": 1}
    charged = asked(server, "question 0?")
    db = project.root / ".labeler" / "state.sqlite"
    with Store(db) as store, store.transaction() as tx:  # as a kill -9 before the flush leaves it
        (pair_id,) = tx.execute(
            "SELECT pair_id FROM verdicts WHERE reason = 'judge_error'"
        ).fetchone()
        tx.execute("DELETE FROM verdicts WHERE pair_id = ?", (pair_id,))
        tx.execute("UPDATE pairs SET state = 'imported' WHERE id = ?", (pair_id,))
        tx.execute("UPDATE rounds SET status = 'running'")
    again = project.run_json("round")
    assert again["resumed"] and again["review"] == {"judge_error": 1}
    assert asked(server, "question 0?") == charged  # not requested, not paid, again


def test_a_path_with_brackets_is_shown_whole(project: Project) -> None:
    """A user trial: the skipped row of ``p[bold]x.jsonl`` was shown as ``px.jsonl:1``
    (the terminal's markup took the brackets)."""
    name = "p[bold]x.jsonl"
    project.pairs([{"prompt": "only a prompt"}, *good_bad_rows(2)], name=name)
    project.set(source={"path": name}, review={"enabled": False})
    shown = project.run("round", env={"COLUMNS": "300"}).stdout
    assert f"skipped {project.root / name}:1:" in shown
