"""Template parsing, rendering and hashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeler.errors import ConfigError
from labeler.prompts import (
    load_fact_template,
    load_guidelines,
    load_template,
    parse_template,
    render_messages,
)


def guidelines(tmp_path: Path, text: str = "Be right.") -> object:
    folder = tmp_path / "g"
    folder.mkdir(exist_ok=True)
    (folder / "01.md").write_text(text)
    return load_guidelines(folder)


def test_builtin_template_renders_both_orders(tmp_path: Path) -> None:
    t = load_template(None)
    g = guidelines(tmp_path)
    ab = render_messages(t, g, "Q?", "first", "second", "ab")
    ba = render_messages(t, g, "Q?", "first", "second", "ba")
    assert [m["role"] for m in ab] == ["system", "user"]
    assert "Be right." in ab[0]["content"]
    assert "<response_a>\nfirst\n</response_a>" in ab[1]["content"]
    assert "<response_a>\nsecond\n</response_a>" in ba[1]["content"]
    assert "{{" not in ab[0]["content"] + ab[1]["content"]


def test_placeholders_in_user_text_are_not_expanded(tmp_path: Path) -> None:
    t = parse_template("{{prompt}} | {{response_a}} | {{response_b}}", "t")
    msgs = render_messages(t, guidelines(tmp_path), "say {{response_b}}", "x", "y", "ab")
    assert msgs == [{"role": "user", "content": "say {{response_b}} | x | y"}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{prompt}} {{response_a}}", "must contain {{response_b}}"),
        ("{{prompt}} {{response_a}} {{response_b}} {{rubric}}", "unknown placeholder {{rubric}}"),
        ("<<<user>>>\n{{prompt}}{{response_a}}{{response_b}}\n<<<system>>>\nx", "must come before"),
        ("<<<system>>>\nx\n{{prompt}}{{response_a}}{{response_b}}", "exactly one '<<<user>>>'"),
    ],
)
def test_bad_templates(text: str, message: str) -> None:
    with pytest.raises(
        ConfigError,
        match="t.txt: .*" + message.replace("{", r"\{").replace("}", r"\}").replace("[", r"\["),
    ):
        parse_template(text, "t.txt")


def test_hashes_change_with_content(tmp_path: Path) -> None:
    a = parse_template("{{prompt}}{{response_a}}{{response_b}}", "t")
    b = parse_template("{{prompt}} {{response_a}}{{response_b}}", "t")
    assert a.hash != b.hash and len(a.hash) == 16
    g1 = guidelines(tmp_path, "one")
    g2 = guidelines(tmp_path, "two")
    assert g1.hash != g2.hash


def test_guideline_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"judge\.guidelines: .* not found"):
        load_guidelines(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no \.md files"):
        load_guidelines(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"judge\.template: file .* not found"):
        load_template(tmp_path / "nope.txt")


def test_a_folder_or_unreadable_file_named_as_a_file_is_one_line(tmp_path: Path) -> None:
    """A user trial: judge.template naming a folder was an IsADirectoryError traceback."""
    folder = tmp_path / "templates"
    folder.mkdir()
    for load, key in ((load_template, "judge.template"),
                      (load_fact_template, "quality.fact_check_template")):  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            load(folder)
        assert str(caught.value) == f"{key}: {folder} is a folder; it must be a file"
    # a guidelines folder holding a .md folder skips it; an unreadable .md file is named
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "sub.md").mkdir()
    (tmp_path / "g" / "a.md").write_bytes(b"\xff\xfe bad")
    with pytest.raises(ConfigError) as caught:
        load_guidelines(tmp_path / "g")
    assert str(caught.value) == f"judge.guidelines: {tmp_path / 'g' / 'a.md'} is not UTF-8 text"


def test_repo_guidelines_and_template_match_the_shipped_ones() -> None:
    """guidelines/ and templates/ at the top of the repo are what `labeler init` writes."""
    root = Path(__file__).resolve().parent.parent
    from labeler.prompts import builtin_text

    for path in sorted((root / "guidelines").glob("*.md")):
        assert path.read_text() == builtin_text(f"guidelines/{path.name}")
    assert (root / "templates" / "judge.txt").read_text() == builtin_text("judge_prompt.txt")


def test_unwrap_joins_paragraph_lines_and_keeps_blocks() -> None:
    from labeler.prompts import unwrap

    text = (
        "# Title\n"
        "A paragraph written\n"
        "over two lines.\n"
        "\n"
        "- a list item that\n"
        "  goes on here\n"
        "- second item\n"
        "1. numbered\n"
        "\n"
        "```\n"
        "code line 1\n"
        "code line 2\n"
        "```\n"
        "> quote\n"
        "| a | b |\n"
        "| - | - |\n"
    )
    assert unwrap(text) == (
        "# Title\n"
        "A paragraph written over two lines.\n"
        "\n"
        "- a list item that goes on here\n"
        "- second item\n"
        "1. numbered\n"
        "\n"
        "```\n"
        "code line 1\n"
        "code line 2\n"
        "```\n"
        "> quote\n"
        "| a | b |\n"
        "| - | - |\n"
    )
