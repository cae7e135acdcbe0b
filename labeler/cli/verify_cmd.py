"""``labeler verify``."""

from __future__ import annotations

import click

from labeler.cli import load, wait_option, waiting


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
@click.option(
    "--action",
    type=click.Choice(["flag", "review", "drop"]),
    help="What happens to flagged rows (default: verify.action).",
)
@click.option(
    "--min-margin", type=float, help="Flag below this margin (default: verify.min_margin)."
)
@wait_option
@click.pass_context
def verify(
    ctx: click.Context, as_json: bool, action: str | None, min_margin: float | None, wait: bool
) -> None:
    """Score every dataset row with a reward model and flag rows whose margin
    score(chosen) - score(rejected) is below verify.min_margin.

    The reward model is a server, as the judge is ([verify] in config.toml: vLLM's
    /pooling or /classify, or text-embeddings-inference's /predict). Scores are cached:
    a second verify sends only rows it has not scored. Flagged rows are marked
    (rm_margin, rm_flag columns), sent to humans (a judge label back to review, a human
    label to one more reviewer), or dropped.

    \b
    Example:
        vllm serve Skywork/Skywork-Reward-V2-Llama-3.1-8B --port 8000   # elsewhere
        labeler verify
        labeler verify --action review --json
    """
    from labeler.cli import render
    from labeler.verify import run_verify

    cfg = load(ctx, **{"verify.action": action, "verify.min_margin": min_margin})
    with waiting(cfg, "verify", wait), render.verify_progress(not as_json) as update:
        result = run_verify(cfg, on_progress=update)
    data = result.to_dict()
    if as_json:
        render.print_json(data)
        return
    render.Console().print(render.verify_table(data, cfg.costs.currency))
