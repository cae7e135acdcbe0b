"""The judge client: the only module that imports ``openai``.

It speaks the OpenAI chat-completions protocol to any compatible endpoint (OpenAI, vLLM,
Ollama, llama.cpp's server, ...). The ``openai`` client does the retries: exponential
backoff with jitter, and it honours ``Retry-After`` / ``retry-after-ms`` on 429 and 5xx.

Each call returns a plain ``JudgeReply``; vendor exceptions are sorted into three kinds:

* fatal (bad key, no permission, unknown model) -> ``JudgeError``: the round stops;
* permanent for this request (400/422) -> a reply with ``error`` and ``permanent=True``;
* transient after all retries (timeouts, 429, 5xx, dropped connections, garbage bodies)
  -> a reply with ``error``: the pair stays unjudged and the next run retries it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from labeler.config import JudgeConfig
from labeler.errors import JudgeError
from labeler.verdicts import TokenLogprobs

LOGPROB_POSITIONS_KEPT = 4  # the verdict token is among the first few; keep only those
REACH_TIMEOUT_S = 5.0
# a request parameter an endpoint may refuse, as its 400 names it
# how endpoints say a parameter is not taken at all (as opposed to a bad value)
_UNSUPPORTED = re.compile(
    r"unsupported|not supported|unrecognized|unknown (?:parameter|field|argument)"
    r"|not allowed|does not support|only the default|extra (?:inputs|fields)",
    re.IGNORECASE,
)
_PARAM = re.compile(
    r"\b(max_completion_tokens|max_tokens|temperature|top_logprobs|logprobs)\b", re.I
)


def check_reachable(base_url: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Fail fast when the endpoint cannot be reached at all (DNS, refused, no route,
    timeout): one TCP connection before a round, so an outage stops the round in seconds,
    naming the URL, instead of spending every pair's retries. Skipped behind a proxy (the
    client reaches the endpoint through it)."""
    import os
    import socket
    import urllib.parse
    import urllib.request

    url = urllib.parse.urlsplit(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise JudgeError(f"judge.base_url = {base_url!r} is not an http(s) URL")
    proxies = urllib.request.getproxies()
    if url.scheme in proxies and not urllib.request.proxy_bypass(url.hostname):
        return
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        raise JudgeError(f"judge.base_url = {base_url!r} has an invalid port") from None
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
    except socket.gaierror:
        raise JudgeError(
            f"judge at {base_url} cannot be reached: unknown host {url.hostname!r}; "
            "check judge.base_url"
        ) from None
    except TimeoutError:
        raise JudgeError(
            f"judge at {base_url} cannot be reached: no answer in {timeout_s:.0f} s; "
            "check judge.base_url and your network"
        ) from None
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise JudgeError(
            f"judge at {base_url} cannot be reached: {reason}; is the server running? "
            "(check judge.base_url)"
        ) from None


@dataclass(frozen=True)
class JudgeReply:
    text: str | None
    positions: list[TokenLogprobs] | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    error: str | None = None
    permanent: bool = False
    cached_tokens: int = 0  # input tokens served from the endpoint's prompt cache


class OpenAIJudge:
    """Async judge over ``openai.AsyncOpenAI``; create inside a running event loop."""

    def __init__(
        self, cfg: JudgeConfig, api_key: str | None, adapted: dict[str, Any] | None = None
    ):
        """``adapted``: what earlier runs learned this endpoint refuses (see ``_adapt``)."""
        import openai

        self._openai = openai
        self.cfg = cfg
        self.client = openai.AsyncOpenAI(
            base_url=cfg.base_url,
            api_key=api_key or "no-key-needed",
            timeout=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )
        self.adapted: dict[str, Any] = dict(adapted or {})

    def _request(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.cfg.model, "messages": messages}
        body[self.adapted.get("token_param", "max_tokens")] = self.cfg.max_tokens
        if not self.adapted.get("no_temperature"):
            sampling = self.cfg.samples > 1  # replies must differ to vote
            body["temperature"] = self.cfg.sample_temperature if sampling else self.cfg.temperature
        if self.cfg.logprobs and not self.adapted.get("no_logprobs"):
            body["logprobs"] = True
            body["top_logprobs"] = self.cfg.top_logprobs
        return body

    def _adapt(self, message: str, sent: dict[str, Any]) -> bool:
        """A 400 that names a parameter this endpoint does not take (reasoning models
        refuse ``max_tokens`` for ``max_completion_tokens``, and a fixed ``temperature``;
        many endpoints have no logprobs): ask again without it (True). What was learned is
        kept in ``adapted`` (the caller stores it for later runs). The refused parameter
        is the first one the message names; requests in flight may already be adapted."""
        named = _PARAM.search(message)
        if named is None or not _UNSUPPORTED.search(message):
            return False  # a value out of range, say: the request is wrong, not the form
        refused = named.group(1).lower()
        if refused not in sent:
            return False
        if refused == "max_tokens":
            self.adapted["token_param"] = "max_completion_tokens"
        elif refused == "max_completion_tokens":
            self.adapted["token_param"] = "max_tokens"
        elif refused == "temperature":
            self.adapted["no_temperature"] = True
        else:  # logprobs / top_logprobs: confidence then comes from HIGH / LOW
            self.adapted["no_logprobs"] = True
        return True

    async def judge(self, messages: list[dict[str, str]]) -> JudgeReply:
        o = self._openai
        start = time.perf_counter()
        last = ""
        for _ in range(4):  # each adaptation happens at most once
            body = self._request(messages)
            try:
                resp = await self.client.chat.completions.create(**body)
            except o.BadRequestError as exc:
                last = _short(exc)
                if self._adapt(str(exc), body):
                    continue
                return self._failed(start, f"{exc.status_code}: {_short(exc)}", permanent=True)
            except Exception as exc:  # sorted below, as before
                return self._sorted(exc, start)
            return self._reply(resp, time.perf_counter() - start)
        return self._failed(start, f"400: every form of the request refused, last: {last}", True)

    def _sorted(self, exc: Exception, start: float) -> JudgeReply:
        """A failed request's reply, or JudgeError when retrying cannot help."""
        o = self._openai
        if isinstance(exc, (o.AuthenticationError, o.PermissionDeniedError)):
            raise JudgeError(
                f"judge at {self.cfg.base_url} refused the API key "
                f"({exc.status_code}); check the variable named by "
                "judge.api_key_env"
            ) from None
        if isinstance(exc, o.NotFoundError):
            raise JudgeError(
                f"judge at {self.cfg.base_url}: model '{self.cfg.model}' or "
                "the chat completions route was not found (404); check "
                "judge.model and judge.base_url"
            ) from None
        if isinstance(exc, o.UnprocessableEntityError):
            return self._failed(start, f"{exc.status_code}: {_short(exc)}", permanent=True)
        if isinstance(exc, o.APIStatusError):
            return self._failed(start, f"{exc.status_code} after retries: {_short(exc)}")
        if isinstance(exc, o.APITimeoutError):
            return self._failed(start, f"timeout after {self.cfg.timeout_s}s and retries")
        if isinstance(exc, o.APIConnectionError):
            return self._failed(start, f"connection failed after retries: {_short(exc)}")
        if isinstance(exc, (o.OpenAIError, ValueError)):  # ValueError: a body not JSON
            return self._failed(start, f"unusable response: {_short(exc)}")
        raise exc

    def _failed(self, start: float, error: str, permanent: bool = False) -> JudgeReply:
        return JudgeReply(None, None, 0, 0, time.perf_counter() - start, error, permanent)

    def _reply(self, resp: Any, latency: float) -> JudgeReply:
        usage = getattr(resp, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        choices = getattr(resp, "choices", None) or []
        if not choices or getattr(choices[0], "message", None) is None:
            billed = tokens_in + tokens_out > 0
            return JudgeReply(
                None,
                None,
                tokens_in,
                tokens_out,
                latency,
                error="a billed reply with no choices" if billed else "reply has no choices",
                # asking again would be paid again for the same nothing: humans decide it
                permanent=billed,
            )
        choice = choices[0]
        positions: list[TokenLogprobs] | None = None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if content:
            positions = [
                (
                    t.token,
                    float(t.logprob),
                    [(a.token, float(a.logprob)) for a in (t.top_logprobs or [])],
                )
                for t in content[:LOGPROB_POSITIONS_KEPT]
            ]
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        return JudgeReply(
            choice.message.content, positions, tokens_in, tokens_out, latency, cached_tokens=cached
        )

    async def aclose(self) -> None:
        await self.client.close()


def _short(exc: Exception, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
