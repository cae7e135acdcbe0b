"""A labeling round: import pairs, judge them, route them, write the dataset.

Orchestration only: the maths lives in verdicts, routing and costs; the I/O in store, judge
and export. A round is resumable: its pairs are assigned when it starts, every judge call
is committed as it returns, every verdict with the pair's new state, so running
``labeler round`` again after a crash continues the same round, re-sending only the
requests that were in flight.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict

from labeler import costs, versions
from labeler.config import Config
from labeler.dataset import check_dataset_dir, rows_in_place, write_dataset
from labeler.errors import ConfigError, ReviewError, StateError, UsageError, check_url
from labeler.factcheck import (
    FAILED,
    affordable_now,
    check_sizes,
    run_fact_check,
    unaffordable,
)
from labeler.importing import SourceTally, check_source, import_source
from labeler.judge import check_reachable
from labeler.judging import (
    Context,
    batch_tier,
    judge_tier,
    make_context,
    panel_versions,
    round_thresholds_json,
    tier_thresholds_from_json,
)
from labeler.ledger import (
    money_snapshot,
    project_ledger,
    round_currencies,
    round_ledgers,
    tier_totals,
)
from labeler.lock import project_lock
from labeler.routing import (
    ACCEPT,
)
from labeler.store import Store
from labeler.summary import Progress, RoundSummary, budget_message, setting_notices
from labeler.sync import check_guidelines_fit
from labeler.terms import check_mode as check_phase_mode
from labeler.thresholds import check_tier_count, fix_predicted_split, recheck
from labeler.thresholds import current as current_thresholds
from labeler.union_loop import check_mode, check_rate, is_union

__all__ = [
    "Context",
    "Progress",
    "RoundSummary",
    "SourceTally",
    "collect_batches",
    "import_source",
    "make_context",
    "run_round",
]


def _fill_outcome(store: Store, ctx: Context, summary: RoundSummary, round_id: int) -> None:
    cfg = ctx.cfg
    decisions = store.round_decisions(round_id)
    summary.accepted = sum(n for (action, _), n in decisions.items() if action == ACCEPT)
    review: Counter[str] = Counter()
    for (action, reason), n in decisions.items():
        if action != ACCEPT:
            review[reason] += n
    summary.review = dict(review)
    summary.judged = sum(decisions.values())
    status = store.round_status_counts(round_id)
    summary.certified, summary.provisional = status["certified"], status["provisional"]
    summary.pairs_in_round = store.count_round_pairs(round_id)
    summary.unjudged = store.count_round_pairs(round_id, "imported")
    totals = store.call_totals(round_id)
    summary.prompt_tokens = int(totals["prompt_tokens"])
    summary.completion_tokens = int(totals["completion_tokens"])
    summary.judge_cost = totals["cost"]
    # the same ledger `labeler report` shows (prices and reviewers as snapshotted)
    led = round_ledgers(store, cfg, round_id)[round_id]
    summary.human_cost, summary.baseline_cost = led.human_cost, led.baseline
    summary.saved, summary.savings_factor = led.saved, led.factor
    summary.delivered, summary.human_decided = led.delivered, led.human_decided
    summary.coverage, summary.waiting = led.coverage, led.waiting
    summary.waiting_labels, summary.waiting_cost = led.waiting_labels, led.waiting_cost
    # in the currency the round was priced in (a resumed one: at its start), as `report`
    summary.currency = round_currencies(store, cfg)[round_id]
    summary.savings_notes = costs.savings_notes(led, summary.currency)
    summary.thresholds = asdict(ctx.thresholds)
    if len(cfg.judges) > 1:
        summary.tiers = tier_totals(store, cfg, round_id)


def _warm_up_export() -> None:
    from labeler import export

    export.warm_up()


def _push_for_review(store: Store, cfg: Config, summary: RoundSummary) -> None:
    """Send the pairs waiting for humans to Argilla; a failure leaves them queued."""
    from labeler.sync import push_pending  # rounds -> sync -> dataset: one way

    try:
        result = push_pending(store, cfg)
        summary.review_pushed, summary.review_error = result.pushed, result.error
    except (ReviewError, StateError, ConfigError) as exc:
        summary.review_error = str(exc)
    summary.review_waiting = store.state_counts()["needs_review"]


def round_seed(cfg: Config) -> int | None:
    """The seed rounds draw their pairs with (``routing.round_draw``); None: they take the
    source's first rows (``routing.round_order = "source"``)."""
    return cfg.routing.seed if cfg.routing.round_order == "random" else None


NO_ROUND_TO_RESUME = "--online: no open --batch round to resume (run `labeler round` to start one)"


def run_round(
    cfg: Config,
    *,
    limit: int | None = None,
    strict: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    batch: bool = False,
    online: bool = False,
) -> RoundSummary:
    """Run (or resume) one round; see the module docstring. ``batch``: through the Batch
    API (see ``labeler.batches``); a round started that way keeps to it when resumed,
    unless ``online`` and none of its batches reached the Batch API (an endpoint without
    it): then its requests are sent online. ``online`` with no open round is refused
    (an open online round resumes as it would without it)."""
    started = time.perf_counter()
    if online and not cfg.db_path.exists():  # (refused before a state is made)
        raise UsageError(NO_ROUND_TO_RESUME)
    ctx = make_context(cfg)
    for judge in cfg.judges:  # a setting's fault: before any work
        check_url(judge.base_url)
    check_dataset_dir(cfg, probe=True)
    check_guidelines_fit(cfg)  # (Argilla's limit: before the judge is paid)
    if strict:
        check_source(cfg)
    summary = RoundSummary()
    with project_lock(cfg.project.state_dir, "round"), Store(cfg.db_path) as store:
        check_tier_count(store, cfg)
        check_mode(store, cfg)
        new_judge = versions.check_judges(store, cfg)  # ("": the judge that judged so far)
        open_round = store.open_round()
        if online and open_round is None:  # it would start a new, unlimited round
            raise UsageError(NO_ROUND_TO_RESUME)
        if open_round is not None:  # its pairs are drawn, and their draws read, with its seed
            seed = json.loads(open_round["thresholds"]).get("seed", cfg.routing.seed)
            if seed != cfg.routing.seed:
                raise ConfigError(
                    f"{cfg.file or 'config'}: routing.seed = {cfg.routing.seed}, but the open "
                    f"round {open_round['id']} routes with seed {seed}: restore it until the "
                    "round is finished"
                )
        import_source(store, cfg, summary, on_progress)
        summary.timings["import_s"] = time.perf_counter() - started
        idle = open_round is None and store.unassigned_count() == 0
        owed = check_sizes(store, cfg) if idle and cfg.quality.fact_check else []
        checks_due = not batch and affordable_now(store, cfg, owed)  # (--batch runs none)
        if idle and not checks_due:  # (no round of fact-checks alone that could pay for none)
            summary.status = "nothing_to_do"
            summary.dataset_rows = rows_in_place(store, cfg)  # (the dataset as it stands)
            summary.dataset_path = str(cfg.output.dataset_dir)
            if cfg.quality.fact_check:
                summary.fact_pending = len(owed)
                if summary.fact_pending and not batch:
                    summary.status = "budget_stopped"
                    summary.budget_message = unaffordable(cfg, summary.fact_pending)
            total = project_ledger(store, cfg)  # what still waits in the whole project
            if total is not None:
                summary.waiting, summary.provisional = total.waiting, total.provisional
                summary.waiting_labels, summary.waiting_cost = (
                    total.waiting_labels,
                    total.waiting_cost,
                )
            summary.elapsed_s = time.perf_counter() - started
            return summary
        judges = cfg.judges
        for judge in judges:  # a missing key or an outage stops here, before a round opens
            judge.api_key()
            check_reachable(judge.base_url)
        # a panel's version first: a new version's thresholds start from its own evidence
        panels = panel_versions(store, cfg, open_round)
        if new_judge and open_round is None:  # and so do a new judge's (its own stint)
            versions.begin_stint(store, cfg)
            # the pairs the earlier judge left waiting: no test will cover them
            ended = recheck(store, cfg, current_thresholds(store, cfg), 0)["ended"]
            new_judge += versions.ended_words(cfg, ended, "went")
        elif open_round is not None:  # (said again by a resumed round: the first run's lost)
            new_judge = json.loads(open_round["thresholds"]).get("new_judge", "")
        # a resumed round keeps the thresholds it started with, whatever a sync did since
        if open_round is not None:
            stored = tier_thresholds_from_json(open_round["thresholds"], len(judges))
        else:
            stored = [None] * len(judges)
        in_force = [t or current_thresholds(store, cfg, k) for k, t in enumerate(stored)]
        union = is_union(store, cfg)
        if union and open_round is None:  # one uniform calibration sample until a certificate
            check_rate(store, cfg, in_force[-1])
            in_force = [current_thresholds(store, cfg, k) for k in range(len(judges))]
        ctx = dataclasses.replace(ctx, thresholds=in_force[0])
        check_phase_mode(in_force, cfg)  # (before the judge is paid)
        summary.notices = setting_notices(in_force[-1:] if union else in_force, cfg)
        summary.notices += [new_judge] if new_judge else []
        if open_round is not None:
            round_id, summary.resumed = int(open_round["id"]), True
            started_batch = bool(json.loads(open_round["thresholds"]).get("batch"))
            if started_batch and online:
                summary.batches_dropped = _resume_online(store, cfg, round_id)
                started_batch = False
            if batch and not started_batch:  # an online round resumed --batch: a batch
                # round from now on (a plain `labeler round` collects, not sends again)
                store.set_round_option(round_id, "batch", True)
            batch = batch or started_batch
        else:
            round_id = store.start_round(
                limit,
                cfg.judge.model if len(judges) == 1 else "+".join(j.model for j in judges),
                ctx.template.hash,
                ctx.guidelines.hash,
                round_thresholds_json(in_force)
                | {"seed": cfg.routing.seed, "money": money_snapshot(cfg), "batch": batch}
                | {"judge_versions": {str(k): v.hash for k, v in panels.items()}}
                | {"order": cfg.routing.round_order}
                | ({"new_judge": new_judge} if new_judge else {}),
                round_seed(cfg),
            )
        summary.round_id = round_id
        # `datasets` takes a second to import: do it while the judge calls wait on the network
        warm = threading.Thread(target=_warm_up_export, daemon=True)
        warm.start()
        mark = time.perf_counter()
        stopped = False
        errors: list[str | None] = [None, None]  # (see below)
        for k in range(len(judges)):  # the cascade: each tier judges what the last passed on
            version = panels.get(k)
            examples = versions.examples(store, version) if version else ((),)
            stint = versions.stint(store) if k == 0 and version is None else ""
            tier_ctx = make_context(cfg, in_force[k], k, version, examples, stint)
            if batch:
                engine, summary.batch_waiting = batch_tier(store, tier_ctx, round_id, on_progress)
                if engine is None:
                    break  # later tiers wait for this tier's batches
            else:
                engine = judge_tier(store, tier_ctx, round_id, on_progress)
            summary.requests_sent += engine.sent  # (this run's; the batches' are the round's)
            summary.cached_replies += engine.cached
            # the endpoint's words: first a failure that leaves a pair unjudged (what ends
            # the round unfinished), else one that sent a pair on (to the next tier, humans)
            where = f"{tier_ctx.judge.label}: " if len(judges) > 1 else ""
            for kind, failed in enumerate((engine.retry, engine.failed)):
                if failed and (errors[kind] is None):
                    errors[kind] = where + next(iter(failed.values()))
            if engine.stopped:
                stopped = True
                break  # the budget is spent: later tiers wait for the next run
            if summary.batch_waiting:
                break  # later tiers wait for this tier's batches
        # every request of the round's batches, whichever run collected it (a cascade's
        # earlier tier in an earlier run): sent, not cached
        summary.batch_replies = int(store.call_totals(round_id)["batched"])
        summary.requests_sent += summary.batch_replies
        summary.first_error = errors[0] or errors[1]
        if union:  # a certificate a sync changed since the round began: who holds what
            recheck(store, cfg, current_thresholds(store, cfg, len(judges) - 1), len(judges) - 1)
        unaffordable_checks = False  # a round of checks alone that could pay for none
        if cfg.quality.fact_check and not batch and not stopped:  # (after: a swap is checked)
            fact = run_fact_check(store, cfg, round_id)
            summary.requests_sent += fact.sent
            unaffordable_checks = bool(fact.skipped and not fact.sent)
            unaffordable_checks &= not store.count_round_pairs(round_id)
        if cfg.quality.fact_check:  # the round's checks over all its runs, what still waits
            done = store.fact_checked_in(round_id)
            summary.fact_checked = sum(n for k, n in done.items() if k != FAILED)
            summary.chosen_has_errors = done.get("errors", 0)
            summary.fact_check_failed = done.get(FAILED, 0)
            summary.fact_pending = store.fact_pending_count()
        summary.timings["judge_s"] = time.perf_counter() - mark
        if not store.count_round_pairs(round_id, "imported"):  # every tier judged it
            fix_predicted_split(store, cfg)  # (the simulation predicts after round 1 too)
        warm.join()
        mark = time.perf_counter()
        summary.dataset_rows = write_dataset(store, cfg)
        summary.dataset_path = str(cfg.output.dataset_dir)
        if cfg.review.enabled:
            _push_for_review(store, cfg, summary)
        summary.timings["dataset_s"] = time.perf_counter() - mark
        # after the push: a pair pushed to two reviewers (review.double_share) pays both
        # verdicts, as status and report count it
        _fill_outcome(store, ctx, summary, round_id)
        summary.status = "incomplete" if summary.unjudged else "completed"
        if batch:
            summary.batches = [dict(b) for b in store.batches(round_id)]
        if summary.batch_waiting and summary.unjudged:
            summary.status = "batch_waiting"
        if stopped and summary.unjudged:
            summary.status = "budget_stopped"
            summary.budget_message = budget_message(cfg, summary)
        if unaffordable_checks:  # (stays open: the next run does not open another)
            summary.status = "budget_stopped"
            summary.budget_message = unaffordable(cfg, summary.fact_pending)
        summary.elapsed_s = time.perf_counter() - started
        if summary.status == "completed":
            store.finish_round(round_id, summary.to_dict(), "completed")
    return summary


def _resume_online(store: Store, cfg: Config, round_id: int) -> int:
    """Turn an open --batch round into an online one (``labeler round --online``)."""
    from labeler.batches import drop_unsubmitted
    from labeler.judge import OpenAIBatches

    def api_of(tier: int) -> OpenAIBatches:
        judge = cfg.judges[tier]
        return OpenAIBatches(judge, judge.api_key())

    dropped = drop_unsubmitted(store, api_of, round_id)
    store.set_round_option(round_id, "batch", False)
    return dropped


def collect_batches(
    cfg: Config, on_progress: Callable[[Progress], None] | None = None
) -> RoundSummary:
    """``labeler batches``: continue the open --batch round (collect, route, submit what a
    later tier needs); with none open, list every batch so far."""
    if cfg.db_path.exists():
        with Store(cfg.db_path) as store:
            open_round = store.open_round()
            rows = [dict(b) for b in store.batches()]
        if open_round is not None and json.loads(open_round["thresholds"]).get("batch"):
            return run_round(cfg, on_progress=on_progress, batch=True)
    else:
        rows = []
    return RoundSummary(status="nothing_to_do", batches=rows)
