"""Config loading: defaults, precedence, and one-line errors naming file and key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from labeler.config import SECTIONS, load_config
from labeler.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(environ={})
    assert cfg.file is None
    assert cfg.judge.concurrency == 16 and cfg.routing.threshold == 0.8
    assert cfg.project.state_dir == tmp_path / ".labeler"
    assert cfg.judge.template is None


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = write(tmp_path, '[source]\npath = "data/p.jsonl"\n[judge]\ntemplate = "t.txt"\n')
    cfg = load_config(path, environ={})
    assert cfg.source.path == tmp_path / "data" / "p.jsonl"
    assert cfg.judge.template == tmp_path / "t.txt"
    assert cfg.judge.guidelines == tmp_path / "guidelines"


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[judge]\nconcurrency = 3\nmodel = 'file-model'\n")
    env = {"LABELER_JUDGE_CONCURRENCY": "7", "LABELER_JUDGE_LOGPROBS": "false"}
    cfg = load_config(path, environ=env)
    assert cfg.judge.concurrency == 7 and cfg.judge.logprobs is False
    assert cfg.judge.model == "file-model"
    cfg = load_config(path, {"judge.concurrency": 9}, environ=env)
    assert cfg.judge.concurrency == 9


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (
            "[judge]\nconcurency = 3\n",
            {},
            "config.toml: unknown key judge.concurency; did you mean 'concurrency'?",
        ),
        (
            "[routing]\nthreshold = 1.7\n",
            {},
            "config.toml: routing.threshold = 1.7 is out of range; allowed: >= 0 and <= 1",
        ),
        (
            "[judge]\nconcurrency = 0\n",
            {},
            "config.toml: judge.concurrency = 0 is out of range; allowed: >= 1 and <= 1024",
        ),
        (
            "[judge]\nconcurrency = 'many'\n",
            {},
            'config.toml: judge.concurrency must be a number, got "many"',
        ),
        (
            "[judge]\nconcurrency = 2.5\n",
            {},
            "config.toml: judge.concurrency must be a whole number, got 2.5",
        ),
        ("[judge]\ntimeout_s = 0\n", {}, "judge.timeout_s = 0 is out of range; allowed: > 0"),
        ("[judge]\nlogprobs = 'yes'\n", {}, 'judge.logprobs must be true or false, got "yes"'),
        ("[source]\nformat = 'xlsx'\n", {}, 'source.format = "xlsx" is not allowed'),
        ("[jugde]\nmodel = 'x'\n", {}, "unknown section [jugde]; did you mean 'judge'?"),
        ("[judge\nmodel = 'x'\n", {}, "config.toml: not valid TOML"),
        ("judge = 3\n", {}, "judge must be a [section] table"),
        (
            "",
            {"LABELER_JUDGE_CONCURRENCY": "x"},
            'environment: LABELER_JUDGE_CONCURRENCY must be a number, got "x"',
        ),
        (
            "",
            {"LABELER_JUDGE_MODLE": "x"},
            "environment: unknown key LABELER_JUDGE_MODLE; did you mean 'LABELER_JUDGE_MODEL'?",
        ),
        # (matched on the key: the variables' shared prefix made anything "close")
        ("", {"LABELER_COSTS_ZZZZZ": "x"}, "LABELER_COSTS_ZZZZZ; allowed: LABELER_COSTS_BREAK"),
        # issue 17's user trial: nan and inf passed every range check (nan < lo is False)
        ("[routing]\nthreshold = nan\n", {}, "routing.threshold must be a number, got nan"),
        ("[costs]\nhuman_price_per_pair = inf\n", {}, "must be a number, got inf"),
        ("", {"LABELER_CALIBRATION_CONFIDENCE": "nan"}, "LABELER_CALIBRATION_CONFIDENCE must be a"),
        ("[judge]\nconcurrency = 1" + "0" * 400 + "\n", {}, "judge.concurrency = 1000"),
        # (a float key: an OverflowError traceback)
        ("[routing]\nthreshold = 1" + "0" * 400 + "\n", {}, "too large a number (401 digits)"),
        ("[project]\nname = ' '\n", {}, "config.toml: project.name is empty; it may not be"),
        ("", {"LABELER_PROJECT_NAME": ""}, "environment: LABELER_PROJECT_NAME is empty"),
        # a user trial: an empty model passed, and failed only at the endpoint's 404
        (
            "[judge]\nmodel = ''\n",
            {},
            "config.toml: judge.model is empty; it may not be (Model name sent to the endpoint.)",
        ),
        ("", {"LABELER_JUDGE_MODEL": " "}, "environment: LABELER_JUDGE_MODEL is empty"),
        # an empty host made `labeler serve` listen on every network without a word
        ("[review]\nhost = ''\n", {}, "config.toml: review.host is empty; it may not be"),
        (
            "[[judge.tiers]]\nmodel = 'a'\n[[judge.tiers]]\nmodel = ''\n",
            {},
            "config.toml: judge.tiers[2]: judge.model is empty",
        ),
        # a user trial: an environment variable's error named the config key, not the
        # variable the user set
        (
            "",
            {"LABELER_JUDGE_TIMEOUT_S": "soon"},
            'environment: LABELER_JUDGE_TIMEOUT_S must be a number, got "soon"',
        ),
        (
            "[judge]\nlogprobs = true\n",
            {"LABELER_JUDGE_LOGPROBS": "maybe"},
            'environment: LABELER_JUDGE_LOGPROBS must be true or false, got "maybe"',
        ),
        (
            "",
            {"LABELER_JUDGE_CONCURRENCY": "0"},
            "environment: LABELER_JUDGE_CONCURRENCY = 0 is out of range; allowed: >= 1 and <= 1024",
        ),
        (
            "",
            {"LABELER_SOURCE_FORMAT": "xls"},
            'environment: LABELER_SOURCE_FORMAT = "xls" is not allowed; allowed: auto, csv,',
        ),
        (
            "[[judge.tiers]]\nmodel = 'a'\n",
            {"LABELER_JUDGE_TOP_LOGPROBS": "99"},
            "environment: LABELER_JUDGE_TOP_LOGPROBS = 99 is out of range",
        ),
        (
            "",
            {"LABELER_REVIEW_API_KEY_ENV": "sk-proj-abc123"},
            "environment: LABELER_REVIEW_API_KEY_ENV must be the name of an environment variable",
        ),
    ],
)
def test_errors_name_file_key_and_what_is_allowed(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_errors_show_values_as_toml_spells_them(tmp_path: Path) -> None:
    """A user trial: errors showed the file's values in Python's spelling (True, None,
    ['a', 'b'], 'x'); they are shown as they are written in the file."""
    for text, said in [
        ("[judge]\ntimeout_s = true\n", "judge.timeout_s must be a number, got true"),
        ("[judge]\nmodel = false\n", "judge.model must be a string, got false"),
        ("[judge]\nmodel = ['a', \"b\"]\n", 'judge.model must be a string, got ["a", "b"]'),
        ("[judge]\nlogprobs = { on = 1 }\n", "must be true or false, got { on = 1 }"),
        ("[judge]\nlogprobs = 'it\"s'\n", 'must be true or false, got "it\\"s"'),
        ("[judge]\nsamples = 1979-05-27\n", "judge.samples must be a number, got 1979-05-27"),
        ("[source]\nformat = 'csv '\n", 'source.format = "csv " is not allowed'),
        ("[judge]\ntimeout_s = 0\n", "judge.timeout_s = 0 is out of range"),
        ("[[judge.tiers]]\nname = 'a'\n[[judge.tiers]]\nname = 'a'\n", 'tiers are named "a";'),
    ]:
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, text), environ={})
        assert said in str(info.value), text
        assert "'" not in str(info.value).partition("got")[2], str(info.value)


def test_an_empty_path_is_refused(tmp_path: Path) -> None:
    """A user trial: an empty ``project.state_dir`` meant the project's own folder, so a
    project with rounds behind it silently started a new state there and paid for every
    pair again. No path key may be empty (an optional template's empty means built-in)."""
    for text, env, said in [
        ('[project]\nstate_dir = ""\n', {}, "project.state_dir must be a path"),
        ('[output]\ndataset_dir = " "\n', {}, "output.dataset_dir must be a path"),
        ('[judge]\nguidelines = ""\n', {}, "judge.guidelines must be a path"),
        ("", {"LABELER_SOURCE_PATH": ""}, "LABELER_SOURCE_PATH must be a path"),
        ("", {"LABELER_PROJECT_STATE_DIR": ""}, "LABELER_PROJECT_STATE_DIR must be a path"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, text), environ=env)
        assert said in str(info.value) and "not empty" in str(info.value), text
    assert (
        load_config(write(tmp_path, '[judge]\ntemplate = ""\n'), environ={}).judge.template is None
    )


def test_out_of_range_values_are_shown_as_written(tmp_path: Path) -> None:
    """A review: a value out of range was shown after its conversion to the key's type, so
    ``timeout_s = 0`` was refused as ``0.0`` and ``LABELER_JUDGE_TIMEOUT_S=0`` too: the line
    did not show what the user wrote."""
    tier = "[[judge.tiers]]\nmodel = 'a'\ntemperature = 3\n"
    for text, env, said in [
        ("[judge]\ntimeout_s = 0\n", {}, "{file}: judge.timeout_s = 0 is out of range; "
         "allowed: > 0"),
        ("[costs]\nhuman_price_per_pair = -1\n", {}, "{file}: costs.human_price_per_pair = -1 "
         "is out of range; allowed: >= 0"),
        (tier, {}, "{file}: judge.tiers[1]: judge.temperature = 3 is out of range; allowed: >= 0 "
         "and <= 2"),
        ("", {"LABELER_JUDGE_TIMEOUT_S": " 0 "}, "environment: LABELER_JUDGE_TIMEOUT_S = 0 is out "
         "of range; allowed: > 0"),
        ("", {"LABELER_ROUTING_THRESHOLD": "2"}, "environment: LABELER_ROUTING_THRESHOLD = 2 is "
         "out of range; allowed: >= 0 and <= 1"),
    ]:  # fmt: skip
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as info:
            load_config(path, environ=env)
        assert str(info.value) == said.format(file=path), text
    with pytest.raises(ConfigError) as info:  # a flag's value, as it was passed
        load_config(write(tmp_path, ""), {"judge.timeout_s": 0}, environ={})
    assert str(info.value) == "command line: judge.timeout_s = 0 is out of range; allowed: > 0"


def test_judge_samples_need_a_temperature_that_lets_them_differ(tmp_path: Path) -> None:
    """A user trial: judge.samples = 3 at sample_temperature = 0 was accepted, though every
    sample would be the same reply (a vote of one, paid three times). A review: the
    refusal named the config file and ``judge.*`` for values set in the environment or in
    a tier, and not which tier; it names the tier and the keys as they were set."""
    tiers = "[[judge.tiers]]\nmodel = 'a'\n[[judge.tiers]]\nmodel = 'b'\nsamples = 5\n"
    for text, env, said in [
        ("[judge]\nsamples = 3\nsample_temperature = 0\n", {}, "{file}: judge.samples > 1 "
         "needs judge.sample_temperature > 0"),
        ("[judge]\nsamples = 3\n", {"LABELER_JUDGE_SAMPLE_TEMPERATURE": "0"}, "environment: "
         "judge.samples > 1 needs LABELER_JUDGE_SAMPLE_TEMPERATURE > 0"),
        ("", {"LABELER_JUDGE_SAMPLES": "3", "LABELER_JUDGE_SAMPLE_TEMPERATURE": "0"},
         "environment: LABELER_JUDGE_SAMPLES > 1 needs LABELER_JUDGE_SAMPLE_TEMPERATURE > 0"),
        ("[judge]\nsample_temperature = 0\n" + tiers, {}, "{file}: judge.tiers[2]: "
         "judge.samples > 1 needs judge.sample_temperature > 0"),
        (tiers + "sample_temperature = 0\n", {}, "{file}: judge.tiers[2]: judge.samples > 1 "
         "needs judge.sample_temperature > 0"),
        (tiers, {"LABELER_JUDGE_SAMPLE_TEMPERATURE": "0"}, "{file}: judge.tiers[2]: "
         "judge.samples > 1 needs LABELER_JUDGE_SAMPLE_TEMPERATURE > 0"),
    ]:  # fmt: skip
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as info:
            load_config(path, environ=env)
        vote = " (at 0 every sample is the same reply: no vote)"
        assert str(info.value) == said.format(file=path) + vote, text
    one = load_config(write(tmp_path, "[judge]\nsample_temperature = 0\n"), environ={})
    assert one.judge.samples == 1  # one sample: its temperature is never used
    warm = write(tmp_path, "[judge]\nsamples = 3\nsample_temperature = 0.7\n")
    assert load_config(warm, environ={}).judge.samples == 3


def test_a_folder_as_config_and_a_byte_order_mark(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path, environ={})
    path = tmp_path / "config.toml"
    path.write_bytes("\ufeff[judge]\nmodel = 'm'\n".encode())  # Windows editors write one
    assert load_config(path, environ={}).judge.model == "m"


def test_a_pasted_key_is_refused_and_a_variable_name_is_not(tmp_path: Path) -> None:
    """``*_env`` keys name variables; a generated key pasted there is refused unshown."""
    path = tmp_path / "config.toml"
    for name in ("OPENAI_API_KEY", "AZURE_OPENAI_KEY_2024_prod", "my_key_2"):
        path.write_text(f'[judge]\napi_key_env = "{name}"\n')
        assert load_config(path, environ={}).judge.api_key_env == name
    for key in ("gsk_Q9xR2mT7vLp4Wn8Kc3Hs6YjB1dFg5ZaE0uNiOq", "sk-proj-abc123"):
        path.write_text(f'[review]\napi_key_env = "{key}"\n')
        with pytest.raises(ConfigError, match=r"review\.api_key_env must be the name") as info:
            load_config(path, environ={})
        assert key not in str(info.value)


def test_missing_named_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_api_key_comes_from_the_named_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(write(tmp_path, "[judge]\napi_key_env = 'MY_KEY'\n"), environ={})
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match="MY_KEY is not set"):
        cfg.judge.api_key()
    monkeypatch.setenv("MY_KEY", "k")
    assert cfg.judge.api_key() == "k"
    local = load_config(
        write(tmp_path, "[judge]\napi_key_env = 'MY_KEY2'\napi_key_required = false\n"), environ={}
    )
    assert local.judge.api_key() is None


def test_every_key_is_documented_in_the_starter_config() -> None:
    from labeler.prompts import builtin_text

    starter = builtin_text("config.toml")
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.metadata.get("tiers"):
                continue  # [[judge.tiers]]: documented in README (a cascade of judges)
            assert f.metadata["doc"]
            assert f"\n{f.name} = " in starter, f"{name}.{f.name}"


def test_starter_config_loads(tmp_path: Path) -> None:
    from labeler.prompts import builtin_text

    cfg = load_config(write(tmp_path, builtin_text("config.toml")), environ={})
    assert cfg.project.name == "my-preferences"


def test_an_unrelated_labeler_variable_is_a_warning_not_an_error(project: Any) -> None:
    """Issue 19: LABELER_VENV (another tool's variable) used to stop every command; it is
    now ignored with a one-line warning, while a typo in a real section still fails."""
    cfg = load_config(project.config, environ={"LABELER_VENV": "/opt/venv", "LABELER_X": "1"})
    assert cfg.ignored_env == ("LABELER_VENV", "LABELER_X")
    out = project.run("status", env={"LABELER_VENV": "/opt/venv"})
    assert out.exit_code == 0, out.output
    assert "warning: environment variable LABELER_VENV is not labeler config" in out.stderr
    assert "ignored" in out.stderr and "Traceback" not in out.output
    with pytest.raises(ConfigError, match=r"unknown key LABELER_JUDGE_MODLE"):
        load_config(project.config, environ={"LABELER_JUDGE_MODLE": "x"})


@pytest.mark.parametrize(
    ("review", "least"),
    [("min_submitted = 2\nmax_reviewers = 1", 2), ("double_share = 0.1\nmax_reviewers = 1", 2)],
)
def test_fewer_reviewers_allowed_than_a_pair_needs_is_refused(
    tmp_path: Path, review: str, least: int
) -> None:
    """Trial: max_reviewers below min_submitted was taken; pairs were then decided on one
    verdict while Argilla waited for a second and the cost counted two."""
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, f"[review]\n{review}\n"), environ={})
    assert str(err.value) == (
        f"{tmp_path / 'config.toml'}: review.max_reviewers = 1 needs at least {least}, the "
        "reviewers each pair needs (review.min_submitted; 2 with review.double_share > 0)"
    )
    assert (
        load_config(
            write(
                tmp_path,
                f"[review]\n{review}\nmax_reviewers = 2\n".replace("max_reviewers = 1\n", ""),
            ),
            environ={},
        ).review.max_reviewers
        == 2
    )
