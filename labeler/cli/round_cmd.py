"""``labeler round`` and ``labeler status``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from labeler.cli import load, wait_option, waiting
from labeler.errors import FinishWaits, UsageError

if TYPE_CHECKING:
    from labeler.config import Config


@click.command("round")
@click.option("--limit", type=click.IntRange(min=1, max=10**12), help="Judge at most N new pairs.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Judge nothing; show what would be sent and an estimate of its cost.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--strict", is_flag=True, help="Stop at the first bad row, before judging.")
@click.option("--judge-url", help="Override judge.base_url.")
@click.option("--model", help="Override judge.model.")
@click.option("--concurrency", type=int, help="Override judge.concurrency.")
@click.option(
    "--batch",
    is_flag=True,
    help="Send the requests through the Batch API (half price, results within 24 h); "
    "run `labeler round` or `labeler batches` again later to collect and route them.",
)
@click.option(
    "--online",
    is_flag=True,
    help="Resume an open --batch round online (full price): for an endpoint without the "
    "Batch API. Refused once one of its batches has reached the Batch API.",
)
@click.option(
    "--finish",
    is_flag=True,
    help="End the project: pull the reviewers' verdicts, take a last look at the "
    "calibration sample, then decide every pair still waiting for evidence (certified "
    "where the evidence allows, to humans otherwise). Waits while audited pairs are still "
    "with reviewers (their verdicts are the last look's evidence).",
)
@click.option(
    "--now",
    is_flag=True,
    help="With --finish: finish even while audited pairs are still with reviewers (the "
    "last look certifies from the verdicts in so far).",
)
@wait_option
@click.pass_context
def round_(
    ctx: click.Context,
    limit: int | None,
    dry_run: bool,
    as_json: bool,
    strict: bool,
    judge_url: str | None,
    model: str | None,
    concurrency: int | None,
    batch: bool,
    online: bool,
    finish: bool,
    now: bool,
    wait: bool,
) -> None:
    """Judge the next pairs, route them, and write the dataset.

    Imports new pairs from the configured source, judges up to --limit of them (resuming an
    unfinished round first), accepts the confident verdicts and queues the rest for review.

    \b
    Example:
        labeler round --limit 500
        labeler round --dry-run
        labeler round --json > round.json
        labeler round --batch
        labeler round --finish
        labeler round --finish --now
    """
    from labeler import planning, rounds
    from labeler.cli import render

    cfg = load(
        ctx, **{"judge.base_url": judge_url, "judge.model": model, "judge.concurrency": concurrency}
    )
    if finish and dry_run:
        raise UsageError(
            "--finish --dry-run: finishing has no dry run (it decides every waiting pair for "
            "good); `labeler status` shows what waits and what finishing would cost"
        )
    if now and not finish:
        raise UsageError("--now goes with --finish (finish without the audits still out)")
    if batch and online:
        raise UsageError("--batch --online: choose one (--online resumes a --batch round online)")
    if online and dry_run:
        raise UsageError(
            "--online --dry-run: --online has no dry run (a dry run estimates a new round; "
            "--online resumes an open --batch round); `labeler batches` lists that round's "
            "batches"
        )
    if finish:
        _finish(cfg, as_json, wait, now)
        return
    if dry_run:
        summary = planning.plan_round(cfg, limit=limit, batch=batch, strict=strict)
    else:
        with waiting(cfg, "round", wait), render.round_progress(cfg.costs.currency) as update:
            summary = rounds.run_round(
                cfg, limit=limit, strict=strict, on_progress=update, batch=batch, online=online
            )
    data = summary.to_dict()
    if as_json:
        render.print_json(data)
        _stop_if_unfinished(summary)
        return
    console = render.Console()
    if summary.status == "budget_stopped" and summary.round_id is None:
        _say_unchecked(console, summary.fact_pending)  # (no round opened: its checks wait)
        _stop_if_unfinished(summary)
    if summary.status == "nothing_to_do":
        console.print("Nothing to do: every pair in the source has been judged.")
        _say_waiting(console, cfg)
        _say_unchecked(console, summary.fact_pending)
        return
    _print_round(console, cfg, summary)
    if summary.tiers:
        console.print(render.tiers_table(summary.tiers, summary.currency))
    _print_batches(console, summary)
    if summary.batches_dropped:
        n = summary.batches_dropped
        console.print(
            f"Resumed online: {n} batch file{'s' * (n != 1)} that never reached the Batch "
            "API dropped; the requests were sent online."
        )
    for example in summary.bad_row_examples:
        console.print(f"[yellow]skipped[/] {render.escape(example)}", highlight=False)
    more = sum(summary.skipped.values()) - len(summary.bad_row_examples)
    if more > 0:  # (a dry run stores nothing: the round will)
        after = "after the round, " if summary.status == "dry_run" else ""
        lists = f"{after}`labeler report --quality` lists them all"
        console.print(f"[yellow]skipped[/] {more} more rows: {lists}", highlight=False)
    _stop_if_unfinished(summary)


def _finish(cfg: Config, as_json: bool, wait: bool, now: bool) -> None:
    from labeler.cli import render
    from labeler.status import fact_checks_owed
    from labeler.sync import run_sync

    with waiting(cfg, "sync", wait):
        summary = run_sync(cfg, finish=True, now=now)
    if as_json:
        render.print_json(summary.to_dict())
    n = summary.finish_waits
    if n:
        raise FinishWaits(
            f"--finish: not yet: {n} audited pair{'s are' if n != 1 else ' is'} still with "
            "reviewers, and the last look reads their verdicts (finishing without them "
            "certifies from less evidence and sends what it cannot certify to humans). "
            "The verdicts in so far are synced; run `labeler sync` as reviewers decide, "
            "then `labeler round --finish`, or `labeler round --finish --now` to finish "
            "without them"
        )
    if as_json:
        return
    console = render.Console()
    cal = summary.calibration or {}
    console.print(f"Finished: {cal.get('message', '')}", highlight=False)
    where = (
        f"reviewers in Argilla ({summary.pushed} sent now). Run `labeler sync` as they decide."
        if cfg.review.enabled
        else "human labels (review.enabled = false: Argilla is not asked)."
    )
    console.print(
        f"{cal.get('certified', 0)} judge labels certified; {summary.awaiting} pairs wait for "
        + where
    )
    _say_unchecked(console, fact_checks_owed(cfg))  # a label the finish changed, say


def _print_round(console: Any, cfg: Config, summary: Any) -> None:
    """The round's table, then what it did not do as asked (settings not in force, pairs
    not pushed and why) and the whole project's delivered pairs and savings (the table's
    are the round's own)."""
    from labeler.cli import render
    from labeler.status import project_savings

    console.print(render.round_table(summary.to_dict()))
    for notice in summary.notices:
        console.print(f"[yellow]{render.escape(notice)}[/]")
    if summary.review_error:  # (the pairs wait for the next push: say why they were not)
        console.print(
            f"[yellow]Not pushed to Argilla: {render.escape(summary.review_error)}; `labeler "
            "sync` pushes them once that is fixed.[/]"
        )
    total, currency = project_savings(cfg) if summary.status != "dry_run" else (None, "")
    if total is not None:
        console.print(render.Text("Project so far: ") + render.savings_line(total, currency))


def _say_unchecked(console: object, n: int) -> None:
    """Accepted pairs whose fact-check (``quality.fact_check``) an online round still owes."""
    if n:
        console.print(  # type: ignore[attr-defined]
            f"[yellow]Fact-checks still to do: {n} judge-accepted pairs not checked yet; "
            "`labeler round` (online, not --batch) asks them.[/]"
        )


def _say_waiting(console: object, cfg: Config) -> None:
    """When the source is exhausted: what still waits for evidence, and what finishing
    may cost."""
    from labeler.status import waiting_for_evidence

    n, cost, audits = waiting_for_evidence(cfg)
    if n:
        labels = n * cfg.reviewers_needed(False)
        out = (
            f"; {audits} audited pairs, evidence still to come, were with reviewers at the "
            "last sync: `labeler round --finish` waits for them (`--finish --now` does not)"
            if audits and cfg.review.enabled
            else ""
        )
        console.print(  # type: ignore[attr-defined]
            f"[yellow]{n} judge-accepted pairs still wait for evidence (not in the dataset). "
            f"`labeler sync` as reviewers decide; `labeler round --finish` decides them: "
            f"certified where the evidence allows, the rest to humans (up to {labels} human "
            f"labels, {cost}){out}.[/]"
        )


def _print_batches(console: object, summary: object) -> None:
    from labeler.cli import render

    rows = getattr(summary, "batches", [])
    if rows:
        console.print(render.batches_table(rows))  # type: ignore[attr-defined]
    if getattr(summary, "status", None) == "batch_waiting":
        console.print(  # type: ignore[attr-defined]
            f"[yellow]{getattr(summary, 'batch_waiting', 0)} batches are at the Batch API; "
            "run `labeler round` (or `labeler batches`) later to collect and route them.[/]"
        )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@wait_option
@click.pass_context
def batches(ctx: click.Context, as_json: bool, wait: bool) -> None:
    """Collect finished Batch API batches of the open round, route their results (as
    `labeler round` would), and list the batches.

    \b
    Example:
        labeler round --batch
        labeler batches
    """
    from labeler import rounds
    from labeler.cli import render

    cfg = load(ctx)
    with waiting(cfg, "round", wait), render.round_progress(cfg.costs.currency) as update:
        summary = rounds.collect_batches(cfg, on_progress=update)
    if as_json:
        render.print_json(summary.to_dict())
        return
    console = render.Console()
    if summary.status == "budget_stopped" and summary.round_id is None:
        _say_unchecked(console, summary.fact_pending)  # (no round opened: its checks wait)
        _stop_if_unfinished(summary)
    if summary.status == "nothing_to_do":
        console.print("No round is waiting for the Batch API.")
    else:
        _print_round(console, cfg, summary)
    _print_batches(console, summary)


def _stop_if_unfinished(summary: object) -> None:
    """A round stopped at its budget (exit 3) or with pairs the judge failed on (exit 1)
    ends in an error line, after its summary: its work is saved either way."""
    from labeler.errors import BudgetExceeded, RoundUnfinished

    status = getattr(summary, "status", None)
    if status == "budget_stopped":
        raise BudgetExceeded(getattr(summary, "budget_message", "budget reached"))
    if status == "incomplete":
        error = getattr(summary, "first_error", None)
        raise RoundUnfinished(
            f"Round {getattr(summary, 'round_id', '?')} is not finished: "
            f"{getattr(summary, 'unjudged', 0)} pairs failed{f' ({error})' if error else ''}. "
            "Run `labeler round` again."
        )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show how many pairs are in each state, the rounds so far, the total cost, and the
    savings on delivered pairs (certified judge labels + human decisions).

    \b
    Example:
        labeler status
    """
    from labeler.cli import render
    from labeler.status import project_status

    data = project_status(load(ctx))
    if as_json:
        render.print_json(data)
        return
    console = render.Console()
    if not data["initialised"]:
        console.print(
            f"No state yet at {data['state_db']}: run `labeler round` first.", markup=False
        )
        return
    console.print(render.status_table(data))
    console.print(render.rounds_table(data))
    if data["savings"]:
        console.print(render.savings_line(data["savings"], data["currency"]))
        if data["savings"]["notes"]:
            console.print(render.notes_text(data["savings"]["notes"]))
    if data["disputed"]:
        n, still = data["disputed"], data["disputed_open"]
        # (a trial: decided by majority, they still read as needing action)
        console.print(
            f"[{'yellow' if still else 'dim'}]{n} pair{'s' if n > 1 else ''} disputed by "
            f"reviewers, {still} with no majority yet; `labeler sync` lists them.[/]"
        )
    _say_unchecked(console, data["fact_checks_owed"])
