"""Reading preference pairs from files, giving each a stable id, reporting bad rows.

A source yields ``Pair`` and ``BadRow`` values in file order; nothing here touches the state.
Supported: JSONL, CSV, Parquet (pyarrow), and Hugging Face datasets saved with
``save_to_disk`` or loadable by ``datasets.load_dataset`` from a local folder/file. A
``load_dataset`` folder of JSONL, CSV or Parquet files is read here file by file, each as
if alone (bad rows named by file and line); ``datasets`` picks the files and the split.

A row holds either two responses (``response_a``/``response_b`` columns, names from config)
or a list of 2-4 responses (``responses``), which expands to every pair i < j. A prompt
may be a list of chat messages (content a string or OpenAI's text parts); a response may
be a list holding the assistant's turn, and without a prompt field the responses may be
whole conversations whose shared beginning is the prompt (TRL's conversational
preference formats, explicit and implicit prompt).

The pair id is a hash of the content (prompt, first response, second response, in that
order), so the same pair gets the same id whichever file or row it comes from.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labeler.config import SourceConfig
from labeler.errors import SourceError

MAX_RESPONSES = 4
_SURROGATE = re.compile("[\ud800-\udfff]")  # what undecodable bytes decode to
# A decoded row, or (kind, reason) when the reader could not decode it.
Row = Mapping[str, Any] | tuple[str, str]


@dataclass(frozen=True)
class Pair:
    id: str
    prompt: str
    response_a: str
    response_b: str
    source: str = ""
    row: int = 0
    key: str = ""  # the same for (prompt, a, b) and (prompt, b, a): see ``pair_key``
    messages: str = ""  # a multi-turn prompt's messages (JSON); ``prompt`` is its transcript


@dataclass(frozen=True)
class BadRow:
    """A skipped row: where it is, why (for people), and a short kind (for counting)."""

    source: str
    row: int
    reason: str
    kind: str = "bad_row"

    def __str__(self) -> str:
        return f"{self.source}:{self.row}: {self.reason}"


def pair_id(prompt: str, response_a: str, response_b: str) -> str:
    blob = json.dumps([prompt, response_a, response_b], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def pair_key(prompt: str, response_a: str, response_b: str) -> str:
    """The pair's identity whatever the order of its responses: (prompt, b, a) is the same
    pair as (prompt, a, b), and importing both would put contradictory preferences in one
    dataset. The id keeps the source order (it is what was shown and judged)."""
    first, second = sorted((response_a, response_b))
    return pair_id(prompt, first, second)


def make_pair(
    prompt: str, response_a: str, response_b: str, source: str = "", row: int = 0
) -> Pair:
    return Pair(
        pair_id(prompt, response_a, response_b),
        prompt,
        response_a,
        response_b,
        source,
        row,
        pair_key(prompt, response_a, response_b),
    )


def _text_problem(name: str, value: Any) -> tuple[str, str] | None:
    """(kind, reason) when ``value`` is not usable text."""
    if value is None:
        return "missing_field", f"missing field '{name}'"
    if not isinstance(value, str):
        return "not_text", f"field '{name}' is not text (got {type(value).__name__})"
    if not value.strip():
        return "empty_field", f"field '{name}' is empty"
    if _SURROGATE.search(value):  # a C-speed scan (a Python loop took 1 ms per 6 KB text)
        return "undecodable", f"field '{name}' has undecodable bytes (not UTF-8)"
    return None


ROLES = ("system", "user", "assistant")
# other names for a role: OpenAI's newer "developer" messages are system messages
ROLE_ALIASES = {"developer": "system"}


def message_text(content: Any) -> tuple[str | None, str]:
    """A message's text, or (None, why not): a string, or a list of OpenAI content parts
    whose ``{"type": "text", "text": ...}`` parts are joined by a newline (any other part,
    an image or audio, cannot be judged from text)."""
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            if kind != "text" or not isinstance(part.get("text"), str):
                return None, f"has a content part of type '{kind}' (only text parts are read)"
            texts.append(part["text"])
        content = "\n".join(texts)
    if not isinstance(content, str) or not content.strip():
        return None, "has no text content"
    return content, ""


def _messages(value: list[Any], name: str) -> list[dict[str, str]] | str:
    """A list of {"role", "content"} messages with text content, or why it is unusable."""
    if not value:
        return f"field '{name}' is an empty list of messages"
    kept = []
    for i, m in enumerate(value):
        role = m.get("role") if isinstance(m, Mapping) else None
        role = ROLE_ALIASES.get(role, role) if isinstance(role, str) else None
        if role not in ROLES:
            return (
                f"field '{name}'[{i}] must be a message with role system/user/assistant "
                "(or developer)"
            )
        text, why = message_text(m.get("content"))
        if text is None:
            return f"field '{name}'[{i}] {why}"
        kept.append({"role": role, "content": text})
    return kept


def transcript(messages: list[dict[str, str]]) -> str:
    """What the judge and the reviewers read of a list of messages."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def conversation(value: list[Any], name: str) -> tuple[str, str] | tuple[None, str]:
    """A multi-turn prompt (a list of {"role", "content"} messages ending with the user's
    turn): (its transcript, its messages as JSON), or (None, why it is unusable). The
    transcript is what the judge and the reviewers read; the messages are exported."""
    kept = _messages(value, name)
    if isinstance(kept, str):
        return None, kept
    if kept[-1]["role"] != "user":
        return None, f"field '{name}' must end with the user's turn (the responses answer it)"
    return transcript(kept), json.dumps(kept, ensure_ascii=False)


def _reply(value: Any, name: str) -> tuple[Any, str]:
    """A response given as messages (TRL's conversational format: a list holding the
    assistant's turn) as its text, any other value as it is: (value, "") — or (None, why
    the messages are unusable)."""
    if not isinstance(value, list):
        return value, ""
    kept = _messages(value, name)
    if isinstance(kept, str):
        return None, kept
    if any(m["role"] != "assistant" for m in kept):
        return None, (
            f"field '{name}' must hold only the assistant's turn when given as messages "
            "(the conversation before it belongs in the prompt)"
        )
    return "\n\n".join(m["content"] for m in kept), ""


def implicit_prompt(responses: list[Any], names: list[str]) -> tuple[str, str, list[Any]] | str:
    """TRL's implicit-prompt format: each response is the whole conversation, the prompt
    being the messages they all begin with. (transcript, messages as JSON, the responses'
    own turns as messages), or why the rows cannot be read so."""
    convs = []
    for name, value in zip(names, responses, strict=True):
        kept = _messages(value, name)
        if isinstance(kept, str):
            return kept
        convs.append(kept)
    common = 0
    while all(len(c) > common + 1 for c in convs) and all(
        c[common] == convs[0][common] for c in convs
    ):
        common += 1
    # the prompt ends with the user's turn: assistant turns shared after it (a shared
    # start of the answer) stay in each response, before what differs
    while common and convs[0][common - 1]["role"] != "user":
        common -= 1
    fields = ", ".join(repr(n) for n in names)
    if not common:
        return (
            f"fields {fields} share no conversation ending with the user's turn, and there "
            "is no prompt field"
        )
    if any(m["role"] != "assistant" for c in convs for m in c[common:]):
        return (
            f"fields {fields} go on differently after their last shared user turn with more "
            "than the assistant's answer (each must be the same conversation up to the answer)"
        )
    prompt = convs[0][:common]
    return transcript(prompt), json.dumps(prompt, ensure_ascii=False), [c[common:] for c in convs]


def _responses(row: Mapping[str, Any], cfg: SourceConfig) -> tuple[list[Any], list[str]] | str:
    """The row's responses and their field names, or why the list of them is unusable."""
    responses = row.get(cfg.responses_field)
    if responses is not None and not (cfg.response_a_field in row or cfg.response_b_field in row):
        if not isinstance(responses, list) or not 2 <= len(responses) <= MAX_RESPONSES:
            return f"field '{cfg.responses_field}' must be a list of 2-{MAX_RESPONSES} responses"
        return responses, [f"{cfg.responses_field}[{i}]" for i in range(len(responses))]
    names = [cfg.response_a_field, cfg.response_b_field]
    return [row.get(n) for n in names], names


def pairs_from_row(
    row: Mapping[str, Any], cfg: SourceConfig, source: str, number: int
) -> list[Pair] | BadRow:
    """Turn one decoded row into its pairs, or say why it is bad."""
    found = _responses(row, cfg)
    if isinstance(found, str):
        return BadRow(source, number, found, "bad_responses_list")
    responses, names = found
    prompt = row.get(cfg.prompt_field)
    messages = ""
    if cfg.prompt_field not in row and all(isinstance(r, list) for r in responses):
        got = implicit_prompt(responses, names)  # TRL's implicit prompt: no prompt field
        if isinstance(got, str):
            return BadRow(source, number, got, "bad_messages")
        prompt, messages, responses = got
    elif isinstance(prompt, list):  # multi-turn: a list of messages
        transcript, detail = conversation(prompt, cfg.prompt_field)
        if transcript is None:
            return BadRow(source, number, detail, "bad_messages")
        prompt, messages = transcript, detail
    problem = _text_problem(cfg.prompt_field, prompt)
    if problem:
        return BadRow(source, number, problem[1], problem[0])
    replies = [_reply(value, name) for name, value in zip(names, responses, strict=True)]
    responses = [value for value, _ in replies]
    for name, (value, why) in zip(names, replies, strict=True):
        if why:
            return BadRow(source, number, why, "bad_messages")
        problem = _text_problem(name, value)
        if problem:
            return BadRow(source, number, problem[1], problem[0])
    if len(set(responses)) < len(responses):
        return BadRow(source, number, "identical responses", "identical_responses")
    assert isinstance(prompt, str)
    return [
        replace(make_pair(prompt, a, b, source, number), messages=messages)
        for a, b in itertools.combinations(responses, 2)
    ]


def check_columns(
    path: Path, found: Iterable[str], cfg: SourceConfig, lists: Iterable[str] = ()
) -> None:
    """A table source (CSV, Parquet, datasets) must have the configured columns: a prompt,
    and two responses or a list of them. Otherwise one error naming both sides. Without
    a prompt column, responses in list columns (``lists``) may be whole conversations
    (TRL's implicit prompt, ``implicit_prompt``)."""
    have, listed = list(found), set(lists)
    pair_ok = cfg.response_a_field in have and cfg.response_b_field in have
    implicit = {cfg.response_a_field, cfg.response_b_field} <= listed or (
        cfg.responses_field in listed
    )
    if (cfg.prompt_field in have or implicit) and (pair_ok or cfg.responses_field in have):
        return
    raise SourceError(
        f"{path}: columns found: {', '.join(have) or 'none'}; configured: "
        f"'{cfg.prompt_field}' with '{cfg.response_a_field}' and '{cfg.response_b_field}' "
        f"(or '{cfg.responses_field}'); rename the columns or set source.prompt_field, "
        "source.response_a_field, source.response_b_field / source.responses_field"
    )


def _jsonl_rows(path: Path, limit: int) -> Iterator[tuple[int, Row]]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            if len(raw) > limit:
                yield (
                    number,
                    ("too_large", f"row is {len(raw)} bytes, larger than source.max_row_bytes"),
                )
                continue
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a BOM first
            except UnicodeDecodeError:
                yield number, ("undecodable", "undecodable bytes (not UTF-8)")
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, ("not_json", f"not valid JSON ({exc.msg})")
                continue
            if not isinstance(value, dict):
                yield number, ("not_json", "a JSON object was expected")
                continue
            yield number, value


def _csv_rows(path: Path, cfg: SourceConfig) -> Iterator[tuple[int, Row]]:
    # CSV has no lists: a list of responses is a JSON array in one cell.
    limit, list_field = cfg.max_row_bytes, cfg.responses_field
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise SourceError(f"{path}: unreadable CSV header ({exc})") from None
    if not header:  # an empty file (or only blank lines)
        return
    check_columns(path, header, cfg)
    start = 2
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, ("malformed_csv", f"malformed CSV ({exc})")
            start = reader.line_num + 1
            continue
        number, start = start, reader.line_num + 1
        size = sum(len(str(v).encode("utf-8", "surrogateescape")) for v in row.values())
        if size > limit:
            yield number, ("too_large", f"row is {size} bytes, larger than source.max_row_bytes")
            continue
        if None in row:
            yield number, ("malformed_csv", "more fields than the header names")
            continue
        cell = row.get(list_field)
        if isinstance(cell, str) and cell.startswith("["):
            try:
                row[list_field] = json.loads(cell)
            except json.JSONDecodeError:
                yield number, ("bad_responses_list", f"field '{list_field}' is not a JSON list")
                continue
        yield number, row


def _table_rows(records: Iterable[Mapping[str, Any]], limit: int) -> Iterator[tuple[int, Row]]:
    for number, row in enumerate(records, start=1):
        size = sum(len(str(v).encode("utf-8", "surrogatepass")) for v in row.values())
        if size > limit:
            yield number, ("too_large", f"row is {size} bytes, larger than source.max_row_bytes")
        else:
            yield number, dict(row)


def list_columns(schema: Any) -> list[str]:
    """The columns of an Arrow schema that hold lists (any list type: a Parquet file's, a
    Hugging Face dataset's, whichever ``datasets`` version wrote it)."""
    import pyarrow as pa

    kinds = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
    return [f.name for f in schema if any(k(f.type) for k in kinds)]


def _parquet_records(path: Path, cfg: SourceConfig) -> Iterator[Mapping[str, Any]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise SourceError(f"{path}: not a readable Parquet file ({exc})") from None
    schema = pf.schema_arrow
    check_columns(path, schema.names, cfg, list_columns(schema))
    for batch in pf.iter_batches(batch_size=4096):
        yield from batch.to_pylist()


# Data files that can hold pairs. ``datasets.load_dataset`` on a folder reads the files of
# one type only (the most common suffix) and skips the others without a word.
PAIR_FILE_SUFFIXES = (".jsonl", ".json", ".ndjson", ".csv", ".tsv", ".parquet", ".arrow")


def unread_data_files(folder: Path, read: Iterable[str]) -> list[Path]:
    """The files in ``folder`` that could hold pairs but are not among those ``read``
    (what the loader will read), skipping what ``datasets`` skips: hidden files and
    folders, and folders named ``__*``."""
    taken = {Path(f).resolve() for f in read}
    unread = []
    for f in sorted(folder.rglob("*")):
        parts = f.relative_to(folder).parts
        if any(p.startswith(".") for p in parts) or any(p.startswith("__") for p in parts[:-1]):
            continue
        pairs_in = any(x.lower() in PAIR_FILE_SUFFIXES for x in f.suffixes)
        if pairs_in and f.is_file() and f.resolve() not in taken:
            unread.append(f)
    return unread


def _kind(path: Path) -> str:
    return next((x for x in path.suffixes if x.lower() in PAIR_FILE_SUFFIXES), path.suffix)


def _check_all_read(folder: Path, read: list[str]) -> None:
    unread = unread_data_files(folder, read)
    if not unread:
        return
    kinds = sorted({_kind(Path(f)) for f in read}) or ["no"]
    names = [str(f.relative_to(folder)) for f in unread]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    if {_kind(f) for f in unread} <= set(kinds):  # one type, but not every file split-named
        raise SourceError(
            f"{folder}: names some data files for a split (train, test, ...), and `datasets` "
            f"reads only those: it would skip {shown}; name every data file for its split "
            "(train-2.jsonl, say), or point source.path at one file"
        )
    raise SourceError(
        f"{folder}: holds data files of more than one type; `datasets` reads only its "
        f"{'/'.join(kinds)} files and would skip {shown}; keep one type of data file in "
        "the folder, or point source.path at one file"
    )


def _not_a_dataset(path: Path, why: object) -> SourceError:
    return SourceError(
        f"{path}: cannot load it as a Hugging Face dataset ({why}); source.path names a "
        "JSONL, CSV or Parquet file, or a dataset's folder (save_to_disk or its data files)"
    )


def _hf_builder(path: Path) -> Any:
    """``load_dataset``'s builder of ``path`` (its first step), its choice of data files
    checked: refused when it would skip one."""
    import datasets

    with _quiet_datasets(path):
        builder = datasets.load_dataset_builder(str(path))
    if path.is_dir():
        files = builder.config.data_files or {}
        _check_all_read(path, [str(f) for split in files.values() for f in split])
    return builder


# The data files of a folder labeler reads itself, file by file: bad rows are skipped and
# named by file and line as in a single file (`datasets` stops at the first bad line).
OWN_FOLDER_FILES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def _own_files(path: Path, builder: Any, split: str) -> list[Path] | None:
    """The files of ``split`` in the order ``datasets`` reads them, when labeler's readers
    read them all: JSONL, CSV or Parquet, with no reader option set in the folder's card
    (a CSV ``sep``, ``features``). None: ``datasets`` reads the folder."""
    import dataclasses

    import datasets

    config = builder.config
    splits = {str(name): files for name, files in (config.data_files or {}).items()}
    if split not in splits:
        raise SourceError(
            f"{path}: no split '{split}' (source.split); available: {', '.join(splits)}"
        )
    base = {f.name for f in dataclasses.fields(datasets.BuilderConfig)}
    options = [f for f in dataclasses.fields(config) if f.name not in base]
    if any(getattr(config, f.name) != f.default for f in options) or builder.info.features:
        return None  # (a card's options or schema: datasets reads the folder as it says)
    # each file named under the folder as configured (``datasets`` resolves links and
    # ``..``): the state keeps and clears a source's bad rows by the name it was given
    files = [_under(path, Path(f)) for f in splits[split]]
    return files if all(f.suffix.lower() in OWN_FOLDER_FILES for f in files) else None


def _under(path: Path, file: Path) -> Path:
    """``file`` (a resolved path) named under the folder ``path`` as it was written."""
    try:
        return path / file.relative_to(path.resolve())
    except ValueError:
        return file


class _KeptLog(logging.Handler):
    """``datasets`` logs a file it fails on to stderr before it raises: kept for the
    one error line instead."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _quiet_datasets(path: Path) -> Iterator[None]:
    """``datasets`` at work on ``path`` without a word on the terminal (its log lines and
    progress bars): what fails is one ``SourceError`` line, with the last line it
    logged, or its own error's first line."""
    import datasets

    datasets.disable_progress_bars()  # ("Generating train split" is no line of ours)
    logger, kept = logging.getLogger("datasets"), _KeptLog()
    saved = logger.handlers, logger.propagate
    logger.handlers, logger.propagate = [kept], False
    try:
        yield
    except SourceError:
        raise
    except Exception as exc:  # datasets raises many types; all mean "cannot read"
        said = (kept.messages[-1] if kept.messages else str(exc)).strip().splitlines()
        raise _not_a_dataset(path, said[0] if said else type(exc).__name__) from None
    finally:
        logger.handlers, logger.propagate = saved


def _hf_records(
    path: Path, fmt: str, cfg: SourceConfig, builder: Any = None
) -> Iterator[Mapping[str, Any]]:
    """A saved dataset's rows (``hf_disk``), or those ``load_dataset`` reads (``hf``;
    ``builder``: its builder of ``path``, made already)."""
    import datasets

    with _quiet_datasets(path):
        if fmt == "hf_disk":
            ds = datasets.load_from_disk(str(path))
        else:  # load_dataset's own steps, to see the files it chose first
            builder = builder or _hf_builder(path)
            builder.download_and_prepare()
            ds = builder.as_dataset()
    if isinstance(ds, datasets.DatasetDict):
        split = cfg.split
        if split not in ds:
            raise SourceError(
                f"{path}: no split '{split}' (source.split); available: {', '.join(ds)}"
            )
        ds = ds[split]
    check_columns(path, ds.column_names, cfg, list_columns(ds.data.schema))
    yield from ds


_READERS: dict[str, Any] = {
    "jsonl": lambda path, cfg: _jsonl_rows(path, cfg.max_row_bytes),
    "csv": _csv_rows,
    "parquet": lambda path, cfg: _table_rows(_parquet_records(path, cfg), cfg.max_row_bytes),
    "hf_disk": lambda path, cfg: _table_rows(_hf_records(path, "hf_disk", cfg), cfg.max_row_bytes),
    "hf": lambda path, cfg: _table_rows(_hf_records(path, "hf", cfg), cfg.max_row_bytes),
}


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return "hf_disk"
        return "hf"
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    by_suffix = {
        ".jsonl": "jsonl",
        ".json": "jsonl",
        ".ndjson": "jsonl",
        ".csv": "csv",
        ".parquet": "parquet",
    }
    if suffix in by_suffix:
        return by_suffix[suffix]
    raise SourceError(
        f"{path}: cannot tell the format from the name; set source.format to "
        "one of jsonl, csv, parquet, hf_disk, hf"
    )


def read_source(cfg: SourceConfig) -> Iterator[Pair | BadRow]:
    """Every pair and bad row of the configured source, in file order."""
    path = cfg.path
    if cfg.response_a_field == cfg.response_b_field:  # (every row: identical responses)
        raise SourceError(
            f"source.response_b_field: {cfg.response_b_field!r} is source.response_a_field "
            "too; name the two columns holding the two responses"
        )
    if not path.exists():
        raise SourceError(f"{path}: source file not found (source.path)")
    fmt = detect_format(path, cfg.format)
    if fmt in ("jsonl", "csv", "parquet") and path.is_dir():
        raise SourceError(
            f'{path}: is a folder; source.format = "{fmt}" reads one file (name the file in '
            'source.path, or set source.format = "hf" to read a folder of data files)'
        )
    if fmt in ("jsonl", "csv") and path.is_file():  # (read as UTF-8 lines, it is garbled)
        with path.open("rb") as fh:
            if fh.read(2) in (b"\xff\xfe", b"\xfe\xff"):
                raise SourceError(f"{path}: is UTF-16 text (its byte order mark); save it as UTF-8")
    builder = _hf_builder(path) if fmt == "hf" and path.is_dir() else None
    files = None if builder is None else _own_files(path, builder, cfg.split)
    if files is None:
        if builder is None:
            rows = _READERS[fmt](path, cfg)
        else:  # a folder datasets reads: with the builder made above, not a second one
            rows = _table_rows(_hf_records(path, fmt, cfg, builder), cfg.max_row_bytes)
        yield from _items(path, rows, cfg)
        return
    for file in files:  # each file's rows named by its own line, as when read alone
        yield from _items(file, _READERS[OWN_FOLDER_FILES[file.suffix.lower()]](file, cfg), cfg)


def _items(
    path: Path, rows: Iterator[tuple[int, Row]], cfg: SourceConfig
) -> Iterator[Pair | BadRow]:
    name = str(path)
    try:
        for number, row in rows:
            if isinstance(row, tuple):
                yield BadRow(name, number, row[1], row[0])
                continue
            result = pairs_from_row(row, cfg, name, number)
            if isinstance(result, BadRow):
                yield result
            else:
                yield from result
    except OSError as exc:  # no permission, a disk error
        raise SourceError(f"{path}: cannot read the source ({exc.strerror or exc})") from None


def near_identical(a: str, b: str, threshold: float) -> float | None:
    """The similarity of two responses when it is at least ``threshold``, else None:
    2 * LCS / (len(a) + len(b)), the normalised Indel similarity (rapidfuzz's ``ratio``;
    difflib's ratio is a lower bound of it). The length bound is checked first, and the
    cutoff lets rapidfuzz stop early: linear-ish in the text, where difflib was quadratic
    (1 s per pair of 1,000-word answers, minutes for 150 KB ones)."""
    if threshold > 1:
        return None
    total = len(a) + len(b)
    if total == 0:
        return 1.0
    if 2 * min(len(a), len(b)) / total < threshold:
        return None
    from rapidfuzz.fuzz import ratio

    similar = ratio(a, b, score_cutoff=threshold * 100) / 100
    return similar if similar >= threshold and similar > 0 else None
