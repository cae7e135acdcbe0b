"""Writing the project's DPO dataset from the state (after a round, a sync or a
calibration). Its own home so that ``rounds`` and ``sync`` both depend on it and not on
each other: rounds -> sync -> dataset, rounds -> dataset."""

from __future__ import annotations

from labeler.config import Config
from labeler.store import Store


def write_dataset(store: Store, cfg: Config) -> int:
    """Write the DPO dataset (human labels, and judge labels the thresholds in force
    certify, or all judge labels with ``output.certified_only = false``); returns its row
    count."""
    from labeler import export

    rows = [export.dpo_row(dict(row)) for row in store.dataset_rows(cfg.output.certified_only)]
    count = export.save_dpo(rows, cfg.output.dataset_dir, cfg.output.parquet)
    store.mark_exported(r["pair_id"] for r in rows)
    return count
