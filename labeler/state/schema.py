"""The state database's schema and its numbered migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from labeler.pairs import pair_key
from labeler.prompts import FACT_OUTCOMES, fact_key, read_fact_reply

SCHEMA_VERSION = 9  # see MIGRATIONS
STATES = ("imported", "accepted", "needs_review", "in_review", "human_decided", "exported")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    prompt TEXT NOT NULL,
    response_a TEXT NOT NULL,
    response_b TEXT NOT NULL,
    source TEXT NOT NULL,
    source_row INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'imported',
    round_id INTEGER,
    imported_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pairs_by_state ON pairs (state, round_id, seq);
CREATE INDEX IF NOT EXISTS pairs_by_round ON pairs (round_id, state);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cache_key TEXT NOT NULL,
    pair_id TEXT NOT NULL,
    presented_order TEXT NOT NULL,
    model TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    guidelines_hash TEXT NOT NULL,
    round_id INTEGER,
    status TEXT NOT NULL,
    reply TEXT,
    logprobs TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    latency_ms REAL,
    error TEXT,
    created_at REAL NOT NULL,
    prompt_chars INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS calls_cache ON calls (cache_key) WHERE status = 'ok';
CREATE INDEX IF NOT EXISTS calls_failed ON calls (cache_key, id) WHERE status = 'error';
CREATE INDEX IF NOT EXISTS calls_refused ON calls (cache_key) WHERE status = 'refused';
CREATE INDEX IF NOT EXISTS calls_by_round ON calls (round_id);
CREATE TABLE IF NOT EXISTS verdicts (
    pair_id TEXT PRIMARY KEY,
    round_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    guidelines_hash TEXT NOT NULL,
    label TEXT,
    confidence REAL NOT NULL,
    self_high INTEGER NOT NULL,
    signals TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    thresholds_version INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_by_round ON verdicts (round_id, action, reason);
CREATE TABLE IF NOT EXISTS rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    pair_limit INTEGER,
    model TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    guidelines_hash TEXT NOT NULL,
    thresholds TEXT NOT NULL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS review_items (
    pair_id TEXT PRIMARY KEY,
    swapped INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    pushed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS review_items_by_dataset ON review_items (dataset);
CREATE TABLE IF NOT EXISTS human_responses (
    pair_id TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    status TEXT NOT NULL,
    label TEXT,
    reason TEXT,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    synced_at REAL NOT NULL,
    PRIMARY KEY (pair_id, reviewer)
);
CREATE TABLE IF NOT EXISTS human_decisions (
    pair_id TEXT PRIMARY KEY,
    label TEXT,
    votes TEXT NOT NULL,
    reviewers INTEGER NOT NULL,
    decided INTEGER NOT NULL,
    disputed INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS thresholds (
    version INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    a REAL NOT NULL,
    b REAL NOT NULL,
    weights TEXT,
    audit_rate REAL NOT NULL,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS looks (
    tier INTEGER NOT NULL,
    judge_version TEXT NOT NULL,
    phase INTEGER NOT NULL,
    look INTEGER NOT NULL,
    allowed REAL NOT NULL,
    sequence TEXT NOT NULL,
    PRIMARY KEY (tier, judge_version, phase, look)
);
CREATE TABLE IF NOT EXISTS look_evidence (
    tier INTEGER NOT NULL,
    judge_version TEXT NOT NULL,
    phase INTEGER NOT NULL,
    pair_id TEXT NOT NULL,
    look INTEGER NOT NULL,
    score REAL,
    disagree INTEGER,
    PRIMARY KEY (tier, judge_version, phase, pair_id)
);
CREATE TABLE IF NOT EXISTS quality_flags (
    pair_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    reviewer TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (pair_id, kind, reviewer)
);
CREATE TABLE IF NOT EXISTS escalations (
    pair_id TEXT NOT NULL,
    tier INTEGER NOT NULL,
    round_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    label TEXT,
    confidence REAL NOT NULL,
    self_high INTEGER NOT NULL,
    signals TEXT NOT NULL,
    reason TEXT NOT NULL,
    thresholds_version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    -- the pair's chance of reaching a human and whether it did, fixed by its final verdict
    -- (made by tier draw_tier), NULL until then
    pi REAL,
    sampled INTEGER,
    draw_tier INTEGER,
    PRIMARY KEY (pair_id, tier)
);
CREATE INDEX IF NOT EXISTS escalations_by_round ON escalations (round_id, tier);
CREATE TABLE IF NOT EXISTS batches (
    key TEXT PRIMARY KEY,
    round_id INTEGER NOT NULL,
    tier INTEGER NOT NULL,
    path TEXT NOT NULL,
    requests INTEGER NOT NULL,
    file_id TEXT,
    batch_id TEXT,
    status TEXT NOT NULL,
    remote_status TEXT,
    results INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS judge_versions (
    tier INTEGER NOT NULL,
    hash TEXT NOT NULL,
    examples TEXT NOT NULL,
    human_verdicts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (tier, hash)
);
CREATE TABLE IF NOT EXISTS bad_rows (
    source TEXT NOT NULL,
    row INTEGER NOT NULL,
    reason TEXT NOT NULL,
    first_seen REAL NOT NULL,
    PRIMARY KEY (source, row)
);
-- labeler verify: each response's reward (paid work: never asked twice), each request
-- (the ledger), each row's margin as last checked (for its label at that time)
CREATE TABLE IF NOT EXISTS reward_scores (
    key TEXT PRIMARY KEY,
    score REAL NOT NULL,
    api TEXT NOT NULL,
    model TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reward_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    api TEXT NOT NULL,
    model TEXT NOT NULL,
    items INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    cost REAL NOT NULL,
    latency_ms REAL
);
-- quality.fact_check: the chosen response of each judge-accepted pair as checked, by the
-- label it was checked for (a label changed since is checked again), outcome: errors |
-- no_errors | unreadable (the reply said neither) | failed (refused, or failed too often)
CREATE TABLE IF NOT EXISTS fact_checks (
    pair_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    outcome TEXT NOT NULL,
    round_id INTEGER NOT NULL,
    checked_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS verify_results (
    pair_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    label_source TEXT NOT NULL,
    chosen REAL NOT NULL,
    rejected REAL NOT NULL,
    margin REAL NOT NULL,
    flagged INTEGER NOT NULL,
    action TEXT NOT NULL,
    checked_at REAL NOT NULL
);
"""


# the judge tier a pair waits for: the one after the last tier that passed it on (0: none)
AT_TIER = "COALESCE((SELECT MAX(e.tier) + 1 FROM escalations e WHERE e.pair_id = pairs.id), 0) = ?"


def add_missing_columns(db: sqlite3.Connection) -> None:
    """Migration 1: columns added to version 1 files over time (idempotent)."""
    added = {
        "calls": (("prompt_chars", "INTEGER NOT NULL DEFAULT 0"),),
        # pi: the probability the pair had of reaching a human, fixed when routed;
        # sampled: routing sent it to humans; status: certified | provisional for
        # judge-accepted pairs (re-checked after every calibration)
        "verdicts": (("pi", "REAL"), ("sampled", "INTEGER"), ("status", "TEXT")),
        "thresholds": (("params", "TEXT"),),
        "review_items": (("hint", "INTEGER NOT NULL DEFAULT 0"),),
    }
    for table, columns in added.items():
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def add_pair_keys(db: sqlite3.Connection) -> None:
    """Migration 2: ``pair_key``, the pair's identity whatever the order of its
    responses (a swapped copy of a stored pair is a duplicate), filled for old rows."""
    have = {r[1] for r in db.execute("PRAGMA table_info(pairs)")}
    if "pair_key" not in have:
        db.execute("ALTER TABLE pairs ADD COLUMN pair_key TEXT")
    last = 0
    while True:  # a thousand pairs at a time: 100k long pairs do not fit in memory at once
        rows = db.execute(
            "SELECT seq, prompt, response_a, response_b FROM pairs "
            "WHERE pair_key IS NULL AND seq > ? ORDER BY seq LIMIT 1000",
            (last,),
        ).fetchall()
        if not rows:
            break
        db.executemany(
            "UPDATE pairs SET pair_key = ? WHERE seq = ?",
            ((pair_key(r[1], r[2], r[3]), r[0]) for r in rows),
        )
        last = int(rows[-1][0])
    db.execute("CREATE INDEX IF NOT EXISTS pairs_by_key ON pairs (pair_key)")


def add_prompt_messages(db: sqlite3.Connection) -> None:
    """Migration 3: a multi-turn prompt's messages (JSON), beside its transcript."""
    have = {r[1] for r in db.execute("PRAGMA table_info(pairs)")}
    if "prompt_messages" not in have:
        db.execute("ALTER TABLE pairs ADD COLUMN prompt_messages TEXT")


def add_cached_tokens(db: sqlite3.Connection) -> None:
    """Migration 4: input tokens served from the endpoint's prompt cache, per call."""
    have = {r[1] for r in db.execute("PRAGMA table_info(calls)")}
    if "cached_tokens" not in have:
        db.execute("ALTER TABLE calls ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0")


def add_tiers(db: sqlite3.Connection) -> None:
    """Migration 5: the judge tier (cascade position) of every call, verdict and
    threshold version; 0 for everything before tiers existed."""
    for table in ("calls", "verdicts", "thresholds"):
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        if "tier" not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN tier INTEGER NOT NULL DEFAULT 0")


def add_call_batch(db: sqlite3.Connection) -> None:
    """Migration 6: the Batch API batch that answered a call (NULL: online)."""
    have = {r[1] for r in db.execute("PRAGMA table_info(calls)")}
    if "batch" not in have:
        db.execute("ALTER TABLE calls ADD COLUMN batch TEXT")


def add_look_evidence_labels(db: sqlite3.Connection) -> None:
    """Migration 7: the score and the human verdict (disagreed or not) each counted pair
    had at its look, so a later look can tell whether the sample is still the one the
    earlier looks counted (NULL for looks kept before: they no longer match)."""
    have = {r[1] for r in db.execute("PRAGMA table_info(look_evidence)")}
    for name, kind in (("score", "REAL"), ("disagree", "INTEGER")):
        if name not in have:
            db.execute(f"ALTER TABLE look_evidence ADD COLUMN {name} {kind}")


def add_round_draws(db: sqlite3.Connection) -> None:
    """Migration 8: the draw that orders the waiting pairs (``routing.round_draw``),
    filled when a round first looks at a pair (the seed is the config's), and the index
    a round takes the lowest of."""
    have = {r[1] for r in db.execute("PRAGMA table_info(pairs)")}
    if "round_draw" not in have:
        db.execute("ALTER TABLE pairs ADD COLUMN round_draw REAL")
    db.execute("CREATE INDEX IF NOT EXISTS pairs_to_draw ON pairs (state, round_id, round_draw)")


def add_fact_checks(db: sqlite3.Connection) -> None:
    """Migration 9: ``fact_checks`` filled from the fact-check replies kept before it
    existed (a reply counts for the pair's label today when its key is that label's), so
    a check done then is not counted as still to do. A thousand replies at a time."""
    last = 0
    while True:
        rows = db.execute(
            "SELECT c.id, c.cache_key, c.model, c.template_hash, c.round_id, c.reply, "
            "v.pair_id, v.label, CASE v.label WHEN 'A' THEN p.response_a ELSE p.response_b END "
            "FROM calls c JOIN verdicts v ON v.pair_id = c.pair_id JOIN pairs p ON p.id = "
            "c.pair_id WHERE c.id > ? AND c.presented_order = 'fact' AND c.status = 'ok' "
            "AND v.label IN ('A', 'B') ORDER BY c.id LIMIT 1000",
            (last,),
        ).fetchall()
        if not rows:
            break
        db.executemany(
            "INSERT OR REPLACE INTO fact_checks VALUES (?, ?, ?, ?, 0)",
            (
                (r[6], r[7], FACT_OUTCOMES[read_fact_reply(r[5])], r[4] or 0)
                for r in rows
                if fact_key(r[2], r[3], r[6], r[8]) == r[1]
            ),
        )
        last = int(rows[-1][0])


# (number, step): a state file at version v runs every step numbered above v
MIGRATIONS: tuple[tuple[int, Callable[[sqlite3.Connection], None]], ...] = (
    (1, add_missing_columns),
    (2, add_pair_keys),
    (3, add_prompt_messages),
    (4, add_cached_tokens),
    (5, add_tiers),
    (6, add_call_batch),
    (7, add_look_evidence_labels),
    (8, add_round_draws),
    (9, add_fact_checks),
)
