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
* A pair holds (``Store.deliver_tiers``: its final verdict row is) the verdict of the
  first tier whose score reaches the certificate, or, while it waits, the floor: the
  label the test counts is the label the dataset gets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
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
SCREENED = frozenset({"near_duplicate", "suspected_injection"})  # to humans before any judge


MODE_KEY = "cascade"  # meta: {"mode": "union" | "per_tier", "tiers"}, fixed at the first round


def _meta(store: Store | None, key: str) -> dict[str, Any] | None:
    """A JSON meta entry of the project (None: not set yet, or no state)."""
    text = None if store is None else store.get_meta(key)
    return None if text is None else dict(json.loads(text))


def _stored(store: Store | None) -> dict[str, Any] | None:
    """The mode fixed for the project (``check_mode``): {"mode", "tiers"}; None: not yet."""
    return _meta(store, MODE_KEY)


def is_union(store: Store | None, cfg: Config) -> bool:
    """Is this project's cascade tested as a union: the mode fixed at its first round
    (``check_mode``); before one, what the config asks (``Config.wants_union``). A project
    judged before modes were stored ran per tier, and keeps doing so."""
    if len(cfg.judges) == 1:
        return False
    stored = _stored(store)
    if stored is None and store is not None and store.judged_any():
        return False
    return cfg.wants_union if stored is None else stored["mode"] == "union"


def check_mode(store: Store, cfg: Config) -> None:
    """Fix a cascade's mode and tiers at its first round, and refuse in one line a config
    that later asks for the other mode (the thresholds stored for one mean nothing to the
    other), other tiers in a union cascade (its certificate and caps are those judges'),
    or settings a union cannot take."""
    stored, where = _stored(store), cfg.file or "config"
    if len(cfg.judges) == 1 and (stored is None or stored["mode"] != "union"):
        return
    mode = "union" if is_union(store, cfg) or len(cfg.judges) == 1 else "per_tier"
    tiers = [f"{j.label} ({j.model})" if j.label != j.model else j.model for j in cfg.judges]
    asked = cfg.calibration.cascade
    if asked not in ("auto", mode):
        raise ConfigError(
            f'{where}: calibration.cascade = "{asked}", but this project\'s cascade is tested '
            f'{mode} (fixed at its first round): set calibration.cascade = "{mode}" or "auto", '
            "or start a new project (project.state_dir)"
        )
    if mode == "union" and stored is not None and stored["tiers"] != tiers:
        raise ConfigError(
            f"{where}: this project's union cascade was certified for the judge tiers "
            f"{', '.join(stored['tiers'])}, and the config has {', '.join(tiers)} "
            "([[judge.tiers]]): restore them, or start a new project (project.state_dir)"
        )
    c = cfg.calibration
    fits = (c.procedure, c.guarantee, c.quality) == ("planned", "high_probability", "absolute")
    plain = all(j.panel == 1 and not j.delta_share for j in cfg.judges)
    if mode == "union" and not (fits and plain):
        raise ConfigError(
            f"{where}: this project's cascade is tested as a union (fixed at its first "
            'round), which needs calibration.procedure = "planned", guarantee = '
            '"high_probability", quality = "absolute", no judge panel and no '
            "judge.delta_share: restore them, or start a new project (project.state_dir)"
        )
    if stored is None:
        store.set_meta(MODE_KEY, json.dumps({"mode": mode, "tiers": tiers}))


RATE_KEY = "union_phase_rate"  # meta: {"phase", "rate"} the phase's sample is drawn at


def with_phase_rate(store: Store, t: Thresholds) -> Thresholds:
    """``t`` drawing its calibration sample at the rate fixed for its phase
    (``check_rate``): a config changed since does not mix two rates in one sample."""
    fixed = _meta(store, RATE_KEY)
    if fixed is None or fixed["phase"] != t.phase:
        return t
    return replace(t, provisional_audit_rate=float(fixed["rate"]))


def check_rate(store: Store, cfg: Config, t: Thresholds) -> None:
    """A union cascade's calibration phase draws its whole sample at one rate (the union
    test takes the uniform sample's exact test only): fixed at the phase's first round
    (``with_phase_rate``); until the phase is certified (or cannot be any more), a config
    asking for another is refused in one line."""
    fixed, asked = _meta(store, RATE_KEY), cfg.calibration.cold_start_audit_rate
    if fixed is None or fixed["phase"] != t.phase:
        store.set_meta(RATE_KEY, json.dumps({"phase": t.phase, "rate": asked}))
    elif t.certified_a >= cal.NEVER and t.a < cal.NEVER and asked != fixed["rate"]:
        raise ConfigError(
            f"{cfg.file or 'config'}: calibration.cold_start_audit_rate = {asked:g}, but this "
            f"calibration phase draws its sample at {fixed['rate']:g} until a certificate is "
            f"given (one uniform sample): restore {fixed['rate']:g}"
        )


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


def pair_scores(signals: list[cal.Signals | None], caps: union.Caps | None) -> np.ndarray:
    """One pair's cascade-scale scores from its tiers' verdicts (None: not judged)."""
    raw = np.array([[0.0 if s is None else cal.raw_score(s)] for s in signals])
    return union.cascade_scores(raw, caps)[:, 0]


def holder(scores: np.ndarray, t: Thresholds) -> int:
    """The tier whose label one pair delivers at ``t`` (``union.holders``)."""
    return int(union.holders(scores[:, None], t.certified_a, t.a)[0])


def view(store: Store, cfg: Config) -> View:
    """Every routed pair of the cascade (its final routing fixed), each tier's verdict."""
    k_tiers = len(cfg.judges)
    finals: dict[str, Any] = {}
    verdicts: dict[str, dict[int, cal.Signals]] = {}
    for k in range(k_tiers):
        for row in store.routed_verdicts(k):
            verdicts.setdefault(row["pair_id"], {})[k] = cal.row_signals(row)
            if row["action"] != "escalate":
                finals[row["pair_id"]] = row

    def order(r: Any) -> tuple[int, float, int]:  # routing order (``Store.routed_verdicts``)
        return int(r["round_id"]), -1.0 if r["round_draw"] is None else r["round_draw"], r["seq"]

    rows = sorted(finals.values(), key=order)
    signals = [[verdicts[r["pair_id"]].get(k) for k in range(k_tiers)] for r in rows]
    judged = np.array([[s is not None for s in pair] for pair in signals], bool).T
    raw = np.array([[0.0 if s is None else cal.raw_score(s) for s in p] for p in signals]).T
    labels = np.array([[(s and s.label) or "" for s in p] for p in signals], str).T
    shape = (k_tiers, len(rows))
    return View(rows, raw.reshape(shape), labels.reshape(shape), judged.reshape(shape), signals)


def reach(store: Store, cfg: Config, t: Thresholds) -> list[float]:
    """The share of a round's pairs each tier can be expected to see (and, but in a futile
    cascade, judge) under ``t`` (the cascade's thresholds in force), from the earlier
    tiers' verdicts of the pairs routed so far: a tier sees what no tier before it accepts
    (its score at the certificate, unless the pair is drawn for the drift watch), a pair
    they had no usable verdict for too (a failed or malformed reply: score 0); a pair
    screened out before the first tier (to humans unjudged, its row the first tier's)
    reaches none. Without a certificate (a new phase too), or once the cascade is found
    futile (its earlier tiers then pass every pair on unjudged), every tier sees every
    pair."""
    k_tiers = len(cfg.judges)
    v = None if t.a >= cal.NEVER or t.certified_a >= cal.NEVER else view(store, cfg)
    if v is None or not v.judged[0].any():  # (no verdict to go by: the worst case)
        return [1.0] * k_tiers
    adj = v.scores(t.caps)[:-1, v.judged[0]]
    sure = np.logical_or.accumulate(adj >= t.certified_a, axis=0)  # some tier up to k is
    screened = np.array([row["reason"] in SCREENED for row in v.rows], bool)[v.judged[0]]
    stop = np.where(screened, 1.0, sure * (1.0 - t.audit_rate))
    return [1.0, *(float(x) for x in 1.0 - stop.mean(axis=1))]


def judged(
    store: Store, cfg: Config, t: Thresholds
) -> tuple[list[tuple[Any, cal.Judged]], View, np.ndarray]:
    """The cascade's routed pairs as the planned procedure reads them, with the view and
    every tier's disagreement with the human (K x n; unlabelled: False). Each pair's
    signals are those of the tier whose label it delivers at ``t`` (``union.holders``), so a
    drift audit reads the delivered label; a pair sent to humans by rule (``RULE_REASONS``)
    is in no region (its signals say so)."""

    last = len(cfg.judges) - 1
    seeds = {rid: json.loads(text).get("seed") for rid, text in store.round_settings().items()}
    v = view(store, cfg)
    adj = v.scores(t.caps)
    held = union.holders(adj, t.certified_a, t.a)
    out, dis = [], np.zeros(v.raw.shape, bool)
    for i, row in enumerate(v.rows):
        sampled = bool(row["sampled"])
        human = row["human"] if sampled and not row["hint"] else None
        if human is not None:
            dis[:, i] = v.labels[:, i] != human
        k = int(held[i])
        signals = v.signals[i][k if k >= 0 else last] or cal.row_signals(row)
        if row["reason"] in RULE_REASONS:
            signals = cal.Signals(None, 0.0, 0.0, None, True, True)
        seed = seeds[row["round_id"]]  # the round's own (a config's may have changed since)
        draw = None if seed is None else audit_draw(int(seed), row["pair_id"], last)
        out.append((row, cal.Judged(signals, float(row["pi"]), sampled, human, False, draw)))
    return out, v, dis


def caps_for(v: View, data: list[tuple[Any, cal.Judged]], t: Thresholds, rate: float) -> union.Caps:
    """The consistency caps from the phase's pairs outside the calibration sample (draw at
    or above its ``rate``) that every tier judged and that joined the phase (union score,
    uncapped, at or above the floor): verdicts only, no human label."""
    adj = v.scores(None)
    band = np.array(
        [
            row["thresholds_version"] >= t.phase
            and row["reason"] not in RULE_REASONS
            and d.draw is not None
            and d.draw >= rate
            for row, d in data
        ],
        bool,
    )
    band &= v.judged.all(axis=0) & (adj.max(axis=0) >= t.a)
    return union.check_caps(adj[:, band], v.labels[:, band], v.raw[-1, band])


def recheck(store: Store, cfg: Config, t: Thresholds) -> dict[str, int]:
    """Re-check every judge-accepted pair of the cascade against ``t``: certified,
    provisional, or back to humans (``thresholds.recheck``'s invariant), each holding the
    verdict of the tier whose label it delivers (``union.holders``); the moves in one
    transaction each."""

    by_pair = store.accepted_tier_verdicts()
    ids = list(by_pair)
    raw = np.zeros((len(cfg.judges), len(ids)))
    held_now, status_now = np.zeros(len(ids), int), []
    for i, pair_id in enumerate(ids):
        for k, row in by_pair[pair_id].items():
            raw[k, i] = cal.raw_score(cal.row_signals(row))
            if row["final"]:
                held_now[i] = k
                status_now.append(row["status"])
    adj = union.cascade_scores(raw, t.caps)
    held = union.holders(adj, t.certified_a, t.a)
    u = adj.max(axis=0) if ids else np.zeros(0)
    status = np.where(held < 0, RECHECK, np.where(u >= t.certified_a, CERTIFIED, PROVISIONAL))
    store.deliver_tiers(
        {ids[i]: int(held[i]) for i in np.nonzero((held >= 0) & (held != held_now))[0]}
    )
    back = store.apply_recheck(
        {ids[i]: str(st) for i, st in enumerate(status) if st != status_now[i]}
    )
    values = status.tolist()
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
        capped = k < last and binds(t.caps, k, t.certified_a)
        note = " where its consistency with the last tier allows" if capped else ""
        each.append(f"{judge.label} at >= {min(own, 1.0):.1%}{note}")
    return "; in the cascade, the first tier sure enough decides: " + ", ".join(each)


def binds(caps: union.Caps | None, tier: int, lam: float) -> bool:
    """Does a cap keep some score of ``tier`` that would reach ``lam`` below it?"""
    if caps is None:
        return False
    edges, cap = caps[tier]
    upper = [*edges[1:], 1.0]
    return any(c < lam and top > lam for c, top in zip(cap, upper, strict=True))


def history_slot(store: Store, cfg: Config) -> int:
    """The thresholds slot whose history reports show: a union cascade's is the last
    tier's (its one certificate), otherwise the first tier's."""
    return len(cfg.judges) - 1 if is_union(store, cfg) else 0
