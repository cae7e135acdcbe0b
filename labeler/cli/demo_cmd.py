"""``labeler demo``: the whole loop offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("labeler-demo"),
    show_default=True,
    help="Folder for the demo project (replaced on every run).",
)
@click.option(
    "--pairs",
    type=click.IntRange(10, 5000),
    help="Demo pairs to generate.  [default: 600; 2,000 with --parity]",
)
@click.option("--rounds", type=click.IntRange(1, 20), help="Rounds.  [default: 3; 4 with --parity]")
@click.option(
    "--per-round",
    type=click.IntRange(1),
    help="Pairs judged per round.  [default: 200; 500 with --parity]",
)
@click.option("--small", is_flag=True, help="A quick demo (240 pairs, 3 rounds of 80), for CI.")
@click.option(
    "--reviewers",
    type=click.IntRange(0, 10),
    help="Simulated reviewers (0: leave the review queue to people).  [default: 2; 3 with "
    "--parity, so a third settles two reviewers' ties]",
)
@click.option(
    "--judge-url", help="Use a real OpenAI-compatible judge instead of the simulated one."
)
@click.option("--model", help="Model name for --judge-url.")
@click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    help="Variable holding the key for --judge-url.",
)
@click.option(
    "--keep-serving",
    is_flag=True,
    help="Keep Argilla running at the end so a person can try the reviewer UI (Ctrl-C stops it).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Argilla's port (default: 6900 when free, else any free port).",
)
@click.option(
    "--judge-port",
    type=click.IntRange(1, 65535),
    help="The simulated judge's port (default: any free port).",
)
@click.option(
    "--parity",
    is_flag=True,
    help="Human parity: realistic reviewers (who err more on hard pairs), two of them on "
    'every review pair, and calibration.quality = "human_parity".',
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def demo(
    folder: Path,
    pairs: int | None,
    rounds: int | None,
    per_round: int | None,
    small: bool,
    reviewers: int | None,
    judge_url: str | None,
    model: str | None,
    api_key_env: str,
    keep_serving: bool,
    port: int | None,
    judge_port: int | None,
    parity: bool,
    as_json: bool,
) -> None:
    """Run the whole loop offline: judge, route, review in Argilla, sync, recalibrate.

    The judge and the reviewers are SIMULATED unless told otherwise: the judge is a local
    HTTP server speaking the OpenAI protocol with a stated noise model; the reviewers
    decide pairs through Argilla's HTTP API with a stated error rate. Nothing leaves
    this machine.

    \b
    Example:
        labeler demo
        labeler demo --small
        labeler demo --judge-url https://api.openai.com/v1 --model gpt-4o-mini
        labeler demo --reviewers 0 --keep-serving     # review the pairs yourself
        labeler demo --parity                         # certify against human parity
    """
    from labeler.cli import render
    from labeler.demo.run import DemoOptions, finish_demo, result_dict, run_demo

    if small:
        pairs, rounds, per_round = 240, 3, 80
    # human parity needs two-reviewer evidence: a larger project, and a third reviewer
    pairs = pairs or (2000 if parity else 600)
    rounds = rounds or (4 if parity else 3)
    per_round = per_round or (500 if parity else 200)
    reviewers = (3 if parity else 2) if reviewers is None else reviewers
    opts = DemoOptions(
        folder=folder,
        pairs=pairs,
        rounds=rounds,
        per_round=per_round,
        judge_url=judge_url,
        model=model,
        api_key_env=api_key_env,
        reviewers=reviewers,
        keep_serving=keep_serving,
        min_labels=20 if small else 40,
        port=port,
        judge_port=judge_port,
        parity=parity,
    )
    console = render.Console()
    if not as_json:
        console.print(render.demo_banner(judge_url, reviewers, parity))
    with render.round_progress("USD") as update:
        result = run_demo(opts, on_progress=update)
    report = finish_demo(result)
    data = {**result_dict(result), **report}
    if as_json:
        render.print_json(data)
    else:
        console.print(render.report_table(report["report"]))
        console.print(render.quality_table(report["quality"]))
        if parity:
            console.print(render.agreement_table(report["report"]["human_human_agreement"]))
        console.print(render.calibration_messages([s["calibration"] for s in data["syncs"]]))
        if data.get("fact_check"):
            f = data["fact_check"]
            console.print(
                f"Fact-check (the judge, SIMULATED): {f['checked']} chosen responses checked, "
                f"{f['flagged']} said to state something false went to humans (reason "
                f"chosen_has_errors); the judge had chosen the wrong response in "
                f"{f['judge_was_wrong']} of them.",
                markup=False,
            )
        if data.get("verify"):
            console.print(render.demo_verify_line(data["verify"]))
        console.print(
            f"Project folder:      {result.folder}  (cd there: labeler status)", markup=False
        )
        console.print(f"Dataset:             {data['dataset']}", markup=False)
        console.print(f"Rounds chart:        {report['rounds_png']}", markup=False)
        if report["reliability_png"]:
            console.print(f"Reliability diagram: {report['reliability_png']}", markup=False)
    if result.server is not None:
        _serve_until_interrupted(result, console)


def _serve_until_interrupted(result: Any, console: Any) -> None:
    import time

    from labeler.cli import render

    server = result.server
    creds = server.credentials()
    console.print(
        render.serve_panel(
            creds.url, creds.username, str(server.secrets_path), "labeler", "labeler-demo"
        )
    )
    try:
        while server.alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
