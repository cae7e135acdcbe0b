"""Judge prompts: a template file plus the guidelines, rendered per pair and order.

Templates are versioned data. A template is text with the placeholders ``{{guidelines}}``,
``{{prompt}}``, ``{{response_a}}`` and ``{{response_b}}``; a line ``<<<system>>>`` and a line
``<<<user>>>`` may split it into a system and a user message (without them the whole text
is the user message). Every verdict stores the hash of the template and of the guidelines
it was made with, and the judge cache is keyed by both, so editing either re-judges.

Placeholders are substituted in one pass, so a response that itself contains
``{{response_b}}`` is shown literally, never expanded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from labeler.errors import ConfigError
from labeler.panel import Example

PLACEHOLDERS = ("guidelines", "prompt", "response_a", "response_b")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z_]+)\s*\}\}")
SYSTEM_MARK = "<<<system>>>"
USER_MARK = "<<<user>>>"
ORDERS = ("ab", "ba")


@dataclass(frozen=True)
class Template:
    system: str
    user: str
    hash: str
    source: str


@dataclass(frozen=True)
class Guidelines:
    text: str
    hash: str
    files: tuple[str, ...]


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def builtin_text(name: str) -> str:
    """The text of a file shipped in labeler/assets (templates, starter guidelines)."""
    return resources.files("labeler").joinpath("assets", name).read_text("utf-8")


def parse_template(
    text: str,
    source: str,
    allowed: tuple[str, ...] = PLACEHOLDERS,
    required: tuple[str, ...] = ("prompt", "response_a", "response_b"),
    what: str = "judge template",
) -> Template:
    """Split and check a template; a ConfigError names the file and what is wrong."""
    used = set(_PLACEHOLDER.findall(text))
    unknown = sorted(used - set(allowed))
    if unknown:
        raise ConfigError(
            f"{source}: unknown placeholder {{{{{unknown[0]}}}}} in the {what}; "
            f"allowed: {', '.join(allowed)}"
        )
    missing = [p for p in required if p not in used]
    if missing:
        raise ConfigError(f"{source}: the {what} must contain {{{{{missing[0]}}}}}")
    system, user = "", text
    lines = text.splitlines(keepends=True)
    marks = [line.strip() for line in lines]
    if SYSTEM_MARK in marks or USER_MARK in marks:
        if marks.count(USER_MARK) != 1 or marks.count(SYSTEM_MARK) > 1:
            raise ConfigError(
                f"{source}: a template split into messages needs exactly one "
                f"'{USER_MARK}' line and at most one '{SYSTEM_MARK}' line"
            )
        u = marks.index(USER_MARK)
        s = marks.index(SYSTEM_MARK) if SYSTEM_MARK in marks else None
        if s is not None and s > u:
            raise ConfigError(f"{source}: '{SYSTEM_MARK}' must come before '{USER_MARK}'")
        system = "".join(lines[(s + 1 if s is not None else 0) : u]).strip()
        user = "".join(lines[u + 1 :]).strip()
    return Template(system=system, user=user, hash=content_hash(text), source=source)


def read_text_file(path: Path, key: str) -> str:
    """The text of the file config key ``key`` names; a one-line ConfigError naming the
    key and the path when it is missing, a folder, unreadable or not UTF-8."""
    if path.is_dir():  # (IsADirectoryError on Linux, PermissionError on Windows)
        raise ConfigError(f"{key}: {path} is a folder; it must be a file")
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{key}: file {path} not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from None
    except OSError as exc:  # no permission, a path through a file
        raise ConfigError(f"{key}: cannot read {path} ({exc.strerror or exc})") from None


def load_template(path: Path | None) -> Template:
    if path is None:
        return parse_template(builtin_text("judge_prompt.txt"), "<built-in judge template>")
    return parse_template(read_text_file(path, "judge.template"), str(path))


FACT_PLACEHOLDERS = ("prompt", "response")


def load_fact_template(path: Path | None) -> Template:
    """The fact-check template (``quality.fact_check_template``; None: the built-in one)."""
    if path is None:
        text, source = builtin_text("fact_check.txt"), "<built-in fact-check template>"
    else:
        text, source = read_text_file(path, "quality.fact_check_template"), str(path)
    return parse_template(text, source, FACT_PLACEHOLDERS, FACT_PLACEHOLDERS, "fact-check template")


def fact_messages(template: Template, prompt: str, response: str) -> list[dict[str, str]]:
    """Chat messages asking whether ``response`` states something objectively false."""
    values = {"prompt": prompt, "response": response}

    def fill(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

    out = [{"role": "system", "content": fill(template.system)}] if template.system else []
    return [*out, {"role": "user", "content": fill(template.user)}]


def fact_key(model: str, template_hash: str, pair_id: str, chosen: str) -> str:
    """The cache key of one fact-check: the checker, its template and the response checked."""
    text = "\0".join(("fact", model, template_hash, pair_id, chosen))
    return hashlib.sha256(text.encode()).hexdigest()


# a fact-check's outcome (``fact_checks.outcome``) by what ``read_fact_reply`` read
FACT_OUTCOMES = {True: "errors", False: "no_errors", None: "unreadable"}


def read_fact_reply(text: str | None) -> bool | None:
    """True: the checker says the answer has an objective error; False: it says none;
    None: the first line is neither ERRORS nor NO_ERRORS."""
    first = (text or "").strip().splitlines()[:1]
    word = first[0].strip().strip(".*:").upper() if first else ""
    return {"ERRORS": True, "NO_ERRORS": False, "NO ERRORS": False}.get(word)


def load_guidelines(path: Path) -> Guidelines:
    """One file, or every *.md in a folder in name order, joined by blank lines."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".md" and p.is_file())
        if not files:
            raise ConfigError(f"judge.guidelines: no .md files in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise ConfigError(
            f"judge.guidelines: {path} not found (a folder of .md files or a "
            "file; `labeler init` writes a starter set)"
        )
    parts = [read_text_file(f, "judge.guidelines").strip() for f in files]
    text = "\n\n".join(parts) + "\n"
    return Guidelines(text=text, hash=content_hash(text), files=tuple(f.name for f in files))


def _fill(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def render_messages(
    template: Template,
    guidelines: Guidelines,
    prompt: str,
    response_a: str,
    response_b: str,
    order: str,
    examples: Sequence[Example] = (),
) -> list[dict[str, str]]:
    """Chat messages for one pair shown in ``order`` ("ab": as stored, "ba": swapped).
    ``examples`` (a judge panel's in-context examples, decided by humans) come as earlier
    turns answered with the human verdict, after the shared system message and before the
    pair: what all requests of a variant share comes first (endpoint prompt caching)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    first, second = (response_a, response_b) if order == "ab" else (response_b, response_a)
    values = {
        "guidelines": guidelines.text.strip(),
        "prompt": prompt,
        "response_a": first,
        "response_b": second,
    }
    messages = []
    if template.system:
        messages.append({"role": "system", "content": _fill(template.system, values)})
    for ex in examples:
        shown = values | {
            "prompt": ex.prompt,
            "response_a": ex.response_a,
            "response_b": ex.response_b,
        }
        messages.append({"role": "user", "content": _fill(template.user, shown)})
        messages.append(
            {
                "role": "assistant",
                "content": f"{ex.label} HIGH\nHuman reviewers chose response {ex.label}.",
            }
        )
    messages.append({"role": "user", "content": _fill(template.user, values)})
    return messages


_BLOCK_START = re.compile(r"^\s*(?:[-*+]\s|\d+[.)]\s|#|>|\||```|~~~)")


def unwrap(markdown: str) -> str:
    """Markdown without the source file's hard line breaks, for a renderer that shows
    every newline (Argilla's guidelines panel): the lines of a paragraph or of a list
    item's text are joined with spaces; headings, list items, quotes, tables and fenced
    code keep their own lines (code is left exactly as written)."""
    out: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fenced = not fenced
            out.append(line)
            continue
        if fenced or not stripped:
            out.append(line)
            continue
        previous = out[-1] if out else ""
        continues = (
            previous.strip()
            and not previous.strip().startswith(("#", "|", "```", "~~~"))
            and not _BLOCK_START.match(line)
        )
        if continues:
            out[-1] = previous.rstrip() + " " + stripped
        else:
            out.append(line)
    return "\n".join(out) + ("\n" if markdown.endswith("\n") else "")
