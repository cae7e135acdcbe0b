"""Two reviewers on the same pairs, read from the state: the verdicts of the pairs two
reviewers were asked to decide (``review.double_share``, or every pair when
``review.min_submitted`` >= 2), for human-human agreement (``consensus.human_agreement``,
``labeler report --quality``) and for human parity (each judged pair's
``parity.parity_z``, ``calibration.quality = "human_parity"``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from labeler import calibration as cal
from labeler import consensus, parity
from labeler.config import Config
from labeler.store import Store


def reviewer_votes(store: Store, cfg: Config) -> list[consensus.Vote]:
    """The submitted verdicts on pairs two reviewers were asked to decide (the doubled
    dataset's, or every pair when ``review.min_submitted`` >= 2), with round and judge
    label: what human-human agreement and human parity read."""
    doubled = None if cfg.review.min_submitted >= 2 else cfg.double_dataset
    return [
        consensus.Vote(
            r["pair_id"],
            r["round_id"],
            r["reviewer"],
            r["label"],
            r["inserted_at"],
            r["judge"] if r["judge"] in ("A", "B", "TIE") else None,
        )
        for r in store.double_votes(doubled)
    ]


def parity_evidence(
    store: Store, cfg: Config, data: list[tuple[Any, cal.Judged]]
) -> tuple[np.ndarray, np.ndarray]:
    """Each judged pair's parity statistic (``parity.parity_z``) from the first two
    reviewers' verdicts, NaN where there are not two (or the judge's verdict was shown).
    A pair whose two reviewers tie is evidence too, decided or not: leaving it out would
    keep only the pairs reviewers agree on, and favour them."""
    two = consensus.first_two(reviewer_votes(store, cfg))
    out, agree = np.full(len(data), np.nan), np.zeros(len(data), bool)
    for i, (row, d) in enumerate(data):
        votes = two.get(row["pair_id"])
        if votes is not None and d.sampled and not row["hint"]:
            out[i] = parity.parity_z(d.signals.label, votes[0].label, votes[1].label)
            agree[i] = votes[0].label == votes[1].label
    return out, agree
