"""labeler as a library: one ``Project`` for notebooks, scripts and async apps.

    import labeler

    project = labeler.Project("config.toml")
    summary = project.round(limit=100)   # judge, route, write the dataset
    project.sync()                       # pull reviewers' verdicts from Argilla
    project.export("prefs.parquet", to="parquet")

Every method is synchronous and returns plain data (dicts, a ``datasets.Dataset``); each
also works inside a running event loop (a Jupyter cell, an async web app), where it runs
its network work on a private loop in a worker thread. Errors are ``labeler.errors``
exceptions with the same one-line messages the CLI prints. Methods that write take the
project's lock, like the CLI: a second writer gets ``ProjectBusy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labeler.config import Config, load_config


class Project:
    """A labeler project: its config (``config.toml`` by default) and its state."""

    def __init__(
        self, config: str | Path | None = None, overrides: Mapping[str, Any] | None = None
    ) -> None:
        """``overrides`` are dotted keys over the file, like command-line flags:
        ``{"judge.model": "gpt-4o", "judge.concurrency": 32}``."""
        where = None if config is None else Path(config)
        self.cfg: Config = load_config(where, overrides, overrides_from="overrides")

    def plan(self, limit: int | None = None) -> dict[str, Any]:
        """What the next round would send and cost (``labeler round --dry-run``)."""
        from labeler.planning import plan_round

        return plan_round(self.cfg, limit=limit).to_dict()

    def round(self, limit: int | None = None, strict: bool = False) -> dict[str, Any]:
        """Run (or resume) one round: import, judge, route, write the dataset, push the
        uncertain pairs to Argilla (``labeler round``). Returns its summary."""
        from labeler.rounds import run_round

        return run_round(self.cfg, limit=limit, strict=strict).to_dict()

    def sync(self, repush: bool = False) -> dict[str, Any]:
        """Push waiting pairs, pull reviewers' verdicts, recalibrate, rewrite the dataset
        (``labeler sync``)."""
        from labeler.sync import run_sync

        return run_sync(self.cfg, repush=repush).to_dict()

    def calibrate(self) -> dict[str, Any]:
        """Re-choose the thresholds and report quality per round (``labeler calibrate``)."""
        from labeler.quality import run_calibration

        return run_calibration(self.cfg)

    def status(self) -> dict[str, Any]:
        """Pairs per state, rounds, cost so far (``labeler status``)."""
        from labeler.status import project_status

        return project_status(self.cfg)

    def report(self) -> dict[str, Any]:
        """Money and quality per round, flags, label counts (``labeler report``)."""
        from labeler.report import build_report

        return build_report(self.cfg)

    def export(
        self,
        out: str | Path,
        *,
        fmt: str = "dpo",
        to: str = "parquet",
        provenance: bool = False,
        certified_only: bool | None = None,
        label_source: str = "any",
        min_confidence: float = 0.0,
        test_size: float = 0.0,
        conversational: bool = False,
    ) -> dict[str, Any]:
        """Write the dataset for training (``labeler export``): ``fmt`` dpo | kto,
        ``to`` parquet | jsonl | disk; the other options as the command's."""
        from labeler.publish import ExportOptions, run_export

        only = self.cfg.output.certified_only if certified_only is None else certified_only
        options = ExportOptions(label_source, min_confidence, test_size, conversational)
        return run_export(self.cfg, fmt, to, Path(out), provenance, None, only, options)

    def dataset(self) -> Any:
        """The current DPO dataset as a ``datasets.Dataset`` (human and certified labels)."""
        from labeler.export import load_dataset

        return load_dataset(self.cfg.output.dataset_dir)
