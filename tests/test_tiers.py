"""Judge tiers (a cascade) end to end: `labeler round` against a real local server that
serves a cheap and a strong model; calibration per tier from human verdicts."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from labeler.config import load_config
from labeler.demo.judge_server import JudgeServer, Scripted, Shown, by_model
from labeler.errors import ConfigError
from labeler.routing import Thresholds
from labeler.store import Store
from labeler.thresholds import current
from tests.conftest import Project, decide_as_humans, good_bad_rows, oracle

# a cascade as users configure it: the split of delta is predicted (``split``)
PREDICTED = """
[[judge.tiers]]
model = "small"
name = "cheap"
price_input_per_mtok = 0.1
price_output_per_mtok = 0.4

[[judge.tiers]]
model = "big"
price_input_per_mtok = 2.5
price_output_per_mtok = 10.0
"""
# the tests of a cascade's mechanics fix the split (the cheap tier 0.2, the last 0.8): at
# these judge prices against a human's a cheap tier cannot pay for any share
TIERS = PREDICTED.replace('name = "cheap"\n', 'name = "cheap"\ndelta_share = 0.2\n')


def small(shown: Shown) -> Scripted:
    """Sure (and right) when a response says 'good' and the question number is even;
    unsure otherwise."""
    number = int(shown.prompt.split()[1].rstrip("?"))
    if number % 2 == 0:
        return oracle(shown)
    return Scripted("A LOW\nnot sure", {"A": 0.5, "B": 0.45, "TIE": 0.05})


@pytest.fixture
def cascade(project: Project, judge_server: Callable[..., JudgeServer]) -> Project:
    server = judge_server(by_model({"small": small, "big": oracle}))
    project.set(
        judge={"base_url": server.url},
        review={"enabled": False},
        calibration={
            "cold_start_audit_rate": 1.0,
            "min_labels": 10,
            "min_per_threshold": 5,
            "target_agreement": 0.8,  # the cheap tier tests at its share of delta (0.2)
            "cascade": "per_tier",  # (each tier tested on its own: what these tests test)
        },
    )
    with project.config.open("a") as fh:
        fh.write(TIERS)
    project.server = server  # type: ignore[attr-defined]
    return project


def models(server: JudgeServer) -> Counter[str]:
    return Counter(str(r["model"]) for r in server.requests)


def test_the_strong_tier_judges_only_what_the_cheap_one_passes_on(cascade: Project) -> None:
    server = cascade.server  # type: ignore[attr-defined]
    cascade.pairs(good_bad_rows(240))
    first = cascade.run_json("round")
    # cold start: the cheap tier is certified for nothing, so it passes every pair on
    assert models(server) == {"small": 480, "big": 480}
    tiers = {t["tier"]: t for t in first["tiers"]}
    assert tiers["cheap"]["escalated"] == 240 and tiers["cheap"]["accepted"] == 0
    assert tiers["cheap"]["delta_share"] is None  # no split fixed before a calibration
    assert tiers["big"]["judged"] == 240 and tiers["big"]["requests"] == 480
    assert tiers["big"]["cost"] > 10 * tiers["cheap"]["cost"] > 0
    assert first["judge_cost"] == pytest.approx(tiers["cheap"]["cost"] + tiers["big"]["cost"])

    # reviewers decide round 1; each tier is calibrated on its own verdicts
    assert decide_as_humans(cascade) == 240
    calibrated = cascade.run("calibrate")
    assert calibrated.exit_code == 0, calibrated.output
    cfg = load_config(cascade.config, environ={})
    with Store(cfg.db_path) as store:
        cheap_t = json.loads(store.latest_thresholds(0)["params"])
        assert cheap_t["certified_a"] <= 1.0  # certified where it is sure: its even pairs
        assert store.latest_thresholds(1) is not None

    # round 2: the cheap tier accepts what it is certified for; the strong one sees the rest
    server.requests.clear()
    cascade.pairs(good_bad_rows(40, start=1000), name="more.jsonl")
    cascade.set(source={"path": "more.jsonl"})
    second = cascade.run_json("round")
    tiers = {t["tier"]: t for t in second["tiers"]}
    assert tiers["cheap"]["judged"] == 40
    assert tiers["cheap"]["accepted"] == 20  # the even-numbered pairs
    assert tiers["big"]["judged"] == 20
    assert models(server) == {"small": 80, "big": 40}
    with Store(cfg.db_path) as store:
        by_tier = dict(
            store.db.execute(
                "SELECT tier, COUNT(*) FROM verdicts WHERE round_id = ? GROUP BY tier",
                (second["round_id"],),
            ).fetchall()
        )
        assert by_tier == {0: 20, 1: 20}

    # every accepted label is right, whichever tier accepted it
    ds = sqlite3.connect(cfg.db_path).execute(
        "SELECT p.response_a, v.label FROM verdicts v JOIN pairs p ON p.id = v.pair_id "
        "WHERE v.action = 'accept'"
    )
    for response_a, label in ds:
        assert label == ("A" if "good" in response_a else "B")

    report = cascade.run("report")
    assert report.exit_code == 0
    assert "Judge tiers" in report.output and "cheap" in report.output
    # a rerun sends nothing to either tier
    server.requests.clear()
    assert cascade.run_json("round")["status"] == "nothing_to_do"
    assert not server.requests


def test_a_cascade_round_resumes_in_the_tier_it_stopped_in(
    cascade: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    """The strong model fails for a while: the cheap tier's work is kept, the round stays
    open, and the next run sends only the strong tier's missing requests."""
    failing = {"on": True}

    def flaky_big(shown: Shown) -> Scripted:
        if failing["on"]:
            return Scripted(None, status=503)
        return oracle(shown)

    server = judge_server(by_model({"small": small, "big": flaky_big}))
    cascade.set(judge={"base_url": server.url, "max_retries": 0, "max_failure_share": 1.0})
    cascade.pairs(good_bad_rows(6))
    unfinished = cascade.run("round", "--json")
    assert unfinished.exit_code == 1, unfinished.output
    first = json.loads(unfinished.stdout)
    assert first["status"] == "incomplete" and first["unjudged"] == 6
    assert models(server)["small"] == 12
    failing["on"] = False
    server.requests.clear()
    plan = cascade.run_json("round", "--dry-run")  # priced from the tier each pair waits at
    assert {t["tier"]: t["requests"] for t in plan["tiers"]} == {"cheap": 0, "big": 12}
    second = cascade.run_json("round")
    assert second["status"] == "completed" and second["resumed"]
    assert models(server) == {"big": 12}  # the cheap tier's replies are not paid twice


def test_a_pair_a_tier_gave_up_on_is_said_where_it_waits(
    cascade: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    """A user trial: in a cascade, a pair the cheap tier gave up on (judge.max_failed_attempts)
    goes on to the strong one, but the round's error named the cheap tier's give-up ("failed
    2 times") and told the user to run again. Each tier counts its own attempts; the error
    names the tier the pair waits at and that tier's failure."""

    def boom(judge: Callable[[Shown], Scripted]) -> Callable[[Shown], Scripted]:
        def respond(shown: Shown) -> Scripted:
            if shown.prompt == "question 3?":
                return Scripted(None, status=500, error_message="boom")
            return judge(shown)

        return respond

    server = judge_server(by_model({"small": boom(small), "big": boom(oracle)}))
    cascade.set(judge={"base_url": server.url, "max_retries": 0, "max_failed_attempts": 2})
    cascade.pairs(good_bad_rows(6))
    said = []
    for _ in range(3):
        run = cascade.run("round")
        said.append((run.exit_code, run.stderr.strip()))
    assert said[0][0] == 1 and "1 pairs failed (cheap: 500" in said[0][1], said[0]
    assert said[1][0] == 1 and "1 pairs failed (big: 500" in said[1][1], said[1]
    assert "max_failed_attempts" not in said[1][1]  # (the cheap tier's give-up moved it on)
    assert said[2] == (0, "")  # the strong tier gave up too: humans decide it
    review = cascade.run_json("report")["rounds"][0]["to_humans_by_reason"]
    assert review.get("judge_error") == 1


def test_tier_config_errors_are_one_line(tmp_path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[judge.tiers]]\nmodle = "x"\n')
    with pytest.raises(ConfigError, match=r"judge.tiers\[1\].*did you mean 'model'"):
        load_config(cfg, environ={})
    cfg.write_text('[[judge.tiers]]\nmodel = "x"\n[[judge.tiers]]\nmodel = "x"\n')
    with pytest.raises(ConfigError, match='two judge tiers are named "x"'):
        load_config(cfg, environ={})
    cfg.write_text('[[judge.tiers]]\nmodel = "x"\nguidlines = "g"\n')
    with pytest.raises(ConfigError, match=r"judge.tiers\[1\]: unknown key judge.guidlines") as e:
        load_config(cfg, environ={})  # a tier's allowed keys are its own, not [judge]'s
    assert "guidelines" not in str(e.value) and "max_failed_attempts" not in str(e.value)
    cfg.write_text('[[judge.tiers]]\nmodel = "x"\nguidelines = "g"\n')
    with pytest.raises(ConfigError, match=r"judge.tiers\[1\].guidelines is set for all tiers"):
        load_config(cfg, environ={})
    cfg.write_text(
        '[[judge.tiers]]\nmodel = "x"\ndelta_share = 0.7\n'
        '[[judge.tiers]]\nmodel = "y"\ndelta_share = 0.6\n'
    )
    with pytest.raises(ConfigError, match=r"delta_share values add up to 1\.3; allowed"):
        load_config(cfg, environ={})
    # the last tier takes it all: the cheap tier would test with nothing (it crashed)
    cfg.write_text(
        '[[judge.tiers]]\nmodel = "x"\n[[judge.tiers]]\nmodel = "y"\ndelta_share = 1.0\n'
    )
    with pytest.raises(ConfigError, match="delta_share values add up to 1; allowed"):
        load_config(cfg, environ={})
    cfg.write_text(
        '[[judge.tiers]]\nmodel = "x"\ndelta_share = 0.2\n[[judge.tiers]]\nmodel = "y"\n'
    )
    loaded = load_config(cfg, environ={"LABELER_JUDGE_CONCURRENCY": "3"})
    assert [j.label for j in loaded.judges] == ["x", "y"]
    assert loaded.delta_shares == pytest.approx((0.2, 0.8))
    assert all(j.concurrency == 3 for j in loaded.judges)  # the environment wins over tiers


def sampled_cascade(cascade: Project) -> JudgeServer:
    """The cascade with a 40% calibration sample and 240 pairs to judge."""
    server: JudgeServer = cascade.server  # type: ignore[attr-defined]
    cascade.set(
        judge={"base_url": server.url},
        review={"enabled": False},
        calibration={"cold_start_audit_rate": 0.4, "min_labels": 10, "target_agreement": 0.8},
    )
    cascade.pairs(good_bad_rows(240))
    return server


def test_an_uncertified_first_tier_judges_only_its_calibration_sample(cascade: Project) -> None:
    """Issue 17: until the cheap tier is certified it judges only its calibration sample
    (drawn like any audit, with the last tier's draw); every other pair goes straight to
    the strong tier, so the cascade pays the cheap tier for 40% of the pairs, not for all
    of them. And every pair of that sample reaches a human through the strong tier (which,
    uncertified, samples its pairs with the same draw at the same rate), so the cheap tier's
    calibration sample is fully labelled at no extra human cost."""
    from labeler.routing import calibration_draw

    server = sampled_cascade(cascade)
    out = cascade.run_json("round")
    cfg = load_config(cascade.config, environ={})
    with Store(cfg.db_path) as store:
        ids = [r["id"] for r in store.db.execute("SELECT id FROM pairs")]
        rows = list(store.db.execute("SELECT pair_id, reason FROM escalations WHERE tier = 0"))
        to_humans = {
            r["pair_id"]
            for r in store.db.execute("SELECT pair_id FROM verdicts WHERE tier = 1 AND sampled")
        }
    reasons = Counter(r["reason"] for r in rows)
    sample = {pid for pid in ids if calibration_draw(cfg.routing.seed, pid, 2) < 0.4}
    assert 60 < len(sample) < 130
    assert models(server) == {"small": 2 * len(sample), "big": 480}
    assert reasons["not_sampled"] == 240 - len(sample)
    judged = {r["pair_id"] for r in rows if r["reason"] != "not_sampled"}
    assert judged == sample and sample <= to_humans
    tiers = {t["tier"]: t for t in out["tiers"]}
    assert tiers["cheap"]["requests"] == 2 * len(sample)


def predicted_cascade(cascade: Project) -> JudgeServer:
    """``sampled_cascade`` with the split of delta left to the prediction."""
    server = sampled_cascade(cascade)
    text = cascade.config.read_text()
    cascade.config.write_text(text.replace("delta_share = 0.2\n", ""))
    return server


def test_the_split_is_predicted_once_enough_pairs_are_judged_and_kept(
    cascade: Project,
) -> None:
    """A cascade with no delta_share fixes its split at the end of the first round whose
    prediction set every tier judged holds enough pairs (``split.MIN_SAMPLE``), from their
    scores (no label read, so no calibration is waited for), and keeps it. At these prices
    (a human label costs ~1,000 strong calls) and 240 pairs the cheap tier cannot pay for
    a share: the strong tier takes all of delta, and the cheap tier judges nothing more
    from then on (its first rounds' sample was its last), also in a round run before any
    calibration; a calibration later does not predict again.
    Until then the cheap tier also judged the prediction set (an independent hash draw),
    outside its sample only for the prediction: those pairs are no evidence."""
    from labeler import split
    from labeler.routing import PREDICTION_RATE, calibration_draw, prediction_draw
    from labeler.thresholds import SPLIT_KEY, cold_start, judged, split_terms

    SKIP = "not_sampled"  # passed on unjudged
    server = predicted_cascade(cascade)
    cfg = load_config(cascade.config, environ={})
    seed = cfg.routing.seed

    def round_ids(*rounds: int) -> list[str]:
        marks = ",".join("?" * len(rounds))
        query = f"SELECT id FROM pairs WHERE round_id IN ({marks})"
        with Store(cfg.db_path) as store:
            return [r["id"] for r in store.db.execute(query, rounds)]

    small = cascade.run_json("round", "--limit", "40")
    few = round_ids(1)
    assert len(few) == 40
    assert sum(prediction_draw(seed, i) < PREDICTION_RATE for i in few) < split.MIN_SAMPLE
    assert [t["delta_share"] for t in small["tiers"]] == [None, None]  # too few: pending
    first = cascade.run_json("round", "--limit", "100")  # the round fixes the split itself
    assert [t["delta_share"] for t in first["tiers"]] == [0.0, 1.0]
    # the next round, before any reviewer or calibration: no share, so nothing to judge
    before = models(server).get("small", 0)
    third = cascade.run_json("round")
    assert models(server).get("small", 0) == before and third["tiers"][1]["judged"] == 100
    assert decide_as_humans(cascade) > 0
    assert cfg.delta_shares == pytest.approx((0.2, 0.8))  # the fallback, not used here
    with Store(cfg.db_path) as store:
        evidence = {row["pair_id"] for row, _ in judged(store, cfg, 0) if row["reason"] != SKIP}
        seen = {row["pair_id"] for row, _ in judged(store, cfg, 0, True) if row["reason"] != SKIP}
    ids = round_ids(1, 2)  # the pairs judged until the split was fixed
    sample = {i for i in ids if calibration_draw(seed, i, 2) < 0.4}
    predict = {i for i in ids if prediction_draw(seed, i) < PREDICTION_RATE}
    # the cheap tier judged its sample and the prediction set; only its sample is evidence
    assert seen == sample | predict and evidence == sample and predict - sample
    assert models(server)["small"] == 2 * len(sample | predict)
    out = cascade.run("calibrate")
    assert "no share of the confidence budget" in " ".join(out.output.split())
    with Store(cfg.db_path) as store:
        record = json.loads(store.get_meta(SPLIT_KEY) or "{}")
        assert record["predicted"] and record["shares"] == [0.0, 1.0]
        assert record["sample"] == len(predict)  # the prediction set, not the sample
        assert record["costs"][1] > 10 * record["costs"][0] > 0
        # the costs it compared are those of the prediction set's scores (not the sample's)
        data = [judged(store, cfg, k, True) for k in (0, 1)]
        cold = cold_start(cfg)
        ids, scores = split.common_scores(data, [cold.a, cold.a], lambda i: i in predict)
        assert record["pairs"] == split.digest(ids) == split.digest(list(predict))
        again = split.predict_shares(scores, record["costs"], split_terms(cfg, 240))
        assert again is not None
        assert {str(f): v for f, v in again.costs.items()} == pytest.approx(record["expected"])
        store.set_meta(SPLIT_KEY, json.dumps(record | {"marker": 1}))
    server.requests.clear()
    cascade.pairs(good_bad_rows(40, start=1000), name="more.jsonl")
    cascade.set(source={"path": "more.jsonl"})
    second = cascade.run_json("round")
    assert models(server) == {"big": 80}
    tiers = {t["tier"]: t for t in second["tiers"]}
    assert tiers["cheap"]["requests"] == 0 and tiers["big"]["judged"] == 40
    # it judged none of them: each is said passed on unjudged, not judged
    assert tiers["cheap"]["judged"] == 0 and tiers["cheap"]["passed_unjudged"] == 40
    assert tiers["cheap"]["escalated"] == 40
    # the lead sees the split where the tiers' money is
    assert [t["delta_share"] for t in second["tiers"]] == [0.0, 1.0]
    assert all(t["split_predicted"] for t in second["tiers"])
    shown = " ".join(cascade.run("report").output.split())
    assert "share of the confidence budget: cheap 0%, big 100% (predicted for the project)" in shown
    unjudged = sum(t["passed_unjudged"] for t in cascade.run_json("report")["tiers"])
    # a cold review: counting those apart must not count them twice in the dry run's
    # estimate of what reaches the strong tier (every pair does here)
    cascade.pairs(good_bad_rows(10, start=3000), name="last.jsonl")
    cascade.set(source={"path": "last.jsonl"})
    plan = cascade.run_json("round", "--dry-run")
    assert [t["reach_share"] for t in plan["tiers"]] == [0.0, 1.0]  # (no share: none)
    cascade.set(source={"path": "more.jsonl"})
    assert unjudged > 40 and f"cheap passed on {unjudged} pairs unjudged: until certified" in shown
    decide_as_humans(cascade)
    assert cascade.run("calibrate").exit_code == 0
    with Store(cfg.db_path) as store:
        assert json.loads(store.get_meta(SPLIT_KEY) or "{}")["marker"] == 1  # kept


def test_a_small_first_round_leaves_the_split_pending_until_it_can_be_predicted(
    cascade: Project,
) -> None:
    """A first round too small to predict the split from, reviewed and calibrated before
    the next: no look can be due yet (``split.may_wait``), so the calibration spends
    nothing and leaves the split pending. (It fixed the fallback split, 0.2 / 0.8, for
    good, and the cheap tier then judged its 40% sample in every round.) The next round
    goes on judging the prediction set and fixes the predicted split."""
    from labeler import planned, split
    from labeler.thresholds import SPLIT_KEY, SPLIT_WAITS

    server = predicted_cascade(cascade)
    cfg = load_config(cascade.config, environ={})
    assert cascade.run_json("round", "--limit", "40")["tiers"][0]["delta_share"] is None
    labels = decide_as_humans(cascade)
    assert 0 < labels < planned.first_look_count(0.2, 0.1)
    calibrated = cascade.run("calibrate")
    assert calibrated.exit_code == 0
    # each tier says why nothing was looked at (it said "certificate kept")
    said = " ".join(calibrated.output.split())
    assert said.count("the cascade's split of the confidence budget is pending") == 2, said
    assert said.count(f"the project has {labels} human-decided pairs so far") == 2, said
    assert "certificate kept" not in said
    with Store(cfg.db_path) as store:
        assert store.get_meta(SPLIT_KEY) is None and store.get_meta(SPLIT_WAITS) == "1"
        assert current(store, cfg, 0).spent == current(store, cfg, 1).spent == 0.0
    before = models(server).get("small", 0)
    second = cascade.run_json("round", "--limit", "100")
    assert models(server)["small"] > before  # the cheap tier judged the prediction set
    assert [t["delta_share"] for t in second["tiers"]] == [0.0, 1.0]
    with Store(cfg.db_path) as store:
        record = json.loads(store.get_meta(SPLIT_KEY) or "{}")
    assert record["predicted"] and record["sample"] >= split.MIN_SAMPLE


def test_a_cascades_split_is_fixed_at_its_first_calibration(cascade: Project) -> None:
    """Its looks spend the shares in force then: a later change of judge.delta_share is
    not applied (and the user is told), a changed number of tiers is a one-line error,
    and a project calibrated before the split was stored keeps its config's split."""
    from labeler.thresholds import SPLIT_KEY, split_pending, tier_shares

    sampled_cascade(cascade)
    assert cascade.run("round").exit_code == 0
    decide_as_humans(cascade)
    assert cascade.run("calibrate").exit_code == 0
    cfg = load_config(cascade.config, environ={})
    with Store(cfg.db_path) as store:
        record = json.loads(store.get_meta(SPLIT_KEY) or "{}")
    assert record == {"shares": pytest.approx([0.2, 0.8]), "predicted": False}
    shown = " ".join(cascade.run("report").output.split())
    assert "share of the confidence budget: cheap 20%, big 80% (fixed for the project)" in shown
    text = cascade.config.read_text()
    cascade.config.write_text(text.replace("delta_share = 0.2\n", "delta_share = 0.5\n"))
    out = cascade.run("calibrate")
    assert out.exit_code == 0
    assert "judge.delta_share is not applied" in " ".join(out.output.split())
    with Store(cfg.db_path) as store:  # a project calibrated before the split was stored
        store.db.execute("DELETE FROM meta WHERE key = ?", (SPLIT_KEY,))
        store.db.commit()
    cascade.config.write_text(text.replace("delta_share = 0.2\n", ""))
    cfg = load_config(cascade.config, environ={})
    with Store(cfg.db_path) as store:
        assert not split_pending(store, cfg)  # its rounds judge no prediction set either
        assert tier_shares(store, cfg) == pytest.approx((0.2, 0.8))  # not predicted now
        assert json.loads(store.get_meta(SPLIT_KEY) or "{}")["predicted"] is False
    with cascade.config.open("a") as fh:
        fh.write('\n[[judge.tiers]]\nmodel = "big"\nname = "third"\n')
    out = cascade.run("calibrate")
    assert out.exit_code != 0
    message = " ".join(out.output.split())
    assert "fixed for 2 judge tiers" in message and "Traceback" not in out.output
    # a round is refused before it pays any judge (it ran, paid 3 tiers, then sync failed;
    # with one tier left it judged with a tier that had no share)
    for tiers in (cascade.config.read_text(), text.split("[[judge.tiers]]")[0]):
        cascade.config.write_text(tiers)
        out = cascade.run("round")
        assert out.exit_code == 2 and "fixed for 2 judge tiers" in " ".join(out.stderr.split())


def test_the_cheap_tiers_sample_counts_as_fully_labelled(cascade: Project) -> None:
    """What calibration weighs for the cheap tier: a pair of its calibration sample
    reached a human with chance 1 given that it was in the sample (the strong tier,
    uncertified, sampled it with the same draw), not with the strong tier's 0.4
    (``planned.given_sample``); its draw is rescaled to the sample."""
    from labeler.routing import calibration_draw
    from labeler.thresholds import judged

    sampled_cascade(cascade)
    assert cascade.run("round").exit_code == 0
    assert decide_as_humans(cascade) > 0
    cfg = load_config(cascade.config, environ={})
    with Store(cfg.db_path) as store:
        items = [(row["pair_id"], d) for row, d in judged(store, cfg, 0) if d.signals.label]
        strong = [d for _, d in judged(store, cfg, 1) if d.signals.eligible]
    assert len(items) > 40
    for pair_id, d in items:
        assert d.pi == 1.0 and d.sampled and d.human is not None
        assert d.draw == pytest.approx(calibration_draw(cfg.routing.seed, pair_id, 2) / 0.4)
    assert {d.pi for d in strong} == {0.4}  # the strong tier's own evidence is unchanged


def test_a_middle_tiers_own_audit_is_not_weighed_given_the_sample(cascade: Project) -> None:
    """Three tiers: the first tier's calibration sample is drawn with the last tier's draw.
    A pair of it that a certified middle tier accepted was audited with the middle tier's
    own draw, independent of the sample: it keeps that chance (its audit rate, 0.25
    here), while one the last tier routed is weighed given the sample (1: the last tier,
    uncertified, samples with the same draw at the same rate)."""
    from dataclasses import asdict, replace

    from labeler.thresholds import judged

    server = cascade.server  # type: ignore[attr-defined]

    def mid(shown: Shown) -> Scripted:  # sure on every fourth question only
        if int(shown.prompt.split()[1].rstrip("?")) % 4 == 0:
            return oracle(shown)
        return Scripted("A LOW\nnot sure", {"A": 0.5, "B": 0.45, "TIE": 0.05})

    server.responder = by_model({"small": small, "mid": mid, "big": oracle})
    text = cascade.config.read_text()
    cascade.config.write_text(
        text.replace('[[judge.tiers]]\nmodel = "big"', '[[judge.tiers]]\nmodel = "mid"\n\n'
                     '[[judge.tiers]]\nmodel = "big"')
    )  # fmt: skip
    cascade.set(calibration={"cold_start_audit_rate": 0.4}, routing={"audit_rate": 0.25})
    cascade.pairs(good_bad_rows(240))
    cfg = load_config(cascade.config, environ={})
    assert [j.model for j in cfg.judges] == ["small", "mid", "big"]
    with Store(cfg.db_path) as store:  # the middle tier certified from the start
        t = replace(current(store, cfg, 1), version=1, certified_a=0.9, certified_b=0.9)
        store.save_thresholds(t.a, t.b, None, t.audit_rate, {}, asdict(t), 1)
    assert cascade.run("round").exit_code == 0
    assert decide_as_humans(cascade) > 0
    with Store(cfg.db_path) as store:
        rows = [(row, d) for row, d in judged(store, cfg, 0) if d.signals.label]
    by_mid = [d for row, d in rows if int(row["draw_tier"]) == 1]
    by_big = [d for row, d in rows if int(row["draw_tier"]) == 2]
    assert by_mid and by_big
    assert {d.pi for d in by_mid} == {cfg.routing.audit_rate}
    assert {d.pi for d in by_big} == {1.0}


@pytest.mark.parametrize("split", ["fixed", "predicted"])
def test_the_dry_run_counts_only_the_first_tiers_calibration_sample(
    cascade: Project, split: str
) -> None:
    """The dry run estimates exactly the requests an uncertified first tier will send:
    its calibration sample, and while the split of delta is to be predicted, the
    prediction set too."""
    (sampled_cascade if split == "fixed" else predicted_cascade)(cascade)
    plan = cascade.run_json("round", "--dry-run")
    out = cascade.run_json("round")
    planned = {t["tier"]: t["requests"] for t in plan["tiers"]}
    sent = {t["tier"]: t["requests"] for t in out["tiers"]}
    assert planned["cheap"] == sent["cheap"] < (240 if split == "fixed" else 400)  # of 480
    assert planned["big"] == sent["big"] == 480


def test_in_expected_mode_the_cheap_tier_takes_the_stricter_test(cascade: Project) -> None:
    """planned.earlier_tier_test in the real loop: in expected mode a tier that is not
    the last tests at alpha - delta_k with the high-probability test (its labels reach
    humans through the next tier's routing, where conformal selection is optimistic), so
    its looks come at that test's milestones; the last tier keeps expected mode's."""
    from labeler import planned

    sampled_cascade(cascade)
    cascade.set(calibration={"guarantee": "expected"})
    assert cascade.run("round").exit_code == 0
    assert decide_as_humans(cascade) > 0
    out = cascade.run_json("calibrate")
    tiers = {t["tier"]: t for t in out["recalibration"]["tiers"]}
    cheap, big = tiers["cheap"]["message"], tiers["big"]["message"]
    # target 0.8, delta 0.1 x share: the cheap tier 0.02 (so it tests at 0.18), the big one 0.08
    strict, plain = planned.next_milestone(0, 0.18, 0.02), planned.next_milestone(0, 0.2, 0.02)
    assert strict != plain
    assert f"of {strict} human verdicts before look 1" in cheap, cheap
    # the big tier reached its milestone (78 verdicts) and looked, as expected mode does
    assert planned.next_milestone(0, 0.2, 0.08) < 100 and big.startswith("look 1"), big


@pytest.mark.parametrize("procedure", ["planned", "retest"])
def test_in_expected_mode_a_cheap_tier_is_not_certified_by_conformal_selection(
    cascade: Project, procedure: str
) -> None:
    """The cheap judge is sure on the even questions and wrong on a sixth of them (25 of
    150, enough for a look at 122): conformal selection certifies that region ((1 + 25) /
    150 <= 0.18); the high-probability test a tier that is not the last takes (at 0.18,
    confidence 0.98) does not."""
    server = cascade.server  # type: ignore[attr-defined]
    server.responder = by_model({"small": wrong_on_a_sixth, "big": oracle})
    cheap, big, message = calibrated_in_expected_mode(cascade, procedure)
    assert cheap.certified_a > 1.0, message
    assert big.certified_a <= 1.0  # the strong judge, right on every pair, is certified


@pytest.mark.parametrize("procedure", ["planned", "retest"])
def test_in_expected_mode_a_good_cheap_tier_is_still_certified(
    cascade: Project, procedure: str
) -> None:
    """The stricter test still certifies a cheap judge right on every pair it is sure of
    (the even questions, 150 of 300), and the sync says which test it took."""
    cheap, _, message = calibrated_in_expected_mode(cascade, procedure)
    assert cheap.certified_a <= 1.0 and cheap.guarantee == "expected", message
    if procedure == "retest":
        assert "high_probability test, the stricter test of a tier that is not the last" in (
            message
        )


def calibrated_in_expected_mode(
    cascade: Project, procedure: str
) -> tuple[Thresholds, Thresholds, str]:
    """300 pairs judged, all decided by humans, one sync in expected mode: each tier's
    thresholds and the cheap tier's message."""
    cascade.set(calibration={"guarantee": "expected", "procedure": procedure})
    cascade.pairs(good_bad_rows(300))
    assert cascade.run("round").exit_code == 0
    assert decide_as_humans(cascade) == 300
    out = cascade.run_json("calibrate")
    cfg = load_config(cascade.config, environ={})
    with Store(cfg.db_path) as store:
        cheap, big = current(store, cfg, 0), current(store, cfg, 1)
    return cheap, big, out["recalibration"]["tiers"][0]["message"]


def wrong_on_a_sixth(shown: Shown) -> Scripted:
    number = int(shown.prompt.split()[1].rstrip("?"))
    if number % 12 == 0:
        wrong = "B" if "good" in shown.a else "A"
        return Scripted(f"{wrong} HIGH\nsure", {wrong: 0.95, "A" if wrong == "B" else "B": 0.04})
    return small(shown)


def graded(a: int, b: int, cut: float, high: float, low: float) -> Callable[[Shown], Scripted]:
    """A judge whose confidence spreads over 0.80-0.999 (hash ``a`` of the question), right
    ``high`` of the time above ``cut`` of that spread and ``low`` below (hash ``b``)."""

    def judge(shown: Shown) -> Scripted:
        number = int(shown.prompt.split()[1].rstrip("?"))
        spread = (number * a % 1000) / 1000
        p = round(0.80 + 0.199 * spread, 4)
        good = "A" if "good" in shown.a else "B"
        right = (number * b % 1000) / 1000 < (high if spread >= cut else low)
        said = good if right else ("B" if good == "A" else "A")
        other = "B" if said == "A" else "A"
        return Scripted(f"{said} HIGH\nsure", {said: p, other: (1 - p) * 0.9, "TIE": (1 - p) * 0.1})

    return judge


@pytest.mark.slow
@pytest.mark.parametrize(
    "split", ["fixed", "predicted", "predicted in small rounds", "predicted, cheap tier futile"]
)
def test_the_simulation_replays_a_real_cascade_decision_for_decision(
    project: Project, judge_server: Callable[..., JudgeServer], split: str
) -> None:
    """Every cascade figure comes from ``simulation.run_planned_cascade``; this checks it
    is the real loop's procedure. 2,000 pairs in rounds of 200 go through a cascade
    (`labeler round --limit 200`, reviewers answering every pair sent to them, `labeler
    calibrate`), then the project's end; the simulation replays the same verdicts with the
    same draws. After every round both tiers hold the same certificates as in the
    simulation, and at the end the same number of pairs were judged and certified by each
    tier and sent to humans. ``fixed``: the cheap tier's delta_share is 0.2 (here it is
    certified after some rounds). ``predicted``: the split is predicted at the first
    calibration (``split.predict_shares``, the same in both) from the first round's
    prediction set (``routing.prediction_draw``, which the cheap tier judged in or out of
    its sample); at these prices the cheap tier gets none and judges nothing after the
    first round. In rounds of 25 pairs (400 in all) the split stays pending over several
    calibrations, which take no look (not even futility's: a cheap tier always wrong
    must not carry its labels into the prediction through its floor)."""
    from labeler.calibration import Signals
    from labeler.routing import PREDICTION_RATE, audit_draw, prediction_draw, round_draw
    from labeler.simulation import Settings, SimPair, run_planned_cascade
    from labeler.thresholds import SPLIT_KEY, judged, recalibrate

    cheap, strong = graded(7919, 104729, 0.3, 0.995, 0.7), graded(6007, 15485863, 0.3, 0.99, 0.75)
    if "futile" in split:
        cheap = graded(7919, 104729, 0.3, 0.0, 0.0)
    small_rounds = split != "fixed" and split != "predicted"
    server = judge_server(by_model({"small": cheap, "big": strong}))
    seed = 0
    project.set(
        judge={"base_url": server.url},
        review={"enabled": False},
        routing={"audit_rate": 0.02, "seed": seed},
        calibration={
            "cold_start_audit_rate": 0.4,
            "target_agreement": 0.85,
            "cascade": "per_tier",
        },
    )
    with project.config.open("a") as fh:
        fh.write(TIERS if split == "fixed" else PREDICTED)
    cfg = load_config(project.config, environ={})
    size, rounds, real = (25, 16, []) if small_rounds else (200, 10, [])
    project.pairs(good_bad_rows(size * rounds))
    for k in range(rounds):
        assert project.run("round", "--limit", str(size)).exit_code == 0
        decide_as_humans(project)
        out = project.run("calibrate")
        assert out.exit_code == 0, out.output
        if k == 0 and not small_rounds:  # the user is told why the cheap tier stops judging
            told = "no share of the confidence budget" in " ".join(out.output.split())
            assert told == (split == "predicted"), out.output
        with Store(cfg.db_path) as store:
            real.append((current(store, cfg, 0).certified_a, current(store, cfg, 1).certified_a))
    with Store(cfg.db_path) as store:
        recalibrate(store, cfg, finish=True)
        certified = store.label_status_counts()["certified"]
        decided = store.db.execute("SELECT COUNT(*) FROM human_decisions").fetchone()[0]
        humans = decided + store.state_counts().get("needs_review", 0)
        tiers = [  # with the pairs the cheap tier judged only for the split's prediction
            {row["pair_id"]: d for row, d in judged(store, cfg, t, True) if d.signals.label}
            for t in (0, 1)
        ]
        shown = {
            r["id"]: (int(r["prompt"].split()[1].rstrip("?")), "good" in r["response_a"])
            for r in store.db.execute("SELECT id, prompt, response_a FROM pairs")
        }
        stored = store.get_meta(SPLIT_KEY)
    ids = sorted(shown, key=lambda i: round_draw(seed, i))  # the rounds' order
    truth = {i: "A" if shown[i][1] else "B" for i in ids}
    nothing = Signals("A", 0.0, 0.0, 0.0)  # a pair the tier never judged
    sims = [
        [SimPair(tier[i].signals if i in tier else nothing, truth[i]) for i in ids]
        for tier in tiers
    ]
    draws = tuple(np.array([audit_draw(seed, i, t) for i in ids]) for t in (0, 1))
    settings = Settings(alpha=0.15, delta=0.1, per_round=size, audit_rate=0.02)
    if split == "fixed":
        assert json.loads(stored or "{}") == {"shares": [0.2, 0.8], "predicted": False}
        sim = run_planned_cascade(sims, settings, shares=(0.2, 0.8), draws=draws)
    else:  # the judge prices the loop measured, a human's from the config
        record = json.loads(stored or "{}")
        prices = (*record["costs"], cfg.costs.human_price_per_pair * cfg.reviewers_needed(False))
        predict = np.array([prediction_draw(seed, i) for i in ids])
        sim = run_planned_cascade(sims, settings, draws=draws, prices=prices, predict_draws=predict)
        assert record["predicted"] and sim.shares == pytest.approx(record["shares"])
        if not small_rounds:
            assert record["sample"] == int((predict[:size] < PREDICTION_RATE).sum())  # round 1
    simulated = [x for h in sim.history for x in (h["first"], h["threshold"])]
    assert simulated == pytest.approx([x for pair in real for x in pair])
    assert sim.tier_judged == [len(tiers[0]), len(tiers[1])]
    assert sim.certified == certified and sim.human_labels == humans
    if small_rounds:
        return
    assert real[-1][1] < real[0][1]  # the strong tier is certified
    if split == "fixed":
        assert real[-1][0] < real[0][0]  # and the cheap one
    else:
        assert sim.shares == (0.0, 1.0) and real[-1][0] > 1
        assert len(tiers[0]) < 0.64 * size * 1.5  # its first round's sample and prediction set
    assert sim.tier_judged == [len(tiers[0]), len(tiers[1])]
    assert sim.certified == certified and sim.human_labels == humans
