"""``labeler calibrate``: recalibrate, report quality per round, draw the reliability diagram."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labeler.config import Config
from labeler.errors import StateError
from labeler.lock import project_lock
from labeler.report import round_report
from labeler.store import Store
from labeler.thresholds import recalibrate
from labeler.union_loop import history_slot


def run_calibration(cfg: Config, plot_path: Path | None = None) -> dict[str, Any]:
    if not cfg.db_path.exists():
        raise StateError(f"{cfg.db_path}: no state yet; run `labeler round` first")
    if plot_path is not None:  # refused before the thresholds change, not after
        from labeler.charts import check_chart_path

        check_chart_path(plot_path)
    with project_lock(cfg.project.state_dir, "calibrate"), Store(cfg.db_path) as store:
        recal = recalibrate(store, cfg)
        if recal.changed or recal.rechecked:
            from labeler.dataset import write_dataset

            write_dataset(store, cfg)  # only judge labels the thresholds in force certify
        rounds = round_report(store, cfg)
        history = [
            {"version": r["version"], "message": json.loads(r["report"])["message"]}
            for r in store.thresholds_history(history_slot(store, cfg))
        ]
    plot = None
    if recal.reliability:
        from labeler.charts import reliability_png

        t = recal.current
        plot = str(
            reliability_png(
                recal.reliability,
                recal.ece,
                (t["a"], t["b"]),
                plot_path or cfg.project.state_dir / "reliability.png",
                own=plot_path is None,
            )
        )
    return {"recalibration": recal.to_dict(), "rounds": rounds, "history": history, "plot": plot}
