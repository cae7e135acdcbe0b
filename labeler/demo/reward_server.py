"""A real HTTP server speaking a reward model's routes, for tests, benchmarks and the demo.

It answers the shapes ``labeler.reward`` reads, as the real servers send them:

* vLLM's ``POST /pooling`` (chat ``messages``): ``{"object": "list", "data": [{"index":
  0, "object": "pooling", "data": [[r_1], ..., [r_T]]}], "usage": ...}``: one value per
  token, the last one the sequence's reward (as vLLM's ALL pooling of a reward model);
* vLLM's ``POST /classify`` (``input`` a list of texts): ``{"data": [{"index": i, "label":
  "LABEL_0", "probs": [sigmoid(s)], "num_classes": 1}, ...]}`` (vLLM's activation of a
  one-output classifier);
* text-embeddings-inference's ``POST /predict`` (``inputs`` a list of [text, text_pair]):
  ``[[{"score": s, "label": "LABEL_0"}], ...]``.

What it scores is decided by a *scorer*, ``(prompt, response) -> float``; the demo's is a
stated noise model over the demo pairs' known answers (``demo_scorer``). Faults for tests:
the first ``fail_first`` requests get 500, ``status`` answers every request with that
status, ``malformed`` sends a score that is not a number. Every request is counted.

Run it alone with ``python -m labeler.demo.reward_server --port 8012`` (a constant scorer).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Scorer = Callable[[str, str], float]


@dataclass
class Faults:
    fail_first: int = 0  # the first N requests get HTTP 500
    status: int = 0  # every request gets this status (e.g. 400), when set
    fail_after: int = 0  # requests after the first N get HTTP 400 (0: none)
    malformed: bool = False  # scores are strings


@dataclass
class RewardServer:
    scorer: Scorer
    faults: Faults = field(default_factory=Faults)
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[tuple[str, int]] = field(default_factory=list)  # (route, items)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                status, reply = server.answer(self.path, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.httpd.server_address[1]}"

    def start(self) -> RewardServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> RewardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        items = list(_items(path, body))
        with self._lock:
            self.requests.append((path, len(items)))
            number = len(self.requests)
        if self.faults.status or (self.faults.fail_after and number > self.faults.fail_after):
            status = self.faults.status or 400
            return status, {"error": {"message": "bad request", "code": status}}
        if number <= self.faults.fail_first:
            return 500, {"error": {"message": "overloaded"}}
        scores: list[Any] = [self.scorer(p, r) for p, r in items]
        if self.faults.malformed:
            scores = [f"{s:.2f}" for s in scores]
        if path == "/pooling":
            tokens = max(2, len(items[0][1].split()) // 4)
            per_token = [[0.01 * t] for t in range(tokens - 1)] + [[scores[0]]]
            return 200, {
                "id": "pool-1",
                "object": "list",
                "data": [{"index": 0, "object": "pooling", "data": per_token}],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        if path == "/classify":
            return 200, {
                "id": "classify-1",
                "object": "list",
                "data": [
                    # vLLM applies a sigmoid to a one-output classifier
                    {"index": i, "label": "LABEL_0", "probs": [_sigmoid(s)], "num_classes": 1}
                    for i, s in enumerate(scores)
                ],
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        if path == "/predict":
            return 200, [[{"score": s, "label": "LABEL_0"}] for s in scores]
        return 404, {"error": {"message": f"no route {path}"}}


def _sigmoid(x: Any) -> Any:
    return x if isinstance(x, str) else 1.0 / (1.0 + math.exp(-x))


def _items(path: str, body: dict[str, Any]) -> Iterable[tuple[str, str]]:
    if path == "/pooling":
        messages = body["messages"]
        yield messages[0]["content"], messages[-1]["content"]
    elif path == "/classify":
        for text in body["input"]:
            prompt, _, response = text.partition("\n\n")
            yield prompt, response
    elif path == "/predict":
        for pair in body["inputs"]:
            yield pair[0], pair[1]


def _unit(*parts: str) -> float:
    """A uniform draw in [0, 1) fixed by the texts (the same response scores the same)."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def demo_scorer(good: dict[tuple[str, str], bool], noise: float = 0.35, seed: int = 0) -> Scorer:
    """A reward model with a stated noise model: a response known to be the better one of
    its pair scores 1, the worse 0, each plus Gaussian noise of standard deviation
    ``noise`` (fixed per text by ``seed``), so a pair's margin is 1 + N(0, 2 noise^2):
    with 0.35 it ranks the pair right about 98% of the time. Unknown texts score 0.5."""

    def score(prompt: str, response: str) -> float:
        base = good.get((prompt, response))
        value = 0.5 if base is None else float(base)
        rng = random.Random(_unit(str(seed), prompt, response))
        return value + rng.gauss(0.0, noise)

    return score


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8012)
    args = parser.parse_args(argv)
    server = RewardServer(lambda p, r: 0.0, host=args.host, port=args.port)
    print(f"reward model (constant 0.0) on {server.url}: /pooling /classify /predict")
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
