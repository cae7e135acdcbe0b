"""What the certified labels are guaranteed: the (target agreement, confidence) terms the
certificates in force were tested at, and those the config asks for."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from labeler import calibration as cal
from labeler.config import Config
from labeler.errors import ConfigError
from labeler.routing import Thresholds
from labeler.store import Store


def mode_of(cfg: Config) -> tuple[str, str, float]:
    """The test the config asks a phase to take: (guarantee, quality, parity margin)."""
    c = cfg.calibration
    return c.guarantee, c.quality, c.parity_margin


def check_mode(in_force: list[Thresholds], cfg: Config) -> None:
    """Refuse (ConfigError) a test changed after a phase's first look (``Thresholds.mode``):
    ``calibration.guarantee``, ``quality`` or ``parity_margin`` chosen after seeing a look's
    result is not covered by the guarantee (and, unlike a target, the phase's looks cannot
    keep testing the old way while the config names another)."""
    keys = ("guarantee", "quality", "parity_margin")
    for t in in_force:
        if t.mode is None:
            continue
        for key, then, now in zip(keys, t.mode, mode_of(cfg), strict=True):
            if then != now:
                raise ConfigError(
                    f"{cfg.file or 'config'}: calibration.{key} = {now!r}, but this "
                    f"calibration phase has tested with {then!r} since its first look (a "
                    "test chosen after seeing a look's result is not covered by the "
                    f"guarantee): restore {then!r}, or start a new project (project.state_dir); "
                    "a changed judge begins a phase of its own at its next round, which may "
                    "take another test"
                )


def first_look_terms(store: Store, tier: int, t: Thresholds) -> tuple[float, float] | None:
    """The terms ``t``'s phase took its first look at, for a phase begun before they were
    kept with it (``Thresholds.terms``): its first version with a look records the config
    of that look. None: no look yet, or none recorded."""
    if t.terms is not None or t.looks == 0:
        return t.terms
    for row in store.thresholds_history(tier):
        params = json.loads(row["params"] or "{}")
        same = (params.get("judge_version", ""), params.get("phase", 0))
        if same == (t.judge_version, t.phase) and params.get("looks", 0) >= 1:
            report = json.loads(row["report"] or "{}")
            if report.get("target") and report.get("confidence"):
                return float(report["target"]), float(report["confidence"])
            return None
    return None


def asked_terms(cfg: Config) -> tuple[float, float]:
    """The (target agreement, confidence) the config asks for."""
    return cfg.calibration.target_agreement, cfg.calibration.confidence


def certificate_terms(store: Store, tier: int = 0) -> tuple[float, float] | None:
    """The (target agreement, confidence) tier ``tier``'s certificates in force were
    tested at — the calibration that certified a threshold recorded them (the first
    version of the latest run with that threshold: a version kept unchanged records the
    config of its day, not of the test) — or None with no certificate. Each judge version
    (a panel's, a single judge's stint) keeps the labels it certified: the weakest terms
    of each one's last certificate. A config changed since states other terms: the
    claim is these."""
    found = _certificates(store, tier)
    return (min(t for t, _ in found), min(c for _, c in found)) if found else None


def certified_phases(store: Store, slots: Iterable[int]) -> int:
    """How many judge versions' certificates (``certificate_terms``) the certified labels
    of one judge tier rest on, at most: each holds its terms on its own (a promise per
    calibration phase). A cascade's tiers share one phase (their split of delta)."""
    return max((len(_certificates(store, k)) for k in slots), default=0)


def certified_kind(store: Store, slots: Iterable[int]) -> str | None:
    """The guarantee the certified labels were tested under, all tiers and judge versions
    together: "expected" (on average) if any certificate in force took it, the weaker
    claim; None with no certificate."""
    kinds: set[str] = set()
    for k in slots:
        _, params, ends = _ends(store, k)
        kinds |= {str(params[i].get("guarantee", "high_probability")) for i in ends}
    return "expected" if "expected" in kinds else (kinds.pop() if kinds else None)


def _ends(store: Store, tier: int) -> tuple[list[Any], list[dict[str, Any]], list[int]]:
    """(history rows, their params, the index of each judge version's last row where its
    certificate is in force) of tier ``tier``, oldest first."""
    rows = store.thresholds_history(tier)
    params = [json.loads(r["params"] or "{}") for r in rows]
    stints = [p.get("judge_version", "") for p in params]
    ends = [
        i
        for i in range(len(rows))
        if (i == len(rows) - 1 or stints[i + 1] != stints[i])
        and params[i].get("certified_a", cal.NEVER) < cal.NEVER
    ]
    return rows, params, ends


def _certificates(store: Store, tier: int) -> list[tuple[float, float]]:
    """The terms of each judge version's last certificate, oldest first."""
    rows, params, ends = _ends(store, tier)
    return [t for t in (_terms_at(rows, params, end) for end in ends) if t is not None]


def _terms_at(
    rows: list[Any], params: list[dict[str, Any]], end: int
) -> tuple[float, float] | None:
    """The terms of the certificate in force at history row ``end`` (None: none)."""
    certified = params[end].get("certified_a", cal.NEVER)
    if certified >= cal.NEVER:
        return None
    first = end
    run = (params[end].get("judge_version", ""), params[end].get("phase", 0))

    def same(i: int) -> bool:  # (a run of one judge version's phase: not an earlier one's)
        then = (params[i].get("judge_version", ""), params[i].get("phase", 0))
        return params[i].get("certified_a") == certified and then == run

    while first > 0 and same(first - 1):
        first -= 1
    if params[first].get("terms"):  # the phase's, fixed at its first look
        return float(params[first]["terms"][0]), float(params[first]["terms"][1])
    report = json.loads(rows[first]["report"])
    if report.get("target") and report.get("confidence"):
        return float(report["target"]), float(report["confidence"])
    return None


def claimed_terms(store: Store, slots: Iterable[int]) -> tuple[float, float] | None:
    """What the certified labels are guaranteed, all tiers together (the thresholds
    ``slots``): the weakest target and the weakest confidence their certificates in force
    were tested at (a tier may be weaker in one and stronger in the other); None with no
    certificate."""
    found = [t for t in (certificate_terms(store, k) for k in slots) if t is not None]
    return (min(t for t, _ in found), min(c for _, c in found)) if found else None
