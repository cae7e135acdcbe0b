"""``labeler init``: a starting config, guidelines and judge template."""

from __future__ import annotations

from pathlib import Path

import click


def _folder(ctx: click.Context, param: click.Parameter, name: str) -> Path:
    """An empty (or blank) name wrote into the current folder, or into one named "  "."""
    if not name.strip():
        raise click.BadParameter(
            f"{name!r} is not a folder name; name the project's folder (`labeler init .` for "
            "the current one)"
        )
    return Path(name)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False), default=".", callback=_folder)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init(directory: Path, force: bool) -> None:
    """Write a commented config.toml, guidelines/ and templates/judge.txt to start from.

    \b
    Example:
        labeler init my-project
    """
    from labeler import setup
    from labeler.cli import render

    written = setup.write_starter_files(directory, force=force)
    console = render.Console()
    for path in written:
        console.print(f"wrote {path}", markup=False)
    console.print(
        f"Next: put your pairs in {directory / 'pairs.jsonl'}, set OPENAI_API_KEY "
        "(or edit the judge section for a local endpoint), then run "
        "`labeler round`.",
        markup=False,
    )
