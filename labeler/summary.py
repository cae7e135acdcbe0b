"""What a round reports: its progress while it runs, and its summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labeler.config import Config
    from labeler.routing import Thresholds


@dataclass
class Progress:
    done: int
    total: int | None
    cost: float
    requests: int
    phase: str = "judging"  # importing | judging


@dataclass
class RoundSummary:
    round_id: int | None = None
    status: str = "completed"  # completed | incomplete | dry_run | nothing_to_do
    resumed: bool = False
    source_pairs: int = 0
    new_pairs: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    bad_row_examples: list[str] = field(default_factory=list)
    pairs_in_round: int = 0
    judged: int = 0
    accepted: int = 0
    certified: int = 0
    provisional: int = 0
    review: dict[str, int] = field(default_factory=dict)
    unjudged: int = 0
    first_error: str | None = None
    requests_sent: int = 0
    cached_replies: int = 0
    batch_replies: int = 0  # of requests_sent, the round's sent through the Batch API
    prompt_tokens: int = 0
    completion_tokens: int = 0
    judge_cost: float = 0.0
    human_cost: float = 0.0
    baseline_cost: float = 0.0  # all-human cost of the delivered pairs (dry run: of all)
    saved: float = 0.0
    savings_factor: float | None = None
    # delivered so far: certified judge labels + human-decided pairs (costs.Ledger)
    delivered: int = 0
    human_decided: int = 0
    coverage: float | None = None
    waiting: int = 0
    waiting_labels: int = 0
    waiting_cost: float = 0.0
    savings_notes: list[str] = field(default_factory=list)
    currency: str = "USD"
    thresholds: dict[str, Any] = field(default_factory=dict)
    dataset_path: str | None = None
    dataset_rows: int = 0
    review_pushed: int = 0
    review_waiting: int = 0
    review_error: str | None = None
    budget_message: str | None = None
    chars_per_token: float | None = None
    tiers: list[dict[str, Any]] = field(default_factory=list)  # per judge tier (cascade)
    fact_checked: int = 0  # quality.fact_check: chosen responses checked this round
    chosen_has_errors: int = 0  # of them, said to state something false: sent to humans
    fact_pending: int = 0  # accepted pairs whose check is still to do (the next online round)
    fact_check_failed: int = 0  # checks refused or failed too often: their pairs to humans
    batch_waiting: int = 0  # Batch API batches still running (round --batch)
    batches: list[dict[str, Any]] = field(default_factory=list)
    batches_dropped: int = 0  # round --online: batch files that never reached the Batch API
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)  # settings asked for and not in force

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def setting_notices(in_force: list[Thresholds], cfg: Config) -> list[str]:
    """Settings asked for and not in force for the thresholds ``in_force`` (one per tier):
    ``rate_notices`` and ``terms_notices``."""
    return rate_notices(in_force, cfg) + [
        n for k, t in enumerate(in_force) if (n := terms_notice(t, cfg, k, len(in_force)))
    ]


def terms_notice(t: Thresholds, cfg: Config, tier: int = 0, tiers: int = 1) -> str:
    """A ``calibration.target_agreement`` or ``calibration.confidence`` that ``t``'s phase
    does not test at (``Thresholds.terms``): under the planned procedure a phase's terms are
    fixed at its first look (a target chosen after seeing a look's result is not covered
    by the guarantee), and a changed setting applies from the next phase. Empty: none."""
    c = cfg.calibration
    if t.terms is None or (c.target_agreement, c.confidence) == tuple(t.terms):
        return ""
    target, confidence = t.terms
    if c.quality == "human_parity" and c.confidence == confidence:
        return ""  # (its test reads no target: the reviewers' agreement is the bar)
    asked = [
        f"calibration.{key} = {now:g}"
        for key, now, then in (
            ("target_agreement", c.target_agreement, target),
            ("confidence", c.confidence, confidence),
        )
        if now != then
    ]
    which = f"judge tier {tier + 1}'s" if tiers > 1 else "this"
    return (
        f"{' and '.join(asked)} {'is' if len(asked) == 1 else 'are'} not in force: {which} "
        f"calibration phase tests at target {target:g}, confidence {confidence:g}, as at its "
        "first look (terms changed after a look's result are not covered by the guarantee); "
        "the setting applies from the next phase (one begins after drift, or when the judge "
        "changes) or in a new project"
    )


def rate_notices(in_force: list[Thresholds], cfg: Config) -> list[str]:
    """A ``routing.audit_rate`` the round does not audit at. Under the planned procedure
    a certificate's drift watch audits its pairs at the rate it began with, for its whole
    phase (its test counts the audits drawn at that rate): a changed setting applies from
    the next phase. Under ``retest``, from the next calibration that chooses thresholds."""
    from labeler.calibration import NEVER

    asked = cfg.routing.audit_rate
    planned = cfg.calibration.procedure == "planned"
    out = []
    for k, t in enumerate(in_force):
        if t.certified_a < NEVER and t.audit_rate != asked:
            which = f"judge tier {k + 1}'s" if len(in_force) > 1 else "the"
            out.append(
                f"routing.audit_rate = {asked:g} is not in force: {which} certificate audits "
                f"its pairs at {t.audit_rate:g} "
                + (
                    "for its whole calibration phase (its drift watch counts audits drawn "
                    "at that rate); the setting applies from the next phase"
                    if planned
                    else "until a calibration next chooses thresholds (`labeler sync`)"
                )
            )
    return out


def budget_limits(cfg: Config, currency: str) -> str:
    """The judge budget's limits in force, as the config says them."""
    limits = []
    if cfg.costs.max_cost_per_round > 0:
        limits.append(f"costs.max_cost_per_round = {cfg.costs.max_cost_per_round}")
    if cfg.costs.total_budget > 0:
        limits.append(f"costs.total_budget = {cfg.costs.total_budget}")
    return f"{' / '.join(limits)} ({currency})"


def budget_message(cfg: Config, summary: RoundSummary) -> str:
    return (
        f"round {summary.round_id} stopped before its next request could pass "
        f"{budget_limits(cfg, summary.currency)}; spent {summary.judge_cost:.4f} this "
        f"round, {summary.unjudged} pairs not judged yet. Raise the limit and run "
        "`labeler round` again to continue"
    )
