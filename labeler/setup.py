"""Starter files for a new project (``labeler init``)."""

from __future__ import annotations

import errno
import os
from contextlib import suppress
from pathlib import Path

from labeler.errors import UsageError, write_failed
from labeler.prompts import builtin_text

GUIDELINE_FILES = ("01-overview.md", "02-ties.md")
STARTER_FILES = {
    "config.toml": "config.toml",
    "templates/judge.txt": "judge_prompt.txt",
    "templates/fact_check.txt": "fact_check.txt",
    **{f"guidelines/{name}": f"guidelines/{name}" for name in GUIDELINE_FILES},
}


def write_starter_files(directory: Path, force: bool = False) -> list[Path]:
    """Write every starter file, all or none; refuses (before writing any) to overwrite
    without force. Each file is written beside its place under a temporary name and moved
    into place once all were written; on a failure, the folders and files this call made
    are removed again (files that were there before are left alone) and one line says
    which path failed and why."""
    targets = {directory / rel: _starter_text(asset) for rel, asset in STARTER_FILES.items()}
    made: list[Path] = []  # what this call created, in order: removed again on a failure
    where, what = directory, "create the project folder"
    try:
        existing = [p for p in targets if p.exists()]
        if existing and not force:
            raise UsageError(f"{existing[0]} already exists; use --force to overwrite")
        staged = {}
        for path, text in targets.items():
            for folder in _missing_folders(path.parent):
                if folder not in directory.parents and folder != directory:
                    where, what = folder, "create the folder"
                folder.mkdir()
                made.append(folder)
            where, what = path, "write"
            if path.is_dir():  # no file can be moved onto it: fail before any file moves
                raise IsADirectoryError(errno.EISDIR, "it is a folder", str(path))
            staged[path] = path.with_name(f".{path.name}.labeler-init.tmp")
            made.append(staged[path])
            staged[path].write_text(text, "utf-8")
        for path, temporary in staged.items():
            where, what = path, "write"
            new = not os.path.lexists(path)
            os.replace(temporary, path)
            if new:
                made.append(path)
    except OSError as exc:
        _remove(made)
        if isinstance(exc, FileExistsError):  # mkdir met a file where a folder must go
            blocker = (
                "a file of that name" if exc.filename == str(where) else f"the file {exc.filename}"
            )
            raise UsageError(f"{where}: cannot {what}: {blocker} is in the way") from None
        raise UsageError(write_failed(where, exc, what)) from None
    return list(targets)


def _starter_text(asset: str) -> str:
    text = builtin_text(asset)
    if asset == "config.toml":  # the starter templates, ready to edit
        text = text.replace('\ntemplate = ""', '\ntemplate = "templates/judge.txt"')
        text = text.replace(
            '\nfact_check_template = ""', '\nfact_check_template = "templates/fact_check.txt"'
        )
    return text


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that are not folders yet, outermost first."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    return missing[::-1]


def _remove(made: list[Path]) -> None:
    """Undo a failed init: remove what it made, newest first; leave what cannot be."""
    for path in reversed(made):
        with suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # only ever empty: its files were removed before it
            else:
                path.unlink(missing_ok=True)
