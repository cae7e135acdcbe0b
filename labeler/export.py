"""Writing the preference dataset: the only module that imports ``datasets`` for output.

The DPO dataset has ``prompt``, ``chosen``, ``rejected`` plus provenance columns. It is saved
with ``save_to_disk`` into a fresh version folder, then a symlink at ``dataset_dir`` is
swapped to point at it (``os.replace`` of a symlink is atomic), so a reader or a crash never
sees a half-written dataset. The optional Parquet file is written to a temporary name and
renamed into place the same way.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from labeler.errors import ExportError

DPO_COLUMNS = ("prompt", "chosen", "rejected")
PROVENANCE_COLUMNS = (
    "pair_id",
    "label_source",
    "confidence",
    "round",
    "judge_model",
    "template_hash",
    "reviewers",
)


def dpo_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One DPO row from a stored pair and the label that decided it."""
    a_wins = row["label"] == "A"
    return {
        "prompt": row["prompt"],
        "chosen": row["response_a"] if a_wins else row["response_b"],
        "rejected": row["response_b"] if a_wins else row["response_a"],
        "pair_id": row["id"],
        "label_source": row.get("label_source", "judge"),
        "confidence": float(row["confidence"]),
        "round": int(row["round_id"]),
        "judge_model": row["model"],
        "template_hash": row["template_hash"],
        "reviewers": int(row.get("reviewers", 0)),
    }


def warm_up() -> None:
    """Import ``datasets`` ahead of time (it takes about a second)."""
    import datasets

    datasets.disable_progress_bars()


def _features() -> Any:
    from datasets import Features, Value

    types = {"confidence": "float64", "round": "int64", "reviewers": "int64"}
    return Features({c: Value(types.get(c, "string")) for c in DPO_COLUMNS + PROVENANCE_COLUMNS})


def save_dpo(rows: Iterable[Mapping[str, Any]], dataset_dir: Path, parquet: bool) -> int:
    """Write the DPO dataset atomically; returns the number of rows."""
    import datasets

    datasets.disable_progress_bars()
    columns: dict[str, list[Any]] = {c: [] for c in DPO_COLUMNS + PROVENANCE_COLUMNS}
    for row in rows:
        for key, value in row.items():
            columns[key].append(value)
    count = len(columns["prompt"])
    dataset_dir = dataset_dir.absolute()
    versions = dataset_dir.parent / f".{dataset_dir.name}.versions"
    target = versions / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    try:
        if dataset_dir.exists() and not dataset_dir.is_symlink():
            raise ExportError(
                f"{dataset_dir}: exists and was not written by labeler; move it "
                "away or set output.dataset_dir to another path"
            )
        versions.mkdir(parents=True, exist_ok=True)
        ds = datasets.Dataset.from_dict(columns, features=_features())
        # one shard at least: datasets cannot load an empty dataset saved with zero shards
        ds.save_to_disk(str(target), num_shards=None if count else 1)
        if parquet:
            tmp = dataset_dir.with_name(f".{dataset_dir.name}.parquet.tmp")
            ds.to_parquet(str(tmp))
            os.replace(tmp, dataset_dir.with_name(dataset_dir.name + ".parquet"))
        link_tmp = dataset_dir.with_name(f".{dataset_dir.name}.link-{uuid.uuid4().hex[:8]}")
        os.symlink(target, link_tmp)
        os.replace(link_tmp, dataset_dir)
    except OSError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise ExportError(f"{dataset_dir}: cannot write the dataset ({exc})") from None
    for old in versions.iterdir():
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return count
