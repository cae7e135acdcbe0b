"""A union cascade (``calibration.cascade = "union"``) in the real loop: its routing,
the swap that keeps a pair's delivered label the one its test counted, its config, and
the whole loop replayed by its simulation (``union_simulation``) decision for decision."""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from labeler.config import load_config
from labeler.demo.judge_server import JudgeServer, Scripted, Shown, by_model
from labeler.errors import ConfigError
from labeler.routing import ACCEPT, ESCALATE, REVIEW, Thresholds, route_union
from labeler.store import Store
from labeler.thresholds import current, recalibrate
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


@pytest.fixture
def union_project(project: Project, judge_server: Callable[..., JudgeServer]) -> Project:
    """A two-tier union cascade; the cheap judge is right 99.5% of the time in the top
    70% of its confidence, the strong one 99%."""
    cheap, strong = graded(7919, 104729, 0.3, 0.995, 0.7), graded(6007, 15485863, 0.3, 0.99, 0.75)
    server = judge_server(by_model({"small": cheap, "big": strong}))
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


def turning(judge: Callable[[Shown], Scripted], after: int) -> Callable[[Shown], Scripted]:
    """``judge``, until question ``after``; from there sure (0.99) and wrong on every
    even-numbered question."""

    def turned(shown: Shown) -> Scripted:
        number = int(shown.prompt.split()[1].rstrip("?"))
        if number < after or number % 2:
            return judge(shown)
        wrong = "B" if "good" in shown.a else "A"
        right = "A" if wrong == "B" else "B"
        return Scripted(f"{wrong} HIGH\nsure", {wrong: 0.99, right: 0.009, "TIE": 0.001})

    return turned


@pytest.mark.slow
@pytest.mark.parametrize(("target", "drift"), [(0.85, False), (0.95, False), (0.85, True)])
def test_the_simulation_replays_a_real_union_cascade_decision_for_decision(
    project: Project, judge_server: Callable[..., JudgeServer], target: float, drift: bool
) -> None:
    """1,200 pairs in rounds of 200 through a union cascade (`labeler round`, reviewers
    answering every pair sent to them, `labeler calibrate`), then the project's end; the
    simulation (``run_union``) replays the same verdicts with the same draws. After every
    round the cascade holds the same certificate as in the simulation, and at the end
    each tier judged and decided as many pairs, and as many went to humans. The cheap
    tier decides pairs, and each delivered label is the first tier's whose score reaches
    the certificate. ``drift``: rounds in the source's order, and from the fourth round
    on the cheap judge is sure and wrong on half the pairs; the drift watch (audits at
    0.1) ends the certificate in both, and a new phase begins."""
    from labeler.routing import audit_draw
    from labeler.simulation import Settings, SimPair
    from labeler.union_loop import holder, pair_scores, view
    from labeler.union_simulation import run_union

    cheap, strong = graded(7919, 104729, 0.3, 0.995, 0.7), graded(6007, 15485863, 0.3, 0.99, 0.75)
    server = judge_server(
        by_model({"small": turning(cheap, 600) if drift else cheap, "big": strong})
    )
    seed, audit = 0, 0.1 if drift else 0.02
    project.set(
        judge={"base_url": server.url},
        review={"enabled": False},
        routing={"audit_rate": audit, "seed": seed, "round_order": "source" if drift else "random"},
        calibration={"cold_start_audit_rate": 0.4, "target_agreement": target, "cascade": "union"},
    )
    with project.config.open("a") as fh:
        fh.write(UNION)
    cfg = load_config(project.config, environ={})
    size, rounds, real = 200, 6, []
    project.pairs(good_bad_rows(size * rounds))
    for _ in range(rounds):
        assert project.run("round", "--limit", str(size)).exit_code == 0
        decide_as_humans(project)
        out = project.run("calibrate")
        assert out.exit_code == 0, out.output
        with Store(cfg.db_path) as store:
            both = current(store, cfg, 0), current(store, cfg, 1)
            assert both[0] == both[1]  # one set of thresholds for the cascade
            real.append(both[1].certified_a)
    with Store(cfg.db_path) as store:
        recalibrate(store, cfg, finish=True)
        t = current(store, cfg, 1)
        certified = store.label_status_counts()["certified"]
        decided = store.db.execute("SELECT COUNT(*) FROM human_decisions").fetchone()[0]
        humans = decided + store.state_counts().get("needs_review", 0)
        seen = view(store, cfg)
        held = held_labels(store.db)
        shown = {
            r["id"]: "A" if "good" in r["response_a"] else "B"
            for r in store.db.execute(
                "SELECT id, response_a FROM pairs ORDER BY round_id, round_draw, seq"
            )
        }
    verdicts = {r["pair_id"]: s for r, s in zip(seen.rows, seen.signals, strict=True)}
    ids = list(shown)  # the rounds' order
    from labeler.calibration import Signals

    nothing = Signals("A", 0.0, 0.0, 0.0)  # a pair the tier never judged
    sims = [
        [SimPair(verdicts.get(i, [None, None])[k] or nothing, shown[i]) for i in ids]
        for k in (0, 1)
    ]
    draws = np.array([audit_draw(seed, i, 1) for i in ids])
    settings = Settings(alpha=1 - target, delta=0.1, per_round=size, audit_rate=audit)
    sim = run_union(sims, settings, draws=draws)
    assert [h["threshold"] for h in sim.history] == pytest.approx(real)
    judged = [int(seen.judged[k].sum()) for k in (0, 1)]
    assert sim.tier_judged == judged
    by_tier = Counter(tier for tier, _ in held.values())
    assert sim.certified == certified and sim.human_labels == humans
    assert sim.tier_certified == [by_tier[0], by_tier[1]]
    if drift:  # the certificate ended, and a new phase certified again
        assert any(a < 1 <= b for a, b in itertools.pairwise(real)) and real[-1] < 1
    # the cascade certified, the cheap tier decides pairs, the strong one judged fewer
    assert real[-1] < 1 and by_tier[0] > 0.1 * certified and judged[1] < judged[0]
    assert Counter(str(r["model"]) for r in server.requests)["big"] == 2 * judged[1]
    # each delivered label is its holder's: the first tier reaching the certificate
    for row, signals in zip(seen.rows, seen.signals, strict=True):
        if row["pair_id"] in held:
            k = holder(pair_scores(signals, t.caps), t)
            assert held[row["pair_id"]] == (k, signals[k].label)


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
    plan = project.run_json("round", "--dry-run")
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
    assert planned["cheap"] == 400 and big["requests"] <= planned["big"] <= 400
    report = project.run("report")
    assert "one certificate for the whole cascade" in " ".join(report.output.split())
    decide_as_humans(project)
    assert project.run("calibrate").exit_code == 0
    path = tmp_path / "rows.jsonl"
    assert project.run("export", "--to", "jsonl", "--out", str(path)).exit_code == 0
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    with Store(cfg.db_path) as store:
        counts = store.label_status_counts()
        db = store.db
        by_tier = Counter(tier for tier, _ in held_labels(db).values())
    assert by_tier[0] > 20 and by_tier[1] > 0
    assert len(rows) == counts["human"] + counts["certified"]
    judge = [row for row in rows if row["label_source"] == "judge"]
    assert len(judge) == counts["certified"] > 200
    assert sum(row["chosen"].endswith("is good") for row in judge) >= 0.85 * len(judge)


def test_a_cascades_mode_is_fixed_for_the_project_at_its_first_round(
    union_project: Project,
) -> None:
    """``auto`` (the default) makes a new cascade a union one; a project keeps the mode it
    began with: asking for the other one later, or for settings a union cannot take, is
    refused in one line before any judge call; a project judged before modes were stored
    ran per tier and keeps doing so under ``auto``."""
    from labeler.union_loop import MODE_KEY

    project = union_project
    server = project.server  # type: ignore[attr-defined]
    project.set(calibration={"cascade": "auto"})
    project.pairs(good_bad_rows(40))
    first = project.run_json("round", "--limit", "20")
    assert {t["tier"]: t["judged"] for t in first["tiers"]} == {"cheap": 20, "big": 20}
    cfg = load_config(project.config, environ={})
    with Store(cfg.db_path) as store:
        assert store.get_meta(MODE_KEY) == "union"
    server.requests.clear()
    for change, says in (
        ({"cascade": "per_tier"}, 'calibration.cascade = "per_tier", but this project'),
        ({"guarantee": "expected"}, "this project's cascade is tested as a union"),
    ):
        project.set(calibration=change)
        out = project.run("round")
        assert out.exit_code != 0 and says in out.output, out.output
        assert len(out.output.strip().splitlines()) == 1 and not server.requests
        project.set(calibration={"cascade": "auto", "guarantee": "high_probability"})
    # a project from before: judged, no mode stored -> per tier, and stored as such
    with Store(cfg.db_path) as store:
        store.db.execute("DELETE FROM meta WHERE key = ?", (MODE_KEY,))
    second = project.run_json("round")
    tiers = {t["tier"]: t for t in second["tiers"]}
    assert tiers["cheap"]["passed_unjudged"] > 0  # a per-tier cheap tier: its sample only
    with Store(cfg.db_path) as store:
        assert store.get_meta(MODE_KEY) == "per_tier"
