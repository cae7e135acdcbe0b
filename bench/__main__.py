"""Run the benchmarks and write bench/results/latest.json."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from bench import round_bench


def main() -> None:
    which = sys.argv[1:]
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "round": round_bench.main(which),
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


main()
