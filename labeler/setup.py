"""Starter files for a new project (``labeler init``)."""

from __future__ import annotations

from pathlib import Path

from labeler.errors import UsageError
from labeler.prompts import builtin_text

GUIDELINE_FILES = ("01-overview.md", "02-ties.md")
STARTER_FILES = {
    "config.toml": "config.toml",
    "templates/judge.txt": "judge_prompt.txt",
    "templates/fact_check.txt": "fact_check.txt",
    **{f"guidelines/{name}": f"guidelines/{name}" for name in GUIDELINE_FILES},
}


def write_starter_files(directory: Path, force: bool = False) -> list[Path]:
    """Write every starter file; refuses (before writing any) to overwrite without force."""
    targets = {directory / rel: asset for rel, asset in STARTER_FILES.items()}
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise UsageError(f"{existing[0]} already exists; use --force to overwrite")
    for path, asset in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = builtin_text(asset)
        if asset == "config.toml":  # the starter templates, ready to edit
            text = text.replace('\ntemplate = ""', '\ntemplate = "templates/judge.txt"')
            text = text.replace(
                '\nfact_check_template = ""', '\nfact_check_template = "templates/fact_check.txt"'
            )
        path.write_text(text, "utf-8")
    return list(targets)
