"""A union cascade in the real loop (``calibration.cascade = "union"``, ``labeler.union``):
the state read as the union test reads it, and the re-check that keeps every delivered
label the one its test counted. Orchestration only: the maths is in ``union`` and
``planned``; ``thresholds`` runs the planned procedure with these.

How the loop runs such a cascade (the simulation, ``union_simulation``, is this loop):

* One set of thresholds for the whole cascade, stored in the last tier's slot: the
  floor, the certificate ``lam`` on the cascade's scale, and the consistency caps once
  fixed. Every tier routes with it (``routing.route_union``), with the last tier's
  audit draw.
* The first tier judges every pair; a later tier judges what the tiers before it did not
  accept: before a certificate, every pair. So every pair the test can read a label of
  was judged by every tier, and every pair that waits too.
* A pair holds (``Store.deliver_tier``: its final verdict row is) the verdict of the
  first tier whose score reaches the certificate, or, while it waits, the floor: the
  label the test counts is the label the dataset gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labeler import calibration as cal
from labeler import union
from labeler.config import Config
from labeler.errors import ConfigError
from labeler.routing import CERTIFIED, PROVISIONAL, RECHECK, Thresholds, audit_draw
from labeler.store import Store

# why a pair went to humans by rule, not by the draw: no region of the test holds it
RULE_REASONS = frozenset(
    {"malformed", "order_disagreement", "tie", "low_confidence", "judge_error",
     "near_duplicate", "suspected_injection"}
)  # fmt: skip


MODE_KEY = "cascade"  # the meta entry fixing a cascade's mode: "union" | "per_tier"


def is_union(store: Store | None, cfg: Config) -> bool:
    """Is this project's cascade tested as a union: the mode fixed at its first round
    (``check_mode``); before one, what the config asks (``Config.wants_union``). A project
    judged before modes were stored ran per tier, and keeps doing so."""
    if len(cfg.judges) == 1:
        return False
    stored = None if store is None else store.get_meta(MODE_KEY)
    if stored is None and store is not None and store.judged_any():
        stored = "per_tier"
    return cfg.wants_union if stored is None else stored == "union"


def check_mode(store: Store, cfg: Config) -> None:
    """Fix a cascade's mode at its first round, and refuse in one line a config that asks
    for the other one later (the thresholds stored for one mean nothing to the other), or
    a union cascade's project whose settings no longer fit it."""
    if len(cfg.judges) == 1:
        return
    mode = "union" if is_union(store, cfg) else "per_tier"
    asked, where = cfg.calibration.cascade, cfg.file or "config"
    if asked not in ("auto", mode):
        raise ConfigError(
            f'{where}: calibration.cascade = "{asked}", but this project\'s cascade is tested '
            f'{mode} (fixed at its first round): set calibration.cascade = "{mode}" or "auto", '
            "or start a new project (project.state_dir)"
        )
    c = cfg.calibration
    fits = (c.procedure, c.guarantee, c.quality) == ("planned", "high_probability", "absolute")
    if mode == "union" and not (fits and max(j.panel for j in cfg.judges) == 1):
        raise ConfigError(
            f"{where}: this project's cascade is tested as a union (fixed at its first "
            'round), which needs calibration.procedure = "planned", guarantee = '
            '"high_probability", quality = "absolute" and no judge panel: restore them, or '
            "start a new project (project.state_dir)"
        )
    if store.get_meta(MODE_KEY) is None:
        store.set_meta(MODE_KEY, mode)


@dataclass
class View:
    """The routed pairs of a union cascade, in routing order: the final verdict rows and,
    per tier (K x n), each verdict's probability (0: none usable), label ("" none) and
    whether the tier judged the pair."""

    rows: list[Any]
    raw: np.ndarray
    labels: np.ndarray
    judged: np.ndarray
    signals: list[list[cal.Signals | None]]

    def scores(self, caps: union.Caps | None) -> np.ndarray:
        """Every tier's cascade-scale scores (0 where it did not judge the pair)."""
        return np.where(self.judged, union.cascade_scores(self.raw, caps), 0.0)


def tier_score(signals: cal.Signals) -> float:
    """A verdict's probability as the cascade reads it (0: no usable verdict)."""
    return float(cal.scores_of([signals], None)[0]) if signals.eligible else 0.0


def pair_scores(signals: list[cal.Signals | None], caps: union.Caps | None) -> np.ndarray:
    """One pair's cascade-scale scores from its tiers' verdicts (None: not judged)."""
    raw = np.array([[0.0 if s is None else tier_score(s)] for s in signals])
    return union.cascade_scores(raw, caps)[:, 0]


def holder(scores: np.ndarray, t: Thresholds) -> int:
    """The tier whose label a pair delivers at ``t`` (``routing.route_union``): the first
    reaching the certificate, else the first reaching the floor; -1: none."""
    u = float(scores.max())
    bar = t.certified_a if u >= t.certified_a else t.a
    return int(np.argmax(scores >= bar)) if u >= bar else -1


def view(store: Store, cfg: Config) -> View:
    """Every routed pair of the cascade (its final routing fixed), each tier's verdict."""
    from labeler.thresholds import row_signals  # (thresholds runs this module's reads)

    k_tiers = len(cfg.judges)
    finals: dict[str, Any] = {}
    verdicts: dict[str, dict[int, cal.Signals]] = {}
    for k in range(k_tiers):
        for row in store.routed_verdicts(k):
            verdicts.setdefault(row["pair_id"], {})[k] = row_signals(row)
            if row["action"] != "escalate":
                finals[row["pair_id"]] = row

    def order(r: Any) -> tuple[int, float, int]:  # routing order (``Store.routed_verdicts``)
        return int(r["round_id"]), -1.0 if r["round_draw"] is None else r["round_draw"], r["seq"]

    rows = sorted(finals.values(), key=order)
    signals = [[verdicts[r["pair_id"]].get(k) for k in range(k_tiers)] for r in rows]
    judged = np.array([[s is not None for s in pair] for pair in signals], bool).T
    raw = np.array([[0.0 if s is None else tier_score(s) for s in p] for p in signals]).T
    labels = np.array([[(s and s.label) or "" for s in p] for p in signals], str).T
    shape = (k_tiers, len(rows))
    return View(rows, raw.reshape(shape), labels.reshape(shape), judged.reshape(shape), signals)


def judged(
    store: Store, cfg: Config, t: Thresholds
) -> tuple[list[tuple[Any, cal.Judged]], View, np.ndarray]:
    """The cascade's routed pairs as the planned procedure reads them, with the view and
    every tier's disagreement with the human (K x n; unlabelled: False). Each pair's
    signals are those of the tier whose label it delivers at ``t`` (``holder``), so a
    drift audit reads the delivered label; a pair sent to humans by rule (``RULE_REASONS``)
    is in no region (its signals say so)."""
    from labeler.thresholds import row_signals

    seed, last = cfg.routing.seed, len(cfg.judges) - 1
    v = view(store, cfg)
    adj = v.scores(t.caps)
    out, dis = [], np.zeros(v.raw.shape, bool)
    for i, row in enumerate(v.rows):
        sampled = bool(row["sampled"])
        human = row["human"] if sampled and not row["hint"] else None
        if human is not None:
            dis[:, i] = v.labels[:, i] != human
        k = holder(adj[:, i], t)
        signals = v.signals[i][k if k >= 0 else last] or row_signals(row)
        if row["reason"] in RULE_REASONS:
            signals = cal.Signals(None, 0.0, 0.0, None, True, True)
        draw = audit_draw(seed, row["pair_id"], last)
        out.append((row, cal.Judged(signals, float(row["pi"]), sampled, human, False, draw)))
    return out, v, dis


def caps_for(v: View, data: list[tuple[Any, cal.Judged]], t: Thresholds, rate: float) -> union.Caps:
    """The consistency caps from the phase's pairs outside the calibration sample (draw at
    or above its ``rate``) that every tier judged: verdicts only, no human label."""
    band = np.array(
        [row["thresholds_version"] >= t.phase and (d.draw or 0.0) >= rate for row, d in data],
        bool,
    )
    band &= v.judged.all(axis=0)
    adj = union.cascade_scores(v.raw[:, band])
    return union.check_caps(adj, v.labels[:, band], v.raw[-1, band])


def recheck(store: Store, cfg: Config, t: Thresholds) -> dict[str, int]:
    """Re-check every judge-accepted pair of the cascade against ``t``: certified,
    provisional, or back to humans (``thresholds.recheck``'s invariant), each holding the
    verdict of the tier whose label it delivers (``holder``)."""
    from labeler.thresholds import row_signals

    k_tiers = len(cfg.judges)
    status: dict[str, str] = {}
    moved: dict[str, str] = {}
    for pair_id, by_tier in store.accepted_tier_verdicts().items():
        final = next(r for r in by_tier.values() if r["final"])
        signals = [row_signals(by_tier[k]) if k in by_tier else None for k in range(k_tiers)]
        scores = pair_scores(signals, t.caps)
        k = holder(scores, t)
        held = signals[k] if k >= 0 else None
        if held is None or held.label not in ("A", "B"):
            status[pair_id] = RECHECK
        else:
            status[pair_id] = CERTIFIED if float(scores.max()) >= t.certified_a else PROVISIONAL
            if k != int(final["tier"]):
                store.deliver_tier(pair_id, k)
        if final["status"] != status[pair_id]:
            moved[pair_id] = status[pair_id]
    back = store.apply_recheck(moved)
    values = list(status.values())
    return {
        "rechecked": back,
        "certified": values.count(CERTIFIED),
        "provisional": values.count(PROVISIONAL),
    }


def describe(cfg: Config, t: Thresholds) -> str:
    """What the cascade's certificate asks of each tier's own confidence (``""``: none)."""
    if t.certified_a >= cal.NEVER:
        return ""
    last = len(cfg.judges) - 1
    each = []
    for k, judge in enumerate(cfg.judges):
        own = t.certified_a if k == last else union.tier_threshold(t.certified_a)
        capped = k < last and t.caps is not None and min(t.caps[k][1]) < t.certified_a
        note = " where its consistency with the last tier allows" if capped else ""
        each.append(f"{judge.label} at >= {min(own, 1.0):.1%}{note}")
    return "; in the cascade, the first tier sure enough decides: " + ", ".join(each)
