"""Human review orchestration: push pairs to Argilla, pull verdicts back, decide pairs.

``push_pending`` sends every ``needs_review`` pair (a round calls it at its end);
``run_sync`` pushes what is pending, pulls every response, stores it next to the judge's
verdict, combines the reviewers of each pair (``consensus``) and rewrites the dataset.
Both are idempotent: pushing upserts by pair id, syncing twice changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from labeler import consensus, prompts
from labeler.config import Config
from labeler.errors import ConfigError, ReviewError, UsageError
from labeler.ledger import ASKED, review_times
from labeler.lock import project_lock
from labeler.status import audits_out
from labeler.store import Store
from labeler.thresholds import recalibrate
from labeler.verify import ONE_MORE

LABEL_WORDS = {"A": "Response A", "B": "Response B"}


@dataclass
class PushResult:
    pushed: int = 0
    waiting: int = 0
    error: str | None = None


@dataclass
class SyncSummary:
    pushed: int = 0
    push_error: str | None = None
    responses: int = 0
    changed_responses: int = 0
    discarded: int = 0
    newly_decided: int = 0
    decided: dict[str, int] = field(default_factory=dict)
    awaiting: int = 0
    disputed: list[dict[str, Any]] = field(default_factory=list)
    dataset_path: str | None = None
    dataset_rows: int = 0
    calibration: dict[str, Any] = field(default_factory=dict)
    fast_verdicts: int = 0
    escalated: int = 0  # ties sent to one more reviewer in this sync
    reopened: int = 0  # pairs whose answers vanished in Argilla, back in the queue
    repushed: int = 0  # --repush: pairs pushed again to a recreated dataset
    repush_loss: str | None = None  # --repush: what was lost with the deleted dataset
    settings_updated: list[str] = field(default_factory=list)  # e.g. ["guidelines"]
    settings_error: str | None = None  # Argilla refused the update (sync goes on)
    # --finish refused after the pull: audited pairs still with reviewers (``run_sync``)
    finish_waits: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def counted_votes(store: Store, cfg: Config) -> dict[str, list[str]]:
    """Submitted labels per pair, without verdicts given implausibly fast (flagged) unless
    another reviewer gave the same label (confirmed)."""
    rows, seconds = review_times(store, cfg)
    fast = {
        key for key, s in seconds.items() if s is not None and s < cfg.quality.min_review_seconds
    }
    known = {(r["reviewer"], r["pair_id"]) for r in store.flags("fast_verdict")}
    for reviewer, pair_id in fast - known:
        store.flag(
            pair_id, "fast_verdict", f"{seconds[(reviewer, pair_id)]:.1f}s", reviewer=reviewer
        )
    # once fast, fast for good: a verdict reopened for confirmation (``ask_to_confirm``) is
    # timed anew by Argilla, and would then count unconfirmed
    fast |= known
    by_pair: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        if r["label"] is not None:
            by_pair.setdefault(r["pair_id"], []).append((r["reviewer"], r["label"]))
    out: dict[str, list[str]] = {}
    for pair_id, given in by_pair.items():
        slow = [label for reviewer, label in given if (reviewer, pair_id) not in fast]
        confirmed = [
            label for reviewer, label in given if (reviewer, pair_id) in fast and label in slow
        ]
        if slow or confirmed:
            out[pair_id] = slow + confirmed
    return out


def connect(cfg: Config) -> Any:
    """The review adapter for the configured Argilla (remote, or the embedded server)."""
    from labeler.review import ArgillaReview

    r = cfg.review
    if r.api_url:
        url, key = r.api_url, r.remote_key()
    else:
        from labeler.server.manager import EmbeddedArgilla

        server = EmbeddedArgilla(cfg.project.state_dir, r.host, r.port, r.workspace)
        url, key = server.url, server.credentials().api_key
    return ArgillaReview(url, key, r.workspace, cfg.review_dataset, r.timeout_s)


HINT_REASONS = ("tie", "order_disagreement")  # pairs the judge can never decide alone


def _hint(row: Any, swapped: bool) -> str:
    """The judge's verdict in shown terms, as words (never a pre-selected answer)."""
    if row["label"] in ("A", "B"):
        shown = consensus.to_shown_key(row["label"], swapped)
        return f"{row['model']} preferred {LABEL_WORDS.get(shown, shown)}."
    if row["reason"] == "order_disagreement":
        return f"{row['model']} gave different answers in the two presentation orders."
    return f"{row['model']} judged the two responses a tie."


def _records(store: Store, cfg: Config, pair_ids: list[str]) -> Iterator[Any]:
    """These pairs as reviewers are shown them, read from the state a push batch at a time
    (a queue of any length holds one batch of texts)."""
    from labeler.review import ReviewRecord

    step = cfg.review.push_batch
    for start in range(0, len(pair_ids), step):
        for row in store.pairs_for_review(pair_ids[start : start + step]):
            sw = consensus.shown_swapped(cfg.review.seed, row["id"])
            a, b = row["response_a"], row["response_b"]
            # a human verdict given with the judge's verdict in view could lean on it: the
            # hint is shown only on pairs whose verdict is never evidence for the judge
            hint = (
                _hint(row, sw) if cfg.review.suggestions and row["reason"] in HINT_REASONS else None
            )
            yield ReviewRecord(
                pair_id=row["id"],
                prompt=row["prompt"],
                first=b if sw else a,
                second=a if sw else b,
                round_id=row["round_id"],
                hint=hint,
                swapped=sw,
            )


KEYBOARD = """## Answering with the keyboard

1. **Tab** starts answering the pair.
2. **1** Response A, **2** Response B, **3** Tie, **4** Both bad (the cursor then moves to
   "Why?").
3. To give a reason: **Shift+Enter**, type it, then **Esc**. Text typed without
   Shift+Enter first goes nowhere.
4. **Enter** submits (also Ctrl+Enter; Cmd+Enter on a Mac). **Ctrl+S** saves a draft.
   Outside the reason box **Backspace** discards your answer.
"""


def reviewer_guidelines(cfg: Config) -> str:
    """The judge's guidelines as reviewers read them in Argilla (without the files' hard
    line breaks): both decide by the same text. Reviewers also get the keys that answer a
    pair in Argilla's form (``KEYBOARD``, checked in a real browser by
    ``tests/test_browser.py``): the judge does not."""
    judge = prompts.unwrap(prompts.load_guidelines(cfg.judge.guidelines).text)
    return f"{judge.rstrip()}\n\n{prompts.unwrap(KEYBOARD)}"


GUIDELINES_MAX = 10_000  # characters Argilla takes (argilla-server DATASET_GUIDELINES_MAX_LENGTH)


def check_guidelines_fit(cfg: Config) -> None:
    """Refuse (ConfigError) guidelines longer than Argilla takes for a review dataset:
    before a round judges anything, and before a sync makes a dataset (Argilla refused
    them with a traceback once the round was paid for)."""
    if not cfg.review.enabled:
        return
    size = len(reviewer_guidelines(cfg))
    if size > GUIDELINES_MAX:
        raise ConfigError(
            f"judge.guidelines: {cfg.judge.guidelines} make {size:,} characters as reviewers "
            f"read them in Argilla (with the keys that answer a pair); Argilla takes at most "
            f"{GUIDELINES_MAX:,}: shorten them (the judge reads them too) or set "
            "review.enabled = false"
        )


def dataset_of(cfg: Config, pair_id: str) -> str:
    """The Argilla dataset a pair is pushed to: the doubled one (two reviewers) for a
    ``review.double_share`` of them, drawn whatever brought the pair to review."""
    r = cfg.review
    if r.min_submitted < 2 and consensus.doubled(r.seed, pair_id, r.double_share):
        return cfg.double_dataset
    return cfg.review_dataset


def datasets_in_use(store: Store, cfg: Config, review: Any) -> list[Any]:
    """The review adapter of each of the project's datasets that pairs were pushed to."""
    pushed = store.datasets_pushed()
    out = [review] if cfg.review_dataset in pushed else []
    if cfg.double_dataset in pushed:
        out.append(review.with_dataset(cfg.double_dataset))
    return out


def push_pending(store: Store, cfg: Config, review: Any | None = None) -> PushResult:
    """Push every pair waiting for review, a batch at a time; Argilla being down is not an
    error here."""
    from labeler.review import ReviewUnavailable

    queue = store.review_queue()
    result = PushResult(waiting=len(queue))
    if not queue:
        return result
    # a pair pushed before (re-queued after its dataset or record was deleted) goes back to
    # the dataset it was in, whatever review.double_share says now
    earlier = store.review_datasets(queue)
    groups: dict[str, list[str]] = {}
    for pair_id in queue:
        groups.setdefault(earlier.get(pair_id) or dataset_of(cfg, pair_id), []).append(pair_id)
    in_review = store.in_review_by_dataset()
    own = review is None
    try:
        review = review or connect(cfg)
        for name, group in groups.items():
            target = review if name == cfg.review_dataset else review.with_dataset(name)
            need = cfg.reviewers_needed(name != cfg.review_dataset)
            found = target.find_dataset()
            if found is None:
                if in_review.get(name):
                    target.dataset()  # raises: deleted by hand, says to use --repush
                check_guidelines_fit(cfg)
                target.ensure_dataset(reviewer_guidelines(cfg), need)
            else:  # not into a dataset that completes its records at another count
                target.check_reviewers(None, need, found)
            records = _records(store, cfg, group)
            for batch in target.push(records, cfg.review.push_batch):
                shown = {rec.pair_id: rec.swapped for rec in batch}
                store.record_pushed(shown, name, {rec.pair_id for rec in batch if rec.hint})
                result.pushed += len(batch)
    except ReviewUnavailable as exc:
        result.error = str(exc)
    finally:
        if own and review is not None:
            review.close()
    result.waiting = len(queue) - result.pushed
    return result


def escalate_ties(
    hold: Hold,
    cfg: Config,
    decisions: dict[str, consensus.Consensus],
    submitted: dict[str, list[Any]],
    needed: Any,
) -> int:
    """Reviewers tied on a pair that Argilla counts as complete: hold their latest
    responses as drafts (``Hold``), so the record returns to the other reviewers' queues
    and one more decides (up to ``review.max_reviewers``). Returns how many pairs were
    sent on."""
    sent = 0
    for pair_id, c in decisions.items():
        done = submitted.get(pair_id, [])
        need = needed(pair_id)
        tie = not c.decided and c.reviewers >= need
        if not tie or c.reviewers >= cfg.review.max_reviewers:
            continue
        if len(done) < need:  # already waiting for one more
            continue
        hold(pair_id, done, f"votes {c.votes}: asked one more reviewer")
        sent += 1
    return sent


def _submitted(responses: list[Any]) -> dict[str, list[Any]]:
    """Each pair's submitted responses."""
    out: dict[str, list[Any]] = {}
    for r in responses:
        if r.status == "submitted":
            out.setdefault(r.pair_id, []).append(r)
    return out


class Hold:
    """Reopen a pair's Argilla record for one more reviewer: its latest submitted
    responses become drafts (each flagged ``escalated``: labeler keeps counting those
    votes), as many as it takes for Argilla to count the record pending again — one
    fewer submitted than ``complete_at`` (the dataset's ``min_submitted``). With one
    reviewer per pair, a tie's two answers are both held: holding one left the record
    complete on the other, in nobody's queue."""

    def __init__(self, store: Store, review: Any, complete_at: Callable[[str], int]):
        self.store, self.review, self.complete_at = store, review, complete_at

    def __call__(self, pair_id: str, done: list[Any], why: str) -> None:
        keep = max(self.complete_at(pair_id) - 1, 0)
        latest = sorted(done, key=lambda r: r.updated_at)[keep:] or done[-1:]
        # one more verdict asked, however many responses it takes to reopen the record
        # (the ledger pays it: ``ledger.one_more_asked``; flagged first, before them)
        asked = self.store.flag_count(pair_id, ASKED)
        self.store.flag(pair_id, ASKED, why, reviewer=f"#{asked + 1}")
        for response in latest:
            self.review.hold(response)
            self.store.flag(pair_id, "escalated", why, reviewer=response.reviewer)


def ask_one_more(
    hold: Hold,
    decisions: dict[str, consensus.Consensus],
    submitted: dict[str, list[Any]],
    needed: Any,
    pairs: set[str],
) -> int:
    """Pairs that need one more reviewer than decided them (``labeler verify``'s review of
    a human label, flag ``verify.ONE_MORE``): once Argilla counts the record complete,
    hold its latest response as a draft, as for a tie, so it returns to the other
    reviewers' queues; the held vote still counts. Returns how many were reopened."""
    sent = 0
    for pair_id in pairs:
        c, done = decisions.get(pair_id), submitted.get(pair_id, [])
        need = needed(pair_id)
        if c is None or c.decided or c.reviewers >= need or len(done) < need - 1 or not done:
            continue  # decided, a tie (escalate_ties), or already waiting for one more
        why = "a reward model contradicts the label: asked one more reviewer"
        hold(pair_id, done, why)
        sent += 1
    return sent


def ask_to_confirm(
    hold: Hold,
    votes: dict[str, list[str]],
    submitted: dict[str, list[Any]],
    needed: Any,
    stored: dict[str, list[str]],
    pairs: set[str],
    max_reviewers: int,
) -> int:
    """Pairs of ``pairs`` (this project's in review, none a reward model asked one more
    reviewer for: ``ask_one_more``) with fewer counted votes than they need because some
    verdicts were too fast to count (``counted_votes``: one counts once another reviewer
    confirms it), while Argilla counts the record complete: hold the latest as a draft, as
    for a tie, so the record returns to the other reviewers' queues (a user trial found
    such pairs in nobody's queue, for good). ``stored``: every verdict given on a pair,
    reopened ones included, against ``max_reviewers``. Returns how many."""
    sent = 0
    for pair_id, done in submitted.items():
        need = needed(pair_id)
        if pair_id not in pairs or not len(votes.get(pair_id, [])) < need <= len(done):
            continue  # not ours, counted enough, or still waiting for its reviewers
        if len(stored.get(pair_id, [])) >= max_reviewers:
            continue  # no reviewer left to ask
        why = "a verdict too fast to count: asked one more reviewer to confirm"
        hold(pair_id, done, why)
        sent += 1
    return sent


def _repush_loss_note(pairs: int, lost: dict[str, Any]) -> str:
    """What went with a deleted dataset: verdicts given after the last sync (labeler
    never saw them; at most one per reviewer asked on each pair in review), while the
    verdicts synced before are kept and still count."""
    when = (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(lost["last_sync"]))
        if lost["last_sync"]
        else "never"
    )
    return (
        f"{pairs} pairs in review pushed again; verdicts given on them after the last sync "
        f"({when}) were lost with the dataset (up to {lost['at_most']}); "
        f"{lost['kept']} verdicts synced before are kept and still count"
    )


def _reopen_stranded(store: Store, targets: list[Any], responses: list[Any]) -> int:
    """Pairs in review nobody would ever be asked about again, queued to be pushed afresh:
    those whose Argilla records count as complete without any submitted answer (a
    reviewer's account was deleted in Argilla, and their answers with it; the records are
    deleted first), and those with no record at all in the dataset they were pushed to (a
    decided pair sent back to review — ``labeler verify``'s one more reviewer, a verdict
    withdrawn — after ``sync --repush`` made that dataset afresh). Returns how many."""
    in_review = store.pair_ids_in_state("in_review")
    answered = {r.pair_id for r in responses if r.status == "submitted"}
    reopened = 0
    for target in targets:
        stranded = {
            pid: rid
            for pid, rid in getattr(target, "stranded", {}).items()
            if pid in in_review and pid not in answered
        }
        if stranded:
            target.reopen(list(stranded.values()))
            reopened += store.requeue_pairs(list(stranded))
        if getattr(target, "complete", False):  # (pulled, every record seen)
            pushed = store.pairs_in_dataset(target.dataset_name)
            missing = [pid for pid in pushed & in_review if pid not in target.present]
            reopened += store.requeue_pairs(missing)
    return reopened


def _refuse_early_finish(cfg: Config) -> None:
    """The final look spends all of the confidence left: not while pairs are still to be
    judged (an open round, imported pairs no round took yet), whose evidence it would
    miss."""
    if not cfg.db_path.exists():
        return
    with Store(cfg.db_path) as store:
        left = store.unassigned_count()
        open_round = store.open_round()
    if left or open_round is not None:
        what = f"round {open_round['id']} is not finished" if open_round else ""
        what += ("; " if what and left else "") + (
            f"{left} pairs are not judged yet" if left else ""
        )
        raise UsageError(
            f"--finish: {what}; run `labeler round` until it says nothing is left to judge, "
            "then `labeler round --finish` (the final look spends all the confidence left)"
        )


def run_sync(
    cfg: Config, repush: bool = False, finish: bool = False, now: bool = False
) -> SyncSummary:
    """Push pending pairs, pull verdicts, decide pairs, rewrite the dataset. ``finish``:
    the end of the project — a final look at the calibration sample with all the
    confidence it has left, then every pair still waiting for evidence is decided:
    certified where the evidence allows, sent to humans otherwise. Not while pairs drawn
    for an audit are still with reviewers and judge-accepted pairs wait (the look would
    miss their verdicts: the sync is an ordinary one, ``finish_waits`` says how many),
    unless ``now``."""
    from labeler.dataset import write_dataset
    from labeler.review import ReviewUnavailable

    summary = SyncSummary()
    if finish:
        _refuse_early_finish(cfg)
    if not cfg.review.enabled:  # no Argilla to ask: the calibration and the dataset only
        with project_lock(cfg.project.state_dir, "sync"), Store(cfg.db_path) as store:
            summary.calibration = recalibrate(store, cfg, finish=finish).to_dict()
            summary.dataset_rows = write_dataset(store, cfg)
            summary.dataset_path = str(cfg.output.dataset_dir)
            states = store.state_counts()
            summary.awaiting = states["needs_review"] + states["in_review"]
        return summary
    with (
        project_lock(cfg.project.state_dir, "sync"),
        connect(cfg) as review,
        Store(cfg.db_path) as store,
    ):
        if repush:
            lost = {"kept": 0, "at_most": 0, "last_sync": None}
            for target in datasets_in_use(store, cfg, review):
                if target.find_dataset() is None:
                    gone = store.repush_loss(target.dataset_name)
                    need = cfg.reviewers_needed(target.dataset_name == cfg.double_dataset)
                    lost["kept"] += gone["kept"]
                    lost["at_most"] += max(gone["pairs"] * need - gone["kept"], 0)
                    lost["last_sync"] = gone["last_sync"]
                    summary.repushed += store.requeue_in_review(target.dataset_name)
                    # made now, pairs or none: else a sync would ask for --repush again
                    check_guidelines_fit(cfg)
                    target.ensure_dataset(reviewer_guidelines(cfg), need)
            if summary.repushed:
                summary.repush_loss = _repush_loss_note(summary.repushed, lost)
        pushed = push_pending(store, cfg, review)
        targets = datasets_in_use(store, cfg, review)
        found = [target.find_dataset() for target in targets]  # each looked up once
        for target, ds in zip(targets, found, strict=True):
            if ds is None:
                continue
            try:
                need = cfg.reviewers_needed(target.dataset_name == cfg.double_dataset)
                for change in target.update_settings(reviewer_guidelines(cfg), ds, need):
                    if change not in summary.settings_updated:
                        summary.settings_updated.append(change)
            except ReviewUnavailable:
                raise
            except ReviewError as exc:  # e.g. guidelines over Argilla's 10,000 characters
                summary.settings_error = str(exc)
        summary.pushed, summary.push_error = pushed.pushed, pushed.error
        if pushed.error:
            raise ReviewError(pushed.error)
        order = store.shown_order()
        pulls = zip(targets, found, strict=True)
        responses = [r for t, ds in pulls for r in t.pull(ds)] if order else []
        summary.reopened = _reopen_stranded(store, targets, responses) if order else 0
        if summary.reopened:  # their records were deleted: push them afresh now
            summary.pushed += push_pending(store, cfg, review).pushed
        held = {(r["pair_id"], r["reviewer"]) for r in store.flags("escalated")}
        rows = [
            (
                r.pair_id,
                r.reviewer,
                # a vote labeler held back as a draft to reopen a tie still counts
                "submitted"
                if r.status == "draft" and (r.pair_id, r.reviewer) in held
                else r.status,
                consensus.from_shown_key(r.label, order.get(r.pair_id, False)),
                r.reason,
                r.inserted_at,
                r.updated_at,
            )
            for r in responses
            if r.pair_id in order
        ]
        summary.responses = len(rows)
        summary.discarded = sum(r.status == "discarded" for r in responses)
        summary.changed_responses = store.upsert_responses(rows, held)
        votes = counted_votes(store, cfg)
        stored = store.submitted_labels()  # reopened verdicts included (a draft held)
        summary.fast_verdicts = sum(len(v) for v in stored.values()) - sum(
            len(v) for v in votes.values()
        )
        doubled = store.pairs_in_dataset(cfg.double_dataset)
        one_more = store.flagged_ids(ONE_MORE)  # human labels a reward model contradicts

        def needed(pair_id: str) -> int:
            extra = 1 if pair_id in one_more else 0
            return min(cfg.reviewers_needed(pair_id in doubled) + extra, cfg.review.max_reviewers)

        # the pairs of the datasets synced now: a pair of a dataset left behind (another
        # review.dataset, made for another min_submitted) keeps its decision as it was
        synced: set[str] = set()
        for target, ds in zip(targets, found, strict=True):
            synced |= store.pairs_in_dataset(target.dataset_name) if ds is not None else set()
        decisions = {
            pid: consensus.combine_votes(labels, needed(pid))
            for pid, labels in votes.items()
            if pid in synced
        }
        for pid in (store.human_decision_ids() & synced) - decisions.keys():  # all withdrawn
            decisions[pid] = consensus.combine_votes([], needed(pid))  # (discarded, a draft)
        summary.newly_decided = store.save_decisions(decisions)
        submitted = _submitted(responses)
        hold = Hold(store, review, lambda pid: cfg.reviewers_needed(pid in doubled))
        summary.escalated = escalate_ties(hold, cfg, decisions, submitted, needed)
        summary.escalated += ask_one_more(hold, decisions, submitted, needed, one_more)
        unconfirmed = ask_to_confirm(
            hold, votes, submitted, needed, stored, set(order) - one_more,
            cfg.review.max_reviewers,
        )  # fmt: skip
        summary.escalated += unconfirmed
        for c in decisions.values():
            if c.decided and c.label:
                summary.decided[c.label] = summary.decided.get(c.label, 0) + 1
        summary.awaiting = store.state_counts()["in_review"]
        summary.disputed = [
            {
                "pair_id": r["pair_id"],
                "votes": r["votes"],
                "reviewers": r["reviewers"],
                "decided": bool(r["decided"]),
                "prompt": r["prompt"][:80],
            }
            for r in store.disputed()
        ]
        if finish and not now and store.label_status_counts()["provisional"]:
            summary.finish_waits = audits_out(store, cfg)
            finish = not summary.finish_waits
        # thresholds first: the dataset holds only judge labels the thresholds in force certify
        summary.calibration = recalibrate(store, cfg, finish=finish).to_dict()
        if summary.calibration["rechecked"]:
            again = push_pending(store, cfg, review)  # re-checked pairs reach reviewers now
            summary.pushed += again.pushed
        summary.dataset_rows = write_dataset(store, cfg)
        summary.dataset_path = str(cfg.output.dataset_dir)
        summary.awaiting = store.state_counts()["in_review"]
    return summary
