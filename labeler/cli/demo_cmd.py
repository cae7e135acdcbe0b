"""``labeler demo``: the whole loop offline."""

from __future__ import annotations

from pathlib import Path

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
    default=600,
    show_default=True,
    help="Demo pairs to generate.",
)
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option(
    "--per-round",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Pairs judged per round.",
)
@click.option("--small", is_flag=True, help="A quick demo (120 pairs, 3 rounds of 40), for CI.")
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
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def demo(
    folder: Path,
    pairs: int,
    rounds: int,
    per_round: int,
    small: bool,
    judge_url: str | None,
    model: str | None,
    api_key_env: str,
    as_json: bool,
) -> None:
    """Run the whole loop offline: a simulated judge labels generated pairs in rounds.

    The judge is SIMULATED (a local HTTP server speaking the OpenAI protocol, with a stated
    noise model) unless --judge-url is given; nothing leaves this machine.

    \b
    Example:
        labeler demo
        labeler demo --judge-url https://api.openai.com/v1 --model gpt-4o-mini
    """
    from labeler.cli import render
    from labeler.demo.run import DemoOptions, result_dict, run_demo

    if small:
        pairs, rounds, per_round = 120, 3, 40
    opts = DemoOptions(
        folder=folder,
        pairs=pairs,
        rounds=rounds,
        per_round=per_round,
        judge_url=judge_url,
        model=model,
        api_key_env=api_key_env,
    )
    console = render.Console()
    if not as_json:
        console.print(render.demo_banner(judge_url))
    with render.round_progress("USD") as update:
        result = run_demo(opts, on_progress=update)
    data = result_dict(result)
    if as_json:
        render.print_json(data)
        return
    console.print(render.demo_table(data))
    console.print(
        f"Project folder: {result.folder}  (cd there and try `labeler status`)", markup=False
    )
    last = result.rounds[-1]
    if last.dataset_path:
        console.print(f"Dataset: {last.dataset_path} ({last.dataset_rows} rows)", markup=False)
