"""A look at a calibration phase from the stored verdicts: the population the planned
procedure tests, its sample and the phase's earlier looks as kept (``Store.look_history``)
turned into the arrays ``planned.plan_look`` (or ``parity.parity_look``) reads, and what a
sync says of it (``message``). Pure: rows in, a look out; ``thresholds`` stores what it
returns."""

from __future__ import annotations

from typing import Any

import numpy as np

from labeler import calibration as cal
from labeler import planned
from labeler.parity import PARITY_ALPHA, parity_look
from labeler.routing import Thresholds

# a phase's group-sequential looks as kept (``Store.look_history``): the delta allowed up
# to each, the fixed sequence, and per counted pair (first look, score, disagreed)
Recorded = tuple[list[float], list[float], dict[str, tuple[int, float | None, bool | None]]]

# why a union's certificate cannot be extended this phase (``planned.Look.closed``)
RELABELLED = (
    "a pair its test counted was decided again by reviewers since, so its earlier looks no "
    "longer hold"
)
NO_DRAWS = (
    "some of its pairs were routed by rounds that kept no routing.seed, so their sampling "
    "draws, which pick the sample its later looks read, are unknown"
)


def take_look(
    data: list[tuple[Any, cal.Judged]],
    t: Thresholds,
    alpha: float,
    delta: float,
    guarantee: str,
    min_labels: int,
    final: bool,
    evidence: tuple[np.ndarray, np.ndarray] | None = None,
    margin: float = 0.0,
    recorded: Recorded | None = None,
    last: bool = True,
    union: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[planned.Look, dict[str, tuple[float, bool]]]:
    """The look the thresholds ``t`` are due (``thresholds.recalibrate``): at the pairs of
    this calibration phase that could be accepted (eligible, score >= the floor ``t.a``),
    each with the chance it had of reaching a human (the phase's calibration rate below the
    certificate, the drift watch's above it; for a tier that is not the last, the final
    routing's chance, 1 where a later tier sent the pair to humans); pairs still waiting
    for a reviewer are left out
    (as if not judged yet). ``recorded``: the phase's earlier group-sequential looks
    (``Store.look_history``). After a certificate, the last tier's looks count the sample
    drawn alike (``planned.uniform_sample``: pairs routed before it, and those after it
    whose draw is below ``planned.thinning_rate``). With the look, the labelled pairs it
    counted: each one's score and whether its human disagreed. ``union``: a union
    cascade's (``union_loop.judged``) cascade-scale scores and disagreements per tier (K x
    n, aligned with ``data``): a pair's score is its union score, and the test counts each
    region's disagreements at the tier deciding there (``planned.plan_look``'s ``tiers``)."""
    chosen = [
        i
        for i, (row, d) in enumerate(data)
        if row["thresholds_version"] >= t.phase
        and d.signals.eligible
        and (not d.pending or (evidence is not None and not np.isnan(evidence[0][i])))
    ]
    pop = [data[i][1] for i in chosen]
    scores = cal.scores_of([d.signals for d in pop], None)
    disagree = np.array([d.disagrees for d in pop], bool)
    tiers = None
    if union is not None:
        tiers = (union[0][:, chosen], union[1][:, chosen])
        top = tiers[0].argmax(axis=0)  # the tier deciding at the pair's own union score
        scores, disagree = (
            tiers[0][top, np.arange(len(chosen))],
            tiers[1][top, np.arange(len(chosen))],
        )
    keep = scores >= t.a
    draws = [d.draw for d in pop]
    sampled = np.array([d.sampled for d in pop], bool)
    pi = np.array([d.pi for d in pop], float)
    sample = sampled
    if evidence is None and t.certified_a < cal.NEVER and last and None not in draws:
        after = np.array([data[i][0]["thresholds_version"] >= t.certified_at for i in chosen])
        # the lowest chance a pair routed since had under the certificate's rates (the
        # drift watch's), or lower if a rate was lowered: each one with a draw below it
        # was sampled
        rate = planned.thinning_rate(min(t.audit_rate, t.provisional_audit_rate), pi[after & keep])
        sample = planned.uniform_sample(sampled, after, np.array(draws, float), rate)
    counted = {
        data[i][0]["pair_id"]: (float(score), bool(bad))
        for i, score, bad, k in zip(chosen, scores, disagree, keep & sample, strict=True)
        if k
    }
    draw = None if None in draws else np.array(draws, float)[keep]
    if evidence is not None:  # human parity: the two reviewers' evidence
        z, agree = evidence[0][chosen][keep], evidence[1][chosen][keep]
        look = parity_look(
            scores[keep], sampled[keep], z, agree, delta, t.looks, t.spent, t.a, final,
            t.certified_a, draw, margin,
        )  # fmt: skip
        return look, counted
    history, sequence = read_history(recorded, counted, t.looks)
    if tiers is not None and t.certified_a < cal.NEVER and (history is None or sample is sampled):
        # the union test takes the phase's group-sequential test of the sample drawn
        # alike only: without the pairs' draws, or with its kept looks no longer matching
        # (a counted pair was re-reviewed), no extension
        nothing, labels = cal.Choice(cal.NEVER, 0, 0, None), int(sampled[keep].sum())
        why = NO_DRAWS if None in draws else RELABELLED
        closed = "" if recorded is None else why  # (None: no look due)
        return planned.Look(False, 0.0, nothing, int(keep.sum()), labels, closed=closed), counted
    look = planned.plan_look(
        scores[keep],
        sampled[keep],
        disagree[keep],
        alpha,
        delta,
        looks=t.looks,
        spent=t.spent,
        floor=t.a,
        pi=pi[keep],
        guarantee=guarantee,
        min_labels=min_labels,
        final=final,
        certified=t.certified_a,
        draw=draw,
        history=history,
        sequence=sequence,
        sample=None if sample is sampled else sample[keep],
        tiers=None if tiers is None else (tiers[0][:, keep], tiers[1][:, keep]),
    )
    return look, counted


def read_history(
    recorded: Recorded | None, counted: dict[str, tuple[float, bool]], looks: int
) -> tuple[list[tuple[np.ndarray, float]] | None, list[float] | None]:
    """The phase's earlier looks for the group-sequential test — for each, the scores of
    the labelled pairs it counted and the share of delta allowed up to it — and the
    phase's fixed sequence, from what the looks kept (``recorded``). (None, None) — each
    look then tests at its own level (Bonferroni, which spends only its own share and so
    holds whatever the earlier looks did) — when the kept looks do not match the looks
    taken (a phase begun before they were kept), or when the sample is no longer the one
    they counted: a counted pair went back to a reviewer or its verdict changed (the
    exact boundary assumes each look's labels include the earlier looks' as they were)."""
    if recorded is None:
        return None, None
    allowed, sequence, first = recorded
    if len(allowed) != looks or any(
        counted.get(pair_id) != (score, bad) for pair_id, (_, score, bad) in first.items()
    ):
        return None, None
    at = np.array([u for u, _, _ in first.values()], int)
    scores = np.array([score for _, score, _ in first.values()], float)
    return [(scores[at <= u], a) for u, a in enumerate(allowed)], sequence


def fmt(t: Thresholds) -> str:
    """The thresholds in force, in the judge's own terms: which verdicts enter the dataset
    (certified) and which are held back waiting for evidence (provisional). A learned
    score (the retest procedure) is said to be one: it is not a probability."""
    learned = t.weights is not None

    def one(x: float) -> str:
        if x >= cal.NEVER:
            return "none"
        return f"learned score >= {x:.3f}" if learned else f"judge confidence >= {x:.1%}"

    held = (
        "none beyond those"
        if t.a >= t.certified_a
        else f"{one(t.a)}, held back until evidence covers them"
    )
    return f"certified (into the dataset): {one(t.certified_a)}; provisional: {held}"


def thinned(look: planned.Look) -> str:
    """How many of a look's labels its test read, when it read a thinned sample."""
    if look.read is None or look.read == look.labels:
        return ""
    return f" (its test read the {look.read} of them drawn alike)"


def message(
    prev: Thresholds,
    new: Thresholds,
    drift: bool,
    recent: list[bool],
    look: planned.Look | None,
    counts: dict[str, int],
    alpha: float,
    delta: float,
    min_labels: int = 0,
    parity: bool = False,
    test: tuple[float, float] | None = None,
) -> str:
    """``test``: the (alpha, delta) the looks test at when not the target's (a tier that
    is not the last, ``planned.earlier_tier_test``)."""
    waiting = counts["provisional"]
    alpha, delta = test or (alpha, delta)
    stricter = " (the stricter test of a tier that is not the last)" if test else ""
    # under human parity the evidence is the pairs two reviewers decided, and the looks
    # come at the milestones of parity.PARITY_ALPHA
    evidence = "pairs two reviewers decided" if parity else "human verdicts"
    look_alpha = PARITY_ALPHA if parity else alpha
    min_labels = 0 if parity else min_labels
    if drift:
        agree = sum(recent) / len(recent)
        return (
            f"DRIFT: certified pairs audited since version {prev.certified_at} agree with "
            f"humans {agree:.0%} of {len(recent)} times, below target: the certificate ends, "
            f"{counts['rechecked']} pairs it accepted went back to humans, and a new "
            f"calibration phase begins (version {new.version})"
        )
    if look is not None and look.futile:
        return (
            f"the judge cannot be certified: on {look.labels} human verdicts it disagrees "
            f"with humans more than {alpha:.0%} of the time{stricter} in every region it could be "
            f"trusted with (confidently); {counts['rechecked']} waiting pairs went to humans, "
            "and new pairs go to humans too (a new judge or judge version starts afresh)"
        )
    if look is None:
        if new.finished and prev.finished:
            return f"project finished: {fmt(new)}"
        if new.a >= cal.NEVER:
            return (
                "the judge was found unable to reach the target: its pairs go to humans "
                "(a new judge or judge version starts afresh)"
            )
        return f"certificate kept: {fmt(new)} (version {new.version}); audits watch for drift"
    if not look.taken and look.closed:
        tail = (
            f"{counts['rechecked']} waiting pairs went to humans (project finished)"
            if new.finished
            else f"{waiting} pairs below it wait until `labeler round --finish` or a new phase"
        )
        return (
            f"certificate kept: {fmt(new)}; it cannot be extended this phase: {look.closed}; {tail}"
        )
    if not look.taken:
        need = max(planned.next_milestone(look.labels, look_alpha, delta), min_labels)
        return (
            f"calibration sample: {look.labels} of {need} {evidence} before look "
            f"{prev.looks + 1}; {waiting} judge-accepted pairs wait for evidence"
        )
    if look.choice.threshold >= cal.NEVER and new.certified_a < cal.NEVER:
        tail = (
            f"{counts['rechecked']} waiting pairs went to humans (project finished)"
            if new.finished
            else f"{waiting} pairs below it keep waiting"
        )
        return (
            f"look {new.looks} did not extend the certificate ({fmt(new)}) with "
            f"{look.labels} {evidence}{thinned(look)}; {tail}"
        )
    if look.choice.threshold >= cal.NEVER:
        tail = (
            f"{counts['rechecked']} waiting pairs went to humans (project finished)"
            if new.finished
            else f"{waiting} pairs keep waiting; the next look comes at "
            f"{planned.next_milestone(look.labels, look_alpha, delta)} {evidence}"
        )
        return (
            f"look {new.looks}: no threshold certified by {look.labels} {evidence} "
            f"(test at {look.level:.3g} of delta {delta:.3g}); {tail}"
        )
    est = look.choice.estimate
    below = (
        f"{counts['rechecked']} below it went to humans (project finished)"
        if new.finished
        else f"{waiting} below it keep waiting for evidence"
    )
    basis = (
        f"human parity: the judge agrees with a reviewer {-(est or 0):+.1%} against two "
        "reviewers with each other"
        if parity
        else f"estimated agreement {1 - (est or 0):.1%}"
    )
    return (
        f"look {new.looks}: {fmt(new)} from {look.choice.labelled} {evidence} "
        f"({basis}); {counts['certified']} judge-accepted pairs certified, {below}"
    )


def ended_note(counts: dict[str, int]) -> str:
    """What ``recheck`` did with an earlier judge version's waiting pairs."""
    if not counts["ended"]:
        return ""
    return (
        f"; {counts['ended']} pairs an earlier judge version accepted and no test certified "
        "went to humans (each version begins its own calibration phase)"
    )
