"""The ``labeler`` command line: a thin shell over the library.

Each command parses its arguments, loads the config, calls one library function and renders
the result. Every ``LabelerError`` becomes one red line on stderr and its exit code here, in
one place (``--verbose`` shows the traceback). Heavy libraries are imported inside the
commands so that ``labeler --help`` stays fast.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from labeler.errors import LabelerError

# Vendor libraries (datasets, the argilla SDK) draw tqdm bars on stderr; labeler draws its own.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

# command name -> (module, function); imported only when the command runs
COMMANDS = {
    "batches": ("labeler.cli.round_cmd", "batches"),
    "calibrate": ("labeler.cli.calibrate_cmd", "calibrate"),
    "demo": ("labeler.cli.demo_cmd", "demo"),
    "export": ("labeler.cli.report_cmd", "export"),
    "init": ("labeler.cli.init_cmd", "init"),
    "judge": ("labeler.cli.judge_cmd", "judge"),
    "report": ("labeler.cli.report_cmd", "report"),
    "reviewers": ("labeler.cli.review_cmd", "reviewers"),
    "round": ("labeler.cli.round_cmd", "round_"),
    "serve": ("labeler.cli.review_cmd", "serve"),
    "status": ("labeler.cli.round_cmd", "status"),
    "sync": ("labeler.cli.review_cmd", "sync"),
    "verify": ("labeler.cli.verify_cmd", "verify"),
}


def _error_line(message: str) -> None:
    from rich.markup import escape

    from labeler.cli.render import stderr_console

    stderr_console().print(
        f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True
    )


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:  # the root's flags, which the error handler reads
        ctx.find_root().ensure_object(dict)["verbose"] = True


def _take_verbose(command: click.Command) -> None:
    """``labeler round --verbose`` as ``labeler --verbose round``: each command (and each
    subcommand of a group) takes the flag too."""
    if not any(p.name == "verbose" for p in command.params):
        command.params.append(
            click.Option(
                ["--verbose"],
                is_flag=True,
                expose_value=False,
                callback=_set_verbose,
                help="Show tracebacks for errors.",
            )
        )
    for sub in getattr(command, "commands", {}).values():
        _take_verbose(sub)


# click >= 8.2 raises this for a group given no command (older ones print the help)
NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class LabelerGroup(click.Group):
    """Loads commands lazily and turns library errors into one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        import importlib

        module, attr = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        _take_verbose(command)
        return command

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """click's own usage errors (a bad flag or value) as one line too, exit 2."""
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        try:
            code = super().main(*args, **{**kwargs, "standalone_mode": False})
        except NO_ARGS_IS_HELP as exc:  # `labeler` alone: its help, as click prints it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            _error_line(exc.format_message() + where)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:  # "error:", as every other error says it
            _error_line(exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            _error_line("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LabelerError as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            _error_line(str(exc))
            sys.exit(exc.exit_code)
        except sqlite3.Error as exc:
            # a state database that fails mid-command (a damaged page, a disk I/O error, a
            # file made read-only): one line naming the file and the way out, exit 1
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            from labeler.errors import state_failed
            from labeler.store import Store, quick_check

            path = Store.last_path
            damaged = (
                quick_check(path)
                if path is not None and isinstance(exc, sqlite3.DatabaseError)
                else None
            )
            _error_line(state_failed(path or "the state database", exc, damaged))
            sys.exit(1)
        except KeyboardInterrupt as exc:
            more = f"; {exc}" if str(exc) else ""  # (``errors.Interrupted``: what was lost)
            _error_line(
                f"interrupted; finished work is saved, run the command again to resume{more}"
            )
            sys.exit(130)


@click.group(cls=LabelerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Config file (default: $LABELER_CONFIG or ./config.toml).",
)
@click.option("--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="labeler")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, verbose: bool) -> None:
    """Label LLM preference pairs with a judge, and humans in Argilla for the hard ones.

    \b
    Start a project:   labeler init my-project && cd my-project
    Run a round:       labeler round --limit 500
    See where it is:   labeler status
    """
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["verbose"] = verbose


def load(ctx: click.Context, **overrides: Any) -> Any:
    """The config for a command, with its flags as the top layer of precedence."""
    from labeler.config import DEFAULT_CONFIG_NAME, ENV_PREFIX, SECTIONS, load_config
    from labeler.errors import ConfigError

    path = ctx.obj.get("config_path")
    outside = path is None and not os.environ.get(ENV_PREFIX + "CONFIG")
    if outside and not Path(DEFAULT_CONFIG_NAME).exists():
        # a project command outside a project would start an empty one (a second Argilla,
        # a lock file, "nothing to do"): it touches nothing and says so
        raise ConfigError(
            f"no {DEFAULT_CONFIG_NAME} here ({Path.cwd()}); run `labeler init` or pass --config"
        )
    flags = {k: v for k, v in overrides.items() if v is not None}
    cfg = load_config(path, flags)
    for name in cfg.ignored_env:  # a LABELER_* variable that is not labeler config
        sections = ", ".join(s.upper() for s in SECTIONS)
        click.echo(
            f"warning: environment variable {name} is not labeler config "
            f"({ENV_PREFIX}<SECTION>_<KEY>, SECTION one of {sections}); ignored",
            err=True,
        )
    return cfg


def wait_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--wait``: queue behind another labeler command on this project instead of stopping."""
    return click.option(
        "--wait",
        is_flag=True,
        help="If another labeler command is running on this project, wait for it to end.",
    )(command)


@contextmanager
def waiting(cfg: Any, command: str, wait: bool) -> Iterator[None]:
    """Take the project lock first, waiting for it, when ``--wait`` was given (the library
    takes it again, nested, and so never stops on it)."""
    if not wait:
        yield
        return
    from labeler.lock import project_lock

    with project_lock(cfg.project.state_dir, command, wait=True, on_wait=_note):
        yield


def _note(message: str) -> None:
    from labeler.cli.render import stderr_console

    stderr_console().print(message, markup=False, highlight=False)
