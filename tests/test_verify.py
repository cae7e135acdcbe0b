"""`labeler verify` (issue 21) against a real HTTP server speaking the reward model routes
of vLLM (/pooling, /classify) and text-embeddings-inference (/predict)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import pytest

from labeler.demo.reward_server import Faults, RewardServer
from labeler.store import Store
from tests.conftest import Project, decide_as_humans, good_bad_rows

PLANTED = {"question 3?", "question 8?", "question 13?"}  # the reward model disagrees here


def scorer(prompt: str, response: str) -> float:
    """Right on every pair but the planted ones: 'good' scores 1, 'poor' 0."""
    good = "good" in response
    return float(good != (prompt in PLANTED))


@pytest.fixture
def reward() -> Iterator[Any]:
    servers: list[RewardServer] = []

    def start(faults: Faults | None = None) -> RewardServer:
        server = RewardServer(scorer, faults or Faults()).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


def judged(project: Project, server: RewardServer, api: str, **verify: Any) -> Project:
    """20 judge-labelled rows in the dataset (the oracle judge, provisional labels kept)."""
    project.set(
        review={"enabled": False},
        verify={"api": api, "base_url": server.url, "batch_size": 16, **verify},
    )
    project.pairs(good_bad_rows(20))
    assert project.run_json("round")["judged"] == 20
    return project


@pytest.mark.parametrize(
    ("api", "requests"), [("vllm_pooling", 40), ("vllm_classify", 3), ("tei", 3)]
)
def test_verify_flags_what_the_reward_model_contradicts_and_never_asks_twice(
    project: Project, reward: Any, api: str, requests: int
) -> None:
    server = reward()
    p = judged(project, server, api, price_per_1k=2.0)
    first = p.run_json("verify")
    assert first["rows"] == 20 and first["scored_now"] == 40 and first["cached"] == 0
    assert len(server.requests) == requests == first["requests"]  # batched where it can be
    assert first["flagged"] == {"judge": 3} and first["checked"] == {"judge": 20}
    assert first["cost"] == pytest.approx(40 * 2.0 / 1000)
    # the dataset carries what verify found
    ds = datasets.load_from_disk(str(p.root / ".labeler" / "dataset"))
    flagged = {r["prompt"] for r in ds if r["rm_flag"]}
    assert flagged == PLANTED
    assert all(r["rm_margin"] < 0.1 for r in ds if r["rm_flag"])
    assert all(r["rm_margin"] == 1.0 for r in ds if not r["rm_flag"])
    # scores are paid work: a second verify sends nothing and says the same
    again = p.run_json("verify")
    assert (again["scored_now"], again["cached"], again["requests"]) == (0, 40, 0)
    assert len(server.requests) == requests
    assert again["flagged"] == first["flagged"]
    with Store(p.root / ".labeler" / "state.sqlite") as store:
        totals = store.reward_totals()
    assert (totals["requests"], totals["scored"]) == (requests, 40)
    assert totals["cost"] == pytest.approx(0.08)  # the ledger: every request, priced
    # the export carries the columns with provenance
    out = p.root / "out.jsonl"
    assert p.run("export", "--to", "jsonl", "--out", str(out)).exit_code == 0
    assert '"rm_flag": true' in out.read_text() and '"rm_margin"' in out.read_text()


def test_human_and_judge_labels_are_counted_apart_and_review_sends_judge_labels_back(
    project: Project, reward: Any
) -> None:
    server = reward()
    project.set(calibration={"cold_start_audit_rate": 0.5}, routing={"audit_rate": 0.0})
    p = judged(project, server, "tei", action="review")
    humans = decide_as_humans(p)  # the cold-start audit's pairs, decided by reviewers
    assert 0 < humans < 20
    data = p.run_json("verify")
    assert sum(data["checked"].values()) == 20 and set(data["checked"]) == {"human", "judge"}
    assert sum(data["flagged"].values()) == 3
    judge_flagged = data["flagged"].get("judge", 0)
    assert data["sent_to_review"] == judge_flagged
    assert data["dataset_rows"] == 20 - judge_flagged  # out until humans decide them
    status = p.run_json("status")
    assert status["states"]["needs_review"] == judge_flagged
    report = p.run_json("report")
    by_reason = report["rounds"][0]["to_humans_by_reason"]
    assert by_reason.get("rm_disagrees", 0) == judge_flagged
    assert report["verify"]["flagged"] == data["flagged"]


def test_drop_leaves_flagged_rows_out_of_the_dataset(project: Project, reward: Any) -> None:
    project.set(calibration={"cold_start_audit_rate": 1.0})  # every pair to reviewers
    p = judged(project, reward(), "vllm_classify", action="drop", price_per_1k=10.0)
    assert decide_as_humans(p) == 20
    assert p.run_json("report")["total"]["delivered"] == 20
    data = p.run_json("verify")
    assert data["flagged"] == {"human": 3}
    assert data["dropped"] == 3 and data["dataset_rows"] == 17
    ds = datasets.load_from_disk(str(p.root / ".labeler" / "dataset"))
    assert not {r["prompt"] for r in ds} & PLANTED
    # dropped rows are not delivered: no savings are counted for them; nor are they
    # waiting (a user trial: "waiting for evidence: 3 pairs (0 provisional, 3 with
    # reviewers)"); and the reward model's money is spent money
    report = p.run_json("report")
    total = report["total"]
    assert (total["delivered"], total["dropped"], total["waiting"]) == (17, 3, 0)
    paid = report["verify"]["cost"]
    assert paid > 0 and total["check_cost"] == pytest.approx(paid)
    spent = total["judge_cost"] + total["human_cost"] + paid
    assert total["saved"] == pytest.approx(total["all_human_cost"] - spent)
    notes = " ".join(report["savings_notes"])
    assert "3 rows dropped by `labeler verify`" in notes and "with reviewers" not in notes
    assert "for the reward model" in notes
    none = p.run(
        "export", "--to", "jsonl", "--out", str(p.root / "j.jsonl"), "--label-source", "judge"
    )
    assert none.exit_code == 1  # says what the filters and verify left out
    assert "3 rows dropped by labeler verify, --label-source judge left none" in none.stderr
    status = p.run_json("status")["savings"]  # the same total as `report`
    assert status["spent"] == pytest.approx(spent) and status["saved"] == total["saved"]
    # back with another action: the rows return, marked
    assert p.run_json("verify", "--action", "flag")["dataset_rows"] == 20
    assert p.run_json("report")["total"]["delivered"] == 20


def test_scores_are_kept_as_they_return_when_a_later_request_fails(
    project: Project, reward: Any
) -> None:
    failing = reward(Faults(fail_after=1))
    p = judged(project, failing, "tei", concurrency=1, model="rm")  # requests of 16, 16, 8
    assert p.run("verify").exit_code == 1
    p.set(verify={"base_url": reward().url})  # the same model served elsewhere
    data = p.run_json("verify")
    assert (data["cached"], data["scored_now"]) == (16, 24)  # the first request was kept
    # an unnamed model is keyed by its server: another server's model is scored anew
    p.set(verify={"base_url": reward().url, "model": ""})
    assert p.run_json("verify")["scored_now"] == 40


def test_5xx_is_retried_and_400_is_final(project: Project, reward: Any) -> None:
    flaky = reward(Faults(fail_first=2))
    p = judged(project, flaky, "tei", max_retries=3, batch_size=64)
    assert p.run_json("verify")["flagged"] == {"judge": 3}
    assert len(flaky.requests) == 3  # two 500s, then the answer
    refusing = reward(Faults(status=400))
    p.set(verify={"base_url": refusing.url})
    p.pairs(good_bad_rows(22))  # two new rows to score
    p.run_json("round")
    result = p.run("verify")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "HTTP 400" in result.stderr and "Traceback" not in result.output
    assert len(refusing.requests) == 1  # a 400 is not retried


@pytest.mark.parametrize(
    ("faults", "api", "message"),
    [
        (Faults(malformed=True), "vllm_pooling", "a score must be a finite number"),
        (Faults(), "vllm_pooling", "the reply is not what"),  # a route it does not serve
    ],
)
def test_a_reply_in_another_shape_is_one_line(
    project: Project, reward: Any, faults: Faults, api: str, message: str, tmp_path: Path
) -> None:
    server = reward(faults)
    p = judged(project, server, api)
    if not faults.malformed:  # the server speaks TEI's shape where vLLM's is expected
        server.answer = lambda path, body: (200, [[{"score": 1.0, "label": "x"}]])  # type: ignore[method-assign]
    result = p.run("verify")
    assert result.exit_code == 1, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_verify_without_a_server_says_what_to_set(project: Project) -> None:
    project.set(review={"enabled": False})
    project.pairs(good_bad_rows(2))
    project.run_json("round")
    result = project.run("verify")
    assert result.exit_code == 1
    assert "verify.base_url is empty" in result.stderr
    # (trial) a URL without its scheme: one line, not a traceback
    for url in ("localhost", "127.0.0.1:18013"):
        result = project.run("verify", env={"LABELER_VERIFY_BASE_URL": url})
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == (
            f"error: verify.base_url = '{url}' is not an http(s) URL (e.g. http://127.0.0.1:8000)"
        )


@pytest.mark.slow
def test_a_human_label_the_reward_model_contradicts_goes_to_one_more_reviewer(
    review_project: Project, judge_server: Any, reward: Any
) -> None:
    """`verify.action = "review"` on a human label: the next sync reopens its record in
    the real Argilla (as for a tie), another reviewer decides, the first verdict counts."""
    from tests.test_review import add_reviewer, dataset_name, pick_good, review_all, unsure

    p = review_project
    server = reward()
    p.set(
        judge={"base_url": judge_server(unsure).url},
        verify={"api": "tei", "base_url": server.url, "action": "review"},
    )
    p.pairs(good_bad_rows(4))
    assert p.run_json("round")["review_pushed"] == 4
    first = add_reviewer(p, "rita-first")
    ds_id = first.dataset_id(dataset_name(p))
    assert review_all(first, ds_id, pick_good) == 4
    assert p.run_json("sync")["newly_decided"] == 4
    data = p.run_json("verify")  # "question 3?" is planted: the reward model disagrees
    assert data["flagged"] == {"human": 1} and data["asked_again"] == 1
    assert data["dataset_rows"] == 3  # set aside until one more reviewer decides
    synced = p.run_json("sync")
    assert synced["escalated"] == 1  # the record is reopened in Argilla
    second = add_reviewer(p, "sam-second")
    pending = second.pending(ds_id)
    assert [r["fields"]["prompt"] for r in pending] == ["question 3?"]
    assert review_all(second, ds_id, pick_good) == 1
    after = p.run_json("sync")
    assert after["newly_decided"] == 1 and after["dataset_rows"] == 4
    with Store(p.root / ".labeler" / "state.sqlite") as store:
        row = store.db.execute(
            "SELECT h.reviewers, h.decided FROM human_decisions h JOIN pairs p "
            "ON p.id = h.pair_id WHERE p.prompt = 'question 3?'"
        ).fetchone()
    assert tuple(row) == (2, 1)  # both verdicts counted
    assert p.run_json("verify")["asked_again"] == 0  # once per pair


def test_a_dataset_larger_than_a_chunk_is_scored_once_a_chunk_at_a_time(
    project: Project, reward: Any
) -> None:
    """``labeler verify`` reads the texts of the rows it must score ``CHUNK_ROWS`` rows at
    a time (100,000 rows of long answers are never in memory at once): every response
    of a dataset of several chunks is scored once, each row's margin is its own, and an
    interrupted verify resumes from what was stored."""
    from labeler.verify import CHUNK_ROWS

    n = 2 * CHUNK_ROWS + 37
    server = reward(Faults(fail_after=20))  # 400 from the 21st request (64 responses each)
    project.set(
        review={"enabled": False},
        verify={"api": "vllm_classify", "base_url": server.url, "batch_size": 64},
        output={"certified_only": False},
    )
    project.pairs(good_bad_rows(n))
    assert project.run_json("round")["judged"] == n
    cut = project.run("verify", "--json")  # the reward model fails in the second chunk
    assert cut.exit_code == 1, cut.output
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        kept = store.reward_totals()["scored"]
    assert 2 * CHUNK_ROWS <= kept < 2 * n  # the first chunk and part of the second
    server.faults.fail_after = 0
    done = project.run_json("verify")
    assert done["rows"] == n and done["cached"] == kept and done["scored_now"] == 2 * n - kept
    with Store(project.root / ".labeler" / "state.sqlite") as store:
        assert store.reward_totals()["scored"] == 2 * n  # each response once
    assert done["checked"] == {"judge": n} and done["flagged"] == {"judge": 3}


def test_one_more_reviewer_for_a_pair_whose_record_went_with_a_deleted_dataset(
    review_project: Project, judge_server: Any, reward: Any
) -> None:
    """Trial: pairs decided before `sync --repush` have no record in the new dataset; a
    reward model's "one more reviewer" for them left them in review with nothing to
    answer, for good. The next sync pushes them afresh."""
    from labeler.config import load_config
    from labeler.sync import connect
    from tests.test_review import add_reviewer, dataset_name, pick_good, review_all, unsure

    p = review_project
    p.set(
        judge={"base_url": judge_server(unsure).url},
        verify={"api": "tei", "base_url": reward().url, "action": "review"},
    )
    p.pairs(good_bad_rows(4))
    assert p.run_json("round")["review_pushed"] == 4
    first = add_reviewer(p, "rita-gone")
    assert review_all(first, first.dataset_id(dataset_name(p)), pick_good) == 4
    assert p.run_json("sync")["newly_decided"] == 4
    with connect(load_config(p.config, environ={})) as review:
        review.delete_dataset()
    assert p.run_json("sync", "--repush")["repushed"] == 0  # (nothing was in review)
    assert p.run_json("verify")["asked_again"] == 1  # "question 3?"
    synced = p.run_json("sync")
    assert synced["reopened"] == 1 and synced["pushed"] == 1 and synced["awaiting"] == 1
    second = add_reviewer(p, "sam-gone")
    ds_id = second.dataset_id(dataset_name(p))
    assert [r["fields"]["prompt"] for r in second.pending(ds_id)] == ["question 3?"]
    assert review_all(second, ds_id, pick_good) == 1
    after = p.run_json("sync")
    assert after["newly_decided"] == 1 and after["dataset_rows"] == 4 and after["awaiting"] == 0


def test_a_human_label_of_a_dataset_left_behind_is_not_sent_to_one_more_reviewer(
    review_project: Project, judge_server: Any, reward: Any
) -> None:
    """Review: after review.dataset changed, "one more reviewer" for a label decided in
    the old dataset (no longer synced) left the pair in review, answerable nowhere."""
    from tests.test_review import add_reviewer, dataset_name, pick_good, review_all, unsure

    p = review_project
    p.set(
        judge={"base_url": judge_server(unsure).url},
        verify={"api": "tei", "base_url": reward().url, "action": "review"},
    )
    p.pairs(good_bad_rows(4))
    p.run_json("round")
    first = add_reviewer(p, "rita-left")
    assert review_all(first, first.dataset_id(dataset_name(p)), pick_good) == 4
    assert p.run_json("sync")["newly_decided"] == 4
    p.set(review={"dataset": dataset_name(p) + "-new"})
    data = p.run_json("verify")  # "question 3?" is planted
    assert data["asked_again"] == 0 and data["left_behind"] == 1 and data["dataset_rows"] == 4
    shown = p.run("verify", env={"COLUMNS": "400"}).stdout
    assert "; 1 in a review dataset no longer synced" in shown
    synced = p.run_json("sync")
    assert synced["awaiting"] == 0 and synced["dataset_rows"] == 4
