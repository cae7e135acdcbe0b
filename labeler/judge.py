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
from dataclasses import dataclass, replace
from typing import Any

from labeler.config import JudgeConfig
from labeler.errors import JudgeError, check_url, redact, shown_url
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
    import urllib.request

    url, port = check_url(base_url)
    assert url.hostname is not None
    proxies = urllib.request.getproxies()
    if url.scheme in proxies and not urllib.request.proxy_bypass(url.hostname):
        return
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
    except socket.gaierror:
        raise JudgeError(
            f"judge at {shown_url(base_url)} cannot be reached: unknown host {url.hostname!r}; "
            "check judge.base_url"
        ) from None
    except TimeoutError:
        raise JudgeError(
            f"judge at {shown_url(base_url)} cannot be reached: no answer in {timeout_s:.0f} s; "
            "check judge.base_url and your network"
        ) from None
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise JudgeError(
            f"judge at {shown_url(base_url)} cannot be reached: {reason}; is the server running? "
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


def request_body(
    cfg: JudgeConfig, adapted: dict[str, Any], messages: list[dict[str, str]]
) -> dict[str, Any]:
    """The chat-completions request for ``messages``, in the form this endpoint takes
    (``adapted``: what earlier runs learned it refuses)."""
    body: dict[str, Any] = {"model": cfg.model, "messages": messages}
    body[adapted.get("token_param", "max_tokens")] = cfg.max_tokens
    if not adapted.get("no_temperature"):
        sampling = cfg.samples > 1  # replies must differ to vote
        body["temperature"] = cfg.sample_temperature if sampling else cfg.temperature
    if cfg.logprobs and not adapted.get("no_logprobs"):
        body["logprobs"] = True
        body["top_logprobs"] = cfg.top_logprobs
    return body


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
        self._key, self.url = api_key, shown_url(cfg.base_url)  # as messages show them

    def _request(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        return request_body(self.cfg, self.adapted, messages)

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
                last = self._text(exc)
                if self._adapt(str(exc), body):
                    continue
                return self._failed(start, f"{exc.status_code}: {self._text(exc)}", permanent=True)
            except Exception as exc:  # sorted below, as before
                return self._sorted(exc, start)
            if isinstance(resp, str):  # not JSON: the client hands back the body's text
                raise JudgeError(
                    f"judge at {self.url} answered with text, not the OpenAI API's JSON (a "
                    "web page?); check judge.base_url (an OpenAI-compatible API's address "
                    "usually ends in /v1)"
                )
            return without_key(self._reply(resp, time.perf_counter() - start), self._key)
        return self._failed(start, f"400: every form of the request refused, last: {last}", True)

    def _sorted(self, exc: Exception, start: float) -> JudgeReply:
        """A failed request's reply, or JudgeError when retrying cannot help."""
        o = self._openai
        if isinstance(exc, (o.AuthenticationError, o.PermissionDeniedError)):
            raise JudgeError(
                f"judge at {self.url} refused the API key "
                f"({exc.status_code}); check the variable named by "
                "judge.api_key_env"
            ) from None
        if isinstance(exc, o.NotFoundError):
            raise JudgeError(
                f"judge at {self.url}: model '{self.cfg.model}' or "
                "the chat completions route was not found (404); check "
                "judge.model and judge.base_url"
            ) from None
        if isinstance(exc, o.UnprocessableEntityError):
            return self._failed(start, f"{exc.status_code}: {self._text(exc)}", permanent=True)
        if isinstance(exc, o.APIStatusError):
            return self._failed(start, f"{exc.status_code} after retries: {self._text(exc)}")
        if isinstance(exc, o.APITimeoutError):
            return self._failed(start, f"timeout after {self.cfg.timeout_s}s and retries")
        if isinstance(exc, o.APIConnectionError):
            return self._failed(start, f"connection failed after retries: {self._text(exc)}")
        if isinstance(exc, (o.OpenAIError, ValueError)):  # ValueError: a body not JSON
            return self._failed(start, f"unusable response: {self._text(exc)}")
        raise exc

    def _text(self, exc: Exception) -> str:
        return _short(exc, self._key)

    def _failed(self, start: float, error: str, permanent: bool = False) -> JudgeReply:
        error = redact(error, self._key)  # an endpoint may echo the key in its error
        return JudgeReply(None, None, 0, 0, time.perf_counter() - start, error, permanent)

    @staticmethod
    def _reply(resp: Any, latency: float) -> JudgeReply:
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


# -- the Batch API ------------------------------------------------------------------------

BATCH_ENDPOINT = "/v1/chat/completions"
BATCH_METADATA_KEY = "labeler_batch"
BATCH_RUNNING = ("validating", "in_progress", "finalizing", "cancelling")


@dataclass(frozen=True)
class BatchState:
    """A batch as the endpoint reports it."""

    status: str  # validating | in_progress | finalizing | completed | failed | expired | ...
    output_file_id: str | None
    error_file_id: str | None
    message: str | None = None  # why a failed batch failed

    @property
    def running(self) -> bool:
        return self.status in BATCH_RUNNING


class OpenAIBatches:
    """The OpenAI Batch API (files and batches endpoints), 50% off the online price."""

    def __init__(self, cfg: JudgeConfig, api_key: str | None):
        import openai

        self._openai = openai
        self.cfg = cfg
        self.client = openai.OpenAI(
            base_url=cfg.base_url,
            api_key=api_key or "no-key-needed",
            timeout=max(cfg.timeout_s, 300.0),  # files can be large
            max_retries=cfg.max_retries,
        )
        self.key, self.url = api_key, shown_url(cfg.base_url)  # as messages show them

    def _text(self, exc: Exception) -> str:
        return _short(exc, self.key)

    def _call(self, what: str, fn: Any, *args: Any, absent_ok: bool = False, **kwargs: Any) -> Any:
        """``fn``'s answer; None for a 404 when ``absent_ok``; else a one-line JudgeError."""
        o = self._openai
        try:
            return fn(*args, **kwargs)
        except o.NotFoundError:
            if absent_ok:
                return None
            raise JudgeError(
                f"judge at {self.url} does not offer the Batch API ({what}: 404); "
                "run `labeler round --online` to judge the round online (full price)"
            ) from None
        except (o.AuthenticationError, o.PermissionDeniedError) as exc:
            raise JudgeError(
                f"judge at {self.url} refused the API key for the Batch API "
                f"({exc.status_code}); check the variable named by judge.api_key_env"
            ) from None
        except o.OpenAIError as exc:
            raise JudgeError(
                f"judge at {self.url}: Batch API {what} failed "
                f"({self._text(exc)}); "
                "run the command again (nothing is paid twice)"
            ) from None

    def upload(self, path: Any) -> str:
        """Upload a request file (purpose "batch"); its file id."""
        data = path.read_bytes()
        made = self._call(
            "file upload", self.client.files.create, file=(path.name, data), purpose="batch"
        )
        return str(made.id)

    def find(self, key: str, absent_ok: bool = False) -> str | None:
        """The id of a batch created earlier with ``key`` in its metadata (a run killed
        after creating it, before storing its id), else None. ``absent_ok``: a 404 on the
        batch list means none (an endpoint without the Batch API; ``round --online``),
        else it is an error (a resumed submit must not create a second batch)."""
        page = self._call("batch list", self.client.batches.list, limit=100, absent_ok=absent_ok)
        if page is None:
            return None
        for batch in page.auto_paging_iter() if hasattr(page, "auto_paging_iter") else page:
            if (getattr(batch, "metadata", None) or {}).get(BATCH_METADATA_KEY) == key:
                return str(batch.id)
        return None

    def create(self, file_id: str, key: str) -> str:
        made = self._call(
            "batch create",
            self.client.batches.create,
            input_file_id=file_id,
            endpoint=BATCH_ENDPOINT,
            completion_window="24h",
            metadata={BATCH_METADATA_KEY: key},
        )
        return str(made.id)

    def state(self, batch_id: str) -> BatchState | None:
        """The batch's state; None when the endpoint does not know it (a 404 for the batch
        while its batch list answers: the key changed since it was made, or the provider
        dropped it). An endpoint without the Batch API at all (the list 404s too: another
        judge.base_url) is an error: the batch may still run where it was made."""
        b = self._call("batch status", self.client.batches.retrieve, batch_id, absent_ok=True)
        if b is None:
            if self._call("batch list", self.client.batches.list, limit=1, absent_ok=True) is None:
                raise JudgeError(  # (not a batch lost: the endpoint has no Batch API at all)
                    f"judge at {self.url} does not offer the Batch API (batch status and list: "
                    f"404), but batch {batch_id} was made at one: restore judge.base_url to the "
                    "endpoint that holds it and run `labeler batches` (there `labeler round "
                    "--online` can give it up)"
                )
            return None
        errors = getattr(getattr(b, "errors", None), "data", None) or []
        message = "; ".join(str(getattr(e, "message", e)) for e in errors[:3]) or None
        message = message and redact(message, self.key)
        return BatchState(
            str(b.status),
            getattr(b, "output_file_id", None),
            getattr(b, "error_file_id", None),
            message,
        )

    def download(self, file_id: str, path: Any) -> None:
        """Write a result file to ``path`` (through a temporary file: a killed download
        leaves no half file under the name)."""
        content = self._call("file download", self.client.files.content, file_id)
        tmp = path.with_name(f".{path.name}.tmp")
        content.write_to_file(tmp)
        tmp.replace(path)

    def close(self) -> None:
        self.client.close()


def batch_result(line: dict[str, Any], key: str | None = None) -> tuple[str, JudgeReply]:
    """One line of a batch's output or error file: its custom_id and the reply, as an
    online request would have got it (a 400 / 422 is permanent, other failures are
    transient: the request is asked again in a later batch)."""
    from openai.types.chat import ChatCompletion

    custom_id = str(line.get("custom_id", ""))
    response = line.get("response") or {}
    status = int(response.get("status_code") or 0)
    body = response.get("body") or {}
    if status == 200 and not line.get("error"):
        try:
            reply = OpenAIJudge._reply(ChatCompletion.model_validate(body), 0.0)
            return custom_id, without_key(reply, key)
        except ValueError as exc:
            return custom_id, JudgeReply(None, None, 0, 0, 0.0, f"unusable response: {exc}")
    error = line.get("error") or body.get("error") or {}
    message = redact(" ".join(str(error.get("message", "") or error).split()), key)[:160]
    permanent = status in (400, 422)
    return custom_id, JudgeReply(
        None, None, 0, 0, 0.0, f"{status or 'error'} (batch): {message}", permanent
    )


def without_key(reply: JudgeReply, key: str | None) -> JudgeReply:
    """``reply`` with the API key masked in its text, should the endpoint have echoed it
    (the text is stored and shown to reviewers)."""
    if reply.text and key and key in reply.text:
        return replace(reply, text=redact(reply.text, key))
    return reply


def _short(exc: Exception, key: str | None, limit: int = 160) -> str:
    """An error's text on one line, the API key in it (an echo) masked, then cut."""
    text = redact(" ".join(str(exc).split()), key)
    return text if len(text) <= limit else text[: limit - 3] + "..."
