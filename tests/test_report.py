"""The cost report, its chart, quality flags at import, and the exports."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import datasets
import pytest

from labeler.store import Store
from tests.conftest import Project, decide_as_humans, good_bad_rows


@pytest.fixture
def two_rounds(project: Project) -> Project:
    """Two rounds with the oracle judge: ties go to humans, the rest is accepted. The
    rounds take the file's rows in order (a tie in each round)."""
    project.set(
        review={"enabled": False},
        judge={"price_input_per_mtok": 1.0, "price_output_per_mtok": 2.0},
        routing={"round_order": "source"},
    )
    rows = [
        *good_bad_rows(6),
        {"prompt": "tie?", "response_a": "x", "response_b": "y"},
        *good_bad_rows(3, start=10),
        {"prompt": "tie2?", "response_a": "u", "response_b": "v"},
    ]
    project.pairs(rows)
    project.run_json("round", "--limit", "7")
    project.run_json("round")
    return project


def test_report_numbers_and_chart(two_rounds: Project, tmp_path: Path) -> None:
    p = two_rounds
    chart = tmp_path / "rounds.png"
    data = p.run_json("report", "--chart", str(chart))
    r1, r2 = data["rounds"]
    assert (r1["pairs"], r1["accepted"], r1["to_humans"]) == (7, 6, 1)
    assert (r2["pairs"], r2["accepted"], r2["to_humans"]) == (4, 3, 1)
    with Store(p.root / ".labeler" / "state.sqlite") as store:
        per_round = dict(
            store.db.execute("SELECT round_id, SUM(cost) FROM calls GROUP BY round_id").fetchall()
        )
    assert r1["judge_cost"] == pytest.approx(per_round[1])
    assert r1["human_cost"] == pytest.approx(1 * 0.5)
    # nothing is certified and no human has decided yet: nothing delivered, nothing saved
    assert (r1["delivered"], r1["provisional"], r1["waiting"]) == (0, 6, 7)
    assert r1["all_human_cost"] == 0.0 and r1["savings_factor"] == 0.0
    assert r1["saved"] == pytest.approx(-0.5 - per_round[1])
    assert r1["cost_per_accepted"] == pytest.approx(per_round[1] / 6)
    total = data["total"]
    assert total["pairs"] == 11 and total["saved"] == pytest.approx(r1["saved"] + r2["saved"])
    # the 2 ties with reviewers are in the human cost already: only the 9 provisional
    assert total["waiting_labels"] == 11 and total["waiting_cost"] == pytest.approx(4.5)
    assert data["savings_notes"][0].startswith("nothing certified yet: 9 judge-accepted pairs")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000
    # nothing audited, so every judge acceptance is still provisional (cold start)
    assert data["labels"] == {"human": 0, "certified": 0, "provisional": 9}
    text = p.run("report", "--quality").stdout
    assert "Money per round" in text and "Quality flags" in text
    assert "human cost per pair)" in " ".join(text.split())
    # a trial: the table named the config's mode, not the one its rounds were priced in
    p.set(costs={"human_cost_mode": "time"})
    assert p.run_json("report")["mode"] == "per_pair"
    assert "human cost per pair)" in " ".join(p.run("report").stdout.split())
    assert "0 certified judge, 9 provisional judge" in " ".join(text.split())
    assert "nothing certified yet: 9 judge-accepted pairs wait" in " ".join(text.split())


def test_a_judge_that_certifies_nothing_saves_nothing(two_rounds: Project) -> None:
    """Issue 17: 9 judge-accepted pairs, all provisional, used to count as 2x savings. Once
    reviewers decide their 2 pairs, the project has delivered what an all-human one
    would have, for the judge's cost on top: at most 1.0x, and the report says why."""
    p = two_rounds
    assert decide_as_humans(p) == 2
    data = p.run_json("report")
    total = data["total"]
    assert (total["delivered"], total["human_decided"], total["certified"]) == (2, 2, 0)
    assert total["all_human_cost"] == pytest.approx(2 * 0.5)
    assert 0.9 < total["savings_factor"] <= 1.0
    assert total["saved"] == pytest.approx(-total["judge_cost"])
    assert total["coverage"] == 0.0
    assert (total["waiting"], total["provisional"], total["waiting_labels"]) == (9, 9, 9)
    assert data["savings_basis"] == "delivered"
    text = " ".join(p.run("report").stdout.split())
    assert "nothing certified yet: 9 judge-accepted pairs wait for evidence" in text
    assert "waiting for evidence: 9 pairs (9 provisional, 0 with reviewers)" in text
    status = p.run_json("status")["savings"]
    assert status["savings_factor"] == pytest.approx(total["savings_factor"])
    assert status["delivered"] == 2 and status["notes"] == data["savings_notes"]
    line = " ".join(p.run("status").stdout.split())
    assert "Delivered: 2 pairs (0 certified judge, 2 human)" in line
    assert "not cheaper than all-human" in line and "x cheaper)" not in line


def test_certified_rows_are_what_is_saved(project: Project) -> None:
    """Issue 17: round 1 goes to humans (cold start audits everything), round 2 is
    certified; the all-human baseline is the price times the delivered rows."""
    project.set(
        review={"enabled": False, "min_submitted": 2},
        costs={"human_price_per_pair": 0.4},
        calibration={"cold_start_audit_rate": 1.0, "min_labels": 10, "target_agreement": 0.8},
        routing={"audit_rate": 0.0},  # no drift-watch audits: round 2 is all certified
    )
    project.pairs(good_bad_rows(120))
    project.run_json("round")
    assert decide_as_humans(project) == 120
    assert project.run("calibrate").exit_code == 0
    project.pairs(good_bad_rows(40, start=1000), name="more.jsonl")
    project.set(source={"path": "more.jsonl"})
    second = project.run_json("round")
    assert second["certified"] == 40 and second["delivered"] == 40
    assert second["baseline_cost"] == pytest.approx(40 * 2 * 0.4)
    assert second["coverage"] == 1.0 and second["savings_notes"] == []
    data = project.run_json("report")
    r1, r2 = data["rounds"]
    assert (r1["delivered"], r1["human_decided"], r1["coverage"]) == (120, 120, 0.0)
    assert (r2["delivered"], r2["certified"], r2["coverage"]) == (40, 40, 1.0)
    total = data["total"]
    assert total["delivered"] == 160 and total["waiting"] == 0
    assert total["all_human_cost"] == pytest.approx(0.4 * 2 * 160)
    spent = total["judge_cost"] + total["human_cost"]
    assert total["savings_factor"] == pytest.approx(0.4 * 2 * 160 / spent)
    assert total["coverage"] == pytest.approx(40 / 160)
    for key in ("delivered", "waiting", "waiting_labels", "waiting_cost", "human_decided"):
        assert key in r1 and key in total
    # a user trial: the total row said 0 audits and no reasons whatever the rounds had
    assert total["audited"] == r1["audited"] + r2["audited"] > 0
    agreed = sum(r["audited_agreement"] * r["audited"] for r in (r1, r2) if r["audited"])
    assert total["audited_agreement"] == pytest.approx(agreed / total["audited"])
    assert 0 < total["audited_agreement_lower"] < total["audited_agreement"]
    reasons = Counter(r1["to_humans_by_reason"]) + Counter(r2["to_humans_by_reason"])
    assert total["to_humans_by_reason"] == dict(reasons) and reasons
    # issue 20: one coverage and one count of human verdicts in every command (calibrate
    # used to show "human labels 0" each round and a coverage of judged pairs)
    quality = project.run_json("calibrate")["rounds"]
    for q, r in zip(quality, data["rounds"], strict=True):
        assert (q["coverage"], q["human_decided"], q["delivered"]) == (
            r["coverage"],
            r["human_decided"],
            r["delivered"],
        )
    assert quality[0]["human_decided"] == 120
    assert quality[0]["thresholds_in_force"] == "v0: none certified"
    assert quality[1]["thresholds_in_force"].startswith("v1: >= ")
    assert r2["thresholds"] == quality[1]["thresholds_in_force"]
    assert quality[1]["accepted_share"] == 1.0
    status = project.run_json("status")
    assert status["human_cost"] == pytest.approx(total["human_cost"])
    assert sum(r["human_cost"] for r in status["rounds"]) == pytest.approx(total["human_cost"])
    text = " ".join(project.run("calibrate").stdout.split())
    assert "v0: none certified" in text and "human labels" not in text
    assert "certified judge labels agree with reviewers >= 80%, with probability >= 90%" in text


def test_near_identical_responses_are_flagged_or_dropped(project: Project) -> None:
    near = {
        "prompt": "say hi",
        "response_a": "Hello there, how are you today?",
        "response_b": "Hello there, how are you today!",
    }
    project.pairs([*good_bad_rows(2), near])
    data = project.run_json("round")
    assert data["review"] == {"near_duplicate": 1}
    assert len(project.server.requests) == 4  # type: ignore[attr-defined]  # not judged
    flags = project.run_json("report")["flags"]
    assert [(f["kind"], f["round_id"]) for f in flags] == [("near_duplicate", 1)]
    assert flags[0]["detail"].startswith("similarity 0.9")
    other = project.root / "other.jsonl"
    other.write_text(json.dumps({**near, "prompt": "say hello"}) + "\n")
    project.set(source={"path": "other.jsonl"}, quality={"near_duplicates": "drop"})
    dropped = project.run_json("round")
    assert dropped["status"] == "nothing_to_do" or dropped["skipped"] == {"near_duplicate": 1}


def export(p: Project, *args: str) -> str:
    result = p.run("export", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dpo_export_is_what_trl_expects_and_deterministic(
    two_rounds: Project, tmp_path: Path
) -> None:
    p = two_rounds
    export(p, "--to", "parquet", "--out", str(tmp_path / "a.parquet"))
    export(p, "--to", "parquet", "--out", str(tmp_path / "b.parquet"))
    assert digest(tmp_path / "a.parquet") == digest(tmp_path / "b.parquet")
    export(p, "--to", "parquet", "--no-provenance", "--out", str(tmp_path / "plain.parquet"))
    ds = datasets.Dataset.from_parquet(str(tmp_path / "plain.parquet"))
    # TRL's DPOTrainer takes exactly prompt / chosen / rejected, as non-empty strings
    assert ds.column_names == ["prompt", "chosen", "rejected"] and ds.num_rows == 9
    for column in ds.column_names:
        assert ds.features[column].dtype == "string"
        assert all(isinstance(v, str) and v for v in ds[column])
    assert all("good" in c for c in ds["chosen"])
    card = (tmp_path / "a.parquet.README.md").read_text()
    assert "| rows | 9 |" in card and "simulated" not in card
    assert "gpt-4o-mini" in card and "guidelines hash" in card
    # issue 17: 9 provisional rows in the file, yet nothing delivered and nothing saved
    assert "| pairs delivered (certified judge + human-decided) | 0 (0 + 0) |" in card
    assert "| all-human cost of the delivered pairs / savings | 0.00 USD / 0.00x |" in card
    assert "| still waiting (not counted as saved) | 11 pairs, up to 11 more" in card


def test_kto_jsonl_and_disk_exports(two_rounds: Project, tmp_path: Path) -> None:
    p = two_rounds
    export(p, "--format", "kto", "--to", "jsonl", "--out", str(tmp_path / "k.jsonl"))
    rows = [json.loads(line) for line in (tmp_path / "k.jsonl").read_text().splitlines()]
    assert len(rows) == 18
    assert {r["label"] for r in rows} == {True, False}
    assert all(("good" in r["completion"]) == r["label"] for r in rows)
    assert {"pair_id", "label_source", "confidence", "round"} <= set(rows[0])
    export(p, "--out", str(tmp_path / "ds"))
    export(p, "--out", str(tmp_path / "ds"))  # replacing a previous export
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert ds.num_rows == 9 and (tmp_path / "ds" / "README.md").exists()
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith(".")) == []


def test_an_export_never_replaces_what_it_did_not_write(
    two_rounds: Project, tmp_path: Path
) -> None:
    """``--out .`` once replaced the project folder, config and state included, with the
    export; ``--out pairs.jsonl`` the source. An export replaces only an earlier export."""
    p = two_rounds
    state = p.root / ".labeler" / "state.sqlite"
    before = {x: digest(x) for x in (p.config, p.root / "pairs.jsonl")}
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    (tmp_path / "prefs.parquet").write_bytes(b"PAR1 not an export")
    cases = [
        (("--out", str(p.root)), "is not an earlier export"),
        (("--out", str(foreign)), "is not an earlier export"),
        (("--to", "jsonl", "--out", str(p.root / "pairs.jsonl")), "its card pairs.jsonl.README.md"),
        (("--to", "parquet", "--out", str(state)), "is not an earlier --to parquet export"),
        (("--out", str(tmp_path / "prefs.parquet")), "a .parquet name for --to disk"),
    ]
    saved = tmp_path / "saved"  # any save_to_disk folder (an hf_disk source, say)
    datasets.Dataset.from_dict({"x": [1, 2]}).save_to_disk(str(saved))
    export(p, "--out", str(tmp_path / "ours"))
    (tmp_path / "link").symlink_to(tmp_path / "ours")
    (tmp_path / "notes.README.md").write_text("my notes")  # a card's path, no export
    cases += [
        (("--out", str(saved)), "is not an earlier export"),
        (("--out", str(tmp_path / "link")), "is a symbolic link"),
        (("--to", "jsonl", "--out", str(tmp_path / "notes")), "or its card notes.README.md"),
    ]
    for args, said in cases:
        result = p.run("export", *args)
        assert result.exit_code == 1 and said in result.stderr, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert {x: digest(x) for x in before} == before
    assert datasets.load_from_disk(str(saved))["x"] == [1, 2]
    assert (tmp_path / "notes.README.md").read_text() == "my notes"
    (tmp_path / "empty").mkdir()
    export(p, "--out", str(tmp_path / "empty"))  # an empty folder is nothing to lose
    # a split export is refused whole: the train split is not rewritten before the test
    # split's path is found to hold something else
    split = tmp_path / "s.jsonl"
    export(p, "--to", "jsonl", "--out", str(split), "--test-size", "0.5")
    train = digest(tmp_path / "s.train.jsonl")
    (tmp_path / "s.test.jsonl.README.md").write_text("edited by hand")
    result = p.run("export", "--to", "jsonl", "--out", str(split), "--test-size", "0.2")
    assert result.exit_code == 1 and digest(tmp_path / "s.train.jsonl") == train
    # with the provisional labels in, no split's card says some were left out
    both = tmp_path / "b.jsonl"
    export(p, "--to", "jsonl", "--out", str(both), "--test-size", "0.5", "--include-provisional")
    for name in ("train", "test"):
        card = (tmp_path / f"b.{name}.jsonl.README.md").read_text()
        assert "| provisional judge labels left out | 0 |" in card
    assert (foreign / "notes.txt").read_text() == "mine"
    assert (tmp_path / "prefs.parquet").read_bytes() == b"PAR1 not an export"
    export(p, "--to", "parquet", "--out", str(tmp_path / "a.parquet"))
    export(p, "--to", "parquet", "--out", str(tmp_path / "a.parquet"))  # an earlier export
    assert p.run_json("report")["total"]["pairs"] == 11  # the project is still there


def test_a_chart_path_that_cannot_be_written_is_one_line(
    two_rounds: Project, tmp_path: Path
) -> None:
    """A user trial: an empty --chart path, or one under a file, was a traceback (the
    reliability diagram of ``calibrate --plot`` is written the same way)."""
    p = two_rounds
    (tmp_path / "file").write_text("x")
    for args, said in [
        (("report", "--chart", ""), "a chart is written to a file"),
        (("report", "--chart", str(tmp_path / "file" / "c.png")), "cannot write the chart"),
        (("report", "--chart", str(tmp_path / "c.txt")), "a chart is a PNG picture"),
        # refused before the recalibration, not after it changed the state
        (("calibrate", "--plot", str(tmp_path / "rel.svg")), "a chart is a PNG picture"),
        (("export", "--to", "parquet", "--out", str(tmp_path / "x.jsonl")), "(or use --to jsonl)"),
        (("export", "--out", str(tmp_path / "x.parquet")), "a .parquet name for --to disk"),
        # a user trial: a typo in the folder made a new folder tree without a word
        (("report", "--chart", str(tmp_path / "typo" / "c.png")), f"folder {tmp_path / 'typo'} "),
        (("calibrate", "--plot", str(tmp_path / "typo" / "r.png")), "does not exist; create it"),
        (("export", "--out", str(tmp_path / "typo" / "ds")), f"folder {tmp_path / 'typo'} does "),
        (("export", "--to", "jsonl", "--out", str(tmp_path / "a" / "b" / "x.jsonl")), "a/b does"),
        (("export", "--to", "parquet", "--out", str(tmp_path / "file" / "x.parquet")), "is a file"),
        (("export", "--out", str(tmp_path / "file" / "ds")), "is a file, not a folder"),
    ]:
        result = p.run(*args)
        assert result.exit_code == 1, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and said in result.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["file", "proj"]  # nothing written


def test_a_chart_replaces_only_an_earlier_chart(project: Project, tmp_path: Path) -> None:
    """A user trial: ``report --chart`` and ``calibrate --plot`` replaced any file at their
    path (a user's own picture was lost). They replace an earlier chart of labeler's, and
    refuse anything else in one line, as ``export`` does; labeler's own copy of the
    reliability diagram in the state folder is replaced as before."""
    p = project
    p.set(review={"enabled": False}, calibration={"cold_start_audit_rate": 1.0})
    p.pairs(good_bad_rows(30))
    p.run_json("round")
    assert decide_as_humans(p) == 30  # (labelled pairs: a reliability diagram to draw)
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"\x89PNG\r\n\x1a\n my own picture")
    for args in (("report", "--chart", str(mine)), ("calibrate", "--plot", str(mine))):
        result = p.run(*args)
        assert result.exit_code == 1 and "is not a chart labeler wrote" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert mine.read_bytes().endswith(b"my own picture")
    chart, plot = tmp_path / "rounds.png", tmp_path / "rel.png"
    for args in (("report", "--chart", str(chart)), ("calibrate", "--plot", str(plot))):
        assert p.run(*args).exit_code == 0 and p.run(*args).exit_code == 0  # and again
    assert chart.stat().st_size > 1000 and plot.stat().st_size > 1000
    own = Path(p.run_json("calibrate")["plot"])
    assert own.name == "reliability.png" and own.parent.name == ".labeler"
    own.write_bytes(b"stale")  # (a copy from before charts were marked)
    assert p.run("calibrate").exit_code == 0 and own.read_bytes().startswith(b"\x89PNG")


def test_push_to_hub_needs_a_token(two_rounds: Project, tmp_path: Path) -> None:
    result = two_rounds.run(
        "export",
        "--out",
        str(tmp_path / "x.parquet"),
        "--to",
        "parquet",
        "--push-to-hub",
        "someone/prefs",
    )
    assert result.exit_code == 1 and "HF_TOKEN" in result.stderr
    assert not (tmp_path / "x.parquet").exists()  # said before anything is written
    # a push that fails (here: a name the hub refuses, checked before any network) says
    # the local export stands, and never shows the token
    token = "hf_secretsecretsecret1234"
    failed = two_rounds.run(
        "export", "--out", str(tmp_path / "x.parquet"), "--to", "parquet", "--include-provisional",
        "--push-to-hub", "not a repo!!", env={"HF_TOKEN": token},
    )  # fmt: skip
    assert failed.exit_code == 1 and "push to not a repo!! failed" in failed.stderr
    assert f"the local export {tmp_path / 'x.parquet'} was written" in failed.stderr
    assert token not in failed.stderr + failed.stdout and (tmp_path / "x.parquet").exists()
    assert [x.name for x in tmp_path.iterdir() if x.name.startswith(".")] == []  # (no staging)


def test_round_summary_and_report_agree_and_history_is_not_repriced(project: Project) -> None:
    """Issue 11: with review.min_submitted = 3 the round summary said 162 USD and the
    report 486 for the same round; a price change re-priced old rounds."""
    project.set(review={"min_submitted": 3, "enabled": False}, costs={"human_price_per_pair": 2.0})
    project.pairs(
        [
            *good_bad_rows(4),
            {"prompt": "q?", "response_a": "same thing", "response_b": "same thing!"},
        ]
    )
    summary = project.run_json("round")
    to_humans = sum(summary["review"].values())
    assert to_humans >= 1
    assert summary["human_cost"] == pytest.approx(to_humans * 3 * 2.0)
    (row,) = project.run_json("report")["rounds"]
    assert row["human_cost"] == pytest.approx(summary["human_cost"])
    assert row["all_human_cost"] == pytest.approx(summary["baseline_cost"])
    assert row["saved"] == pytest.approx(summary["saved"])
    project.set(review={"min_submitted": 1}, costs={"human_price_per_pair": 100.0})
    (again,) = project.run_json("report")["rounds"]
    assert again["human_cost"] == pytest.approx(summary["human_cost"])  # as it was priced


def test_each_round_keeps_the_currency_it_was_priced_in(project: Project) -> None:
    """A review: `report` (and `status`) showed every round's money in today's
    costs.currency, though each round keeps the currency it was priced in: a change of
    currency relabelled history, and totals added unlike money without a word."""
    project.set(review={"enabled": False}, routing={"round_order": "source"})
    project.pairs(good_bad_rows(6))
    project.run_json("round", "--limit", "3")
    project.set(costs={"currency": "EUR"})  # prices the next round, not the first
    data = project.run_json("report")
    assert data["currency"] == "USD" and data["rounds"][0]["currency"] == "USD"
    assert project.run_json("status")["currency"] == "USD"
    assert "Money per round (USD;" in project.run("report").stdout
    project.run_json("round")
    data = project.run_json("report")
    assert [r["currency"] for r in data["rounds"]] == ["USD", "EUR"]
    assert data["currency"] == data["total"]["currency"] == "EUR+USD"
    said = (
        "rounds were priced in different currencies (EUR: round 2; USD: round 1): each "
        "round's money is in its own, and totals add them as they are (no exchange rate), "
        "in no one currency"
    )
    assert data["savings_notes"][0] == said
    text = " ".join(project.run("report").stdout.split())
    assert "Money per round (each round in its own currency;" in text and said in text
    assert " 1 USD 0.0" in text and " 2 EUR 0.0" in text and " total EUR+USD 0.0" in text
    status = project.run_json("status")
    assert [r["currency"] for r in status["rounds"]] == ["USD", "EUR"]
    assert status["currency"] == "EUR+USD" and status["savings"]["notes"][0] == said
    shown = " ".join(project.run("status").stdout.split())
    judge_cost = status["rounds"][0]["judge_cost"]
    assert f"{judge_cost:,.4f} USD" in shown


def test_a_trl_dataset_goes_through_the_loop_and_back_to_trl(project: Project) -> None:
    """A dataset in TRL's implicit-prompt format (no prompt column, each response the
    whole conversation) is judged and exported in TRL's conversational format, the
    prompt's turns kept."""
    system = {"role": "system", "content": "Be brief."}
    rows = []
    for r in good_bad_rows(30):
        turns = [system, {"role": "user", "content": r["prompt"]}]
        said = [[{"role": "assistant", "content": r[k]}] for k in ("response_a", "response_b")]
        rows.append({"chosen": turns + said[0], "rejected": turns + said[1]})
    project.pairs(rows)
    project.set(source={"response_a_field": "chosen", "response_b_field": "rejected"})
    data = project.run_json("round")
    assert data["new_pairs"] == 30 and not data["skipped"]
    out = project.root / "trl.jsonl"
    result = project.run("export", "--to", "jsonl", "--out", str(out), "--conversational")
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(exported) == 30
    for row in exported:
        assert row["prompt"][0] == system and row["prompt"][1]["role"] == "user"
        assert "is good" in row["chosen"][0]["content"]  # the test judge prefers 'good'


def test_export_options_and_multi_turn_prompts(project: Project) -> None:
    """Issue 11: TRL's conversational format, multi-turn source prompts, --label-source,
    --min-confidence, --test-size."""
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "question 99?"},
        {"role": "assistant", "content": "Which part?"},
        {"role": "user", "content": "the whole of it"},
    ]
    rows = [
        *good_bad_rows(40),
        {"prompt": turns, "response_a": "answer 99 is good", "response_b": "answer 99 is poor"},
        {"prompt": [{"role": "assistant", "content": "hi"}], "response_a": "x", "response_b": "y"},
    ]
    project.pairs(rows)
    data = project.run_json("round")
    assert data["new_pairs"] == 41 and data["skipped"] == {"bad_messages": 1}
    out = project.root / "conv.jsonl"
    result = project.run("export", "--to", "jsonl", "--out", str(out), "--conversational")
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    multi = [r for r in exported if len(r["prompt"]) > 1]
    assert len(multi) == 1 and multi[0]["prompt"] == turns
    assert multi[0]["chosen"] == [{"role": "assistant", "content": "answer 99 is good"}]
    single = next(r for r in exported if len(r["prompt"]) == 1)
    assert single["prompt"][0]["role"] == "user" and single["rejected"][0]["role"] == "assistant"
    # Parquet keeps the message lists typed (what TRL loads)
    pq = project.root / "conv.parquet"
    assert (
        project.run("export", "--to", "parquet", "--out", str(pq), "--conversational").exit_code
        == 0
    )
    ds = datasets.Dataset.from_parquet(str(pq))
    assert ds.num_rows == 41 and isinstance(ds[0]["prompt"], list)
    # filters: judge labels only, high confidence only; nothing by humans here
    human = project.run(
        "export", "--to", "jsonl", "--out", str(project.root / "h.jsonl"), "--label-source", "human"
    )
    # no row left: refused in one line, nothing written (an empty JSONL does not load)
    assert human.exit_code == 1 and not (project.root / "h.jsonl").exists()
    assert (
        "no row to export (the project's labels: 0 human, 0 certified, 41 provisional"
        in human.stderr
    )
    assert "--label-source human left none); nothing written" in human.stderr
    high = project.root / "high.jsonl"
    refused = project.run("export", "--to", "jsonl", "--out", str(high), "--min-confidence", "0.99")
    assert refused.exit_code == 1 and not high.exists()  # the test judge reports 0.95
    assert "--min-confidence 0.99 left none" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    nan = project.run("export", "--to", "jsonl", "--out", str(high), "--min-confidence", "nan")
    assert nan.exit_code == 2 and "nan is not a number" in nan.stderr and not high.exists()
    tiny = project.run("export", "--to", "jsonl", "--out", str(high), "--test-size", "1e-7")
    assert tiny.exit_code == 1 and "the test split would have none of the 41 pairs" in tiny.stderr
    assert not list(project.root.glob("high*"))
    # a fixed test split: the same pairs on the same side every time
    split = project.root / "split.jsonl"
    first = project.run("export", "--to", "jsonl", "--out", str(split), "--test-size", "0.25")
    assert first.exit_code == 0 and "test:" in first.stdout
    assert "Wrote 41 DPO rows as a train and a test split" in " ".join(first.stdout.split())
    train = (project.root / "split.train.jsonl").read_text().splitlines()
    test = (project.root / "split.test.jsonl").read_text().splitlines()
    assert len(train) + len(test) == 41 and 3 <= len(test) <= 20
    for name, lines in (("train", train), ("test", test)):  # each card, its own rows
        card = (project.root / f"split.{name}.jsonl.README.md").read_text()
        assert f"| rows | {len(lines)} |" in card
        assert "| selection | provisional too; --test-size 0.25 |" in card
    # a user trial: a filtered or reshaped export's card read like the default one's
    conv_card = (project.root / "conv.parquet.README.md").read_text()
    assert "| selection | provisional too; --conversational (messages) |" in conv_card
    project.run("export", "--to", "jsonl", "--out", str(split), "--test-size", "0.25")
    assert (project.root / "split.test.jsonl").read_text().splitlines() == test
    # a folder split loads as one DatasetDict (it lacked dataset_dict.json), again after a re-export
    folder = project.root / "splitdir"
    for _ in range(2):
        assert project.run("export", "--out", str(folder), "--test-size", "0.25").exit_code == 0
        loaded = datasets.load_from_disk(str(folder))
        assert loaded["train"].num_rows == len(train) and loaded["test"].num_rows == len(test)
    # a DatasetDict the user saved there, or an unsplit export: refused, left as they were
    # (a cold review: the first had its index replaced, the second shadowed the splits)
    other = project.root / "other"
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict({"x": [1]})}).save_to_disk(
        str(other)
    )
    before = (other / "dataset_dict.json").read_text()
    clash = project.run("export", "--out", str(other), "--test-size", "0.25")
    assert clash.exit_code == 1 and "is not a dataset_dict.json a labeler export wrote" in (
        clash.stderr
    )
    assert (other / "dataset_dict.json").read_text() == before
    assert sorted(p.name for p in other.iterdir()) == ["dataset_dict.json", "validation"]
    plain = project.root / "plain"
    assert project.run("export", "--out", str(plain)).exit_code == 0
    shadow = project.run("export", "--out", str(plain), "--test-size", "0.25")
    assert shadow.exit_code == 1 and "holds a dataset itself" in shadow.stderr
    assert not (plain / "train").exists()


def test_the_rounds_chart_answers_the_leads_questions() -> None:
    """Issue 11: the target line, lower bounds with their n, cumulative savings, and the
    judge's cost visible."""
    from labeler.charts import rounds_figure

    rounds = [
        {
            "round": i,
            "judge_cost": 0.02,
            "human_cost": h,
            "all_human_cost": 100.0,
            "coverage": c,
            "audited_agreement": a,
            "audited_agreement_lower": lo,
            "audited": n,
        }
        for i, h, c, a, lo, n in (
            (1, 98.0, 0.02, None, None, 0),
            (2, 35.0, 0.65, 0.89, 0.63, 9),
            (3, 40.0, 0.60, 0.92, 0.73, 13),
        )
    ]
    fig = rounds_figure(rounds, "USD", 0.85)
    left, right = fig.axes[:2]
    texts = [t.get_text() for t in left.texts] + [t.get_text() for t in right.texts]
    assert "saved 126.94 USD on delivered pairs (1.7x cheaper)" in texts  # 300 / 173.06
    assert "judge: 0.0600 USD in all" in texts
    assert "n=9" in texts and "n=13" in texts
    assert any(
        list(line.get_ydata()) == [85.0, 85.0] for line in right.get_lines()
    )  # the target agreement line
    cumulative = next(
        line for line in left.get_lines() if line.get_label() == "delivered pairs, all by hand"
    )
    assert list(cumulative.get_ydata()) == [100.0, 200.0, 300.0]


def test_the_rounds_chart_does_not_call_a_loss_saved() -> None:
    """A user trial: a project that cost more than labeling by hand was shaded green and
    annotated "saved -562.20 USD ... (0.7x cheaper)"."""
    from labeler.charts import rounds_figure

    quality = {"coverage": 0.1, "audited_agreement": None, "audited_agreement_lower": None}
    rounds = [
        {"round": 1, "judge_cost": 5.0, "human_cost": 150.0, "all_human_cost": 100.0},
        {"round": 2, "judge_cost": 5.0, "human_cost": 60.0, "all_human_cost": 100.0},
    ]
    rounds = [r | quality | {"audited": 0} for r in rounds]
    fig = rounds_figure(rounds, "USD", 0.85)
    left = fig.axes[0]
    texts = [t.get_text() for t in left.texts]
    assert "20.00 USD more than all by hand on delivered pairs (0.91x: not cheaper)" in texts
    assert not any(t.startswith("saved") for t in texts)
    shaded = {c.get_label() for c in left.collections}
    assert "cost more than by hand" in shaded and "saved" not in shaded  # never ahead
    # the reward model's money (no round's) is spent money at the last point, as in the total
    fig = rounds_figure(rounds[:1], "USD", 0.85, extra_spent=0.0)
    assert any(t.get_text().startswith("55.00 USD more") for t in fig.axes[0].texts)
    fig = rounds_figure(rounds[:1], "USD", 0.85, extra_spent=10.0)
    assert any(t.get_text().startswith("65.00 USD more") for t in fig.axes[0].texts)


def test_the_rounds_chart_leaves_a_round_without_coverage_out() -> None:
    """A user trial: a round that delivered nothing has no coverage (the report shows
    "-"), and the chart drew it at 0%."""
    import math

    from labeler.charts import rounds_figure

    none = {"audited_agreement": None, "audited_agreement_lower": None, "audited": 0}
    rounds = [
        {"round": i, "judge_cost": 0.02, "human_cost": h, "all_human_cost": a, "coverage": c} | none
        for i, h, a, c in ((1, 0.0, 0.0, None), (2, 35.0, 100.0, 0.65), (3, 0.0, 0.0, None))
    ]
    right = rounds_figure(rounds, "USD", 0.85).axes[1]
    line = next(x for x in right.get_lines() if str(x.get_label()).startswith("coverage"))
    drawn = [float(y) for y in line.get_ydata()]
    assert math.isnan(drawn[0]) and drawn[1] == 65.0 and math.isnan(drawn[2])
