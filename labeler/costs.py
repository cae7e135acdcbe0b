"""Cost arithmetic: judge tokens to money, the all-human baseline of what was delivered,
savings. Pure.

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
    cached_input_per_mtok: float | None = None  # None: cached input costs as much as input

    def call_cost(
        self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
    ) -> float:
        """What a call is billed: input tokens, the cached share of them at the cached
        price (endpoint prompt caching), and output tokens."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_price = (
            self.input_per_mtok
            if self.cached_input_per_mtok is None
            else self.cached_input_per_mtok
        )
        return (
            (prompt_tokens - cached) * self.input_per_mtok
            + cached * cached_price
            + completion_tokens * self.output_per_mtok
        ) / 1_000_000


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


def review_seconds(
    submissions: list[tuple[str, str, float]], cap: float
) -> dict[tuple[str, str], float | None]:
    """Seconds each (reviewer, pair) response took: the gap since the same reviewer's
    previous submission, capped so that breaks do not count. A reviewer's first response
    has no previous one: None (unknown). Input: (reviewer, pair_id, submitted_at epoch s)."""
    out: dict[tuple[str, str], float | None] = {}
    by_reviewer: dict[str, list[tuple[float, str]]] = {}
    for reviewer, pair, when in submissions:
        by_reviewer.setdefault(reviewer, []).append((when, pair))
    for reviewer, items in by_reviewer.items():
        items.sort()
        previous = None
        for when, pair in items:
            out[(reviewer, pair)] = None if previous is None else min(when - previous, cap)
            previous = when
    return out


@dataclass(frozen=True)
class Ledger:
    """The money of one round (or of all rounds, summed), counting as saved only what was
    *delivered*.

    - delivered pairs: certified judge labels plus pairs humans decided (A/B rows of the
      dataset, and pairs reviewers decided are a tie or both bad: an all-human process
      pays for those too);
    - ``baseline``: what labeling the delivered pairs by hand would have cost (price x
      reviewers per pair x delivered);
    - spent (``total``): all judge cost plus all human cost so far;
    - ``factor`` = baseline / spent, ``saved`` = baseline - spent;
    - ``coverage`` = certified / delivered: the share of the decided pairs the judge
      decided alone.

    Pairs still waiting (judge-accepted but provisional, or with reviewers and not decided)
    are not saved money: ``waiting`` counts them, ``waiting_labels`` / ``waiting_cost`` say
    how many human labels (at most reviewers per pair each) and how much more money they
    may still need: in per-pair mode the human cost already counts the pairs sent to
    reviewers (``charged_when_sent``), so only the provisional pairs can add to it."""

    pairs: int
    accepted: int
    to_humans: int
    human_responses: int
    judge_cost: float
    human_cost_per_pair: float
    human_cost_time: float | None
    baseline: float
    mode: str
    certified: int = 0
    human_decided: int = 0
    provisional: int = 0
    waiting_labels: int = 0
    waiting_cost: float = 0.0
    dropped: int = 0  # rows `labeler verify` dropped: neither delivered nor waiting
    check_cost: float = 0.0  # the reward model's (`labeler verify`), project-wide
    finish_cost: float = 0.0  # what deciding the provisional pairs by hand may cost

    @property
    def human_cost(self) -> float:
        if self.mode == "time" and self.human_cost_time is not None:
            return self.human_cost_time
        return self.human_cost_per_pair

    @property
    def total(self) -> float:
        return self.judge_cost + self.human_cost + self.check_cost

    @property
    def delivered(self) -> int:
        return self.certified + self.human_decided

    @property
    def waiting(self) -> int:
        return self.pairs - self.delivered - self.dropped

    @property
    def charged_when_sent(self) -> bool:
        """Is a pair sent to reviewers in the human cost already (per-pair pricing), or
        only once its review time is measured (time mode)?"""
        return charged_when_sent(self.mode, self.human_cost_time)

    @property
    def with_reviewers(self) -> int:
        """Waiting pairs that are not provisional judge labels: with humans, undecided."""
        return self.waiting - self.provisional

    @property
    def coverage(self) -> float | None:
        return self.certified / self.delivered if self.delivered else None

    @property
    def saved(self) -> float:
        return self.baseline - self.total

    @property
    def factor(self) -> float | None:
        return self.baseline / self.total if self.total > 0 else None

    @property
    def cost_per_accepted(self) -> float | None:
        return self.judge_cost / self.accepted if self.accepted else None

    def __add__(self, other: Ledger) -> Ledger:
        def timed(led: Ledger) -> float:
            # in time mode a round with no measured times is priced per pair (human_cost)
            if led.human_cost_time is None:
                return led.human_cost if self.mode == "time" else 0.0
            return led.human_cost_time

        time_cost = (
            None
            if self.human_cost_time is None and other.human_cost_time is None
            else timed(self) + timed(other)
        )
        return Ledger(
            self.pairs + other.pairs,
            self.accepted + other.accepted,
            self.to_humans + other.to_humans,
            self.human_responses + other.human_responses,
            self.judge_cost + other.judge_cost,
            self.human_cost_per_pair + other.human_cost_per_pair,
            time_cost,
            self.baseline + other.baseline,
            self.mode,
            self.certified + other.certified,
            self.human_decided + other.human_decided,
            self.provisional + other.provisional,
            self.waiting_labels + other.waiting_labels,
            self.waiting_cost + other.waiting_cost,
            self.dropped + other.dropped,
            self.check_cost + other.check_cost,
            self.finish_cost + other.finish_cost,
        )


def charged_when_sent(mode: str, time_cost: float | None) -> bool:
    """A pair sent to reviewers is paid when sent, except in time mode once review time
    has been measured (then it is paid by the seconds its verdicts take)."""
    return mode != "time" or time_cost is None


def ledger(
    pairs: int,
    accepted: int,
    to_humans: int,
    judge_cost: float,
    review_times: list[float | None],
    price_per_pair: float,
    reviewers: int,
    hourly_rate: float,
    mode: str,
    *,
    certified: int,
    human_decided: int,
    provisional: int,
    extra_reviews: int = 0,
    dropped: int = 0,
) -> Ledger:
    """A round's ledger. Human cost per pair = pairs sent to humans x reviewers per pair x
    price; by time = measured review seconds x hourly rate (responses whose time is
    unknown are counted at the mean of the known ones). The baseline prices the delivered
    pairs only (``certified`` judge labels + ``human_decided`` pairs); the rest of the
    ``pairs`` judged wait, ``provisional`` of them judge-accepted."""
    known = [t for t in review_times if t is not None]
    time_cost = None
    if known:
        mean = sum(known) / len(known)
        seconds = sum(known) + mean * (len(review_times) - len(known))
        time_cost = seconds / 3600 * hourly_rate
    waiting_labels = (pairs - certified - human_decided - dropped) * reviewers
    # what may still be paid: in per-pair mode the pairs with reviewers are paid already;
    # by time, every waiting label at the mean measured cost of a verdict (an estimate)
    charged = charged_when_sent(mode, time_cost)
    per_label = price_per_pair if charged else (time_cost or 0.0) / len(review_times)
    finish = provisional * reviewers * per_label
    more = finish if charged else waiting_labels * per_label
    return Ledger(
        pairs,
        accepted,
        to_humans,
        len(review_times),
        judge_cost,
        (to_humans * reviewers + extra_reviews) * price_per_pair,
        time_cost,
        (certified + human_decided) * reviewers * price_per_pair,
        mode,
        certified,
        human_decided,
        provisional,
        waiting_labels,
        more,
        dropped,
        0.0,
        finish,
    )


def provisional_cost(led: Ledger | None, currency: str) -> str:
    """What deciding the provisional pairs by hand may cost, in words: at most their price
    per pair, or, once any round's review times are measured (time mode), about what
    their verdicts would take at that round's measured time (each round at its own)."""
    if led is None or not led.provisional:
        return f"0.00 {currency}"
    if led.charged_when_sent:  # no review time measured: the price per pair, a cap
        return f"{led.finish_cost:,.2f} {currency} at most"
    return f"about {led.finish_cost:,.2f} {currency} at the measured review time"


def savings_notes(led: Ledger, currency: str, mixed: str | None = None) -> list[str]:
    """One line each, said wherever the savings are shown: ``mixed``, the note that the
    rounds were priced in different currencies (``ledger.total_currency``), first; why
    the factor is what it is when nothing is certified, and what still waits (not counted
    as saved)."""
    notes = [mixed] if mixed else []
    if led.dropped:
        notes.append(
            f"{led.dropped} rows dropped by `labeler verify` (verify.action = drop): paid "
            "for, not delivered, not waiting"
        )
    if led.check_cost:
        notes.append(f"spent includes {led.check_cost:,.2f} {currency} for the reward model")
    if led.pairs and led.certified == 0 and (led.provisional or not led.dropped):
        notes.append(
            f"nothing certified yet: {led.provisional} judge-accepted pairs wait for "
            "evidence, so only human decisions count as delivered"
            if led.provisional
            else "nothing certified: every pair went to reviewers"
        )
    if led.waiting:
        paid = led.with_reviewers and led.charged_when_sent
        money = (
            f"{led.waiting_cost:,.2f} {currency} more at most"
            if led.charged_when_sent
            else f"about {led.waiting_cost:,.2f} {currency} more at the measured review time"
        )
        notes.append(
            f"waiting for evidence: {led.waiting} pair{'s' * (led.waiting != 1)} "
            f"({led.provisional} provisional, "
            f"{led.with_reviewers} with reviewers), up to {led.waiting_labels} more human "
            f"labels ({money}"
            + (", those with reviewers already counted as spent" if paid else "")
            + "); not counted as saved"
        )
    return notes
