"""Rendering with rich: tables for summaries, the round progress bar. Only the CLI uses it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from labeler.errors import shown_url


def stderr_console() -> Console:
    return Console(stderr=True)


def money(value: float, currency: str) -> str:
    return f"{value:,.4f} {currency}" if abs(value) < 1 else f"{value:,.2f} {currency}"


def print_json(obj: Any) -> None:
    """One JSON object on stdout, nothing else (for scripts)."""
    print(json.dumps(obj, sort_keys=True, default=str))


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} pairs/s" if speed else "- pairs/s", style="cyan")


class _CostColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        cost = task.fields.get("cost", 0.0)
        return Text(money(cost, task.fields.get("currency", "")), style="green")


@contextmanager
def round_progress(currency: str, console: Console | None = None) -> Iterator[Any]:
    """A progress bar on stderr; yields a callback taking ``rounds.Progress``."""
    console = console or stderr_console()
    progress = Progress(
        TextColumn("[bold]{task.fields[phase]}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeRemainingColumn(),
        _CostColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    task = progress.add_task("judging", total=None, cost=0.0, currency=currency, phase="importing")

    def update(p: Any) -> None:
        progress.update(task, completed=p.done, total=p.total, cost=p.cost, phase=p.phase)

    with progress:
        yield update


@contextmanager
def verify_progress(show: bool) -> Iterator[Any]:
    """A progress bar on stderr for `labeler verify`; yields a callback (done, total)."""
    console = stderr_console()
    progress = Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (show and console.is_terminal),
    )
    task = progress.add_task("scoring", total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield update


def verify_table(v: dict[str, Any], currency: str) -> Table:
    """What `labeler verify` scored and flagged, by label source."""
    table = Table(title="Reward-model verification", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("dataset rows checked", str(v["rows"]))
    table.add_row("responses scored now / from the cache", f"{v['scored_now']} / {v['cached']}")
    table.add_row("requests, cost", f"{v['requests']}, {money(v['cost'], currency)}")
    for source in ("human", "judge"):
        if v["checked"].get(source):
            table.add_row(
                f"flagged {source} labels (margin < {v['min_margin']:g})",
                f"{v['flagged'].get(source, 0)} of {v['checked'][source]}",
            )
    what = {
        "flag": "marked in the dataset (rm_margin, rm_flag)",
        "review": f"{v['sent_to_review']} judge labels sent back to humans, "
        f"{v['asked_again']} human labels to one more reviewer (at the next `labeler sync`)"
        + (
            f"; {v['left_behind']} in a review dataset no longer synced (review.dataset "
            "changed since) kept as they are"
            if v.get("left_behind")
            else ""
        ),
        "drop": f"{v['dropped']} rows left out of the dataset",
    }[v["action"]]
    table.add_row(f"action: {v['action']}", what)
    table.add_row("dataset rows now", str(v["dataset_rows"]))
    return table


def demo_verify_line(v: dict[str, Any]) -> Text:
    """What the demo's SIMULATED reward model flagged, and how much of it was wrong."""
    flagged = sum(v["flagged"].values())
    by = ", ".join(f"{n} {source}" for source, n in sorted(v["flagged"].items())) or "none"
    return Text(
        f"labeler verify (reward model SIMULATED: a stated noise model over the known "
        f"answers): flagged {flagged} of {v['rows']} dataset rows ({by}) at margin < "
        f"{v['min_margin']:g}; {v['wrong_caught']} of them have a wrong label by the known "
        f"answers, {v['wrong_missed']} wrong rows were not flagged. Flagged rows carry "
        "rm_flag in the dataset."
    )


def round_table(s: dict[str, Any]) -> Table:
    """The end-of-round summary as a two-column table."""
    cur = s["currency"]
    dry = s["status"] == "dry_run"
    if dry:  # an open round is resumed: its pairs were drawn, the source is not read
        resumes = f"round {s['round_id']} resumes, " if s["resumed"] else ""
        title = f"Dry run: {resumes}nothing judged"
    else:
        title = f"Round {s['round_id']}" + (" (resumed)" if s["resumed"] else "")
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right", overflow="fold")
    if dry and s["resumed"]:
        table.add_row("source", "not read (new rows: next round)")
    else:
        table.add_row("pairs read from source", str(s["source_pairs"]))
        if not dry:
            table.add_row("new pairs imported", str(s["new_pairs"]))
        table.add_row("rows skipped", str(sum(s["skipped"].values())))
        for kind, n in sorted(s["skipped"].items()):
            table.add_row(f"  {kind}", str(n))
    if dry:
        table.add_row("pairs the round would judge", str(s["pairs_in_round"]))
        table.add_row("estimated input tokens", f"{s['prompt_tokens']:,}")
        table.add_row("max output tokens", f"{s['completion_tokens']:,}")
        cpt = s.get("chars_per_token")
        basis = (
            f"{cpt:.2f} chars/token seen in earlier rounds"
            if cpt
            else "4 chars/token, until a round has run"
        )
        checks = s.get("fact_checked", 0)  # (the fact-check's requests are the judge's)
        said = "judge requests (" + ("with fact-checks)" if checks else "orders x samples)")
        table.add_row(said, str(s["requests_sent"]))
        if checks:
            table.add_row("  of them fact-checks (at most)", str(checks))
        table.add_row("estimated judge cost (at most)", money(s["judge_cost"], cur))
        table.add_row("  token estimate", basis)
        table.add_row("all-human cost (forecast)", money(s["baseline_cost"], cur))
        return table
    table.add_row("pairs in round", str(s["pairs_in_round"]))
    table.add_row("judged", str(s["judged"]))
    table.add_row("accepted by the judge", f"[green]{s['accepted']}[/]")
    table.add_row("  certified (in the dataset)", str(s.get("certified", 0)))
    table.add_row("  provisional (awaiting evidence)", str(s.get("provisional", 0)))
    table.add_row("sent to review", str(sum(s["review"].values())))
    for reason, n in sorted(s["review"].items()):
        table.add_row(f"  {reason}", str(n))
    if s.get("fact_checked") or s.get("fact_check_failed"):
        table.add_row(
            "chosen responses fact-checked",
            f"{s['fact_checked']} ({s['chosen_has_errors']} with errors: to humans)",
        )
    if s.get("fact_check_failed"):
        table.add_row(
            "[yellow]fact-checks refused or failed (to humans)[/]",
            f"[yellow]{s['fact_check_failed']}[/]",
        )
    if s.get("fact_pending"):
        table.add_row(
            "[yellow]fact-checks left for the next round[/]",
            f"[yellow]{s['fact_pending']}[/]",
        )
    if s["unjudged"]:
        why = (
            "at the Batch API (`labeler batches` collects them)"
            if s.get("batch_waiting")
            else "failed, retried next run"
        )
        table.add_row(f"[yellow]not judged yet ({why})[/]", f"[yellow]{s['unjudged']}[/]")
    # a resumed round: the requests are this run's (a batch round's: every run's, as
    # collected), the tokens and cost every run's
    resumed, batched = bool(s.get("resumed")), bool(s.get("batch_replies"))
    through = f" ({s['batch_replies']} through the Batch API)" if batched else ""
    whole = " (the round's)" if resumed else ""
    table.add_row(
        "requests sent / cached (this run)"
        if resumed and not batched
        else "judge requests sent / cached",
        f"{s['requests_sent']} / {s['cached_replies']}{through}",
    )
    table.add_row(
        f"judge tokens in / out{whole}", f"{s['prompt_tokens']:,} / {s['completion_tokens']:,}"
    )
    table.add_row(f"judge cost{whole}", money(s["judge_cost"], cur))
    table.add_row("human review cost", money(s["human_cost"], cur))
    _savings_rows(table, s, cur)
    if s["dataset_path"]:
        table.add_row("dataset", f"{s['dataset_path']} ({s['dataset_rows']} rows)")
    if s.get("review_pushed"):
        table.add_row("pushed to Argilla for review", str(s["review_pushed"]))
    if s.get("review_error"):  # (why: the line under the table)
        table.add_row(
            "[yellow]waiting to be pushed to Argilla[/]", f"[yellow]{s['review_waiting']}[/]"
        )
    return table


def _verdict(factor: float | None, delivered: int) -> str:
    if not delivered:
        return " (nothing delivered yet)"
    if factor is None:
        return ""
    return (
        f" ({factor:.1f}x cheaper)"
        if factor >= 1
        else f" ({factor:.2f}x: not cheaper than all-human)"
    )


def _savings_rows(table: Table, s: dict[str, Any], cur: str) -> None:
    """Savings on delivered pairs (certified judge labels + human decisions), then the
    notes: why nothing is saved yet, what still waits."""
    delivered, human = s["delivered"], s["human_decided"]
    table.add_row(
        "this round: delivered (certified + human)",
        f"{delivered} ({delivered - human} + {human})",
    )
    table.add_row("coverage of delivered (judge alone)", _pct(s["coverage"]))
    table.add_row("all-human cost of delivered", money(s["baseline_cost"], cur))
    verdict = _verdict(s["savings_factor"], delivered)
    table.add_row(
        "this round: saved on delivered", f"[bold green]{money(s['saved'], cur)}[/]{verdict}"
    )
    for note in s["savings_notes"]:
        head, _, rest = note.partition(": ")
        table.add_row(f"[yellow]{head}[/]", rest)


def savings_line(total: dict[str, Any], currency: str) -> Text:
    """Delivered pairs and what they saved, in one line (``labeler status``)."""
    delivered, human = total["delivered"], total["human_decided"]
    return Text(
        f"Delivered: {delivered} pairs ({delivered - human} certified judge, {human} human); "
        f"coverage {_pct(total['coverage'])}; saved on delivered "
        f"{money(total['saved'], currency)}{_verdict(total['savings_factor'], delivered)}"
    )


def notes_text(notes: list[str]) -> Text:
    return Text("\n".join(notes), style="yellow")


STATE_MEANINGS = {
    "imported": "read from the source, not judged yet",
    "accepted": "judge-accepted: certified (in the dataset at the next write) or provisional",
    "needs_review": "waiting to be pushed to Argilla",
    "in_review": "in Argilla, with reviewers",
    "human_decided": "decided by reviewers: a tie or both bad (no DPO row)",
    "exported": "in the dataset (human or certified judge label)",
}


def status_table(status: dict[str, Any]) -> Table:
    table = Table(title="Pairs by state", title_justify="left")
    table.add_column("state")
    table.add_column("pairs", justify="right")
    table.add_column("meaning")
    for state, n in status["states"].items():
        table.add_row(state, str(n), STATE_MEANINGS.get(state, ""))
    table.add_row("[bold]total[/]", f"[bold]{sum(status['states'].values())}[/]", "")
    return table


def rounds_table(status: dict[str, Any]) -> Table:
    cur = status["currency"]
    table = Table(title="Rounds", title_justify="left")
    for col in ("round", "status", "pairs", "accepted", "review", "judge cost", "human cost"):
        table.add_column(col, justify="right" if col != "status" else "left")
    for r in status["rounds"]:
        table.add_row(
            str(r["id"]),
            r["status"],
            str(r["pairs"]) if r["pairs"] == r["assigned"] else f"{r['pairs']} of {r['assigned']}",
            str(r["accepted"]),
            str(r["review"]),
            money(r["judge_cost"], r.get("currency", cur)),
            money(r["human_cost"], r.get("currency", cur)),
        )
    table.add_row(
        "[bold]total[/]",
        "",
        "",
        "",
        "",
        f"[bold]{money(status['cost'], cur)}[/]",
        f"[bold]{money(status['human_cost'], cur)}[/]",
    )
    return table


def demo_banner(judge_url: str | None, reviewers: int = 2, parity: bool = False) -> Text:
    judge = (
        f"the judge is REAL ({shown_url(judge_url)})"
        if judge_url
        else "the judge is SIMULATED (a local HTTP server speaking the OpenAI protocol, "
        "verdicts from a stated noise model over pairs with known answers; use "
        "--judge-url and --model for a real one)"
    )
    error = (
        "erring 3% on easy pairs to 35% on the hardest, each on their own; two decide "
        "every review pair (human parity)"
        if parity
        else "with a 2% error rate"
    )
    people = (
        f"{reviewers} reviewers are SIMULATED (they decide pairs through Argilla's "
        f"HTTP API from the known answers, {error}; use --reviewers 0 "
        "--keep-serving to review yourself)"
        if reviewers
        else "no simulated reviewers: the review queue waits for people"
    )
    return Text(f"labeler demo: {judge}; {people}.", style="bold yellow")


def serve_panel(url: str, username: str, secrets_path: str, workspace: str, dataset: str) -> Table:
    table = Table(
        title="Argilla is running (Ctrl-C to stop)", show_header=False, title_justify="left"
    )
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("web UI", url)
    table.add_row("owner login", username)
    table.add_row("owner password and API key", f"in {secrets_path} (mode 0600)")
    table.add_row("workspace / dataset", f"{workspace} / {dataset}")
    table.add_row("add a reviewer", "labeler reviewers add NAME")
    return table


def reviewers_table(rows: list[dict[str, Any]], workspace: str) -> Table:
    table = Table(title=f"Reviewers in workspace {workspace}", title_justify="left")
    table.add_column("reviewer")
    table.add_column("verdicts given", justify="right")
    for r in rows:
        table.add_row(r["username"], str(r["verdicts"]))
    if not rows:
        table.add_row("(none yet: labeler reviewers add NAME)", "")
    return table


def sync_table(s: dict[str, Any]) -> Table:
    table = Table(title="Sync with Argilla", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right", overflow="fold")
    table.add_row("pairs pushed for review", str(s["pushed"]))
    table.add_row(
        "responses pulled (new or changed)", f"{s['responses']} ({s['changed_responses']})"
    )
    table.add_row("discarded responses (not verdicts)", str(s["discarded"]))
    table.add_row(
        "pairs decided by humans (new)", f"{sum(s['decided'].values())} ({s['newly_decided']})"
    )
    for label, n in sorted(s["decided"].items()):
        table.add_row(f"  {label}", str(n))
    table.add_row("pairs still in review", str(s["awaiting"]))
    disputed = s["disputed"]
    table.add_row(
        "[yellow]disputed (reviewers disagree)[/]" if disputed else "disputed", str(len(disputed))
    )
    shown = sorted(disputed, key=lambda d: bool(d["decided"]))[:10]  # no majority first
    for d in shown:
        table.add_row(
            f"  {d['pair_id'][:12]} {d['votes']}", "decided" if d["decided"] else "no majority"
        )
    if len(disputed) > len(shown):
        more = f"  ... and {len(disputed) - len(shown)} more"
        table.add_row(more, "`labeler sync --json` lists all")
    for what in s.get("settings_updated") or []:
        table.add_row(f"[yellow]updated in Argilla: {what}[/]", "yes")
    if s.get("settings_error"):
        table.add_row("[red]guidelines not updated in Argilla[/]", escape(s["settings_error"]))
    if s.get("repush_loss"):
        table.add_row("[yellow]--repush[/]", escape(s["repush_loss"]))
    if s.get("reopened"):
        table.add_row(
            "[yellow]answers gone from Argilla (a deleted reviewer?): pairs back in the queue[/]",
            f"[yellow]{s['reopened']}[/]",
        )
    escalated = s.get("escalated", 0)
    more = "pairs given one more reviewer"  # a tie, a too-fast verdict, a reward-model doubt
    table.add_row(f"[yellow]{more}[/]" if escalated else more, str(escalated))
    fast = s.get("fast_verdicts", 0)
    table.add_row(
        "[yellow]verdicts not counted (too fast, unconfirmed)[/]"
        if fast
        else "verdicts not counted",
        f"[yellow]{fast}[/]" if fast else "0",
    )
    cal = s.get("calibration") or {}
    if cal:
        table.add_row(
            "judge labels certified / provisional", f"{cal['certified']} / {cal['provisional']}"
        )
        back = cal["rechecked"]
        table.add_row(
            "[yellow]sent back to humans (recheck)[/]" if back else "sent back to humans (recheck)",
            str(back),
        )
    table.add_row("dataset", f"{s['dataset_path']} ({s['dataset_rows']} rows)")
    return table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def guarantee_words(recal: dict[str, Any]) -> str:
    """The guarantee in force, in words, and what certified / provisional mean (said once
    where thresholds are first shown)."""
    target, confidence = recal.get("target") or 0.0, recal.get("confidence") or 0.0
    chance = f"with probability >= {confidence:.0%}" if confidence else ""
    phase = recal.get("phase_terms")  # the phase's terms, fixed at its first look
    later = (
        f": the terms this calibration phase tests at, as at its first look; the config's "
        f"(>= {target:.0%} {chance}) apply from the next phase"
        if phase
        else ""
    )
    if phase and not recal.get("tested_at"):
        target, confidence = phase
        chance = f"with probability >= {confidence:.0%}"
    if recal.get("quality") == "human_parity":
        promise = (
            "certified judge labels agree with a reviewer at least as often as two "
            f"reviewers agree with each other, minus the margin, {chance}"
        )
    elif recal.get("guarantee") == "expected":
        promise = f"certified judge labels agree with reviewers >= {target:.0%} on average{later}"
    elif recal.get("tested_at"):  # the config's terms changed since the certificate
        was, sure = recal["tested_at"]
        promise = (
            f"certified judge labels agree with reviewers >= {was:.0%}, with probability >= "
            f"{sure:.0%}: the terms the thresholds in force were tested at; the config now "
            f"asks >= {target:.0%} {chance}, which no test has passed yet"
        )
    else:
        promise = f"certified judge labels agree with reviewers >= {target:.0%}, {chance}{later}"
    return (
        f"Thresholds ({recal.get('guarantee', '')} guarantee: {promise.rstrip(', ')}. "
        "Certified: the judge's verdict goes into the dataset. Provisional: the judge "
        "accepted it, but it is held back until evidence covers it)"
    )


def calibration_message(recal: dict[str, Any]) -> Text:
    style = "bold red" if recal["drift"] else ("bold green" if recal["changed"] else "")
    return Text(f"{guarantee_words(recal)}: {recal['message']}", style=style)


def calibration_messages(recals: list[dict[str, Any]]) -> Group:
    """What each sync's recalibration said, under one statement of the guarantee."""
    if not recals:
        return Group()
    lines: list[Text] = [Text(guarantee_words(recals[-1]) + ", after each sync:")]
    for i, recal in enumerate(recals, 1):
        style = "bold red" if recal["drift"] else ("bold green" if recal["changed"] else "")
        lines.append(Text(f"  sync {i}: {recal['message']}", style=style))
    return Group(*lines)


def _narrow(title: str) -> Table:
    """A table that fits 80 columns: no vertical rules, one space of padding."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
    )


def quality_table(rounds: list[dict[str, Any]]) -> Group:
    """Quality per round as two tables that each fit 80 columns. Coverage is the one
    `labeler report` and `status` show (certified judge labels / delivered pairs); the
    judge-accepted share counts every judged pair the judge accepted at routing,
    provisional ones included; a forecast is shown only where a thresholds version made
    one."""
    forecast = any(r.get("expected_coverage") is not None for r in rounds)
    routing = _narrow(
        "Thresholds per round (certified: judge confidence a verdict needs to go into the dataset)"
    )
    cols = ["round", "certified", "human\nverdicts", "judge-accepted\n(of judged)"]
    cols += ["coverage\n(of delivered)", *(["forecast"] if forecast else [])]
    for col in cols:
        routing.add_column(col, justify="right")
    agreement = _narrow("Agreement with humans per round (reviewers: with each other)")
    for col in ("round", "audited (n)", "lower bound", "judge=human", "w/o ties", "kappa"):
        agreement.add_column(col, justify="right")
    agreement.add_column("reviewers", justify="right")
    for r in rounds:
        routing.add_row(
            str(r["round"]),
            r["thresholds_in_force"],
            str(r["human_decided"]),
            _pct(r["accepted_share"]),
            _pct(r["coverage"]),
            *([_pct(r["expected_coverage"])] if forecast else []),
        )
        agreement.add_row(
            str(r["round"]),
            f"{_pct(r['audited_agreement'])} ({r['audited']})",
            _pct(r["audited_agreement_lower"]),
            _pct(r["agreement_with_ties"]),
            _pct(r["agreement_without_ties"]),
            "-" if r["kappa"] is None else f"{r['kappa']:.2f}",
            _pct(r["reviewer_agreement"]),
        )
    return Group(routing, agreement)


def label_status_line(labels: dict[str, int]) -> Text:
    """Where the labels stand: human, certified judge, provisional (not in the dataset)."""
    return Text(
        f"Labels: {labels['human']} human, {labels['certified']} certified judge, "
        f"{labels['provisional']} provisional judge (awaiting evidence; not in the "
        "certified dataset)"
    )


def _cash(value: float) -> str:
    """Money in a narrow cell: cents below 1,000, whole units with separators above."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2f}"


def report_table(data: dict[str, Any]) -> Group:
    """Pairs, money and quality per round: three tables that each fit 80 columns."""
    cur = data["currency"]
    mode = data["mode"].replace("_", " ")
    pairs_t = _narrow("Pairs per round (coverage: certified / delivered)")
    for col in ("round", "pairs", "certified", "provisional", "to humans", "by humans", "coverage"):
        pairs_t.add_column(col, justify="right")
    mixed = any(r.get("currency", cur) != cur for r in data["rounds"])  # (said in a note)
    priced = "each round in its own currency" if mixed else cur
    money_t = _narrow(f"Money per round ({priced}; human cost {mode})")
    for col in ("round", "judge", "humans", "all-human\n(delivered)", "saved", "factor"):
        money_t.add_column(col, justify="right")
    quality_t = _narrow("Quality per round")
    for col in ("round", "audited agreement", "lower bound", "thresholds"):
        quality_t.add_column(col, justify="right")
    rows = [*data["rounds"], *([data["total"]] if data["total"] else [])]
    for r in rows:
        total = r["round"] == "total"

        def row(table: Table, cells: list[str], total: bool = total) -> None:
            table.add_row(*(f"[bold]{c}[/]" for c in cells) if total else cells)

        row(
            pairs_t,
            [
                str(r["round"]),
                str(r["pairs"]),
                str(r["certified"]),
                str(r["provisional"]),
                str(r["to_humans"]),
                str(r["human_decided"]),
                _pct(r["coverage"]),
            ],
        )
        judge = r["judge_cost"]
        row(
            money_t,
            [
                f"{r['round']} {r['currency']}" if mixed else str(r["round"]),
                f"{judge:.4f}" if abs(judge) < 1 else _cash(judge),
                _cash(r["human_cost"]),
                _cash(r["all_human_cost"]),
                _cash(r["saved"]),
                "-" if r["savings_factor"] is None else f"{r['savings_factor']:.1f}",
            ],
        )
        if not total:
            quality_t.add_row(
                str(r["round"]),
                _pct(r["audited_agreement"]),
                _pct(r["audited_agreement_lower"]),
                r["thresholds"] or "",
            )
    notes = data.get("savings_notes") or []
    return Group(pairs_t, money_t, *([notes_text(notes)] if notes else []), quality_t)


def tiers_table(tiers: list[dict[str, Any]], currency: str) -> Table:
    """What each judge tier of a cascade decided and cost (fits 80 columns). Rows of a
    dry run carry the share of pairs expected to reach each tier instead."""
    if tiers and "reach_share" in tiers[0]:
        table = _narrow(f"Judge tiers, estimated ({currency})")
        for col in ("tier", "pairs reaching it", "requests", "cost", "if all reach it"):
            table.add_column(col, justify="right")
        for t in tiers:
            table.add_row(
                t["tier"],
                _pct(t["reach_share"]),
                str(t["requests"]),
                f"{t['cost']:.4f}",
                f"{t['cost_worst']:.4f}",
            )
        return table
    table = _narrow(f"Judge tiers ({currency})")
    for col in ("tier", "judged", "accepted", "passed on", "to humans", "requests", "cost"):
        table.add_column(col, justify="right")
    for t in tiers:
        table.add_row(
            t["tier"],
            str(t["judged"]),
            str(t["accepted"]),
            str(t["escalated"]),
            str(t["to_humans"]),
            str(t["requests"]),
            f"{t['cost']:.4f}" if abs(t["cost"]) < 1 else _cash(t["cost"]),
        )
    notes = [
        f"{t['tier']} passed on {t['passed_unjudged']} pairs unjudged: until certified, "
        "a tier judges only its calibration sample"
        for t in tiers
        if t.get("passed_unjudged")
    ]
    if tiers and tiers[0].get("union"):
        notes.append(
            'one certificate for the whole cascade (calibration.cascade = "union"): '
            "accepted = labels each tier delivers, the first tier sure enough of a pair"
        )
        notes.extend(
            f"{t['tier']} also judged {t['overridden']} pairs that carry an earlier tier's "
            "label (the first tier sure enough of each)"
            for t in tiers
            if t.get("overridden")
        )
    if tiers and tiers[0].get("delta_share") is not None:
        how = "predicted" if tiers[0]["split_predicted"] else "fixed"
        split = ", ".join(f"{t['tier']} {t['delta_share']:.0%}" for t in tiers)
        notes.append(f"share of the confidence budget: {split} ({how} for the project)")
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def versions_table(rows: list[dict[str, Any]]) -> Table:
    """New judge versions of the panel tiers (fits 80 columns)."""
    table = _narrow("Judge versions")
    for col in ("tier", "version", "previous", "variants", "examples", "corrected"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["tier"],
            r["version"] + ("" if r["changed"] else " (same)"),
            r["previous"] or "-",
            str(r["variants"]),
            str(r["examples"]),
            str(r["corrected"]),
        )
    return table


def batches_table(rows: list[dict[str, Any]]) -> Table:
    """A round's Batch API batches (fits 80 columns)."""
    table = _narrow("Batch API batches")
    for col in ("batch", "tier", "requests", "status", "results", "failed"):
        table.add_column(col, justify="right")
    for b in rows:
        status = b["remote_status"] or b["status"]
        if b["status"] == "ingested":
            status = f"{status}, collected"
        table.add_row(
            str(b["key"]),
            str(b["tier"]),
            str(b["requests"]),
            status,
            str(b["results"]),
            str(b["failed"]),
        )
    return table


def flags_table(flags: list[dict[str, Any]]) -> Table:
    table = _narrow("Quality flags")
    for col in ("round", "kind", "pair", "reviewer", "detail"):
        table.add_column(col)
    for f in flags:
        table.add_row(
            str(f.get("round_id") or "-"),
            f["kind"],
            f["pair_id"][:12],
            f["reviewer"] or "-",
            f["detail"],
        )
    if not flags:
        table.add_row("-", "none", "", "", "")
    return table


def agreement_table(hh: dict[str, Any]) -> Group | Text:
    """Two reviewers on the same pairs, next to the judge on those pairs (``report
    --quality``); reviewers far below their peers are flagged."""
    if not hh["total"]["pairs"]:
        return Text(
            "Human-human agreement: no pair decided by two reviewers yet (set "
            "review.double_share, e.g. 0.1, or review.min_submitted = 2)."
        )
    table = _narrow("Agreement on pairs two reviewers decided")
    for col in ("round", "pairs", "reviewers agree", "judge agrees"):
        table.add_column(col, justify="right")
    for r in [*hh["rounds"], {"round": "total"} | hh["total"]]:
        table.add_row(
            str(r["round"] if r["round"] is not None else "-"),
            str(r["pairs"]),
            _pct(r["agreement"]),
            _pct(r["judge_agreement"]),
        )
    people = _narrow("Each reviewer against the reviewer beside them")
    for col in ("reviewer", "pairs", "agrees", "others agree", ""):
        people.add_column(col, justify="right" if col in ("pairs", "agrees") else "left")
    for r in hh["reviewers"]:
        people.add_row(
            r["reviewer"],
            str(r["pairs"]),
            _pct(r["agreement"]),
            _pct(r["peers_agreement"]),
            "far below peers" if r["low"] else "",
        )
    return Group(table, people)
