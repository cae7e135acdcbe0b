"""``labeler verify``: a reward model double-checks every dataset row.

Each row's chosen and rejected response are scored by the reward model ``[verify]``
names (``labeler.reward``); a row whose margin ``score(chosen) - score(rejected)`` is below
``verify.min_margin`` is *flagged*. Human and judge labels alike. What happens to a
flagged row (``verify.action``):

* ``flag`` — nothing but the mark: ``rm_margin`` and ``rm_flag`` columns in the dataset
  and in ``labeler export`` (with provenance);
* ``review`` — a judge label goes back to humans (reason ``rm_disagrees``; pushed at the
  next ``labeler sync``, blind like any review pair) and leaves the dataset until they
  decide; a human label is given to one more reviewer (the next ``labeler sync`` reopens
  its Argilla record, as for a tie; the first verdict still counts, and the pair is out of
  the dataset until the reviewers agree), once per pair, within ``review.max_reviewers``;
* ``drop`` — the row leaves the dataset (it stays in the state, and comes back if a later
  verify no longer flags it).

Scores are paid work: each (model, prompt, response) is scored once and cached in the
state, so a second verify sends nothing new; every request is in the ledger
(``reward_calls``, priced at ``verify.price_per_1k``). Scores are stored as each request
returns, so an interrupted verify loses nothing already paid for.

How flags relate to the guarantee: certified judge labels are certified by *human*
evidence (agreement with reviewers at the target, with probability at least the
confidence). A reward model's disagreement is not human evidence and does not change
the certificate or the thresholds: ``review`` only adds human checks (humans then decide
those pairs, and their verdicts count like any other), and ``drop`` only removes rows.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from labeler import export
from labeler.config import Config
from labeler.dataset import write_dataset
from labeler.errors import StateError, shown_url
from labeler.lock import project_lock
from labeler.reward import Call, Item, RewardClient
from labeler.store import Store

REASON = "rm_disagrees"
SIDES = ("chosen", "rejected")
CHUNK_ROWS = 500  # rows whose texts are read (and sent) at a time
ONE_MORE = "rm_one_more"  # quality flag: a human label the reward model contradicts


def score_key(api: str, model: str, prompt: str, response: str) -> str:
    """The cache key of one response's reward: the model (``verify.model``, or the
    server's URL when unnamed) and the texts it read."""
    h = hashlib.sha256()
    for part in (api, model, prompt, response):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class VerifyResult:
    rows: int = 0
    scored_now: int = 0  # responses sent to the reward model by this run
    cached: int = 0  # responses whose score was already stored
    requests: int = 0
    cost: float = 0.0  # of this run's requests
    flagged: dict[str, int] = field(default_factory=dict)  # by label source
    checked: dict[str, int] = field(default_factory=dict)
    action: str = "flag"
    sent_to_review: int = 0  # judge labels back to humans
    asked_again: int = 0  # human labels given to one more reviewer
    left_behind: int = 0  # flagged human labels of a review dataset no longer synced
    dropped: int = 0
    min_margin: float = 0.0
    dataset_rows: int = 0
    flagged_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_verify(
    cfg: Config,
    environ: Mapping[str, str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> VerifyResult:
    """Score every dataset row not scored before, flag, apply ``verify.action``, rewrite
    the dataset; ``on_progress(done, total)`` as responses are scored."""
    if not cfg.db_path.exists():
        raise StateError(f"{cfg.db_path}: no state yet; run `labeler round` first")
    v = cfg.verify
    client = RewardClient(v, environ)
    model = v.model or shown_url(v.base_url.rstrip("/"))  # another model: scored anew
    out = VerifyResult(action=v.action, min_margin=v.min_margin)
    with project_lock(cfg.project.state_dir, "verify"), Store(cfg.db_path) as store:
        # first what each row is and its responses' cache keys (texts hashed, not kept),
        # then the texts of the responses not scored before, CHUNK_ROWS rows at a time:
        # 100,000 rows of long answers are never all in memory
        rows: list[tuple[str, str, str, str, str]] = []  # id, label, source, keys
        for r in store.dataset_rows(cfg.output.certified_only, True):
            dpo = export.dpo_row(dict(r))  # the row as the dataset has it: chosen, rejected
            chosen, rejected = (score_key(v.api, model, r["prompt"], dpo[side]) for side in SIDES)
            rows.append((r["id"], r["label"], r["label_source"], chosen, rejected))
        out.rows = len(rows)
        scores = store.reward_scores(list(dict.fromkeys(k for row in rows for k in row[3:])))
        out.cached = len(scores)
        todo = list(dict.fromkeys(k for row in rows for k in row[3:] if k not in scores))
        missing = [row[0] for row in rows if row[3] not in scores or row[4] not in scores]
        price = v.price_per_1k / 1000

        def scored(keys: list[str], idx: list[int], values: list[float], call: Call) -> None:
            pairs = [(keys[i], s) for i, s in zip(idx, values, strict=True)]
            store.save_reward_scores(
                pairs, v.api, model, call.attempts, price * len(pairs), call.latency_ms
            )
            scores.update(pairs)
            out.scored_now += len(pairs)
            out.requests += 1
            out.cost += price * len(pairs)
            if on_progress is not None:
                on_progress(out.scored_now, len(todo))

        for start in range(0, len(missing), CHUNK_ROWS):
            texts: dict[str, Item] = {}
            chunk = missing[start : start + CHUNK_ROWS]
            for r in store.dataset_rows(cfg.output.certified_only, True, ids=chunk):
                dpo = export.dpo_row(dict(r))
                for side in SIDES:
                    key = score_key(v.api, model, r["prompt"], dpo[side])
                    if key not in scores:
                        texts[key] = (r["prompt"], dpo[side])
            client.score(list(texts.values()), functools.partial(scored, list(texts)))

        results: list[tuple[Any, ...]] = []
        flagged_judge: list[str] = []
        flagged_human: list[str] = []
        for pid, label, source, ck, rk in rows:
            margin = scores[ck] - scores[rk]
            flag = margin < v.min_margin
            out.checked[source] = out.checked.get(source, 0) + 1
            if flag:
                out.flagged[source] = out.flagged.get(source, 0) + 1
                out.flagged_ids.append(pid)
                (flagged_judge if source == "judge" else flagged_human).append(pid)
            row = (pid, label, source, scores[ck], scores[rk], margin, int(flag), v.action)
            results.append(row)
        store.save_verify_results(results)
        if v.action == "review":
            out.sent_to_review = store.send_to_review(flagged_judge, REASON)
            if cfg.review.enabled and cfg.review.max_reviewers > cfg.review.min_submitted:
                # only in a dataset `labeler sync` still reads (not one another
                # review.dataset left behind: nobody would be asked there)
                where = store.review_datasets(flagged_human)
                synced = (cfg.review_dataset, cfg.double_dataset)
                askable = [pid for pid in flagged_human if where.get(pid) in synced]
                out.left_behind = len(flagged_human) - len(askable)
                out.asked_again = store.ask_one_more(
                    askable, ONE_MORE, "the reward model contradicts this label"
                )
        elif v.action == "drop":
            out.dropped = len(out.flagged_ids)
        out.dataset_rows = write_dataset(store, cfg)
    return out
