"""What the certified labels are guaranteed: the (target agreement, confidence) terms the
certificates in force were tested at, and those the config asks for."""

from __future__ import annotations

import json
from collections.abc import Iterable

from labeler import calibration as cal
from labeler.config import Config
from labeler.store import Store


def asked_terms(cfg: Config) -> tuple[float, float]:
    """The (target agreement, confidence) the config asks for."""
    return cfg.calibration.target_agreement, cfg.calibration.confidence


def certificate_terms(store: Store, tier: int = 0) -> tuple[float, float] | None:
    """The (target agreement, confidence) tier ``tier``'s certificate in force was tested
    at — the calibration that certified its threshold recorded them (the first version
    of the latest run with that threshold: a version kept unchanged records the config of
    its day, not of the test) — or None with no certificate. A config changed since
    states other terms: the claim is these."""
    rows = store.thresholds_history(tier)
    params = [json.loads(r["params"] or "{}") for r in rows]
    certified = params[-1].get("certified_a", cal.NEVER) if params else cal.NEVER
    if certified >= cal.NEVER:
        return None
    first = len(rows) - 1
    while first > 0 and params[first - 1].get("certified_a") == certified:
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
