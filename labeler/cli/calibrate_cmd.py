"""``labeler calibrate``."""

from __future__ import annotations

from pathlib import Path

import click

from labeler.cli import load, wait_option, waiting


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Reliability diagram PNG (default: <state_dir>/reliability.png).",
)
@wait_option
@click.pass_context
def calibrate(ctx: click.Context, as_json: bool, plot_path: Path | None, wait: bool) -> None:
    """Re-choose the judge's thresholds from human verdicts and show quality per round.

    Runs automatically after every `labeler sync`. Shows the thresholds in force per round,
    the human verdicts they rest on, coverage, audited agreement with its lower bound,
    judge-human agreement with and without ties, Cohen's kappa and reviewer agreement,
    and writes a reliability diagram.

    \b
    Example:
        labeler calibrate
        labeler calibrate --json
    """
    from labeler.cli import render
    from labeler.quality import run_calibration

    cfg = load(ctx)
    with waiting(cfg, "calibrate", wait):
        result = run_calibration(cfg, plot_path)
    if as_json:
        render.print_json(result)
        return
    console = render.Console()
    console.print(render.quality_table(result["rounds"]))
    for change in result["history"]:
        if change["message"]:  # states written before messages were kept have none
            console.print(f"v{change['version']}: {change['message']}", markup=False)
    console.print(render.calibration_message(result["recalibration"]))
    if result["plot"]:
        console.print(f"Reliability diagram: {result['plot']}", markup=False)
