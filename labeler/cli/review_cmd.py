"""``labeler serve``, ``labeler reviewers add`` and ``labeler sync``."""

from __future__ import annotations

import click

from labeler.cli import load, wait_option, waiting
from labeler.lock import project_lock


@click.command()
@click.option("--host", help="Address to bind (default: review.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: review.port).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the embedded Argilla server (web UI for reviewers) until Ctrl-C.

    Its database, logs and secrets live in <state_dir>/argilla/. The first start creates
    an owner account with a random password, stored in a 0600 file whose path is printed.

    \b
    Example:
        labeler serve
        labeler serve --host 0.0.0.0 --port 6900
    """
    import time

    from labeler.cli import render
    from labeler.server.manager import EmbeddedArgilla

    cfg = load(ctx, **{"review.host": host, "review.port": port})
    server = EmbeddedArgilla(
        cfg.project.state_dir, cfg.review.host, cfg.review.port, cfg.review.workspace
    )
    console = render.Console()
    console.print(f"Starting Argilla on {server.url} ...", markup=False)
    # its writes are Argilla's folder, not the project state: rounds and syncs go on while
    # it serves; a second serve of the same folder waits for the first one's start-up
    with project_lock(server.home, "serve", wait=True):
        server.start()
    try:
        creds = server.credentials()
        console.print(
            render.serve_panel(
                creds.url,
                creds.username,
                str(server.secrets_path),
                cfg.review.workspace,
                cfg.review_dataset,
            )
        )
        try:
            while server.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("Stopping Argilla ...")
            return
    finally:
        server.stop()
    raise click.ClickException(
        f"the Argilla server stopped unexpectedly; see {server.home / 'server.log'}"
    )


def _reviewer_name(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """An account name Argilla can store and look up: refused in one line otherwise."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}", name):
        raise click.BadParameter(
            f"{name!r} is not a reviewer name: letters, digits and . _ @ + - only, starting "
            "with a letter or digit (at most 100)"
        )
    return name


def _account_name(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """An existing account's name: any Argilla took (added in its UI, say), not empty."""
    if not name.strip():
        raise click.BadParameter("an account name is not empty")
    return name


@click.group()
def reviewers() -> None:
    """Manage reviewer accounts in Argilla."""


@reviewers.command("add")
@click.argument("name", callback=_reviewer_name)
@click.option(
    "--json", "as_json", is_flag=True, help="Print {username, password, url, ...} as JSON."
)
@click.pass_context
def reviewers_add(ctx: click.Context, name: str, as_json: bool) -> None:
    """Create an annotator account NAME with a random password and add it to the workspace.

    The password is printed once; hand it to the reviewer. Lost it? `labeler reviewers
    reset-password NAME`.

    \b
    Example:
        labeler reviewers add alice
        labeler reviewers add bob --json
    """
    import secrets

    from labeler.cli import render
    from labeler.sync import connect

    cfg = load(ctx)
    password = secrets.token_urlsafe(12)
    with connect(cfg) as review:
        created = review.add_reviewer(name, password)
    if as_json:
        render.print_json(
            {
                "username": name,
                "created": created,
                "password": password if created else None,
                "url": review.shown,
                "workspace": cfg.review.workspace,
            }
        )
        return
    console = render.Console()
    if created:
        console.print(
            f"Reviewer [bold]{name}[/] created in workspace "
            f"[bold]{cfg.review.workspace}[/] at {review.shown}"
        )
        console.print(f"password (shown once): {password}", markup=False, highlight=False)
    else:
        console.print(
            f"Reviewer {name} already exists; made sure it is in workspace "
            f"{cfg.review.workspace}. Its password is unchanged: a new one with "
            f"`labeler reviewers reset-password {name}`.",
            markup=False,
        )


@reviewers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def reviewers_list(ctx: click.Context, as_json: bool) -> None:
    """List the reviewer accounts of the workspace, with the verdicts each has given.

    \b
    Example:
        labeler reviewers list
    """
    from labeler.cli import render
    from labeler.store import Store
    from labeler.sync import connect

    cfg = load(ctx)
    with connect(cfg) as review:
        accounts = review.reviewers()
    given: dict[str, int] = {}
    if cfg.db_path.exists():
        with Store(cfg.db_path) as store:
            given = store.verdicts_per_reviewer()
    rows = [{**a, "verdicts": given.get(a["username"], 0)} for a in accounts]
    if as_json:
        render.print_json(rows)
        return
    render.Console().print(render.reviewers_table(rows, cfg.review.workspace))


@reviewers.command("remove")
@click.argument("name", callback=_account_name)
@click.pass_context
def reviewers_remove(ctx: click.Context, name: str) -> None:
    """Take reviewer NAME out of the workspace: the account can no longer open the dataset;
    the verdicts it gave stay counted.

    \b
    Example:
        labeler reviewers remove alice
    """
    from labeler.sync import connect

    cfg = load(ctx)
    with connect(cfg) as review:
        removed = review.remove_reviewer(name)
    if not removed:
        click.echo(f"Reviewer {name} is not in workspace {cfg.review.workspace}: nothing to do.")
        return
    click.echo(
        f"Reviewer {name} removed from workspace {cfg.review.workspace}; "
        "the verdicts it gave stay counted."
    )


@reviewers.command("reset-password")
@click.argument("name", callback=_account_name)
@click.option("--json", "as_json", is_flag=True, help="Print {username, password} as JSON.")
@click.pass_context
def reviewers_reset_password(ctx: click.Context, name: str, as_json: bool) -> None:
    """Give reviewer NAME a new random password, printed once (the old one stops working).

    \b
    Example:
        labeler reviewers reset-password alice
    """
    import secrets

    from labeler.cli import render
    from labeler.sync import connect

    cfg = load(ctx)
    password = secrets.token_urlsafe(12)
    with connect(cfg) as review:
        review.reset_password(name, password)
    if as_json:
        render.print_json({"username": name, "password": password})
        return
    click.echo(f"New password for {name} (shown once): {password}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option(
    "--repush",
    is_flag=True,
    help="Recreate a deleted Argilla dataset and push the pairs in review again.",
)
@wait_option
@click.pass_context
def sync(ctx: click.Context, as_json: bool, repush: bool, wait: bool) -> None:
    """Push pairs waiting for review, pull reviewers' verdicts, update the dataset.

    Safe to run at any time and as often as you like: a second sync changes nothing.

    \b
    Example:
        labeler sync
    """
    from labeler.cli import render
    from labeler.sync import run_sync

    cfg = load(ctx)
    with waiting(cfg, "sync", wait):
        summary = run_sync(cfg, repush=repush)
    if as_json:
        render.print_json(summary.to_dict())
        return
    console = render.Console()
    console.print(render.sync_table(summary.to_dict()))
    console.print(render.calibration_message(summary.calibration))
