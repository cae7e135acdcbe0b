"""Benchmarks of the Argilla side (issue 3), each against a baseline in the same run.

1. Cold start of the embedded server (``EmbeddedArgilla.start`` until the API answers) vs
   importing argilla-server's app alone in a fresh interpreter.
2. Push of 1,000 review pairs by labeler (``push_pending``: records, shown order, state)
   vs logging the same 1,000 records with the bare argilla SDK into another dataset.
3. Sync of 1,000 submitted responses (``run_sync``: pull, store, combine, dataset) vs
   listing the same records with their responses through the bare SDK.
4. Memory of a push: how much a fresh process's peak RSS grows while ``push_pending`` sends
   6,000 pairs of ~1,000-word responses, vs the same push of 600 (both several
   ``review.push_batch`` batches: a push that holds one batch of texts grows alike).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

N = 1000
os.environ.setdefault("TQDM_DISABLE", "1")  # before anything imports tqdm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_project(root: Path, port: int, n: int = N, words: int = 0, review: str = "") -> Any:
    """A project with ``n`` pairs already judged and waiting for review (no judge needed);
    ``words``: each response that many words long (else a few); ``review``: more lines of
    its [review] table."""
    from labeler.config import load_config
    from labeler.pairs import make_pair
    from labeler.setup import write_starter_files
    from labeler.store import Store, VerdictRecord

    write_starter_files(root, force=True)
    (root / "config.toml").write_text(
        f'[project]\nname = "bench-push"\n[review]\nport = {port}\n{review}'
        'workspace = "labeler"\n[output]\nparquet = false\n'
        # one owner answers 1,000 records in seconds: no verdict is "too fast" here
        "[quality]\nmin_review_seconds = 0\n"
    )
    cfg = load_config(root / "config.toml", environ={})
    filler = " ".join(f"word{j % 997}" for j in range(words))
    pairs = [
        make_pair(f"Question {i}?", f"first answer {i} {filler}", f"second answer {i} {filler}")
        for i in range(n)
    ]
    with Store(cfg.db_path) as store:
        store.import_pairs(pairs, [])
        round_id = store.start_round(None, "m", "t", "g", {})
        for p in pairs:
            store.record_verdict(
                VerdictRecord(
                    p.id,
                    round_id,
                    "bench-judge",
                    "t",
                    "g",
                    "A",
                    0.6,
                    False,
                    {},
                    "review",
                    "low_confidence",
                    0,
                ),
                "needs_review",
            )
    return cfg


def bare_push(url: str, key: str, cfg: Any, name: str) -> float:
    import argilla as rg

    from labeler.prompts import load_guidelines
    from labeler.review import ArgillaReview
    from labeler.store import Store
    from labeler.sync import _records

    with Store(cfg.db_path) as store:
        store.requeue_in_review()
        records = list(_records(store, cfg, store.review_queue()))
    with ArgillaReview(url, key, "labeler", name) as review:
        review.ensure_dataset(load_guidelines(cfg.judge.guidelines).text, 1)
        ds = review.dataset()
        items = [
            rg.Record(
                id=r.pair_id,
                fields={"prompt": r.prompt, "response_a": r.first, "response_b": r.second},
                metadata={"round": r.round_id},
            )
            for r in records
        ]
        start = time.perf_counter()
        ds.records.log(items, batch_size=cfg.review.push_batch)
        elapsed = time.perf_counter() - start
        review.delete_dataset()
    return elapsed


def labeler_push(cfg: Any, name: str) -> float:
    """labeler's push of every pair waiting for review into a fresh dataset ``name``."""
    import dataclasses

    from labeler.store import Store
    from labeler.sync import push_pending

    cfg = dataclasses.replace(cfg, review=dataclasses.replace(cfg.review, dataset=name))
    with Store(cfg.db_path) as store:
        store.requeue_in_review()
        # a re-queued pair goes back to the dataset it was pushed to: forget the earlier
        # runs' pushes, so each run pushes every pair into its own fresh dataset
        with store.transaction() as db:
            db.execute("DELETE FROM review_items")
        start = time.perf_counter()
        result = push_pending(store, cfg)
        elapsed = time.perf_counter() - start
    assert result.pushed == N, result
    return elapsed


def submit_all(url: str, key: str, dataset: str) -> None:
    """An owner submits a response to every record, 100 per bulk request."""
    from labeler.demo.reviewers import ReviewerSession
    from labeler.server.manager import read_secrets

    del key
    secrets = read_secrets(Path(url.split("|", 1)[1]))
    session = ReviewerSession(
        url.split("|", 1)[0], secrets["owner_username"], secrets["owner_password"]
    )
    ds_id = session.dataset_id(dataset)
    ids = []
    offset = 0
    while True:
        page = session.call("GET", f"/api/v1/datasets/{ds_id}/records?offset={offset}&limit=1000")[
            "items"
        ]
        ids += [r["id"] for r in page]
        offset += len(page)
        if len(page) < 1000:
            break
    for start in range(0, len(ids), 100):
        session.call(
            "POST",
            "/api/v1/me/responses/bulk",
            {
                "items": [
                    {
                        "values": {"preference": {"value": "A" if i % 3 else "B"}},
                        "status": "submitted",
                        "record_id": rid,
                    }
                    for i, rid in enumerate(ids[start : start + 100])
                ]
            },
        )


def bare_pull(url: str, key: str) -> float:
    import argilla as rg

    client = rg.Argilla(api_url=url, api_key=key)
    ds = client.datasets("bench-push", workspace="labeler")
    start = time.perf_counter()
    count = sum(len(r.responses) for r in ds.records(with_responses=True))
    elapsed = time.perf_counter() - start
    client.http_client.close()
    assert count == N, count
    return elapsed


PUSH_RSS = """
import json, sys
from labeler.config import load_config
from labeler.store import Store
from labeler.sync import push_pending
import argilla  # noqa: F401  (its import is not the push's memory)


def status(key):  # MB (Linux)
    with open("/proc/self/status") as fh:
        return next(int(x.split()[1]) for x in fh if x.startswith(key + ":")) / 1024


cfg = load_config(sys.argv[1])
with Store(cfg.db_path) as store:
    # the peak so far is the forking parent's, not ours: start it again from now
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    start = status("VmRSS")
    result = push_pending(store, cfg)
    peak = status("VmHWM")
print(json.dumps([result.pushed, result.error, start, peak]))
"""


def push_rss(root: Path, creds: Any, n: int, words: int) -> dict[str, Any]:
    """Peak RSS growth (MB) of a fresh process pushing ``n`` seeded pairs to Argilla."""
    review = (
        f'api_url = "{creds.url}"\napi_key_env = "BENCH_ARGILLA_KEY"\ndataset = "rss-{root.name}"\n'
    )
    seed_project(root, free_port(), n, words, review)
    out = subprocess.run(
        [sys.executable, "-c", PUSH_RSS, str(root / "config.toml")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENCH_ARGILLA_KEY": creds.api_key},
    )
    pushed, error, start_mb, peak_mb = json.loads(out.stdout.strip().splitlines()[-1])
    assert pushed == n and not error, (pushed, error)
    return {
        "pairs": n,
        "rss_at_start_mb": round(start_mb, 1),
        "growth_mb": round(peak_mb - start_mb, 1),
    }


def main() -> dict[str, Any]:
    from labeler.server.manager import EmbeddedArgilla
    from labeler.sync import run_sync

    out: dict[str, Any] = {}
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import argilla_server._app"], check=True, capture_output=True
    )
    import_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        cfg = seed_project(Path(tmp) / "p", port)
        server = EmbeddedArgilla(cfg.project.state_dir, port=port, workspace="labeler")
        t = time.perf_counter()
        server.start()
        cold_s = time.perf_counter() - t
        out["cold_start"] = {
            "labeler_serve_s": round(cold_s, 2),
            "import_argilla_server_app_s": round(import_s, 2),
            "ratio": round(cold_s / import_s, 2),
        }
        print("cold_start", out["cold_start"], flush=True)
        try:
            creds = server.credentials()
            # interleaved, best of three each: the server's own time varies run to run
            lab, bare = [], []
            for i in range(3):
                bare.append(bare_push(creds.url, creds.api_key, cfg, f"bench-bare-{i}"))
                name = "bench-push" if i == 2 else f"bench-push-{i}"
                lab.append(labeler_push(cfg, name))
            out["push"] = {
                "records": N,
                "labeler_push_s": [round(x, 2) for x in lab],
                "bare_sdk_log_s": [round(x, 2) for x in bare],
                "ratio_best": round(min(lab) / min(bare), 3),
            }
            print("push", out["push"], flush=True)
            submit_all(f"{creds.url}|{server.secrets_path}", creds.api_key, "bench-push")
            pull_s = bare_pull(creds.url, creds.api_key)
            t = time.perf_counter()
            summary = run_sync(cfg)
            sync_s = time.perf_counter() - t
            assert summary.newly_decided == N, summary
            out["sync"] = {
                "responses": N,
                "labeler_sync_s": round(sync_s, 2),
                "bare_sdk_list_with_responses_s": round(pull_s, 2),
                "ratio": round(sync_s / pull_s, 2),
            }
            print("sync", out["sync"], flush=True)
            small = push_rss(Path(tmp) / "rss-small", creds, 600, 1000)
            big = push_rss(Path(tmp) / "rss-big", creds, 6000, 1000)
            out["push_memory"] = {
                "words_per_response": 1000,
                "labeler": big,
                "baseline": small,
                "ratio": round(max(big["growth_mb"], 1.0) / max(small["growth_mb"], 1.0), 2),
            }
            print("push_memory", out["push_memory"], flush=True)
        finally:
            server.stop()
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
