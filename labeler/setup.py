"""Starter files for a new project (``labeler init``)."""

from __future__ import annotations

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
    """Write every starter file; refuses (before writing any) to overwrite without force.
    A folder or file that cannot be made is one line naming it and why."""
    targets = {directory / rel: _starter_text(asset) for rel, asset in STARTER_FILES.items()}
    where, what = directory, "create the project folder"
    try:
        existing = [p for p in targets if p.exists()]
        if existing and not force:
            raise UsageError(f"{existing[0]} already exists; use --force to overwrite")
        for path, text in targets.items():
            for folder in _missing_folders(path.parent):
                if folder not in directory.parents and folder != directory:
                    where, what = folder, "create the folder"
                folder.mkdir()
            where, what = path, "write"
            path.write_text(text, "utf-8")
    except OSError as exc:
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
