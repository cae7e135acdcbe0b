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
