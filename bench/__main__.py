"""Run the benchmarks and write bench/results/latest.json.

scripts/dev bench                       everything
scripts/dev bench startup throughput    some of: startup throughput memory dry_run draw
                                        union dataset factcheck review import
                                        calibration tiers panel parity injection verify
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")

from bench import (
    calibration_bench,
    import_bench,
    injection_bench,
    panel_bench,
    parity_bench,
    review_bench,
    round_bench,
    tiers_bench,
    verify_bench,
)

ROUND_PARTS = (
    "startup",
    "throughput",
    "memory",
    "dry_run",
    "draw",
    "union",
    "dataset",
    "factcheck",
)
OTHERS = (
    "review",
    "calibration",
    "import",
    "tiers",
    "panel",
    "parity",
    "injection",
    "verify",
)


def main() -> None:
    which = sys.argv[1:]
    unknown = [w for w in which if w not in (*ROUND_PARTS, *OTHERS)]
    if unknown:
        sys.exit(
            f"unknown benchmark {unknown[0]!r}; choose from {', '.join((*ROUND_PARTS, *OTHERS))}"
        )
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    round_parts = [w for w in which if w in ROUND_PARTS]
    if not which or round_parts:
        results["round"] = round_bench.main(round_parts)
    if not which or "review" in which:
        results["review"] = review_bench.main()
    if not which or "import" in which:
        results["import"] = import_bench.main()
    if not which or "calibration" in which:
        results["calibration"] = calibration_bench.main()
    if not which or "injection" in which:
        results["injection"] = injection_bench.main()
    if not which or "parity" in which:
        results["parity"] = parity_bench.main()
    if not which or "tiers" in which:
        results["tiers"] = tiers_bench.main()
    if not which or "panel" in which:
        results["panel"] = panel_bench.main()
    if not which or "verify" in which:
        results["verify"] = verify_bench.main()
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


main()
