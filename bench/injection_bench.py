"""The injection screen on real public pairs (issue 19): how many clean pairs it flags
(false positives: each costs one human label), and its speed against the raw-text
English screen it replaced, in the same run.

Data: ``../shared/data`` — PandaLM (999 pairs: instruction + input as the prompt, two
responses) and HH-RLHF harmless (2,312 pairs: the conversation before the last assistant
turn as the prompt, the chosen and rejected last turns as responses). Neither was written
to attack a judge, so every flag is a false positive (red-teaming prompts in HH-RLHF ask
the assistant for harm, not the judge for a verdict).
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from labeler import injection
from labeler.confusables import fold_table

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pairs() -> list[tuple[str, str, str, str]]:
    """(source, prompt, response A, response B)."""
    out = []
    for r in json.loads((DATA / "pandalm" / "testset-v1.json").read_text()):
        prompt = r["instruction"] + ("\n" + r["input"] if r.get("input") else "")
        out.append(("pandalm", prompt, str(r["response1"]), str(r["response2"])))
    with gzip.open(DATA / "hh-rlhf-harmless" / "test.jsonl.gz", "rt") as fh:
        for line in fh:
            r = json.loads(line)
            head, _, chosen = r["chosen"].rpartition("\n\nAssistant:")
            _, _, rejected = r["rejected"].rpartition("\n\nAssistant:")
            out.append(("hh-rlhf", head, chosen, rejected))
    return out


def main() -> dict[str, Any]:
    if not DATA.exists():
        return {"skipped": f"{DATA} not found"}
    data = pairs()
    fold = fold_table()
    flagged: Counter[str] = Counter()
    examples = []
    started = time.perf_counter()
    for source, prompt, a, b in data:
        why = injection.suspect_pair(a, b, prompt, fold)
        if why:
            flagged[source] += 1
            examples.append(f"{source}: {why}")
    screen = time.perf_counter() - started
    english = (*injection._PATTERNS, injection._SELF_PRAISE)
    started = time.perf_counter()
    for _, _, a, b in data:  # the screen before issue 19: English patterns on raw responses
        injection._first(a, english, ())
        injection._first(b, english, ())
    baseline = time.perf_counter() - started
    sources = Counter(s for s, *_ in data)
    return {
        "pairs": dict(sources),
        "flagged": dict(flagged),
        "false_positive_rate": {s: round(flagged[s] / n, 5) for s, n in sources.items()},
        "examples": examples[:10],
        "seconds": round(screen, 3),
        "baseline_seconds": round(baseline, 3),
        "ratio": round(screen / baseline, 2) if baseline else None,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, ensure_ascii=False))
