"""Benchmark of importing a large source (issue 11): 100,000 pairs of ~1,000-word responses.

Measured in the same run:

* ``first``  — ``rounds.import_source`` on a fresh state: read, hash, near-duplicate check
  (rapidfuzz with a length bound), insert;
* ``again``  — the same call with nothing new (the file is unchanged: not read again);
* ``floor``  — the least any import must do: reading and JSON-parsing the file;
* ``difflib per pair`` — the previous near-duplicate check (difflib ``SequenceMatcher``
  with its quick bounds) on a sample of pairs, extrapolated to the whole file — the
  previous import ran it on every row at every round.

Ratios: first / floor, and the previous check's extrapolated time / first.
"""

from __future__ import annotations

import difflib
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

PAIRS = 100_000
WORDS = 1_000
SAMPLE = 30  # pairs the previous check is timed on


def write_source(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    vocab = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(20_000)
    ]

    def text() -> str:
        return " ".join(rng.choices(vocab, k=WORDS))

    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            row = {"prompt": f"question {i}: " + " ".join(rng.choices(vocab, k=30))}
            row["response_a"], row["response_b"] = text(), text()
            fh.write(json.dumps(row) + "\n")


def previous_check(a: str, b: str, threshold: float = 0.95) -> float | None:
    """The near-duplicate check before issue 11 (difflib, with its cheap bounds first)."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
        return None
    ratio = matcher.ratio()
    return ratio if ratio >= threshold else None


def main(pairs: int = PAIRS) -> dict[str, Any]:
    from labeler.config import load_config
    from labeler.rounds import RoundSummary, import_source
    from labeler.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "pairs.jsonl"
        started = time.perf_counter()
        write_source(source, pairs)
        made = time.perf_counter() - started
        (folder / "config.toml").write_text(
            f'[source]\npath = "{source}"\n[project]\nstate_dir = "{folder / "state"}"\n'
        )
        cfg = load_config(folder / "config.toml", environ={})

        mark = time.perf_counter()
        rows = []
        with source.open("rb") as fh:
            for line in fh:
                rows.append(json.loads(line))
        floor = time.perf_counter() - mark

        mark = time.perf_counter()
        for row in rows[:SAMPLE]:
            previous_check(row["response_a"], row["response_b"])
        per_pair = (time.perf_counter() - mark) / SAMPLE
        del rows

        with Store(cfg.db_path) as store:
            mark = time.perf_counter()
            first = RoundSummary()
            import_source(store, cfg, first)
            first_s = time.perf_counter() - mark
            mark = time.perf_counter()
            again = RoundSummary()
            import_source(store, cfg, again)
            again_s = time.perf_counter() - mark
        assert first.new_pairs == pairs and again.new_pairs == 0
        out = {
            "pairs": pairs,
            "words_per_response": WORDS,
            "source_mb": round(source.stat().st_size / 1e6, 1),
            "generate_s": round(made, 1),
            "first_import_s": round(first_s, 1),
            "second_import_s": round(again_s, 3),
            "floor_read_and_parse_s": round(floor, 1),
            "first_over_floor": round(first_s / floor, 2),
            "previous_check_per_pair_s": round(per_pair, 3),
            "previous_check_whole_file_s": round(per_pair * pairs),
            "previous_check_over_first": round(per_pair * pairs / first_s, 1),
        }
        print("import", json.dumps(out), flush=True)
        return out


if __name__ == "__main__":
    main()
