"""The reward model's server: the only module that speaks its HTTP routes.

``verify.api`` names how the reward model is served, as teams serve them:

* ``vllm_pooling`` — ``vllm serve <reward model>`` (a ``*ForRewardModeling`` or
  ``*RewardModel``): ``POST /pooling`` with the conversation as chat messages, one request
  per response (the server applies the model's chat template). The reply's
  ``data[0].data`` is the model's output, per token or pooled; the reward is the last
  token's single value.
* ``vllm_classify`` — a one-output sequence classifier under vLLM: ``POST /classify`` with
  ``input`` a list of texts (prompt, a blank line, the response), ``verify.batch_size`` per
  request; vLLM answers a sigmoid of the classifier's logit in ``probs``, and the reward is
  that logit (so margins are in the model's units, as with the other routes).
* ``tei`` — Hugging Face text-embeddings-inference with a classification reward model
  (``--model-id OpenAssistant/reward-model-deberta-v3-large-v2``): ``POST /predict`` with
  ``inputs`` a list of (prompt, response) pairs and ``raw_scores`` true; the reward is each
  item's one score.

Inputs longer than the model takes are cut to its length (vLLM's
``truncate_prompt_tokens: -1``, TEI's ``truncate``), not refused. Requests run
``verify.concurrency`` at a time, and each request's scores are handed over as it returns
(stored at once: an interrupted verify keeps what was paid for); 429, 5xx and timeouts are
retried up to ``verify.max_retries`` times with backoff (``Retry-After`` honoured up to
30 s); any other 4xx is final. A reply in another shape is a ``RewardError`` naming the
route and what was expected. Plain HTTP (the standard library): no vendor client.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from labeler.config import VerifyConfig
from labeler.errors import RewardError, check_url, shown_url

Item = tuple[str, str]  # (prompt, response)
Body = dict[str, Any]
RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


def render(prompt: str, response: str) -> str:
    """The text a sequence classifier reads (``vllm_classify``)."""
    return f"{prompt}\n\n{response}"


def _number(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise RewardError(f"{where}: a score must be a finite number, got {json.dumps(x)[:60]}")
    return float(x)


def _one(values: Sequence[Any], where: str, what: str) -> Any:
    if len(values) != 1:
        raise RewardError(
            f"{where}: the model gives {len(values)} {what}; verify needs a reward model "
            "with one output"
        )
    return values[0]


def _pooling_body(model: Body, items: Sequence[Item]) -> Body:
    ((prompt, response),) = items
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    # -1: cut to the model's length (a long response is scored, not refused)
    return {**model, "messages": messages, "truncate_prompt_tokens": -1}


def _pooling_scores(reply: Any, where: str) -> list[float]:
    out = []
    for d in sorted(reply["data"], key=lambda d: d.get("index", 0)):
        x = d["data"]
        while isinstance(x, list) and x and isinstance(x[-1], list):
            x = x[-1]  # one value per token: the last token's is the sequence's reward
        out.append(_number(_one(x, where, "values per token") if isinstance(x, list) else x, where))
    return out


def _classify_body(model: Body, items: Sequence[Item]) -> Body:
    return {**model, "input": [render(p, r) for p, r in items], "truncate_prompt_tokens": -1}


def _logit(p: float, where: str) -> float:
    if not 0.0 < p < 1.0:
        raise RewardError(f"{where}: a one-output classifier's probability must be in (0, 1)")
    return math.log(p / (1.0 - p))


def _classify_scores(reply: Any, where: str) -> list[float]:
    """vLLM applies a sigmoid to a one-output classifier's logit: the reward is its
    inverse (so margins are in the model's own units, as with /pooling and TEI)."""
    data = sorted(reply["data"], key=lambda d: d.get("index", 0))
    return [_logit(_number(_one(d["probs"], where, "classes"), where), where) for d in data]


def _tei_body(model: Body, items: Sequence[Item]) -> Body:
    return {"inputs": [[p, r] for p, r in items], "raw_scores": True, "truncate": True}


def _tei_scores(reply: Any, where: str) -> list[float]:
    if isinstance(reply, list) and reply and isinstance(reply[0], dict):
        reply = [reply]  # one input: TEI may answer without the outer list
    return [_number(_one(entry, where, "scores per input")["score"], where) for entry in reply]


@dataclass(frozen=True)
class Api:
    """How one way of serving reward models is spoken: its route, how many responses a
    request carries (0: ``verify.batch_size``), the body and how the scores are read."""

    route: str
    per_request: int
    body: Callable[[Body, Sequence[Item]], Body]
    scores: Callable[[Any, str], list[float]]


APIS = {
    "vllm_pooling": Api("/pooling", 1, _pooling_body, _pooling_scores),
    "vllm_classify": Api("/classify", 0, _classify_body, _classify_scores),
    "tei": Api("/predict", 0, _tei_body, _tei_scores),
}


def request_bodies(
    api: str, model: str, items: Sequence[Item], batch: int
) -> list[tuple[list[int], Body]]:
    """The requests that score ``items``: (the items' indices, the JSON body) each."""
    shape = APIS[api]
    size = shape.per_request or batch
    named = {"model": model} if model else {}
    out = []
    for start in range(0, len(items), size):
        idx = list(range(start, min(start + size, len(items))))
        out.append((idx, shape.body(named, [items[i] for i in idx])))
    return out


def parse_scores(api: str, reply: Any, n: int, where: str) -> list[float]:
    """The ``n`` rewards in a reply of ``api``'s route, in request order."""
    try:
        out = APIS[api].scores(reply, where)
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
        check_url(cfg.base_url, "verify.base_url")
        self.cfg = cfg
        env = os.environ if environ is None else environ
        token = env.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.url = cfg.base_url.rstrip("/") + APIS[cfg.api].route
        self.shown = shown_url(self.url)  # as messages show it

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
        pool = ThreadPoolExecutor(max_workers=self.cfg.concurrency)
        try:
            pending: dict[Future[tuple[list[float], Call]], list[int]] = {
                pool.submit(self._post, body, len(idx)): idx for idx, body in bodies
            }
            failure: BaseException | None = None
            while pending and failure is None:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:  # every success is handed over, even beside a failure
                    idx = pending.pop(future)
                    try:
                        scores, call = future.result()
                    except BaseException as exc:
                        failure = failure or exc
                        continue
                    on_scored(idx, scores, call)
            if failure is not None:
                raise failure
        finally:  # a failure or Ctrl-C: nothing queued is sent
            pool.shutdown(wait=True, cancel_futures=True)

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
                        f"{self.shown}: HTTP {exc.code} {text}".rstrip()
                        + ("" if exc.code not in RETRYABLE else f" after {attempt + 1} tries")
                    ) from None
                after = exc.headers.get("Retry-After", "") if exc.headers else ""
                if after.replace(".", "", 1).isdigit():
                    wait_s = min(float(after), 30.0)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.cfg.max_retries:
                    reason = getattr(exc, "reason", exc)
                    raise RewardError(
                        f"{self.shown}: not reachable ({reason}) after {attempt + 1} tries; is "
                        "the reward model's server running (verify.base_url)?"
                    ) from None
            except json.JSONDecodeError:
                raise RewardError(f"{self.shown}: the reply is not JSON") from None
            else:
                scores = parse_scores(self.cfg.api, parsed, n, self.shown)
                latency = (time.monotonic() - started) * 1000
                return scores, Call(n, latency, attempt + 1)
            time.sleep(wait_s)
        raise AssertionError("unreachable")  # the loop returns or raises
