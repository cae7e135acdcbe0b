"""``labeler judge``: the judge panel's versions."""

from __future__ import annotations

import click

from labeler.cli import load


@click.group()
def judge() -> None:
    """The judge panel (judge.panel > 1): its versions of in-context examples."""


@judge.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_context
def refresh(ctx: click.Context, as_json: bool) -> None:
    """Make a new judge version for every panel tier from the human verdicts so far:
    fresh in-context examples, pairs where humans corrected the judge first. The new
    version's thresholds start from its own evidence.

    \b
    Example:
        labeler judge refresh
    """
    from labeler.cli import render
    from labeler.errors import ConfigError
    from labeler.versions import refresh as refresh_versions

    cfg = load(ctx)
    if all(j.panel <= 1 for j in cfg.judges):
        raise ConfigError(
            f"{cfg.file or 'config'}: no judge has a panel (judge.panel = 1); set "
            "judge.panel = 3, say, to use in-context examples from human verdicts"
        )
    rows = refresh_versions(cfg)
    if as_json:
        render.print_json({"versions": rows})
        return
    render.Console().print(render.versions_table(rows))
