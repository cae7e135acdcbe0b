"""The state database, one module per aggregate (pairs, rounds, judge calls and verdicts,
batches and judge versions, review, evidence and thresholds), composed by
``labeler.store.Store`` over one connection; the schema and its migrations in ``schema``."""
