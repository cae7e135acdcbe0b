"""``labeler report`` and ``labeler export``."""

from __future__ import annotations

from pathlib import Path

import click

from labeler.cli import load, wait_option, waiting


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG: cost per round, coverage and audited agreement.",
)
@click.option(
    "--quality",
    is_flag=True,
    help="Human-human agreement (pairs two reviewers decided) and the quality flags.",
)
@click.pass_context
def report(ctx: click.Context, as_json: bool, chart_path: Path | None, quality: bool) -> None:
    """What each round cost, what it saved against labeling by hand, how good it is.

    \b
    Example:
        labeler report
        labeler report --chart rounds.png
        labeler report --quality
    """
    from labeler.cli import render
    from labeler.report import build_report, write_chart

    data = build_report(load(ctx))
    if chart_path:
        data["chart"] = str(write_chart(data, chart_path))
    if as_json:
        render.print_json(data)
        return
    console = render.Console()
    console.print(render.report_table(data))
    if data["tiers"]:
        console.print(render.tiers_table(data["tiers"], data["currency"]))
    console.print(render.label_status_line(data["labels"]))
    if quality:
        console.print(render.agreement_table(data["human_human_agreement"]))
        console.print(render.flags_table(data["flags"]))
        skipped = data["skipped_rows"]
        console.print(f"Skipped source rows: {len(skipped) or 'none'}", highlight=False)
        for line in skipped:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    if chart_path:
        console.print(f"Chart: {data['chart']}", markup=False)


def _a_number(param: click.Parameter, value: float) -> float:
    """click's FloatRange lets nan through (nan < 0 is False)."""
    if value != value:
        raise click.BadParameter(f"{value} is not a number", param=param)
    return value


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dpo", "kto"]),
    default="dpo",
    show_default=True,
    help="DPO pairs or KTO unpaired rows.",
)
@click.option(
    "--to",
    "target",
    type=click.Choice(["disk", "parquet", "jsonl"]),
    default="disk",
    show_default=True,
    help="A datasets folder (save_to_disk), Parquet or JSONL.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write (a folder for disk, a file otherwise).",
)
@click.option(
    "--provenance/--no-provenance",
    default=True,
    show_default=True,
    help="Add pair id, label source, confidence, round, judge model, hashes.",
)
@click.option(
    "--certified-only/--include-provisional",
    "certified_only",
    default=None,
    help="Judge labels only when a certified threshold covers them (default: "
    "output.certified_only, true); --include-provisional adds the rest, marked.",
)
@click.option(
    "--label-source",
    type=click.Choice(["any", "human", "judge"]),
    default="any",
    show_default=True,
    help="Only rows labelled by humans, or by the judge.",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    callback=lambda ctx, param, value: _a_number(param, value),
    default=0.0,
    show_default=True,
    help="Leave out rows below this confidence (the judge's, or the reviewers' vote share).",
)
@click.option(
    "--test-size",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Also split off this share as a test set, fixed by pair id (prefs.parquet -> "
    "prefs.train.parquet and prefs.test.parquet; a folder gets train/ and test/).",
)
@click.option(
    "--conversational",
    is_flag=True,
    help="TRL's conversational format: prompt, chosen, rejected as lists of messages "
    "(a multi-turn source prompt keeps its turns).",
)
@click.option(
    "--push-to-hub",
    "repo",
    help="Also push to this Hugging Face dataset repo "
    "(token from HF_TOKEN), with a generated dataset card.",
)
@wait_option
@click.pass_context
def export(
    ctx: click.Context,
    fmt: str,
    target: str,
    out: Path,
    provenance: bool,
    certified_only: bool | None,
    label_source: str,
    min_confidence: float,
    test_size: float | None,
    conversational: bool,
    repo: str | None,
    wait: bool,
) -> None:
    """Write the finished preference dataset for training (TRL's DPO/KTO trainers).

    The same state always exports byte-identical files; a crash never leaves a
    half-written file or folder. A dataset card (README.md) is written beside it.

    \b
    Example:
        labeler export --out prefs.parquet --to parquet
        labeler export --format kto --to jsonl --out kto.jsonl
        labeler export --include-provisional --to jsonl --out all.jsonl
    """
    from labeler.cli import render
    from labeler.publish import ExportOptions, run_export

    cfg = load(ctx)
    only = cfg.output.certified_only if certified_only is None else certified_only
    options = ExportOptions(label_source, min_confidence, test_size or 0.0, conversational)
    with waiting(cfg, "export", wait):
        result = run_export(cfg, fmt, target, out, provenance, repo, only, options)
    s, w = result["status"], result["written"]
    where = (
        f"to {result['path']} (card: {result['card']})"
        if "splits" not in result
        else "as a train and a test split (a card beside each)"
    )
    render.Console().print(
        f"Wrote {result['rows']} {fmt.upper()} rows {where}: "
        f"{w['human']} human, {w['certified']} certified judge labels"
        + (
            f", {w['provisional']} provisional"
            if not only
            else f"; {s['provisional']} provisional judge labels left out"
        ),
        markup=False,
    )
    for split, info in result.get("splits", {}).items():
        render.Console().print(f"  {split}: {info['rows']} rows in {info['path']}", markup=False)
