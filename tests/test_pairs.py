"""Reading every source format, expanding response lists, and reporting bad rows."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labeler.config import SourceConfig
from labeler.errors import SourceError
from labeler.pairs import BadRow, Pair, pair_id, read_source
from tests.conftest import Project

ROWS = [
    {"prompt": "p1", "response_a": "a1", "response_b": "b1"},
    {"prompt": "p2", "response_a": "a2", "response_b": "b2"},
]


def cfg(path: Path, **kw: object) -> SourceConfig:
    return SourceConfig(path=path, **kw)  # type: ignore[arg-type]


def read(path: Path, **kw: object) -> tuple[list[Pair], list[BadRow]]:
    items = list(read_source(cfg(path, **kw)))
    return ([i for i in items if isinstance(i, Pair)], [i for i in items if isinstance(i, BadRow)])


def jsonl(tmp_path: Path, lines: list[object], name: str = "p.jsonl") -> Path:
    path = tmp_path / name
    with path.open("wb") as fh:
        for line in lines:
            fh.write(
                line
                if isinstance(line, bytes)
                else (line if isinstance(line, str) else json.dumps(line)).encode()
            )
            fh.write(b"\n")
    return path


def ids(pairs: list[Pair]) -> list[str]:
    return [p.id for p in pairs]


def test_every_format_gives_the_same_pairs(tmp_path: Path) -> None:
    expected = [pair_id(r["prompt"], r["response_a"], r["response_b"]) for r in ROWS]
    assert ids(read(jsonl(tmp_path, ROWS))[0]) == expected
    with (tmp_path / "p.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ROWS[0]))
        w.writeheader()
        w.writerows(ROWS)
    assert ids(read(tmp_path / "p.csv")[0]) == expected
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "p.parquet")
    assert ids(read(tmp_path / "p.parquet")[0]) == expected
    datasets.disable_progress_bars()
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    assert ids(read(tmp_path / "saved")[0]) == expected
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)})
    dd.save_to_disk(str(tmp_path / "saved_dict"))
    assert ids(read(tmp_path / "saved_dict")[0]) == expected
    (tmp_path / "hf").mkdir()
    jsonl(tmp_path / "hf", ROWS, "train.jsonl")
    assert ids(read(tmp_path / "hf", format="hf")[0]) == expected


def test_a_byte_order_mark_costs_no_pair(tmp_path: Path) -> None:
    """Editors on Windows start a UTF-8 file with a BOM: the first JSONL row was skipped
    as not JSON (a CSV's was read)."""
    path = jsonl(tmp_path, ["\ufeff" + json.dumps(ROWS[0]), *ROWS[1:]])
    pairs, bad = read(path)
    assert ids(pairs) == [pair_id(r["prompt"], r["response_a"], r["response_b"]) for r in ROWS]
    assert bad == []


def test_column_names_come_from_config(tmp_path: Path) -> None:
    path = jsonl(tmp_path, [{"q": "p", "x": "one", "y": "two"}])
    pairs, bad = read(path, prompt_field="q", response_a_field="x", response_b_field="y")
    assert [(p.prompt, p.response_a, p.response_b) for p in pairs] == [("p", "one", "two")]
    assert bad == []


def test_one_column_for_both_responses_is_refused(tmp_path: Path, project: Project) -> None:
    """A trial: ``source.response_b_field`` naming the first response's column passed,
    and every row was then skipped as "identical responses". Refused in one line."""
    path = jsonl(tmp_path, [{"prompt": "p", "response_a": "one", "response_b": "two"}])
    with pytest.raises(SourceError, match=re.escape("'response_a' is source.response_a_field")):
        read(path, response_b_field="response_a")
    project.pairs([{"prompt": "p", "response_a": "one", "response_b": "two"}])
    project.set(source={"response_b_field": "response_a"})
    for args in (("round", "--dry-run"), ("round",)):
        result = project.run(*args)
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
        assert "source.response_b_field: 'response_a' is source.response_a_field too" in (
            result.stderr
        )


def test_a_utf16_file_is_named_as_such(tmp_path: Path) -> None:
    """A trial: a UTF-16 file read as UTF-8 lines gave "none of its 4 rows ... not UTF-8"
    for 3 rows, with no hint of what it was."""
    for suffix in ("jsonl", "csv"):
        path = tmp_path / f"p16.{suffix}"
        text = json.dumps(ROWS[0]) + "\n" if suffix == "jsonl" else "prompt,response_a\nx,y\n"
        path.write_bytes(text.encode("utf-16"))
        with pytest.raises(SourceError, match=re.escape("is UTF-16 text (its byte order mark)")):
            read(path)


def test_lists_of_responses_expand_to_every_pair(tmp_path: Path) -> None:
    path = jsonl(tmp_path, [{"prompt": "p", "responses": ["r1", "r2", "r3"]}])
    pairs, _ = read(path)
    assert [(p.response_a, p.response_b) for p in pairs] == [
        ("r1", "r2"),
        ("r1", "r3"),
        ("r2", "r3"),
    ]
    with (tmp_path / "l.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "responses"])
        w.writerow(["p", json.dumps(["r1", "r2"])])
    assert len(read(tmp_path / "l.csv")[0]) == 1


def test_pair_id_depends_on_content_and_order() -> None:
    assert pair_id("p", "a", "b") == pair_id("p", "a", "b")
    assert pair_id("p", "a", "b") != pair_id("p", "b", "a")
    assert pair_id("p", "a b", "c") != pair_id("p", "a", "b c")


@pytest.mark.parametrize(
    ("line", "kind", "reason"),
    [
        ({"prompt": "p", "response_a": "a"}, "missing_field", "missing field 'response_b'"),
        (
            {"prompt": "", "response_a": "a", "response_b": "b"},
            "empty_field",
            "field 'prompt' is empty",
        ),
        (
            {"prompt": "p", "response_a": "  ", "response_b": "b"},
            "empty_field",
            "field 'response_a' is empty",
        ),
        (
            {"prompt": "p", "response_a": 3, "response_b": "b"},
            "not_text",
            "field 'response_a' is not text (got int)",
        ),
        (
            {"prompt": "p", "response_a": "same", "response_b": "same"},
            "identical_responses",
            "identical responses",
        ),
        (
            {"prompt": "p", "responses": ["only one"]},
            "bad_responses_list",
            "must be a list of 2-4 responses",
        ),
        (
            {"prompt": "p", "responses": ["1", "2", "3", "4", "5"]},
            "bad_responses_list",
            "must be a list of 2-4 responses",
        ),
        ("{not json", "not_json", "not valid JSON"),
        ("[1, 2]", "not_json", "a JSON object was expected"),
        (
            b'{"prompt": "p\xff", "response_a": "a", "response_b": "b"}',
            "undecodable",
            "undecodable bytes",
        ),
        (
            {"prompt": "p" * 200, "response_a": "a", "response_b": "b"},
            "too_large",
            "larger than source.max_row_bytes",
        ),
    ],
)
def test_bad_rows_are_reported_with_line_and_reason(
    tmp_path: Path, line: object, kind: str, reason: str
) -> None:
    path = jsonl(tmp_path, [ROWS[0], line, ROWS[1]])
    pairs, bad = read(path, max_row_bytes=150)
    assert len(pairs) == 2
    assert len(bad) == 1 and bad[0].row == 2 and bad[0].kind == kind
    assert reason in bad[0].reason
    assert str(bad[0]).startswith(f"{path}:2: ")


def test_csv_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(
        b"prompt,response_a,response_b\np1,a1,b1\np2,a2\np3,a\xff,b3\np4,a4,b4,extra\np5,a5,b5\n"
    )
    pairs, bad = read(path)
    assert [p.prompt for p in pairs] == ["p1", "p5"]
    assert [(b.row, b.kind) for b in bad] == [
        (3, "missing_field"),
        (4, "undecodable"),
        (5, "malformed_csv"),
    ]


def test_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="source file not found"):
        read(tmp_path / "missing.jsonl")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(SourceError, match="cannot tell the format"):
        read(tmp_path / "p.txt")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        read(tmp_path / "bad.parquet")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    dd = datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS)})
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(SourceError, match="no split 'train'"):
        read(tmp_path / "dd")


def test_a_folder_named_with_a_file_format_is_one_line(tmp_path: Path) -> None:
    """A user trial: source.path naming a folder with source.format = "jsonl" or "csv"
    was an IsADirectoryError traceback (Parquet said it, in pyarrow's words)."""
    folder = tmp_path / "d"
    folder.mkdir()
    jsonl(folder, ROWS)
    for fmt in ("jsonl", "csv", "parquet"):
        with pytest.raises(SourceError) as caught:
            read(folder, format=fmt)
        assert str(caught.value) == (
            f'{folder}: is a folder; source.format = "{fmt}" reads one file (name the file '
            'in source.path, or set source.format = "hf" to read a folder of data files)'
        )


def test_a_folder_mixing_data_file_types_is_refused_not_half_read(tmp_path: Path) -> None:
    """A user trial: a folder holding a .csv, a .jsonl and notes.txt read the JSONL rows
    alone (``datasets`` reads one file type) and dropped the CSV's pairs without a word."""
    mixed = tmp_path / "d_mixed"
    mixed.mkdir()
    jsonl(mixed, ROWS[:1], "a.jsonl")
    with (mixed / "b.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ROWS[1]))
        w.writeheader()
        w.writerow(ROWS[1])
    (mixed / "notes.txt").write_text("where these came from\n")
    with pytest.raises(SourceError) as caught:
        read(mixed)
    assert str(caught.value) == (
        f"{mixed}: holds data files of more than one type; `datasets` reads only its .jsonl "
        "files and would skip b.csv; keep one type of data file in the folder, or point "
        "source.path at one file"
    )
    # the text files winning by number: the pairs' file is named
    (mixed / "b.csv").unlink()
    (mixed / "more.txt").write_text("more notes\n")
    with pytest.raises(
        SourceError, match=re.escape("reads only its .txt files and would skip a.jsonl;")
    ):
        read(mixed, format="hf")
    # one type of pair file (split across files), with notes and a card beside it, reads
    tidy = tmp_path / "tidy"
    tidy.mkdir()
    jsonl(tidy, ROWS[:1], "train-0.jsonl")
    jsonl(tidy, ROWS[1:], "train-1.json")
    (tidy / "README.md").write_text("# pairs\n")
    (tidy / "notes.txt").write_text("notes\n")
    (tidy / ".cache").mkdir()
    jsonl(tidy / ".cache", ROWS, "old.csv")  # hidden: datasets skips it, and so do we
    pairs, bad = read(tidy)
    assert sorted(ids(pairs)) == sorted(pair_id(*r.values()) for r in ROWS) and bad == []
    # one type, but a file named for a split beside one that is not: datasets reads the split
    named = tmp_path / "named"
    named.mkdir()
    jsonl(named, ROWS[:1], "train.jsonl")
    jsonl(named, ROWS[1:], "extra.jsonl")
    with pytest.raises(SourceError) as caught:
        read(named)
    assert str(caught.value) == (
        f"{named}: names some data files for a split (train, test, ...), and `datasets` reads "
        "only those: it would skip extra.jsonl; name every data file for its split "
        "(train-2.jsonl, say), or point source.path at one file"
    )


def test_a_folder_of_data_files_reads_each_file_as_if_alone(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A user trial: a folder whose a.jsonl had a broken line 6 stopped the round with
    `datasets`' log line ("in row 5") and "cannot load it as a Hugging Face dataset"; the
    file given alone skipped that line and named a.jsonl:6. A folder of JSONL, CSV or
    Parquet files is read file by file, each as when read alone: same pairs, same ids,
    bad rows named by file and line, nothing logged."""
    many = [{"prompt": f"p{i}", "response_a": "a", "response_b": "b"} for i in range(9)]
    folder = tmp_path / "d"
    folder.mkdir()
    a = jsonl(folder, [*many[:5], '{"prompt": "p5", "response_a": "a', *many[5:7]], "a.jsonl")
    b = jsonl(folder, many[7:], "b.jsonl")
    capfd.readouterr()
    pairs, bad = read(folder)
    alone = [read(a), read(b)]
    assert pairs == alone[0][0] + alone[1][0] and bad == alone[0][1] + alone[1][1]
    assert ids(pairs) == [pair_id(*r.values()) for r in many[:7] + many[7:]]
    assert [str(r) for r in bad] == [f"{a}:6: not valid JSON (Invalid control character at)"]
    assert (pairs[5].source, pairs[5].row) == (str(a), 7)
    assert capfd.readouterr().err == ""
    # a CSV folder too: a bad row named by its file's line; the split is source.split's
    csvs = tmp_path / "c"
    csvs.mkdir()
    for name, rows in (("train.csv", ROWS), ("test.csv", [{**ROWS[0], "prompt": ""}])):
        with (csvs / name).open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(ROWS[0]))
            w.writeheader()
            w.writerows(rows)
    assert ids(read(csvs)[0]) == ids(read(csvs / "train.csv")[0]) and read(csvs)[1] == []
    pairs, bad = read(csvs, split="test")
    assert pairs == [] and [str(r) for r in bad] == [
        f"{csvs / 'test.csv'}:2: field 'prompt' is empty"
    ]
    with pytest.raises(
        SourceError,
        match=re.escape(f"{csvs}: no split 'dev' (source.split); available: train, test"),
    ):
        read(csvs, split="dev")


def test_a_folder_read_file_by_file_names_its_files_as_configured(tmp_path: Path) -> None:
    """A review finding: each file was named by the path `datasets` resolved, so a folder
    given through a link or with ".." recorded its bad rows under another name than the
    source's: `report` never listed them and a fixed file never cleared them."""
    real = tmp_path / "real"
    real.mkdir()
    jsonl(real, [*ROWS, "{not json"], "a.jsonl")
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "proj").mkdir()
    for given in (tmp_path / "link", tmp_path / "proj" / ".." / "real"):
        pairs, bad = read(given)
        assert [b.source for b in bad] == [str(given / "a.jsonl")]
        assert {p.source for p in pairs} == {str(given / "a.jsonl")}


def test_a_folder_whose_card_declares_a_schema_is_read_by_datasets(tmp_path: Path) -> None:
    """A review finding: a folder's card declaring its features (here response_a a
    string, holding a number in the file) was read file by file, ignoring them: the pair
    became a bad row, "not text". `datasets` reads such a folder, as its card says."""
    folder = tmp_path / "d"
    folder.mkdir()
    jsonl(folder, [{**ROWS[0], "response_a": 1}], "train.jsonl")
    (folder / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: prompt\n    dtype: string\n"
        "  - name: response_a\n    dtype: string\n  - name: response_b\n    dtype: string\n---\n"
    )
    pairs, bad = read(folder)
    assert bad == [] and [p.response_a for p in pairs] == ["1"]


def test_a_folder_datasets_reads_fails_in_one_line_naming_the_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """.json files may be whole JSON documents, which `datasets` reads: a bad line in
    one is one error naming the file, with `datasets`' log line kept off the terminal."""
    folder = tmp_path / "d"
    folder.mkdir()
    jsonl(folder, [*ROWS, '{"prompt": "p5", "response_a": "a'], "a.json")
    capfd.readouterr()
    with pytest.raises(SourceError) as caught:
        read(folder)
    assert str(caught.value).startswith(
        f"{folder}: cannot load it as a Hugging Face dataset (Failed to load JSON from file "
        f"'{folder / 'a.json'}' with error"
    )
    assert "\n" not in str(caught.value) and capfd.readouterr().err == ""
    # pandas' messages end with a newline: still one line (a .tsv with an extra field)
    tabs = tmp_path / "t"
    tabs.mkdir()
    (tabs / "a.tsv").write_text("prompt\tresponse_a\tresponse_b\np\ta\tb\np\ta\tb\tc\n")
    with pytest.raises(SourceError) as caught:
        read(tabs)
    assert "\n" not in str(caught.value), str(caught.value)
    assert capfd.readouterr().err == ""


def test_table_sources_with_the_wrong_columns_name_both_sides(tmp_path: Path) -> None:
    """Issue 10: a CSV or Parquet file with other columns said 'Nothing to do'."""
    wrong = [{"question": "q", "answer_1": "a", "answer_2": "b"}]
    expected = (
        "columns found: question, answer_1, answer_2; configured: 'prompt' with "
        "'response_a' and 'response_b' (or 'responses')"
    )
    path = tmp_path / "w.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(wrong[0]))
        writer.writeheader()
        writer.writerows(wrong)
    with pytest.raises(SourceError, match="^" + re.escape(f"{path}: {expected}")):
        read(path)
    pq.write_table(pa.Table.from_pylist(wrong), tmp_path / "w.parquet")
    with pytest.raises(SourceError, match=re.escape(expected)):
        read(tmp_path / "w.parquet")
    datasets.Dataset.from_list(wrong).save_to_disk(str(tmp_path / "wds"))
    with pytest.raises(SourceError, match=re.escape(expected)):
        read(tmp_path / "wds")
    # configured names make the same file readable
    pairs, _ = read(
        tmp_path / "w.parquet",
        prompt_field="question",
        response_a_field="answer_1",
        response_b_field="answer_2",
    )
    assert len(pairs) == 1


TRL = dict(response_a_field="chosen", response_b_field="rejected")
USER = {"role": "user", "content": "What is 2+2?"}


def said(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_trl_conversational_rows_read_in_every_table_format(tmp_path: Path) -> None:
    """TRL's conversational preference format (explicit prompt: responses are lists
    holding the assistant's turn; implicit: no prompt field, each response the whole
    conversation) gives the pairs a text source would, the prompt's turns kept."""
    explicit = [{"prompt": [USER], "chosen": said("4"), "rejected": said("5")}]
    implicit = [{"chosen": [USER, *said("4")], "rejected": [USER, *said("5")]}]
    want = pair_id("[user]\nWhat is 2+2?", "4", "5")
    for name, rows in (("explicit", explicit), ("implicit", implicit)):
        pairs, bad = read(jsonl(tmp_path, rows, f"{name}.jsonl"), **TRL)
        assert bad == [] and ids(pairs) == [want], name
        assert json.loads(pairs[0].messages) == [USER]
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / f"{name}.parquet")
        assert ids(read(tmp_path / f"{name}.parquet", **TRL)[0]) == [want], name
        datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / name))
        assert ids(read(tmp_path / name, **TRL)[0]) == [want], name
    # a longer shared history: the prompt is every turn up to the last user turn shared
    history = [USER, *said("4"), {"role": "user", "content": "and 3+3?"}]
    longer = [{"chosen": [*history, *said("6")], "rejected": [*history, *said("7")]}]
    (pair,), _ = read(jsonl(tmp_path, longer, "longer.jsonl"), **TRL)
    assert json.loads(pair.messages) == history
    assert (pair.response_a, pair.response_b) == ("6", "7")


def test_openai_content_parts_are_read_as_their_text(tmp_path: Path) -> None:
    parts = [{"type": "text", "text": "What is"}, {"type": "text", "text": "2+2?"}]
    row = {"prompt": [{"role": "user", "content": parts}], "response_a": "4", "response_b": "5"}
    (pair,), bad = read(jsonl(tmp_path, [row]))
    assert bad == [] and pair.prompt == "[user]\nWhat is\n2+2?"


def test_a_developer_message_is_read_as_the_system_message(tmp_path: Path) -> None:
    """A user trial: OpenAI's newer role name ``developer`` was refused ("must be a
    message with role system/user/assistant"); it is the system message, and is exported
    as one."""
    rule = {"role": "developer", "content": "Answer briefly."}
    row = {"prompt": [rule, USER], "response_a": "4", "response_b": "5"}
    (pair,), bad = read(jsonl(tmp_path, [row]))
    assert bad == []
    assert json.loads(pair.messages) == [{"role": "system", "content": "Answer briefly."}, USER]
    assert pair.prompt == "[system]\nAnswer briefly.\n\n[user]\nWhat is 2+2?"
    # the same pair as with a system message
    as_system = {"prompt": [rule | {"role": "system"}, USER], "response_a": "4", "response_b": "5"}
    assert pair.id == read(jsonl(tmp_path, [as_system], "s.jsonl"))[0][0].id


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            {"prompt": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "field 'prompt'[0] has a content part of type 'image_url' (only text parts are read)",
        ),
        (
            {"prompt": [USER], "chosen": [USER, *said("4")], "rejected": said("5")},
            "field 'chosen' must hold only the assistant's turn when given as messages",
        ),
        (
            {"prompt": [USER], "chosen": said(""), "rejected": said("5")},
            "field 'chosen'[0] has no text content",
        ),
        (
            {"chosen": said("4"), "rejected": said("5")},
            "fields 'chosen', 'rejected' share no conversation ending with the user's turn, "
            "and there is no prompt field",
        ),
        (
            {"chosen": [USER, *said("4")], "rejected": [USER]},
            "share no conversation ending with the user's turn",
        ),
        (
            {
                "chosen": [USER, *said("4"), {"role": "user", "content": "sure?"}, *said("4!")],
                "rejected": [USER, *said("5")],
            },
            "fields 'chosen', 'rejected' go on differently after their last shared user turn",
        ),
    ],
)
def test_unusable_message_rows_say_why(tmp_path: Path, row: dict[str, object], reason: str) -> None:
    row = {"chosen": "4", "rejected": "5"} | row
    pairs, bad = read(jsonl(tmp_path, [ROWS[0] | {"chosen": "a", "rejected": "b"}, row]), **TRL)
    assert len(pairs) == 1 and [(b.row, b.kind) for b in bad] == [(2, "bad_messages")]
    assert reason in bad[0].reason


def test_a_null_prompt_is_a_missing_prompt_not_an_implicit_one(tmp_path: Path) -> None:
    row = {"prompt": None, "chosen": [USER, *said("4")], "rejected": [USER, *said("5")]}
    _, bad = read(jsonl(tmp_path, [row]), **TRL)
    assert [(b.kind, b.reason) for b in bad] == [("missing_field", "missing field 'prompt'")]


def test_implicit_prompts_in_large_lists_and_in_a_responses_column(tmp_path: Path) -> None:
    """A saved dataset whose message lists are Arrow large lists, and 2-4 whole
    conversations in one list column, read as in JSONL."""
    conv = [[USER, *said(x)] for x in ("4", "5", "6")]
    rows = [{"chosen": conv[0], "rejected": conv[1]}]
    messages = pa.struct([("role", pa.string()), ("content", pa.string())])
    kind = pa.large_list(messages)
    table = pa.Table.from_pylist(rows, schema=pa.schema([("chosen", kind), ("rejected", kind)]))
    datasets.Dataset(table).save_to_disk(str(tmp_path / "large"))
    assert len(read(tmp_path / "large", **TRL)[0]) == 1
    pq.write_table(pa.Table.from_pylist([{"responses": conv}]), tmp_path / "r.parquet")
    pairs, bad = read(tmp_path / "r.parquet")
    assert bad == [] and [(p.response_a, p.response_b) for p in pairs] == [
        ("4", "5"), ("4", "6"), ("5", "6"),
    ]  # fmt: skip


def test_a_table_without_a_prompt_column_needs_message_lists(tmp_path: Path) -> None:
    """Without a prompt column only list columns can hold an implicit prompt: text
    columns still fail at once, naming both sides."""
    pq.write_table(pa.Table.from_pylist([{"chosen": "4", "rejected": "5"}]), tmp_path / "t.parquet")
    with pytest.raises(SourceError, match="columns found: chosen, rejected; configured: 'prompt'"):
        read(tmp_path / "t.parquet", **TRL)
