"""The union test's arithmetic (``labeler.union``), against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from labeler import planned, union


def brute(
    grid: list[float], adj: np.ndarray, dis: np.ndarray, labelled: np.ndarray
) -> list[tuple[float, int, int, int]]:
    """Each region counted pair by pair: its deciding tier's disagreement."""
    out = []
    for lam in grid:
        d = union.deciding(adj, lam)
        inside = d >= 0
        if not inside.any():
            continue
        lab = inside & labelled
        k = sum(int(dis[d[i], i]) for i in np.nonzero(lab)[0])
        out.append((lam, int(inside.sum()), int(lab.sum()), k))
    return out


@pytest.mark.parametrize("tiers", [1, 2, 3])
def test_region_counts_are_the_deciding_tiers_disagreements(tiers: int) -> None:
    for seed in range(50):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 60))
        raw = rng.choice([0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0], size=(tiers, n))
        adj = union.on_one_scale(raw)
        dis = rng.random((tiers, n)) < 0.3
        labelled = rng.random(n) < 0.5
        u = union.union_scores(adj)
        grid = planned.plan_grid(u, 0.01)
        got = union.region_counts(grid, u, labelled, union.steps(adj, dis, labelled))
        assert got == brute(grid, adj, dis, labelled)


def test_one_tier_is_the_single_judge_test() -> None:
    """A cascade of one tier counts what the single-judge test counts."""
    rng = np.random.default_rng(3)
    scores = rng.choice([0.0, 0.7, 0.9, 0.99], 200)
    dis, lab = rng.random(200) < 0.2, rng.random(200) < 0.4
    grid = planned.plan_grid(scores, 0.5)
    one = union.region_counts(grid, scores, lab, union.steps(scores[None], dis[None], lab))
    assert one == [
        (lam, int((scores >= lam).sum()), int((lab & (scores >= lam)).sum()),
         int((lab & dis & (scores >= lam)).sum()))
        for lam in grid
    ]  # fmt: skip


def test_an_earlier_tiers_threshold_is_its_adjusted_scores_inverse() -> None:
    lams = np.array([0.5, 0.8, 0.9, 0.95, 0.999])
    back = union.adjusted(np.array([union.tier_threshold(x) for x in lams]))
    assert np.allclose(back, lams)
    # odds x4: a cheap judge saying 0.9 is taken at 0.692; 0.9 needs it at 0.973
    assert union.adjusted(np.array([0.9]))[0] == pytest.approx(0.9 / 1.3)
    assert union.tier_threshold(0.9) == pytest.approx(3.6 / 3.7)
    assert union.adjusted(np.array([0.9]), odds=2.0)[0] == pytest.approx(0.9 / 1.1)
    assert union.adjusted(np.array([0.0, 1.0])).tolist() == [0.0, 1.0]


def test_the_first_tier_that_reaches_the_threshold_decides() -> None:
    adj = np.array([[0.95, 0.7, 0.0], [0.99, 0.99, 0.6]])
    assert union.deciding(adj, 0.9).tolist() == [0, 1, -1]
    assert union.deciding(adj, 0.6).tolist() == [0, 0, 1]


def verdicts(n: int, differ: int) -> tuple[np.ndarray, np.ndarray]:
    """Two judges' verdicts on ``n`` pairs, differing on the first ``differ``."""
    first = np.array(["A"] * n)
    return first, np.where(np.arange(n) < differ, "B", "A")


@pytest.mark.parametrize(
    ("n", "bins"),
    [(19, 0), (20, 1), (39, 1), (40, 2), (99, 4), (100, 5), (1000, 5)],
)
def test_the_check_takes_as_many_bins_as_its_pairs_allow(n: int, bins: int) -> None:
    adj = np.linspace(0.5, 1.0, n)
    mine, last = verdicts(n, 0)
    edges, caps = union.consistency_caps(adj, mine, np.full(n, 0.99), last)
    assert len(edges) == len(caps) == max(bins, 1)
    assert caps.tolist() == [1.0] * max(bins, 1)  # agreeing judges: no cap


def test_the_check_caps_the_bins_where_the_judges_disagree_beyond_their_claims() -> None:
    """100 pairs, 5 bins of 20 by the earlier tier's score; the top bin's verdicts differ
    from the last tier's on 10 of 20 while the last tier claims an error of 0.05: that
    bin is capped at 1 - (0.5 - 0.05); a bin differing within the claim is not."""
    adj = np.linspace(0.81, 0.999, 100)
    mine = np.array(["A"] * 100)
    last_labels = np.array(["A"] * 100)
    last_labels[90:100] = "B"  # the top bin: 10 of its 20 differ
    last_labels[0] = "B"  # the bottom bin: 1 of 20, within the claimed 0.05
    edges, caps = union.consistency_caps(adj, mine, np.full(100, 0.95), last_labels)
    assert caps.tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.55])
    capped = union.capped(np.array([0.85, 0.99, 0.0]), edges, caps)
    assert capped.tolist() == pytest.approx([0.85, 0.55, 0.0])


def test_pairs_one_judge_could_not_decide_are_not_read() -> None:
    """Only pairs both judges could accept (scores above 0) are compared."""
    adj = np.concatenate([np.full(20, 0.9), np.zeros(30)])
    mine, last = verdicts(50, 0)
    last[20:] = "B"  # they differ only where the earlier tier could not accept
    _, caps = union.consistency_caps(adj, mine, np.full(50, 0.99), last)
    assert caps.tolist() == [1.0]


def test_the_union_takes_only_the_exact_test_on_a_uniform_sample() -> None:
    scores = np.full(200, 0.95)
    tiers = (np.vstack([scores, scores]), np.zeros((2, 200), bool))
    common = dict(looks=0, spent=0.0, floor=0.8, final=True, tiers=tiers)
    labelled, disagree = np.arange(200) < 100, np.zeros(200, bool)
    with pytest.raises(ValueError, match="only a uniform sample's exact test"):
        planned.plan_look(
            scores, labelled, disagree, 0.15, 0.1, pi=np.full(200, 0.5), guarantee="expected",
            **common,
        )  # fmt: skip
    with pytest.raises(ValueError, match="only a uniform sample's exact test"):
        pi = np.where(labelled, 0.5, 0.02)
        planned.plan_look(scores, labelled, disagree, 0.15, 0.1, pi=pi, **common)
    look = planned.plan_look(scores, labelled, disagree, 0.15, 0.1, pi=np.full(200, 0.5), **common)
    assert look.taken and look.choice.threshold == pytest.approx(0.95)
