"""One typed configuration object, loaded and validated here and nowhere else.

Precedence, highest first:

1. command-line flags (passed in as ``overrides``: ``{"judge.concurrency": 64}``),
2. environment variables ``LABELER_<SECTION>_<KEY>`` (``LABELER_JUDGE_CONCURRENCY=64``),
3. the config file (``config.toml``; ``--config`` or ``LABELER_CONFIG`` names another),
4. the defaults written in the dataclasses below.

Relative paths are resolved against the folder holding the config file (or the current folder
when there is none). Secrets are never config values: the config names the environment
variable that holds them (``judge.api_key_env``).

Every problem is a one-line ``ConfigError`` naming the file, the key and what is allowed;
unknown keys get a "did you mean" suggestion.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import isfinite
from pathlib import Path
from typing import Any

from labeler.errors import ConfigError, did_you_mean, not_a_variable_name, shown_toml, shown_url

ENV_PREFIX = "LABELER_"
DEFAULT_CONFIG_NAME = "config.toml"


NEEDED = {"project.name", "judge.model", "review.host"}  # strings that may not be empty


def _opt(
    default: Any,
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A config field with its documentation and the values it allows."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ProjectConfig:
    name: str = _opt("labeler", "Project name; names the Argilla dataset and the export.")
    state_dir: Path = _opt(Path(".labeler"), "Folder for the SQLite state and outputs.")


@dataclass(frozen=True)
class SourceConfig:
    path: Path = _opt(Path("pairs.jsonl"), "File or folder the pairs are read from.")
    format: str = _opt(
        "auto", "Source format.", choices=("auto", "jsonl", "csv", "parquet", "hf_disk", "hf")
    )
    prompt_field: str = _opt("prompt", "Column holding the prompt.")
    response_a_field: str = _opt("response_a", "Column holding the first response.")
    response_b_field: str = _opt("response_b", "Column holding the second response.")
    responses_field: str = _opt("responses", "Column holding a list of 2-4 responses.")
    split: str = _opt("train", "Split to read from a Hugging Face dataset.")
    max_row_bytes: int = _opt(1_000_000, "Rows larger than this are skipped.", lo=1)


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str = _opt("https://api.openai.com/v1", "OpenAI-compatible endpoint.")
    model: str = _opt("gpt-4o-mini", "Model name sent to the endpoint.")
    api_key_env: str = _opt("OPENAI_API_KEY", "Environment variable holding the API key.")
    api_key_required: bool = _opt(True, "False for local endpoints that need no key.")
    concurrency: int = _opt(16, "Requests in flight at once.", lo=1, hi=1024)
    timeout_s: float = _opt(60.0, "Per-request timeout in seconds.", lo=0, lo_open=True)
    max_retries: int = _opt(4, "Retries on 429/5xx/timeouts (honours Retry-After).", lo=0, hi=20)
    max_failure_share: float = _opt(
        0.5,
        "Share of a run's requests failing the same way (after 12) that stops the round.",
        lo=0,
        hi=1,
    )
    max_failed_attempts: int = _opt(
        3,
        "Failed requests (each after its retries, counted across runs) before a pair goes "
        "to humans with reason judge_error (a fact-check's: fact_check_failed).",
        lo=1,
        hi=100,
    )
    max_tokens: int = _opt(64, "Maximum tokens in a judge reply.", lo=1, hi=32768)
    temperature: float = _opt(0.0, "Sampling temperature.", lo=0, hi=2)
    logprobs: bool = _opt(True, "Ask for logprobs (the endpoint must support them).")
    top_logprobs: int = _opt(5, "Alternatives per token when logprobs are on.", lo=1, hi=20)
    samples: int = _opt(
        1,
        "Replies sampled per order; > 1: the vote share is the confidence (no logprobs).",
        lo=1,
        hi=20,
    )
    sample_temperature: float = _opt(
        1.0, "Sampling temperature when judge.samples > 1.", lo=0, hi=2
    )
    both_orders: bool = _opt(True, "Judge A/B and B/A; disagreeing orders go to review.")
    price_input_per_mtok: float = _opt(0.15, "Price per million input tokens.", lo=0)
    price_output_per_mtok: float = _opt(0.60, "Price per million output tokens.", lo=0)
    price_cached_input_per_mtok: float = _opt(
        0.075,
        "Price per million input tokens served from the endpoint's prompt cache "
        "(usage.prompt_tokens_details.cached_tokens).",
        lo=0,
    )
    panel: int = _opt(
        1,
        "Prompt variants (a panel of simulated annotators), each with its own in-context "
        "examples of human-decided pairs; the confidence is their averaged verdict "
        "probability. 1 = one prompt.",
        lo=1,
        hi=8,
    )
    panel_examples: int = _opt(3, "In-context examples per panel variant.", lo=1, hi=20)
    refresh_every: int = _opt(
        0,
        "Make a new judge version (fresh examples) after this many new human verdicts; "
        "0 = only on `labeler judge refresh`.",
        lo=0,
    )
    batch_price_share: float = _opt(
        0.5,
        "What the Batch API (`labeler round --batch`) charges, as a share of the prices above.",
        lo=0,
        hi=1,
    )
    template: Path | None = _opt(None, "Judge prompt template file; empty = built-in.")
    guidelines: Path = _opt(Path("guidelines"), "Folder (or file) of Markdown guidelines.")
    name: str = _opt("", "Name of this judge (tier) in reports; empty = the model.")
    delta_share: float = _opt(
        0.0,
        "In a cascade: the share of 1 - calibration.confidence this tier's test may spend "
        "(0 on every tier = predicted from the first round's scores under the planned "
        "procedure in high_probability mode; otherwise of what the tiers with a share "
        "leave, 80% to the last tier, the rest split equally).",
        lo=0,
        hi=1,
    )
    # [[judge.tiers]]: a cascade of judges, each a JudgeConfig (see load_config); empty =
    # this [judge] alone
    tiers: tuple[JudgeConfig, ...] = field(default=(), metadata={"doc": "", "tiers": True})

    @property
    def label(self) -> str:
        return self.name or self.model

    def api_key(self) -> str | None:
        """The key from the environment; a ConfigError when it is required and missing."""
        key = os.environ.get(self.api_key_env, "")
        if key or not self.api_key_required:
            return key or None
        raise ConfigError(
            f"judge.api_key_env: environment variable {self.api_key_env} is not set; "
            f"the judge at {shown_url(self.base_url)} needs a key (set it, or set "
            "judge.api_key_required = false for a local endpoint)"
        )


@dataclass(frozen=True)
class RoutingConfig:
    threshold: float = _opt(0.8, "Confidence at or above which a verdict is accepted.", lo=0, hi=1)
    audit_rate: float = _opt(
        0.02, "Share of certified acceptances sent to blind review (the drift watch).", lo=0, hi=1
    )
    provisional_audit_rate: float = _opt(
        0.3,
        "Share of provisional acceptances (not yet certified) sent to blind review (retest "
        "procedure; the planned one samples at calibration.cold_start_audit_rate).",
        lo=0.01,
        hi=1,
    )
    seed: int = _opt(0, "Seed of the audit draw and of the rounds' draw (reproducible).")
    round_order: str = _opt(
        "random",
        "Which waiting pairs a round takes: a seeded random draw (every round drawn like "
        "the others, as the guarantee assumes) or the source's own order.",
        choices=("random", "source"),
    )


@dataclass(frozen=True)
class CostsConfig:
    human_price_per_pair: float = _opt(0.50, "What one human verdict costs.", lo=0)
    currency: str = _opt("USD", "Currency label used in reports.")
    human_cost_mode: str = _opt(
        "per_pair",
        "Human cost from the price per pair or from measured review time.",
        choices=("per_pair", "time"),
    )
    hourly_rate: float = _opt(30.0, "What an hour of reviewing costs (time mode).", lo=0)
    break_cap_s: float = _opt(
        300.0, "Longest gap between two submissions counted as review time.", lo=1
    )
    max_cost_per_round: float = _opt(
        0.0, "Judge spend per round before it stops (0 = no limit).", lo=0
    )
    total_budget: float = _opt(
        0.0, "Judge spend over all rounds before rounds stop (0 = no limit).", lo=0
    )


@dataclass(frozen=True)
class QualityConfig:
    near_duplicate_similarity: float = _opt(
        0.95, "Responses at least this similar are flagged as near-identical.", lo=0, hi=1
    )
    near_duplicates: str = _opt(
        "review",
        "Near-identical pairs go to humans as likely ties or are dropped.",
        choices=("review", "drop"),
    )
    min_review_seconds: float = _opt(3.0, "Human verdicts faster than this are flagged.", lo=0)
    fact_check: bool = _opt(
        False,
        "Ask the (last) judge whether each accepted pair's chosen response states "
        "something objectively false; flagged pairs go to humans (chosen_has_errors).",
    )
    fact_check_template: Path | None = _opt(
        None, "Fact-check prompt template file; empty = built-in (templates/fact_check.txt)."
    )


@dataclass(frozen=True)
class VerifyConfig:
    """``labeler verify``: a reward model scores each dataset row's chosen and rejected
    response; a row whose margin is below ``min_margin`` is flagged."""

    api: str = _opt(
        "vllm_pooling",
        "How the reward model is served: vLLM's /pooling (a reward model, chat messages), "
        "vLLM's /classify (a one-output sequence classifier) or text-embeddings-inference's "
        "/predict.",
        choices=("vllm_pooling", "vllm_classify", "tei"),
    )
    base_url: str = _opt("", "The reward model's server, e.g. http://127.0.0.1:8000.")
    model: str = _opt("", "Model name sent to vLLM (empty: the server's only model).")
    api_key_env: str = _opt("", "Variable holding a bearer token for the server (optional).")
    min_margin: float = _opt(
        0.1, "Rows where score(chosen) - score(rejected) is below this are flagged."
    )
    action: str = _opt(
        "flag",
        "Flagged rows: marked in the export (rm_margin, rm_flag), sent back to humans "
        "(judge labels) or dropped from the dataset.",
        choices=("flag", "review", "drop"),
    )
    batch_size: int = _opt(32, "Responses per request (/classify, /predict).", lo=1, hi=4096)
    concurrency: int = _opt(4, "Requests in flight at once.", lo=1, hi=256)
    timeout_s: float = _opt(60.0, "Per-request timeout in seconds.", lo=0, lo_open=True)
    max_retries: int = _opt(3, "Retries on 429/5xx/timeouts.", lo=0, hi=20)
    price_per_1k: float = _opt(0.0, "What scoring 1,000 responses costs (0: self-hosted).", lo=0)


@dataclass(frozen=True)
class OutputConfig:
    dataset_dir: Path = _opt(Path(".labeler/dataset"), "Where the DPO dataset is saved.")
    parquet: bool = _opt(True, "Also write <dataset_dir>.parquet beside the Arrow dataset.")
    certified_only: bool = _opt(
        True,
        "Only certified judge labels in the dataset; false adds provisional ones too.",
    )


@dataclass(frozen=True)
class ReviewConfig:
    enabled: bool = _opt(True, "Push review pairs to Argilla at the end of each round.")
    api_url: str = _opt("", "A remote Argilla URL; empty = the embedded `labeler serve`.")
    api_key_env: str = _opt("ARGILLA_API_KEY", "Variable holding a remote Argilla's API key.")
    workspace: str = _opt("labeler", "Argilla workspace.")
    dataset: str = _opt("", "Argilla dataset name; empty = project.name.")
    min_submitted: int = _opt(1, "Reviewers who must decide each pair.", lo=1, hi=20)
    double_share: float = _opt(
        0.0,
        "Share of review pairs, drawn at random whatever brought them to review, that two "
        "different reviewers decide (a second Argilla dataset, `<dataset>-2`): human-human "
        "agreement in `labeler report --quality`.",
        lo=0,
        hi=1,
    )
    max_reviewers: int = _opt(
        5, "When reviewers tie, one more is asked, up to this many per pair.", lo=1, hi=50
    )
    suggestions: bool = _opt(
        False,
        "Show the judge's verdict as a hint (never a pre-selected answer), only on pairs "
        "the judge cannot decide (ties, order disagreements).",
    )
    push_batch: int = _opt(256, "Records per push request.", lo=1, hi=1000)
    timeout_s: float = _opt(30.0, "Timeout of each Argilla request.", lo=0, lo_open=True)
    host: str = _opt("127.0.0.1", "Address `labeler serve` binds.")
    port: int = _opt(6900, "Port of `labeler serve`.", lo=1, hi=65535)
    seed: int = _opt(0, "Seed of the shown order of each pair (position bias).")

    def remote_key(self) -> str:
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise ConfigError(
                f"review.api_key_env: environment variable {self.api_key_env} is "
                f"not set; the Argilla at {shown_url(self.api_url)} needs an API key"
            )
        return key


@dataclass(frozen=True)
class CalibrationConfig:
    target_agreement: float = _opt(
        0.90,
        "Agreement with humans that auto-accepted pairs must reach (1 - alpha).",
        lo=0.5,
        hi=0.999,
    )
    confidence: float = _opt(
        0.90, "Probability that the guarantee holds (1 - delta).", lo=0.5, hi=0.999
    )
    guarantee: str = _opt(
        "high_probability",
        "high_probability: agreement >= target with probability >= confidence; expected: "
        "the expected disagreement rate of accepted pairs <= 1 - target.",
        choices=("high_probability", "expected"),
    )
    procedure: str = _opt(
        "planned",
        "planned: one uniform calibration sample, looks when it has grown, a certificate "
        "kept once given; retest: every sync re-tests every pair judged so far (the default "
        "before issue 17).",
        choices=("planned", "retest"),
    )
    cascade: str = _opt(
        "auto",
        "How a cascade ([[judge.tiers]]) is certified. union: one test of the labels the whole "
        "cascade delivers, each pair labelled by the first tier sure enough of it (planned "
        "procedure, high_probability, absolute quality, no panel or delta_share); per_tier: "
        "each tier tested on its own at its share of 1 - confidence; auto: union where it "
        "applies. Fixed for a project at its first round.",
        choices=("auto", "union", "per_tier"),
    )
    quality: str = _opt(
        "absolute",
        "absolute: certified judge labels agree with a reviewer at least target_agreement "
        "of the time; human_parity: at least as often as two reviewers agree with each "
        "other on the same pairs, minus parity_margin (needs review.double_share).",
        choices=("absolute", "human_parity"),
    )
    parity_margin: float = _opt(
        0.03,
        "human_parity: how far below the reviewers' agreement with each other the judge's "
        "agreement with a reviewer may be.",
        lo=0,
        hi=0.5,
    )
    min_labels: int = _opt(30, "Human verdicts needed before thresholds move.", lo=10)
    min_per_threshold: int = _opt(20, "Sample pairs needed above a threshold to test it.", lo=5)
    cold_start_audit_rate: float = _opt(
        0.40,
        "Share of the pairs waiting for a certificate sampled for the calibration test "
        "(the audit rate of provisional acceptances before a threshold is certified).",
        lo=0,
        hi=1,
    )
    fit_share: float = _opt(
        0.2,
        "Share of pairs (a fixed hash split) whose verdicts fit the score; the rest test it "
        "(retest procedure).",
        lo=0.05,
        hi=0.5,
    )
    learn_combination: bool = _opt(
        True, "Learn how the confidence signals combine (retest procedure)."
    )


SECTIONS: dict[str, type] = {
    "project": ProjectConfig,
    "source": SourceConfig,
    "judge": JudgeConfig,
    "routing": RoutingConfig,
    "costs": CostsConfig,
    "output": OutputConfig,
    "review": ReviewConfig,
    "calibration": CalibrationConfig,
    "quality": QualityConfig,
    "verify": VerifyConfig,
}


LAST_TIER_SHARE = 0.8  # of the confidence budget the tiers without a delta_share split


def split_delta(given: Sequence[float]) -> tuple[float, ...]:
    """Each tier's share of the confidence budget from the shares ``given`` (0: none
    given): the tiers without one split what the others leave, the last taking
    ``LAST_TIER_SHARE`` of it when others split it too (``Config.delta_shares``)."""
    rest, free, last = 1 - sum(given), [k for k, g in enumerate(given) if g == 0], len(given) - 1
    shares = list(given) if len(given) > 1 else [1.0]
    for k in free if len(given) > 1 else ():
        if last not in free or len(free) == 1:
            shares[k] = rest / len(free)
        else:  # the last takes its share of what is left
            share = LAST_TIER_SHARE if k == last else (1 - LAST_TIER_SHARE) / (len(free) - 1)
            shares[k] = rest * share
    return tuple(shares)


@dataclass(frozen=True)
class Config:
    project: ProjectConfig = field(default_factory=ProjectConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    costs: CostsConfig = field(default_factory=CostsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    file: Path | None = None
    ignored_env: tuple[str, ...] = ()  # LABELER_* variables that are not config (warned)

    @property
    def judges(self) -> tuple[JudgeConfig, ...]:
        """The judge tiers in cascade order: ``[[judge.tiers]]``, or ``[judge]`` alone."""
        return self.judge.tiers or (self.judge,)

    @property
    def delta_shares(self) -> tuple[float, ...]:
        """The share of the guarantee's 1 - confidence each tier's test spends (they add
        up to at most 1: all tiers' guarantees hold at once with probability >= confidence).
        Tiers without a ``delta_share`` split what the others leave, the last tier taking
        ``LAST_TIER_SHARE`` of it: every pair the earlier tiers do not accept is its to
        certify, while an earlier tier's certificate only saves judge cost (issue 17: an
        equal split halved the strong tier's confidence budget for a cheap tier that
        rarely certifies, and cost 16 points of coverage at 20,000 pairs). A cascade with
        no ``delta_share`` set under the planned procedure in high_probability mode
        predicts its split instead, once its first rounds are judged (``thresholds.tier_shares``);
        this is the split it falls back on."""
        return split_delta([j.delta_share for j in self.judges])

    @property
    def wants_union(self) -> bool:
        """Does the config ask for a union cascade (``calibration.cascade``: "union", or
        "auto" where it applies)? A project keeps the mode it began with
        (``union_loop.is_union``)."""
        c = self.calibration
        fits = (c.procedure, c.guarantee, c.quality) == ("planned", "high_probability", "absolute")
        fits = fits and all(j.panel <= 1 and not j.delta_share for j in self.judges)
        return len(self.judges) > 1 and (c.cascade == "union" or (c.cascade == "auto" and fits))

    @property
    def db_path(self) -> Path:
        return self.project.state_dir / "state.sqlite"

    @property
    def review_dataset(self) -> str:
        return self.review.dataset or self.project.name

    @property
    def double_dataset(self) -> str:
        """The Argilla dataset of the pairs two reviewers decide (``review.double_share``)."""
        return f"{self.review_dataset}-2"

    def reviewers_needed(self, doubled: bool) -> int:
        """Reviewers who must decide a pair: two at least on a doubled one."""
        return max(self.review.min_submitted, 2 if doubled else 1)


def _coerce(where: str, key: str, typ: Any, value: Any, from_env: bool) -> Any:
    """Check (and, for env strings, convert) one value against its declared type."""
    if typ == Path | None and value == "":  # (empty: the built-in one)
        return None
    typ = Path if typ == Path | None else typ
    if typ is bool:
        low = value.strip().lower() if from_env and isinstance(value, str) else None
        if low in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return low in ("1", "true", "yes", "on")
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {key} must be true or false, got {shown_toml(value)}")
    if typ in (int, float):
        if from_env and isinstance(value, str):
            with contextlib.suppress(ValueError):  # (else refused as not a number below)
                value = typ(value.strip())
        finite = not isinstance(value, float) or isfinite(value)  # (an int of any size is)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not finite:
            raise ConfigError(f"{where}: {key} must be a number, got {shown_toml(value)}")
        if typ is int and not isinstance(value, int):
            raise ConfigError(f"{where}: {key} must be a whole number, got {shown_toml(value)}")
        with contextlib.suppress(OverflowError):  # (an int too large for a float: below)
            return typ(value)
        raise ConfigError(f"{where}: {key} is too large a number ({len(str(value))} digits)")
    if not isinstance(value, str) or (typ is Path and not value.strip()):  # ("" is the folder)
        what = "a path (a file or folder; not empty)" if typ is Path else "a string"
        raise ConfigError(f"{where}: {key} must be {what}, got {shown_toml(value)}")
    return Path(value) if typ is Path else value


def _shown(section: str, key: str, from_env: bool) -> str:
    """A key as the user set it: ``judge.timeout_s`` (file, flag) or the variable's name."""
    return f"{ENV_PREFIX}{section}_{key}".upper() if from_env else f"{section}.{key}"


def _check_range(at: str, key: str, f: dataclasses.Field[Any], value: Any, written: str) -> None:
    """``value``, set ``at`` (``config.toml: judge.timeout_s``) as ``written``, within what
    ``key`` allows."""
    m = f.metadata
    if key.endswith("_env") and value and not_a_variable_name(str(value)):  # never echoed
        raise ConfigError(
            f"{at} must be the name of an environment variable (letters, digits, "
            "_), not a secret itself: put the secret in that variable and name it here"
        )
    if key in NEEDED and not str(value).strip():
        raise ConfigError(f"{at} is empty; it may not be ({m['doc']})")
    lo, hi, choices = m.get("lo"), m.get("hi"), m.get("choices")
    said = f"{at} = {written}"
    if choices and value not in choices:
        raise ConfigError(f"{said} is not allowed; {did_you_mean(str(value), list(choices))}")
    too_low = lo is not None and (value <= lo if m.get("lo_open") else value < lo)
    if too_low or (hi is not None and value > hi):
        low = "" if lo is None else (f"> {lo}" if m.get("lo_open") else f">= {lo}")
        high = "" if hi is None else f"<= {hi}"
        allowed = " and ".join(x for x in (low, high) if x)
        raise ConfigError(f"{said} is out of range; allowed: {allowed}")


Layers = list[tuple[str, Mapping[str, Any], bool]]  # (where, values, from the environment)


def _build_section(name: str, cls: type, layers: Layers, base_dir: Path) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("tiers")}
    values: dict[str, Any] = {}
    for where, data, from_env in layers:
        for key, raw in data.items():
            shown = _shown(name, key, from_env)  # errors name what the user set
            if key not in fields:  # (a judge tier takes fewer keys than [judge])
                ok = [f for f in fields if "tiers[" not in where or f not in TIER_ONLY_GLOBAL]
                show = (lambda k: _shown(name, k, True)) if from_env else str  # (bare keys)
                raise ConfigError(f"{where}: unknown key {shown}; {did_you_mean(key, ok, show)}")
            value = _coerce(where, shown, hints[key], raw, from_env)
            # as the user wrote it (timeout_s = 0 is 0, not the 0.0 it became)
            written = raw.strip() if from_env and not isinstance(value, str) else shown_toml(raw)
            _check_range(f"{where}: {shown}", f"{name}.{key}", fields[key], value, written)
            values[key] = value
    for key, value in list(values.items()):
        if isinstance(value, Path) and str(value) and not value.is_absolute():
            values[key] = base_dir / value
    for key, f in fields.items():
        if key not in values and isinstance(f.default, Path):
            values[key] = base_dir / f.default
    return cls(**values)


def _env_layer(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The ``LABELER_<SECTION>_<KEY>`` variables by section, and the names of other
    ``LABELER_*`` variables (not labeler's: ``LABELER_VENV``, say), which are ignored."""
    out: dict[str, dict[str, str]] = {}
    ignored = []
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section not in SECTIONS or not key:
            ignored.append(name)
            continue
        out.setdefault(section, {})[key] = value
    return out, sorted(ignored)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")  # a BOM is no TOML
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (run `labeler init` to write one, or pass --config)"
        ) from None
    except OSError as exc:  # a folder, no permission
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for section, body in data.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{path}: unknown section [{section}]; {did_you_mean(section, list(SECTIONS))}"
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: {section} must be a [section] table")
    return data


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides_from: str = "command line",
) -> Config:
    """Load, merge and validate the configuration (see the module docstring for precedence).

    ``path=None`` uses ``$LABELER_CONFIG`` or ``./config.toml``; a missing default file is
    fine (defaults apply), a missing named file is an error. ``overrides_from``: what an
    error about an override names as its source.
    """
    environ = os.environ if environ is None else environ
    explicit = path is not None or bool(environ.get(ENV_PREFIX + "CONFIG"))
    cfg_path = Path(path or environ.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG_NAME)
    file_data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if explicit or cfg_path.exists():
        file_data = _read_file(cfg_path)
        base_dir = cfg_path.resolve().parent
    env_data, ignored_env = _env_layer(environ)
    flag_data: dict[str, dict[str, Any]] = {}
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        flag_data.setdefault(section, {})[key] = value
    built: dict[str, Any] = {}
    judge_file = dict(file_data.get("judge", {}))
    tier_tables = judge_file.pop("tiers", None)
    for name, cls in SECTIONS.items():
        layers = [
            (str(cfg_path), judge_file if name == "judge" else file_data.get(name, {}), False),
            ("environment", env_data.get(name, {}), True),
            (overrides_from, flag_data.get(name, {}), False),
        ]
        built[name] = _build_section(name, cls, layers, base_dir)
        if name == "judge" and tier_tables is None:
            _check_samples(built[name], layers)
    if tier_tables is not None:
        flags = (overrides_from, flag_data.get("judge", {}))
        tiers = _build_tiers(cfg_path, tier_tables, judge_file, env_data, flags, base_dir)
        built["judge"] = dataclasses.replace(built["judge"], tiers=tiers)
    file = cfg_path if file_data or explicit else None
    out = Config(**built, file=file, ignored_env=tuple(ignored_env))
    _check_combinations(out, str(cfg_path))
    return out


def _check_combinations(cfg: Config, where: str) -> None:
    """``calibration.quality = "human_parity"`` needs two-reviewer evidence and the planned
    high-probability procedure with one judge (what its argument covers); a union
    cascade, the planned high-probability procedure on absolute quality."""
    c = cfg.calibration
    most, least = cfg.review.max_reviewers, cfg.reviewers_needed(cfg.review.double_share > 0)
    planned_hp = (('calibration.guarantee = "high_probability"', c.guarantee == "high_probability"),
                  ('calibration.procedure = "planned"', c.procedure == "planned"))  # fmt: skip
    checks = {
        'calibration.quality = "human_parity"': (c.quality == "human_parity", (
            ("review.double_share > 0 or review.min_submitted >= 2 (two reviewers on the "
             "evidence)", cfg.review.double_share > 0 or cfg.review.min_submitted >= 2),
            *planned_hp, ("a single judge (no [[judge.tiers]])", len(cfg.judges) == 1))),
        'calibration.cascade = "union"': (len(cfg.judges) > 1 and c.cascade == "union", (
            *planned_hp, ('calibration.quality = "absolute"', c.quality == "absolute"),
            ("no judge panel (judge.panel = 1)", max(j.panel for j in cfg.judges) == 1),
            ("no judge.delta_share (one test)", not any(j.delta_share for j in cfg.judges)))),
        f"review.max_reviewers = {most}": (True, ((f"at least {least}, the reviewers each pair "
            "needs (review.min_submitted; 2 with review.double_share > 0)", most >= least),)),
    }  # fmt: skip
    for key, (on, needs) in checks.items():
        for need in (need for need, ok in needs if on and not ok):
            raise ConfigError(f"{where}: {key} needs {need}")


def _check_samples(judge: JudgeConfig, layers: Layers, tier: str = "") -> None:
    """A vote of judge samples needs a temperature that lets the samples differ. Both keys
    were set by some layer (their defaults pass): the error names each as that layer
    spells it, under the layer that set the temperature, or the tier."""
    if judge.samples > 1 and judge.sample_temperature <= 0:
        set_by = {k: (w, _shown("judge", k, env)) for w, data, env in layers for k in data}
        (where, temp), samples = set_by["sample_temperature"], set_by["samples"][1]
        vote = "(at 0 every sample is the same reply: no vote)"
        raise ConfigError(f"{tier or where}: {samples} > 1 needs {temp} > 0 {vote}")


TIER_ONLY_GLOBAL = ("tiers", "guidelines", "max_failure_share", "max_failed_attempts")


def _build_tiers(
    cfg_path: Path,
    tables: Any,
    judge_file: dict[str, Any],
    env_data: dict[str, dict[str, str]],
    flags: tuple[str, dict[str, Any]],
    base_dir: Path,
) -> tuple[JudgeConfig, ...]:
    """Each ``[[judge.tiers]]`` table over ``[judge]``: a tier's own keys win over
    ``[judge]``'s, environment variables and flags over both."""
    where = str(cfg_path)
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{where}: judge.tiers must be an array of tables ([[judge.tiers]])")
    if not tables:
        raise ConfigError(f"{where}: judge.tiers is empty; give at least one [[judge.tiers]]")
    tiers: list[JudgeConfig] = []
    for i, table in enumerate(tables, 1):
        for key in (k for k in TIER_ONLY_GLOBAL if k in table):
            raise ConfigError(
                f"{where}: judge.tiers[{i}].{key} is set for all tiers at once, in [judge]"
            )
        layers = [
            (where, judge_file, False),
            (f"{where}: judge.tiers[{i}]", table, False),
            ("environment", env_data.get("judge", {}), True),
            (*flags, False),
        ]
        tiers.append(_build_section("judge", JudgeConfig, layers, base_dir))
        _check_samples(tiers[-1], layers, layers[1][0])
    shares = split_delta([t.delta_share for t in tiers])
    if sum(t.delta_share for t in tiers) > 1 + 1e-9 or min(shares) <= 0:
        raise ConfigError(
            f"{where}: the judge tiers' delta_share values add up to "
            f"{sum(t.delta_share for t in tiers):.3g}; allowed: shares of 1 - calibration."
            "confidence adding up to at most 1, with some left for each tier that sets none"
        )
    names = [t.label for t in tiers]
    for dup in (n for n in names if names.count(n) > 1):
        raise ConfigError(
            f"{where}: two judge tiers are named {shown_toml(dup)}; give each "
            "[[judge.tiers]] its own name (or model)"
        )
    return tuple(tiers)
