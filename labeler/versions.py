"""Judge versions of a panel tier (``judge.panel`` > 1): the frozen in-context example
sets, made from human verdicts and refreshed on ``labeler judge refresh`` or every
``judge.refresh_every`` new human verdicts (orchestration; the choice is in ``panel``).
A single judge changed between rounds (model, template, guidelines) begins a *stint*,
which its thresholds and evidence treat as a version (``stint``, ``check_judges``).

A version's hash is folded into the tier's prompt hash, so it is in every verdict and
dataset row the tier makes (``template_hash``) and in its cache keys; its thresholds start
from its own evidence (``thresholds.current``), without the pairs it shows as examples.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from labeler import panel, prompts
from labeler.config import Config, JudgeConfig
from labeler.errors import ConfigError, StateError
from labeler.lock import project_lock
from labeler.store import Store

Examples = tuple[tuple[panel.Example, ...], ...]


def prompt_hash(template_hash: str, version: panel.Version) -> str:
    """The tier's prompt hash with the version's examples in it."""
    return hashlib.sha256(f"{template_hash}:{version.hash}".encode()).hexdigest()[:16]


def latest(store: Store, tier: int) -> panel.Version | None:
    row = store.judge_version(tier)
    return None if row is None else panel.Version.from_json(row["examples"])


def named(store: Store, tier: int, hash_: str) -> panel.Version | None:
    row = store.judge_version(tier, hash_)
    return None if row is None else panel.Version.from_json(row["examples"])


def make(store: Store, judge: JudgeConfig, tier: int) -> panel.Version:
    """A new version from every human verdict so far (stored; the same examples give the
    same version)."""
    found = store.example_candidates()
    candidates = [panel.Candidate(p, h, j) for p, h, j in found]
    # the seed is the evidence's: the same verdicts give the same version (a refresh with
    # nothing new keeps it, and with it the evidence its thresholds rest on)
    digest = hashlib.sha256(repr((tier, sorted(found, key=repr))).encode()).hexdigest()
    version = panel.choose(candidates, judge.panel, judge.panel_examples, seed=int(digest[:8], 16))
    store.add_judge_version(tier, version.hash, version.to_json(), store.human_decision_count())
    return version


def for_new_round(store: Store, judge: JudgeConfig, tier: int) -> panel.Version:
    """The version a new round's tier uses: the latest, or a new one when there is none
    yet or ``judge.refresh_every`` human verdicts came in since it was made."""
    row = store.judge_version(tier)
    if row is None:
        return make(store, judge, tier)
    due = judge.refresh_every > 0 and (
        store.human_decision_count() - int(row["human_verdicts"]) >= judge.refresh_every
    )
    return make(store, judge, tier) if due else panel.Version.from_json(row["examples"])


def examples(store: Store, version: panel.Version) -> Examples:
    texts = store.pair_texts(sorted(version.example_ids))
    return tuple(
        tuple(panel.Example(*texts[pid], label) for pid, label in variant if pid in texts)
        for variant in version.variants
    )


def refresh(cfg: Config) -> list[dict[str, Any]]:
    """``labeler judge refresh``: a new version for every panel tier, from the human
    verdicts so far."""
    if not cfg.db_path.exists():
        raise StateError(f"{cfg.db_path}: no state yet; run `labeler round` first")
    out = []
    with project_lock(cfg.project.state_dir, "judge refresh"), Store(cfg.db_path) as store:
        for tier, judge in enumerate(cfg.judges):
            if judge.panel <= 1:
                continue
            before = latest(store, tier)
            version = make(store, judge, tier)
            corrected = {p for p, h, j in store.example_candidates() if h != j}
            out.append(
                {
                    "tier": judge.label,
                    "version": version.hash,
                    "previous": None if before is None else before.hash,
                    "variants": len(version.variants),
                    "examples": len(version.example_ids),
                    "corrected": len(version.example_ids & corrected),
                    "changed": before is None or before.hash != version.hash,
                }
            )
    return out


STINTS = "judge_stints"  # meta: a single judge's stints after its first, oldest first


def stint(store: Store) -> str:
    """The single judge's current stint: "" for the project's first judge; a later one
    (``begin_stint``) is named ``N:identity``, so a judge used before (A -> B -> A)
    starts a stint of its own, never reading its first stint's labels or looks."""
    found = store.get_meta(STINTS)
    return str(json.loads(found)[-1]["id"]) if found else ""


def _judge_now(cfg: Config) -> tuple[str, str, str]:
    """The single judge as its verdicts depend on it: model, template and guidelines."""
    template = prompts.load_template(cfg.judge.template).hash
    return cfg.judge.model, template, prompts.load_guidelines(cfg.judge.guidelines).hash


def _identity(judge: tuple[str, str, str]) -> str:
    return hashlib.sha256("\0".join(judge).encode()).hexdigest()[:12]


def begin_stint(store: Store, cfg: Config) -> None:
    """A new round's single judge is not the current stint's (``check_judges`` said so):
    it begins a stint, and with it a calibration phase of its own (``thresholds``).
    Idempotent: a round that began one and judged nothing begins none again."""
    stints = json.loads(store.get_meta(STINTS) or "[]")
    now = _judge_now(cfg)
    if not stints or stints[-1]["identity"] != _identity(now):
        stint_id = f"{len(stints) + 2}:{_identity(now)}"
        stints.append({"identity": _identity(now), "id": stint_id, "judge": list(now)})
        store.set_meta(STINTS, json.dumps(stints))


def _single_judge_change(store: Store, cfg: Config) -> str:
    """``check_judges`` for a single judge (``changeable``): what changed since the
    current stint's judge (the first stint's: its last call), as a notice ("" when
    nothing did). A round open under another judge is refused: it is finished by the
    judge that began it (its verdicts are that judge's evidence)."""
    now = _judge_now(cfg)
    began = store.open_round()
    if began is not None:
        then = (began["model"], began["template_hash"], began["guidelines_hash"])
        if then != now:
            raise ConfigError(
                f"{cfg.file or 'config'}: the judge changed ({', '.join(_changes(then, now))}) "
                f"while round {began['id']}, begun by the earlier judge, is open: restore the "
                "judge until that round is finished (`labeler round`), then change it"
            )
        return ""
    stints = json.loads(store.get_meta(STINTS) or "[]")
    last = store.last_judge(0)
    if stints:
        then = tuple(stints[-1]["judge"])
    elif last is not None:
        then = (last["model"], last["template_hash"], last["guidelines_hash"])
    else:
        return ""  # nothing judged yet
    if then == now:
        return ""
    return (
        f"the judge changed since its last round ({', '.join(_changes(then, now))}): it "
        "begins a calibration phase of its own (the earlier judge's labels are no evidence "
        "for it; those it certified stay, and the pairs it accepted that still wait for "
        "evidence go to humans, as no test will cover them)"
    )


def ended_words(cfg: Config, pairs: int, went: str) -> str:
    """What a new stint does to the earlier judge's waiting ``pairs`` (the notice's end):
    their human labels are charged to the rounds that judged them."""
    if not pairs:
        return ""
    price = cfg.costs.human_price_per_pair * cfg.reviewers_needed(False)
    return (
        f"; {pairs} such pair{'s' if pairs != 1 else ''} {went} to humans (up to "
        f"{pairs * price:.2f} "
        f"{cfg.costs.currency} of human labels, charged to the rounds that judged them)"
    )


def _changes(then: tuple[str, ...], now: tuple[str, ...]) -> list[str]:
    what = [f"model {then[0]!r} -> {now[0]!r}", "the judge template", "the guidelines"]
    return [w for w, a, b in zip(what, then, now, strict=True) if a != b]


def changeable(cfg: Config) -> bool:
    """Can the judge change mid-project, beginning a stint (``begin_stint``)? A single
    judge without a panel; a cascade's or a panel's judge is refused (``check_judges``)."""
    return len(cfg.judges) == 1 and cfg.judge.panel <= 1


def check_judges(store: Store, cfg: Config) -> str:
    """A tier whose judge is not the one that judged at that position so far: another
    ``model``, template or guidelines (a tier added in front of a project's judge moves it
    down). The calibration evidence and the certificate of a position are that judge's:
    a new judge certified by them would put labels in the dataset that no human test
    covers. A single judge (``changeable``) begins a stint at the next round, its own
    calibration phase: returned is what to tell the user ("" when nothing changed).
    Otherwise, and while a round the earlier judge began is open, refused (ConfigError,
    before a round pays a judge). A panel tier's template hash holds its version (which
    changes by design): its model and guidelines are checked."""
    if changeable(cfg):
        return _single_judge_change(store, cfg)
    guidelines = prompts.load_guidelines(cfg.judge.guidelines).hash
    for tier, judge in enumerate(cfg.judges):
        last = store.last_judge(tier)
        if last is None:
            continue
        then = (last["model"], last["template_hash"], last["guidelines_hash"])
        # (a panel's template hash holds its version: not compared)
        template = prompts.load_template(judge.template).hash if judge.panel <= 1 else then[1]
        changed = _changes(then, (judge.model, template, guidelines))
        if not changed:
            continue
        where = f"judge tier {tier + 1} ({judge.label})" if len(cfg.judges) > 1 else "the judge"
        raise ConfigError(
            f"{cfg.file or 'config'}: {where} changed since its last round ("
            f"{', '.join(changed)}); its calibration evidence and certificate are the "
            "earlier judge's and cannot certify another (a cascade's or a panel's judge "
            "cannot change mid-project): restore it, or start a new project "
            "(project.state_dir) for the new judge"
        )
    return ""
