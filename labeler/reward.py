"""The reward model's server: the only module that speaks its HTTP routes.

``verify.api`` names how the reward model is served, as teams serve them:

* ``vllm_pooling`` — ``vllm serve <reward model>`` (a ``*ForRewardModeling`` or
  ``*RewardModel``): ``POST /pooling`` with the conversation as chat messages, one request
  per response (the server applies the model's chat template). The reply's
  ``data[0].data`` is the model's output, per token or pooled; the reward is the last
  token's single value.
* ``vllm_classify`` — a one-output sequence classifier under vLLM: ``POST /classify`` with
  ``input`` a list of texts (prompt, a blank line, the response), ``verify.batch_size`` per
  request; the reward is each item's one value of ``probs``.
* ``tei`` — Hugging Face text-embeddings-inference with a classification reward model
  (``--model-id OpenAssistant/reward-model-deberta-v3-large-v2``): ``POST /predict`` with
  ``inputs`` a list of (prompt, response) pairs and ``raw_scores`` true; the reward is each
  item's one score.

Requests run ``verify.concurrency`` at a time; 429, 5xx and timeouts are retried up to
``verify.max_retries`` times with backoff (``Retry-After`` honoured up to 30 s); any other
4xx is final. A reply in another shape is a ``RewardError`` naming the route and what was
expected. Plain HTTP (the standard library): no vendor client.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from labeler.config import VerifyConfig
from labeler.errors import RewardError

Item = tuple[str, str]  # (prompt, response)
ROUTES = {"vllm_pooling": "/pooling", "vllm_classify": "/classify", "tei": "/predict"}
RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


def render(prompt: str, response: str) -> str:
    """The text a sequence classifier reads (``vllm_classify``)."""
    return f"{prompt}\n\n{response}"


def request_bodies(
    api: str, model: str, items: Sequence[Item], batch: int
) -> list[tuple[list[int], dict[str, Any]]]:
    """The requests that score ``items``: (the items' indices, the JSON body) each."""
    named = {"model": model} if model else {}
    if api == "vllm_pooling":
        return [
            (
                [i],
                {
                    **named,
                    "messages": [
                        {"role": "user", "content": p},
                        {"role": "assistant", "content": r},
                    ],
                },
            )
            for i, (p, r) in enumerate(items)
        ]
    out = []
    for start in range(0, len(items), batch):
        idx = list(range(start, min(start + batch, len(items))))
        body: dict[str, Any]
        if api == "vllm_classify":
            body = {**named, "input": [render(*items[i]) for i in idx]}
        else:
            body = {"inputs": [list(items[i]) for i in idx], "raw_scores": True}
        out.append((idx, body))
    return out


def _number(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise RewardError(f"{where}: a score must be a finite number, got {json.dumps(x)[:60]}")
    return float(x)


def parse_scores(api: str, reply: Any, n: int, where: str) -> list[float]:
    """The ``n`` rewards in a reply of ``api``'s route, in request order."""
    try:
        if api == "tei":
            items = reply
            if n == 1 and isinstance(items, list) and items and isinstance(items[0], dict):
                items = [items]  # one input: TEI may answer without the outer list
            out = []
            for entry in items:
                if len(entry) != 1:
                    raise RewardError(
                        f"{where}: the model gives {len(entry)} scores per input; verify needs "
                        "a reward model with one output"
                    )
                out.append(_number(entry[0]["score"], where))
        else:
            data = sorted(reply["data"], key=lambda d: d.get("index", 0))
            out = []
            for d in data:
                if api == "vllm_classify":
                    probs = d["probs"]
                    if len(probs) != 1:
                        raise RewardError(
                            f"{where}: the classifier has {len(probs)} classes; "
                            'verify.api = "vllm_classify" needs one output (a reward '
                            'classifier), or use "vllm_pooling" for a reward model'
                        )
                    out.append(_number(probs[0], where))
                    continue
                x = d["data"]
                while isinstance(x, list) and x and isinstance(x[-1], list):
                    x = x[-1]  # per token: the last token's output
                if isinstance(x, list):
                    if len(x) != 1:
                        raise RewardError(
                            f"{where}: the model gives {len(x)} values per token; verify "
                            "needs a reward model with one"
                        )
                    x = x[0]
                out.append(_number(x, where))
    except RewardError:
        raise
    except (KeyError, TypeError, IndexError, AttributeError, ValueError):
        raise RewardError(
            f"{where}: the reply is not what {api} answers ({json.dumps(reply)[:80]}); check "
            "verify.api"
        ) from None
    if len(out) != n:
        raise RewardError(f"{where}: {len(out)} scores for {n} responses")
    return out


@dataclass(frozen=True)
class Call:
    """One request that returned: how many responses it scored, in how long."""

    items: int
    latency_ms: float
    attempts: int


class RewardClient:
    """Scores (prompt, response) items on the server ``cfg`` names."""

    def __init__(self, cfg: VerifyConfig, environ: Mapping[str, str] | None = None) -> None:
        if not cfg.base_url:
            raise RewardError(
                "verify.base_url is empty: set it to the reward model's server "
                "(e.g. http://127.0.0.1:8000 for `vllm serve <reward model>`)"
            )
        self.cfg = cfg
        env = os.environ if environ is None else environ
        token = env.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.url = cfg.base_url.rstrip("/") + ROUTES[cfg.api]

    def score(
        self,
        items: Sequence[Item],
        on_scored: Callable[[list[int], list[float], Call], None],
    ) -> None:
        """Score every item; ``on_scored(indices, scores, call)`` runs in this thread as
        each request returns (so the caller stores them as they come). The first final
        failure stops the rest and is raised; what was scored before it was handed over."""
        bodies = request_bodies(self.cfg.api, self.cfg.model, items, self.cfg.batch_size)
        if not bodies:
            return
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            pending: dict[Future[tuple[list[float], Call]], list[int]] = {
                pool.submit(self._post, body, len(idx)): idx for idx, body in bodies
            }
            while pending:
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    idx = pending.pop(future)
                    try:
                        scores, call = future.result()
                    except BaseException:
                        for other in pending:
                            other.cancel()
                        raise
                    on_scored(idx, scores, call)

    def _post(self, body: dict[str, Any], n: int) -> tuple[list[float], Call]:
        data = json.dumps(body).encode()
        started = time.monotonic()
        for attempt in range(self.cfg.max_retries + 1):
            request = urllib.request.Request(self.url, data=data, headers=self.headers)
            wait_s = min(0.2 * 2**attempt, 10.0)
            try:
                with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as reply:
                    parsed = json.loads(reply.read())
            except urllib.error.HTTPError as exc:
                text = " ".join(exc.read().decode(errors="replace").split())[:160]
                if exc.code not in RETRYABLE or attempt == self.cfg.max_retries:
                    raise RewardError(
                        f"{self.url}: HTTP {exc.code} {text}".rstrip()
                        + ("" if exc.code not in RETRYABLE else f" after {attempt + 1} tries")
                    ) from None
                after = exc.headers.get("Retry-After", "") if exc.headers else ""
                if after.replace(".", "", 1).isdigit():
                    wait_s = min(float(after), 30.0)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.cfg.max_retries:
                    reason = getattr(exc, "reason", exc)
                    raise RewardError(
                        f"{self.url}: not reachable ({reason}) after {attempt + 1} tries; is "
                        "the reward model's server running (verify.base_url)?"
                    ) from None
            except json.JSONDecodeError:
                raise RewardError(f"{self.url}: the reply is not JSON") from None
            else:
                scores = parse_scores(self.cfg.api, parsed, n, self.url)
                latency = (time.monotonic() - started) * 1000
                return scores, Call(n, latency, attempt + 1)
            time.sleep(wait_s)
        raise AssertionError("unreachable")  # the loop returns or raises
