"""Cost arithmetic: judge tokens to money, the all-human baseline, savings. Pure.

Money is computed in floats and rounded only for display; sums are taken over the stored
per-call costs so that the ledger always equals the sum of billed calls.
"""

from __future__ import annotations

from dataclasses import dataclass

# Rough characters-per-token for estimates when no tokenizer is at hand (English prose with
# BPE tokenizers is about 4); refined from observed usage once a round has run.
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class Prices:
    input_per_mtok: float
    output_per_mtok: float

    def call_cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / 1_000_000


@dataclass(frozen=True)
class Savings:
    judge_cost: float
    human_cost: float
    baseline_cost: float

    @property
    def total_cost(self) -> float:
        return self.judge_cost + self.human_cost

    @property
    def saved(self) -> float:
        return self.baseline_cost - self.total_cost

    @property
    def factor(self) -> float | None:
        """How many times cheaper than all-human (None when nothing was spent)."""
        return self.baseline_cost / self.total_cost if self.total_cost > 0 else None


def savings(
    pairs_labeled: int,
    pairs_to_humans: int,
    judge_cost: float,
    human_price_per_pair: float,
    reviewers_per_pair: int = 1,
) -> Savings:
    """Savings of a round: humans review only ``pairs_to_humans`` of ``pairs_labeled``."""
    per_pair = human_price_per_pair * reviewers_per_pair
    return Savings(
        judge_cost=judge_cost,
        human_cost=pairs_to_humans * per_pair,
        baseline_cost=pairs_labeled * per_pair,
    )


def estimate_tokens(text_chars: int, chars_per_token: float = CHARS_PER_TOKEN) -> int:
    return max(1, round(text_chars / chars_per_token))


def estimate_round_cost(
    prompt_chars: list[int],
    max_output_tokens: int,
    prices: Prices,
    chars_per_token: float = CHARS_PER_TOKEN,
) -> tuple[int, int, float]:
    """(input tokens, worst-case output tokens, cost) for the rendered prompts given."""
    tokens_in = sum(estimate_tokens(c, chars_per_token) for c in prompt_chars)
    tokens_out = max_output_tokens * len(prompt_chars)
    return tokens_in, tokens_out, prices.call_cost(tokens_in, tokens_out)
