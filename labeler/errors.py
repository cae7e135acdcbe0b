"""The errors a labeler user can see.

Every error the library raises on purpose is a ``LabelerError``; the CLI turns it into one
red line on stderr and the exit code below. Adapters (judge, review, export, server)
translate their vendor's exceptions into this tree so that nothing vendor-specific leaks
out of them.

    LabelerError                 exit 1: something failed while running
    ├── UsageError               exit 2: the user asked for something impossible
    │   ├── ConfigError          a bad config key / value / file, names the file and key
    │   └── SourceError          a bad source file or row (with --strict), names file and line
    ├── JudgeError               the judge endpoint refused or failed for good (auth, model)
    ├── ReviewError              Argilla refused or failed (auth, missing dataset)
    ├── StateError               the state folder / database is unusable
    │   └── ProjectBusy          another labeler command holds the project's lock
    ├── ExportError              the dataset could not be written
    ├── RoundUnfinished          a round ended with pairs the judge failed on (work kept)
    ├── BudgetExceeded           exit 3: a round stopped at its cost limit
    └── FinishWaits              exit 4: --finish waits for audits still with reviewers
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable


class LabelerError(Exception):
    """Base of every error labeler raises on purpose."""

    exit_code = 1


class UsageError(LabelerError):
    exit_code = 2


class ConfigError(UsageError):
    """A config file, key or value is wrong. The message names the file and the key."""


class SourceError(UsageError):
    """A pair source is unreadable, or a bad row was met under --strict."""


class JudgeError(LabelerError):
    """The judge endpoint failed in a way that retrying will not fix."""


class RewardError(LabelerError):
    """The reward model's server failed in a way that retrying will not fix, or answered
    in a shape ``verify.api`` does not describe."""


class ReviewError(LabelerError):
    """The Argilla side failed in a way that retrying will not fix."""


class StateError(LabelerError):
    """The state folder or its database cannot be used."""


class ExportError(LabelerError):
    """A dataset could not be written."""


class RoundUnfinished(LabelerError):
    """A round ended with pairs the judge failed on after its retries (5xx, timeouts): what
    was judged is saved, and the next ``labeler round`` retries just those pairs."""


class BudgetExceeded(LabelerError):
    exit_code = 3


class FinishWaits(LabelerError):
    """``labeler round --finish`` not taken yet: audited pairs are still with reviewers
    (the verdicts in so far were synced). Not a failure: a script waits and retries."""

    exit_code = 4


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped work that pays per request; its text (may be empty) says what the
    user should know beyond "finished work is saved" (requests abandoned in flight)."""


class ProjectBusy(StateError):
    """Another labeler command holds this project's lock."""


def shown_url(url: str) -> str:
    """``url`` as messages show it: whatever precedes the last ``@`` of the address (a
    ``user:password@``, with or without a scheme) replaced by ``***``. A URL with no ``@``
    is shown as it is; one with an ``@`` later on (a query) is masked more than needed."""
    import re

    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)?.*@", r"\1***@", url, flags=re.DOTALL)


def check_url(base_url: str, key: str = "judge.base_url") -> tuple[urllib.parse.SplitResult, int]:
    """``base_url`` (the setting ``key``) as a URL and its port; a ConfigError (a setting's
    fault, found before any work, a dry run's too) when it is not an http(s) URL with a
    host."""
    try:
        url = urllib.parse.urlsplit(base_url)
        ok = url.scheme in ("http", "https") and bool(url.hostname)
    except ValueError:  # ("http://[::1/v1": an unclosed IPv6 address)
        ok = False
    if not ok:
        raise ConfigError(
            f"{key} = {shown_url(base_url)!r} is not an http(s) URL (e.g. http://127.0.0.1:8000"
            f"{'/v1' if key.startswith('judge') else ''})"
        )
    try:
        return url, url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"{key} = {shown_url(base_url)!r} has an invalid port") from None


def did_you_mean(word: str, options: list[str], show: Callable[[str], str] = str) -> str:
    """The closest of ``options`` to a word not among them, then all of them."""
    import difflib

    close = difflib.get_close_matches(word, options, n=1)
    hint = "".join(f"did you mean '{show(c)}'? " for c in close)
    return f"{hint}allowed: {', '.join(sorted(map(show, options)))}"


def shown_toml(value: object) -> str:
    """``value`` as a config file spells it, so an error shows what the user wrote:
    ``true``, ``"x"``, ``[1, "a"]``, ``{ a = 1 }`` (Python's ``True``, ``'x'`` are not TOML)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # JSON's escapes are TOML's
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return f"[{', '.join(map(shown_toml, value))}]"
    if isinstance(value, dict):
        pairs = (
            f"{k if k.isidentifier() else shown_toml(k)} = {shown_toml(v)}"
            for k, v in value.items()
        )
        return f"{{ {', '.join(pairs)} }}" if value else "{}"
    return str(value)  # numbers (nan, inf), dates and times print as TOML writes them


def not_a_variable_name(name: str) -> bool:
    """Does a ``*_env`` setting hold something other than an environment variable's name
    — a key pasted in its place? Not an identifier, or with a long run of lower case
    letters and digits mixed, as generated keys have (``gsk_...``, ``hf_...``); the words
    of a variable's name are short (``AZURE_OPENAI_KEY_2024_prod`` is one)."""
    if not name.isidentifier() or len(name) > 64:
        return True
    run = max(name.split("_"), key=len)
    return len(run) >= 20 and any(c.isdigit() for c in run) and not run.isupper()


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with each secret in it (an API key a server echoed back) shown as ***."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def write_failed(path: object, exc: OSError, what: str = "write") -> str:
    """One line for a failed write: "no space left" said plainly, the path named."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{path}: no space left on device; free some space and run the command again "
            "(nothing was half-written)"
        )
    return f"{path}: cannot {what} ({exc.strerror or exc})"


def state_failed(path: object, exc: Exception, damaged: str | None = None) -> str:
    """One line for an SQLite error on the state database ``path``: what happened, in
    words, and the way out. ``damaged``: the first problem ``PRAGMA quick_check`` found
    (the file is damaged)."""
    text = str(exc)
    if damaged is not None:
        return (
            f"{path}: the state database is damaged ({damaged}); restore it from your backup, "
            f"or recover what SQLite can read: sqlite3 {path} .recover | sqlite3 recovered.sqlite"
            f", then move recovered.sqlite to {path}"
        )
    if "disk I/O error" in text:
        return (
            f"{path}: the state database could not be read or written (disk I/O error); "
            "check the disk, the file's permissions and attributes (chattr), then run the "
            "command again"
        )
    if "readonly" in text or "read-only" in text:
        return f"{path}: the state database is read-only; make it writable and run again"
    if "locked" in text or "busy" in text:
        return f"{path}: the state database is busy ({text}); run the command again"
    return f"{path}: the state database failed ({text})"
