"""A union cascade (``calibration.cascade = "union"``) in the real loop: its routing,
the swap that keeps a pair's delivered label the one its test counted, its config, and
the whole loop replayed by its simulation (``union_simulation``) decision for decision."""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from labeler.calibration import Signals, signals_of
from labeler.config import load_config
from labeler.demo.judge_server import JudgeServer, Scripted, Shown, by_model
from labeler.errors import ConfigError
from labeler.routing import ACCEPT, ESCALATE, REVIEW, Thresholds, route_union
from labeler.store import Store
from labeler.thresholds import current, recalibrate
from labeler.union_loop import holder, pair_scores, view
from tests.conftest import Project, decide_as_humans, good_bad_rows
from tests.test_tiers import PREDICTED, graded

UNION = PREDICTED  # no delta_share: the union test has one confidence budget

CERT = Thresholds(0.8, 0.8, 3, None, 0.05, 0.95, 0.95, 0.4)  # floor 0.8, certificate 0.95
NONE = Thresholds(0.8, 0.8, 1, None, 0.05, 2.0, 2.0, 0.4)  # no certificate yet


@pytest.mark.parametrize(
    ("scores", "t", "draw", "last", "expected"),
    [
        # an earlier tier accepts what reaches the certificate, unless drawn for the audit
        ([0.97], CERT, 0.5, False, (ACCEPT, "confident", 0.05, "certified", 0)),
        ([0.97], CERT, 0.01, False, (ESCALATE, "audit", 1.0, None, -1)),
        ([0.9], CERT, 0.5, False, (ESCALATE, "provisional", 1.0, None, -1)),
        ([0.5], CERT, 0.5, False, (ESCALATE, "low_confidence", 1.0, None, -1)),
        ([0.99], NONE, 0.5, False, (ESCALATE, "provisional", 1.0, None, -1)),
        # the last tier routes on the best score; the pair holds the first tier reaching
        # the certificate (or, while it waits, the floor)
        ([0.9, 0.97], CERT, 0.5, True, (ACCEPT, "confident", 0.05, "certified", 1)),
        ([0.9, 0.85], CERT, 0.5, True, (ACCEPT, "confident", 0.4, "provisional", 0)),
        ([0.5, 0.85], CERT, 0.5, True, (ACCEPT, "confident", 0.4, "provisional", 1)),
        ([0.9, 0.85], CERT, 0.3, True, (REVIEW, "audit", 0.4, None, -1)),
        ([0.97, 0.99], CERT, 0.03, True, (REVIEW, "audit", 0.05, None, -1)),
        ([0.5, 0.7], CERT, 0.5, True, (REVIEW, "low_confidence", 1.0, None, -1)),
        ([0.0, 0.0], CERT, 0.5, True, (REVIEW, "tie", 1.0, None, -1)),
        ([0.99, 0.0], NONE, 0.5, True, (ACCEPT, "confident", 0.4, "provisional", 0)),
    ],
)
def test_route_union(
    scores: list[float], t: Thresholds, draw: float, last: bool, expected: tuple
) -> None:
    decision, holder = route_union(scores, t, draw, last, "tie" if scores[-1] == 0 else None)
    assert (decision.action, decision.reason, decision.pi, decision.status, holder) == expected


def test_a_union_cascade_needs_the_planned_high_probability_absolute_test(tmp_path) -> None:
    config = tmp_path / "config.toml"
    for extra, need in (
        ('procedure = "retest"', 'needs calibration.procedure = "planned"'),
        ('guarantee = "expected"', 'needs calibration.guarantee = "high_probability"'),
        ("[judge]\npanel = 3", "needs no judge panel (judge.panel = 1)"),
        ("[judge]\ndelta_share = 0.1", "needs no judge.delta_share"),
    ):
        config.write_text(f'[calibration]\ncascade = "union"\n{extra}\n{UNION}')
        with pytest.raises(ConfigError) as err:
            load_config(config, environ={})
        assert 'calibration.cascade = "union" ' + need in str(err.value)
        assert "\n" not in str(err.value)
    # auto: a union only where one can be
    for extra, union in (
        ("", True),
        ('guarantee = "expected"', False),
        ("[judge]\npanel = 3", False),
    ):
        config.write_text(f"[calibration]\n{extra}\n{UNION}")
        assert load_config(config, environ={}).wants_union == union
    # with one judge there is no cascade: the key changes nothing
    config.write_text('[calibration]\ncascade = "union"\nprocedure = "retest"\n')
    assert not load_config(config, environ={}).wants_union


CHEAP, STRONG = graded(7919, 104729, 0.3, 0.995, 0.7), graded(6007, 15485863, 0.3, 0.99, 0.75)


@pytest.fixture
def union_project(project: Project, judge_server: Callable[..., JudgeServer]) -> Project:
    """A two-tier union cascade; the cheap judge is right 99.5% of the time in the top
    70% of its confidence, the strong one 99%."""
    return as_union(project, judge_server(by_model({"small": CHEAP, "big": STRONG})))


def as_union(project: Project, server: JudgeServer) -> Project:
    project.set(
        judge={"base_url": server.url},
        review={"enabled": False},
        routing={"audit_rate": 0.02, "seed": 0},
        calibration={"cold_start_audit_rate": 0.4, "target_agreement": 0.85, "cascade": "union"},
    )
    with project.config.open("a") as fh:
        fh.write(UNION)
    project.server = server  # type: ignore[attr-defined]
    return project


def held_labels(db: sqlite3.Connection) -> dict[str, tuple[int, str]]:
    """Each judge-accepted pair's tier and label as the dataset takes them."""
    return {
        pid: (tier, label)
        for pid, tier, label in db.execute(
            "SELECT pair_id, tier, label FROM verdicts WHERE action = 'accept'"
        )
    }


def turning(
    judge: Callable[[Shown], Scripted], after: int, every: int = 2
) -> Callable[[Shown], Scripted]:
    """``judge``, until question ``after``; from there sure (0.999) and wrong on every
    ``every``-th question."""

    def turned(shown: Shown) -> Scripted:
        number = int(shown.prompt.split()[1].rstrip("?"))
        if number < after or number % every:
            return judge(shown)
        wrong = "B" if "good" in shown.a else "A"
        right = "A" if wrong == "B" else "B"
        return Scripted(f"{wrong} HIGH\nsure", {wrong: 0.999, right: 0.0009, "TIE": 0.0001})

    return turned


def spread(a: int, b: int, low: float, right: float) -> Callable[[Shown], Scripted]:
    """A judge whose confidence spreads over ``low``-0.999 (hash ``a`` of the question),
    right ``right`` of the time (hash ``b``)."""

    def judge(shown: Shown) -> Scripted:
        number = int(shown.prompt.split()[1].rstrip("?"))
        p = round(low + (0.999 - low) * (number * a % 1000) / 1000, 4)
        good = "A" if "good" in shown.a else "B"
        said = good if (number * b % 1000) / 1000 < right else ("B" if good == "A" else "A")
        other = "B" if said == "A" else "A"
        return Scripted(f"{said} HIGH\nsure", {said: p, other: (1 - p) * 0.9, "TIE": (1 - p) * 0.1})

    return judge


def verdicts_from_calls(store: Store, cfg: Any) -> dict[str, list[Signals | None]]:
    """Each pair's verdict from each tier, read from the judge's raw replies as cached
    (not from the verdict rows, which a union cascade swaps): None where a tier did not
    judge the pair."""
    from labeler.judging import make_context, order_of
    from labeler.verdicts import combine, read_reply

    ids = [r["id"] for r in store.db.execute("SELECT id FROM pairs")]
    out: dict[str, list[Signals | None]] = {i: [None] * len(cfg.judges) for i in ids}
    for k in range(len(cfg.judges)):
        ctx = make_context(cfg, None, k)
        keys = {(i, slot): ctx.cache_key(i, slot) for i in ids for slot in ctx.slots}
        rows = store.cached_calls(list(keys.values()))
        for i in ids:
            have = {
                slot: read_reply(
                    order_of(slot), row["reply"], json.loads(row["logprobs"] or "null")
                )
                for slot in ctx.slots
                if (row := rows.get(keys[(i, slot)])) is not None
            }
            if len(have) == len(ctx.slots):
                out[i][k] = signals_of(combine(ctx.per_order(have)))
    return out


WORLDS = {
    # (the cheap judge, the strong one, rounds in the source's order, drift watch's rate)
    "good judges, target 0.85": (0.85, False, 0.02),
    "good judges, target 0.95": (0.95, False, 0.02),
    "the cheap judge turns wrong": (0.85, True, 0.1),
    "caps that bind, pairs below the floor": (0.85, False, 0.02),
}


def world(name: str) -> tuple[Callable[[Shown], Scripted], Callable[[Shown], Scripted]]:
    cheap, strong = graded(7919, 104729, 0.3, 0.995, 0.7), graded(6007, 15485863, 0.3, 0.99, 0.75)
    if name == "the cheap judge turns wrong":
        return turning(cheap, 600), strong
    if name == "caps that bind, pairs below the floor":  # a fifth coin flips at 0.999
        return turning(cheap, 0, every=5), spread(6007, 15485863, 0.6, 0.93)
    return cheap, strong


@pytest.mark.slow
@pytest.mark.parametrize("name", list(WORLDS))
def test_the_simulation_replays_a_real_union_cascade_decision_for_decision(
    project: Project, judge_server: Callable[..., JudgeServer], name: str
) -> None:
    """1,200 pairs in rounds of 200 through a union cascade (`labeler round`, reviewers
    answering every pair sent to them, `labeler calibrate`), then the project's end; the
    simulation (``run_union``) replays the same verdicts (read from the judges' raw
    replies) with the same draws. After every round the cascade holds the same
    certificate as in the simulation, and at the end each tier judged and decided as
    many pairs, and as many went to humans. The cheap tier decides pairs, and each
    delivered label is the first tier's whose score reaches the certificate, as the raw
    replies say. The worlds: two targets; rounds in the source's order with the cheap
    judge sure and wrong on half the pairs from the fourth round on (the drift watch,
    audits at 0.1, ends the certificate in both and a new phase begins); and a cheap
    judge sure (0.999) and wrong on a fifth of the pairs, which the consistency caps
    catch, with a strong judge whose confidence goes down to 0.6 (pairs below the
    floor)."""
    from labeler.routing import audit_draw
    from labeler.simulation import Settings, SimPair
    from labeler.union_simulation import run_union

    target, drift, audit = WORLDS[name]
    cheap, strong = world(name)
    server = judge_server(by_model({"small": cheap, "big": strong}))
    seed = 0
    project.set(
        judge={"base_url": server.url},
        review={"enabled": False},
        routing={"audit_rate": audit, "seed": seed, "round_order": "source" if drift else "random"},
        calibration={"cold_start_audit_rate": 0.4, "target_agreement": target, "cascade": "union"},
    )
    with project.config.open("a") as fh:
        fh.write(UNION)
    cfg = load_config(project.config, environ={})
    size, rounds, real, missed = 200, 6, [], []
    project.pairs(good_bad_rows(size * rounds))
    for _ in range(rounds):
        # the dry run's forecast of the strong judge's requests: every pair without a
        # certificate (a new phase too); with one, from the cheap judge's verdicts so far
        plan = project.run_json("round", "--dry-run", "--limit", str(size))
        done = project.run_json("round", "--limit", str(size))
        planned, sent = ({t["tier"]: t["requests"] for t in r["tiers"]} for r in (plan, done))
        assert planned["cheap"] == sent["cheap"] == 2 * size
        if not real or real[-1] >= 1:
            assert planned["big"] == sent["big"] == 2 * size
        else:
            missed.append(abs(planned["big"] - sent["big"]))
        decide_as_humans(project)
        out = project.run("calibrate")
        assert out.exit_code == 0, out.output
        with Store(cfg.db_path) as store:
            both = current(store, cfg, 0), current(store, cfg, 1)
            assert both[0] == both[1]  # one set of thresholds for the cascade
            real.append(both[1].certified_a)
    if not drift:  # (a judge that turns mid-round cannot be foreseen)
        assert missed and np.mean(missed) <= 0.06 * 2 * size  # measured: 6.3-9.5 of 400
    with Store(cfg.db_path) as store:
        recalibrate(store, cfg, finish=True)
        t = current(store, cfg, 1)
        certified = store.label_status_counts()["certified"]
        decided = store.db.execute("SELECT COUNT(*) FROM human_decisions").fetchone()[0]
        humans = decided + store.state_counts().get("needs_review", 0)
        verdicts = verdicts_from_calls(store, cfg)
        held = held_labels(store.db)
        shown = {
            r["id"]: "A" if "good" in r["response_a"] else "B"
            for r in store.db.execute(
                "SELECT id, response_a FROM pairs ORDER BY round_id, round_draw, seq"
            )
        }
    ids = list(shown)  # the rounds' order
    nothing = Signals("A", 0.0, 0.0, 0.0)  # a pair the tier never judged
    sims = [[SimPair(verdicts[i][k] or nothing, shown[i]) for i in ids] for k in (0, 1)]
    draws = np.array([audit_draw(seed, i, 1) for i in ids])
    settings = Settings(alpha=1 - target, delta=0.1, per_round=size, audit_rate=audit)
    sim = run_union(sims, settings, draws=draws)
    assert [h["threshold"] for h in sim.history] == pytest.approx(real)
    judged = [sum(v[k] is not None for v in verdicts.values()) for k in (0, 1)]
    assert sim.tier_judged == judged
    by_tier = Counter(tier for tier, _ in held.values())
    assert sim.certified == certified and sim.human_labels == humans
    assert sim.tier_certified == [by_tier[0], by_tier[1]]
    if drift:  # the certificate ended, and a new phase certified again
        assert any(a < 1 <= b for a, b in itertools.pairwise(real)) and real[-1] < 1
    if "caps" in name:  # the caps bind: the cheap judge's surest bin may not decide
        assert t.caps is not None and min(t.caps[0][1]) < t.certified_a
    # the cascade certified, the cheap tier decides pairs, the strong one judged fewer
    assert real[-1] < 1 and by_tier[0] > 0.05 * certified and judged[1] < judged[0]
    assert Counter(str(r["model"]) for r in server.requests)["big"] == 2 * judged[1]
    # each delivered label is its holder's, as the raw replies say
    for pair_id, (tier, label) in held.items():
        k = holder(pair_scores(verdicts[pair_id], t.caps), t)
        assert (tier, label) == (k, verdicts[pair_id][k].label)


def test_a_union_cascade_delivers_its_cheap_tiers_labels_and_says_so(
    union_project: Project, tmp_path
) -> None:
    """Through the CLI: before a certificate both tiers judge every pair; once one is
    given the cheap tier decides the pairs it is sure of and the strong one judges the
    rest; the round's tier table, the dry run and the report say so, and every exported
    row's label is the one its tier delivers (here, the truth)."""
    import json

    project = union_project
    server = project.server  # type: ignore[attr-defined]
    project.pairs(good_bad_rows(600))
    first = project.run_json("round", "--limit", "200")
    tiers = {t["tier"]: t for t in first["tiers"]}
    assert tiers["cheap"]["judged"] == tiers["big"]["judged"] == 200
    assert tiers["cheap"]["passed_unjudged"] == 0  # (a pair it is surest of holds its label)
    assert tiers["cheap"]["accepted"] + tiers["cheap"]["escalated"] == 200
    assert tiers["big"]["overridden"] == tiers["cheap"]["accepted"] > 0
    for more in (True, False):  # reviewers decide, a calibration, the next round
        decide_as_humans(project)
        out = project.run("calibrate")
        assert out.exit_code == 0, out.output
        if more:
            project.run_json("round", "--limit", "200")
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        assert current(store, cfg, 1).certified_a < 1  # the cascade is certified
    # the dry run forecasts the strong judge's share from the cheap one's verdicts so far:
    # the pairs it could not accept under the certificate (or drawn for the drift watch)
    plan = project.run_json("round", "--dry-run")
    with Store(cfg.db_path) as store:
        t, seen = current(store, cfg, 1), view(store, cfg)
        sure = (seen.scores(t.caps)[0] >= t.certified_a).mean()
        forecast = round(400 * (1 - sure * (1 - t.audit_rate)))
    server.requests.clear()
    third = project.run_json("round")
    tiers = {t["tier"]: t for t in third["tiers"]}
    cheap, big = tiers["cheap"], tiers["big"]
    assert cheap["judged"] == 200 and cheap["accepted"] > 20
    assert big["judged"] == 200 - cheap["accepted"] == big["requests"] // 2
    assert Counter(str(r["model"]) for r in server.requests) == {
        "small": 400,
        "big": big["requests"],
    }
    # the dry run's estimate, from the rounds so far (all before the certificate): no less
    planned = {t["tier"]: t["requests"] for t in plan["tiers"]}
    assert planned == {"cheap": 400, "big": forecast}
    assert abs(forecast - big["requests"]) < 400 - big["requests"]  # nearer than the worst case
    report = project.run("report")
    said = " ".join(report.output.split())
    assert "one certificate for the whole cascade" in said
    assert re.search(r"big also judged [1-9]\d* pairs that carry an earlier tier's label", said)
    decide_as_humans(project)
    assert project.run("calibrate").exit_code == 0
    path = tmp_path / "rows.jsonl"
    assert project.run("export", "--to", "jsonl", "--out", str(path)).exit_code == 0
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    with Store(cfg.db_path) as store:
        counts = store.label_status_counts()
        by_tier = Counter(tier for tier, _ in held_labels(store.db).values())
        verdicts, t = verdicts_from_calls(store, cfg), current(store, cfg, 1)
        texts = {i: a for i, a in store.db.execute("SELECT id, response_a FROM pairs")}
    assert by_tier[0] > 20 and by_tier[1] > 0
    assert len(rows) == counts["human"] + counts["certified"]
    judge = [row for row in rows if row["label_source"] == "judge"]
    assert len(judge) == counts["certified"] > 200
    # every exported judge label is the one the first tier reaching the certificate gave,
    # as its raw replies say (here and there a wrong one: the judges are not perfect)
    for row in judge:
        k = holder(pair_scores(verdicts[row["pair_id"]], t.caps), t)
        label = verdicts[row["pair_id"]][k].label
        assert row["chosen"] == (texts[row["pair_id"]] if label == "A" else row["chosen"])
        assert (row["chosen"] == texts[row["pair_id"]]) == (label == "A")


def test_a_cascades_mode_is_fixed_for_the_project_at_its_first_round(
    union_project: Project,
) -> None:
    """``auto`` (the default) makes a new cascade a union one; a project keeps the mode it
    began with: asking for the other one later, other tiers, settings a union cannot
    take, or (before a certificate) another calibration sample rate is refused in one
    line before any judge call; a project judged before modes were stored ran per tier
    and keeps doing so under ``auto``."""
    from labeler.union_loop import MODE_KEY

    project = union_project
    server = project.server  # type: ignore[attr-defined]
    project.set(calibration={"cascade": "auto"})
    project.pairs(good_bad_rows(40))
    first = project.run_json("round", "--limit", "20")
    assert {t["tier"]: t["judged"] for t in first["tiers"]} == {"cheap": 20, "big": 20}
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        assert json.loads(store.get_meta(MODE_KEY) or "{}")["mode"] == "union"
    server.requests.clear()
    import tomllib

    tiers = tomllib.loads(project.config.read_text())["judge"]["tiers"]
    restore = {"cascade": "auto", "guarantee": "high_probability", "cold_start_audit_rate": 0.4}
    for section, change, says in (
        ("calibration", {"cascade": "per_tier"}, 'cascade = "per_tier", but this project'),
        ("calibration", {"guarantee": "expected"}, "this project's cascade is tested as a union"),
        (
            "judge",
            {"tiers": tiers[1:]},
            "certified for the judge tiers cheap (small), big, and the config",
        ),
        (
            "judge",
            {"tiers": tiers[::-1]},
            "tiers cheap (small), big, and the config has big, cheap (small)",
        ),
        # before a certificate, the calibration sample is drawn at one rate
        ("calibration", {"cold_start_audit_rate": 0.5}, "draws its sample at 0.4 until"),
    ):
        project.set(**{section: change})
        out = project.run("round")
        assert out.exit_code != 0 and says in " ".join(out.output.split()), out.output
        assert len(out.output.strip().splitlines()) == 1 and not server.requests
        project.set(calibration=restore, judge={"tiers": tiers})
    # a calibration under another rate does not change the phase's (no round is locked
    # out): here a look it took saved a version made from that config
    project.set(calibration={"cold_start_audit_rate": 0.5})
    assert project.run("calibrate").exit_code == 0
    with Store(cfg.db_path) as store:
        from dataclasses import asdict, replace

        from labeler.thresholds import cold_start

        saved = replace(cold_start(load_config(project.config, environ={})), version=1)
        assert saved.provisional_audit_rate == 0.5
        store.save_thresholds(saved.a, saved.b, None, saved.audit_rate, {}, asdict(saved), 1)
    project.set(calibration=restore)
    assert project.run_json("round", "--limit", "10")["status"] == "completed"
    with Store(cfg.db_path) as store:
        assert current(store, cfg, 1).provisional_audit_rate == 0.4
    # a project from before: judged, no mode stored -> per tier, and stored as such
    with Store(cfg.db_path) as store:
        store.db.execute("DELETE FROM meta WHERE key = ?", (MODE_KEY,))
    second = project.run_json("round")
    tiers = {t["tier"]: t for t in second["tiers"]}
    assert tiers["cheap"]["passed_unjudged"] > 0  # a per-tier cheap tier: its sample only
    with Store(cfg.db_path) as store:
        assert json.loads(store.get_meta(MODE_KEY) or "{}")["mode"] == "per_tier"


def verdict_rows(project: Project) -> list[tuple[Any, ...]]:
    """Every verdict row of the project: what was decided of each pair, by whom, how."""
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        return store.db.execute(
            "SELECT pair_id, round_id, tier, action, reason, label, confidence, pi, sampled, "
            "status, thresholds_version FROM verdicts ORDER BY pair_id"
        ).fetchall()


@pytest.mark.parametrize("cut_in_round", [1, 3])
def test_a_union_round_cut_off_in_its_strong_tier_resumes_to_the_same_labels(
    cut_in_round: int, judge_server: Callable[..., JudgeServer], tmp_path
) -> None:
    """The strong judge starts failing halfway through a round (before the certificate,
    when both tiers judge every pair, or after it, when the strong one judges what the
    cheap one passes on): the round stays open with every reply so far kept; the next
    run sends only the strong judge's missing requests; and the project ends with the
    verdicts, labels and certificate of a twin whose round was never cut off."""
    failing = {"after": -1}  # fail every "big" request once this many were answered
    answered = Counter[str]()

    def flaky(shown: Shown) -> Scripted:
        if 0 <= failing["after"] <= answered["big"]:
            return Scripted(None, status=503)
        answered["big"] += 1
        return STRONG(shown)

    server = judge_server(by_model({"small": CHEAP, "big": flaky}))
    cut, twin = (as_union(Project(tmp_path / name, server.url), server) for name in ("cut", "twin"))
    for p in (cut, twin):
        p.set(judge={"max_retries": 0, "max_failure_share": 1.0})
        p.pairs(good_bad_rows(600))
        for round_no in (1, 2, 3):
            server.requests.clear()
            if p is cut and round_no == cut_in_round:
                failing["after"] = answered["big"] + 150
                out = p.run("round", "--limit", "200", "--json")
                assert out.exit_code == 1, out.output
                assert json.loads(out.stdout)["status"] == "incomplete"
                failing["after"] = -1
                sent = Counter(str(r["model"]) for r in server.requests)
                server.requests.clear()
                plan = p.run_json("round", "--dry-run")  # what the resume will send
                planned = {t["tier"]: t["requests"] for t in plan["tiers"]}
                resumed = p.run_json("round", "--limit", "200")
                assert resumed["status"] == "completed" and resumed["resumed"]
                again = Counter(str(r["model"]) for r in server.requests)
                assert set(again) == {"big"}  # no cheap reply is paid twice
                assert again["big"] == sent["big"] - 150  # only the failed ones, again
                # (a pair may have one order's reply already: the dry run prices both)
                assert planned["cheap"] == 0 and 0 <= planned["big"] - again["big"] <= 1
                if round_no == 1:  # before a certificate both tiers judge every pair
                    assert sent == {"small": 400, "big": 400}
                else:
                    assert sent["small"] == 400 and 150 < sent["big"] < 400
            else:
                assert p.run_json("round", "--limit", "200")["status"] == "completed"
            decide_as_humans(p)
            assert p.run("calibrate").exit_code == 0
    assert_twins(cut, twin)


def assert_twins(one: Project, other: Project) -> None:
    """Two union projects ended alike: every verdict row, the certificate (one was given)
    and where each label stands."""
    assert verdict_rows(one) == verdict_rows(other)
    cfg = [load_config(p.config, environ={}) for p in (one, other)]
    with Store(cfg[0].db_path) as a, Store(cfg[1].db_path) as b:
        assert current(a, cfg[0], 1) == current(b, cfg[1], 1)
        assert current(a, cfg[0], 1).certified_a < 1  # (the test reached a certificate)
        assert a.label_status_counts() == b.label_status_counts()


def test_a_union_certificate_says_when_a_relabelled_pair_ends_its_looks(
    union_project: Project,
) -> None:
    """The union test reads only the phase's group-sequential looks: once reviewers
    decide a pair it counted again (differently), its kept looks no longer hold and the
    certificate cannot be extended this phase. `calibrate` says so, not that a look is
    coming; finishing sends the waiting pairs to humans. A review: rounds that kept no
    seed (no sampling draws for their pairs) end the looks too, and `calibrate` blamed the
    reviewers for it; it says why."""
    from labeler.consensus import Consensus

    project = union_project
    project.pairs(good_bad_rows(600))
    for _ in range(2):
        project.run_json("round", "--limit", "200")
        decide_as_humans(project)
        assert project.run("calibrate").exit_code == 0
    said = "cannot be extended this phase"
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        t = current(store, cfg, 1)
        assert t.certified_a < 1 and t.looks >= 1
        assert said not in recalibrate(store, cfg).message
        settings = store.round_settings()
        for rid in settings:  # as rounds kept before the seed was stored
            store.set_round_option(rid, "seed", None)
        seedless = " ".join(recalibrate(store, cfg).message.split())
        assert said in seedless and "rounds that kept no routing.seed" in seedless
        assert "decided again by reviewers" not in seedless
        with store.transaction() as db:
            for rid, text in settings.items():
                db.execute("UPDATE rounds SET thresholds = ? WHERE id = ?", (text, rid))
        assert said not in recalibrate(store, cfg).message
        counted = store.look_history(1, t.judge_version, t.phase, t.looks)[2]
        some = sorted(counted)[0]
        label = store.db.execute(
            "SELECT label FROM human_decisions WHERE pair_id = ?", (some,)
        ).fetchone()[0]
        flipped = {"A": "B", "B": "A"}[label]
        store.save_decisions({some: Consensus(flipped, {flipped: 1}, 1, True, False)})
        waiting = store.label_status_counts()["provisional"]
        kept = " ".join(recalibrate(store, cfg).message.split())  # no look due yet
        assert said in kept and "wait until `labeler round --finish`" in kept
        assert "decided again by reviewers" in kept and "routing.seed" not in kept
        done = recalibrate(store, cfg, finish=True)
        message = " ".join(done.message.split())
        assert said in message and f"{waiting} waiting pairs went to humans" in message
        assert store.label_status_counts()["provisional"] == 0
        assert current(store, cfg, 1).certified_a == t.certified_a  # (kept)


def test_once_a_union_cascade_can_certify_nothing_the_dry_run_pays_only_its_last_tier(
    union_project: Project,
) -> None:
    """Finished without a certificate (or found futile), a union cascade's earlier tiers
    judge nothing more: the dry run forecasts that, and the round does it."""
    project = union_project
    project.pairs(good_bad_rows(60))
    assert project.run_json("round", "--limit", "20")["status"] == "completed"
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        recalibrate(store, cfg, finish=True)
        assert current(store, cfg, 1).a >= 1  # no certificate: every pair to humans
    plan = project.run_json("round", "--dry-run")
    assert {t["tier"]: t["requests"] for t in plan["tiers"]} == {"cheap": 0, "big": 80}
    done = project.run_json("round")
    assert {t["tier"]: t["requests"] for t in done["tiers"]} == {"cheap": 0, "big": 80}


def test_the_dry_run_forecasts_the_strong_tier_from_what_the_cheap_one_passes_on(
    project: Project, judge_server: Callable[..., JudgeServer]
) -> None:
    """A review: the forecast of the share of pairs the strong tier judges counted a pair
    sent to humans unjudged (near-identical responses) as one the strong tier sees. Such
    a pair reaches no tier; one the cheap tier has no usable verdict for (a malformed
    reply) goes on to the strong one. In rounds alike (the source's order: every round of
    200 holds 20 of each tenth), the forecast from the rounds before is what the next
    round sends, but for the drift watch's draw."""

    def cheap(shown: Shown) -> Scripted:
        kind = int(shown.prompt.split()[1].rstrip("?")) % 10
        if kind == 7:  # no usable verdict: on to the strong tier
            return Scripted("I cannot tell which is better.")
        said = "A" if "good" in shown.a else "B"
        p = 0.99 if kind < 7 else 0.7  # sure of 6 in 10 (3: screened out), unsure of 2
        return Scripted(f"{said} HIGH\nsure", {said: p, "B" if said == "A" else "A": 1 - p})

    project = as_union(project, judge_server(by_model({"small": cheap, "big": STRONG})))
    project.set(routing={"round_order": "source"})
    rows = good_bad_rows(600)
    for i in range(3, 600, 10):  # near-identical responses: to humans, unjudged
        rows[i]["response_b"] = rows[i]["response_a"] + "."
    project.pairs(rows)
    for _ in range(2):
        project.run_json("round", "--limit", "200")
        decide_as_humans(project)
        assert project.run("calibrate").exit_code == 0
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        t = current(store, cfg, 1)
        assert t.a < t.certified_a <= 0.99 and t.caps is not None  # the cheap tier's 0.99 too
    plan = project.run_json("round", "--dry-run")
    done = project.run_json("round")
    planned, sent = ({t["tier"]: t["requests"] for t in r["tiers"]} for r in (plan, done))
    # both orders of: the unsure and the malformed (3 in 10), and the sure ones drawn for
    # the drift watch; none of the screened-out ones (it forecast 165 here)
    assert planned["big"] == round(2 * 200 * (0.3 + 0.6 * t.audit_rate)) == 125
    assert abs(planned["big"] - sent["big"]) <= 10  # (the draw: 122 sent)
