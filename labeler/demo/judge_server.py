"""A real HTTP server speaking the OpenAI chat-completions protocol, for tests, benchmarks
and the offline demo.

It is a small HTTP/1.1 server on asyncio (keep-alive, Content-Length bodies) that answers
``POST .../chat/completions`` and ``GET .../models``. What it answers is decided per
request by a *responder*: a function of the decoded request that returns a ``Scripted``
reply — a verdict text with optional logprobs, or a fault to inject: an HTTP status (429
with ``Retry-After``, 500, ...), latency, a dropped connection, a truncated body, a body
that is not JSON, or a request that never gets an answer.

Run it alone with ``python -m labeler.demo.judge_server --port 8011``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labeler.demo.batch_api import Answer as BatchAnswer
from labeler.demo.batch_api import BatchAPI

_TAG = re.compile(r"<(prompt|response_a|response_b)>\n(.*?)\n</\1>", re.S)


@dataclass
class Scripted:
    """One reply. ``alternatives`` maps verdict tokens to probabilities for logprobs."""

    content: str | None = "A HIGH\nResponse A is better."
    alternatives: dict[str, float] | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # "drop" | "truncate" | "garbage" | "hang" | "no_usage" | "no_choices" | "html"
    fault: str | None = None
    completion_tokens: int | None = None
    error_message: str | None = None  # the error's text for a non-200 status
    cached_tokens: int = 0  # reported in usage.prompt_tokens_details (prompt caching)


@dataclass(frozen=True)
class Shown:
    """What the judge was shown: the prompt and the two responses as presented."""

    prompt: str
    a: str
    b: str
    body: dict[str, Any]


Responder = Callable[[Shown], Scripted]


def read_shown(body: dict[str, Any]) -> Shown:
    """Pull prompt and responses out of a request rendered with the built-in template tags."""
    text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    found = {m.group(1): m.group(2) for m in _TAG.finditer(text)}
    return Shown(
        found.get("prompt", ""), found.get("response_a", ""), found.get("response_b", ""), body
    )


def by_model(responders: dict[str, Responder]) -> Responder:
    """Several judges on one server: each request is answered by its ``model``'s
    responder (an unknown model gets OpenAI's 404 wording)."""

    def respond(shown: Shown) -> Scripted:
        model = str(shown.body.get("model", ""))
        if model not in responders:
            return Scripted(
                None,
                status=404,
                error_message=(
                    f"The model `{model}` does not exist or you do not have access to it."
                ),
            )
        return responders[model](shown)

    return respond


def always(content: str = "A HIGH\nbecause") -> Responder:
    return lambda shown: Scripted(content=content)


def _logprobs(content: str, alternatives: dict[str, float] | None) -> dict[str, Any] | None:
    if alternatives is None:
        return None
    tokens = content.split(" ", 1)
    first = tokens[0]
    top = [
        {"token": t, "logprob": math.log(max(p, 1e-12)), "bytes": list(t.encode())}
        for t, p in sorted(alternatives.items(), key=lambda kv: -kv[1])
    ]
    chosen = math.log(max(alternatives.get(first, 1e-12), 1e-12))
    entries = [
        {"token": first, "logprob": chosen, "bytes": list(first.encode()), "top_logprobs": top}
    ]
    if len(tokens) > 1:
        rest = " " + tokens[1]
        entries.append(
            {
                "token": rest,
                "logprob": -0.01,
                "bytes": list(rest.encode()),
                "top_logprobs": [{"token": rest, "logprob": -0.01, "bytes": list(rest.encode())}],
            }
        )
    return {"content": entries, "refusal": None}


def completion_body(body: dict[str, Any], reply: Scripted, number: int) -> dict[str, Any]:
    content = reply.content or ""
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
    out: dict[str, Any] = {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "test-judge"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": "stop",
                "logprobs": _logprobs(content, reply.alternatives)
                if body.get("logprobs")
                else None,
            }
        ],
    }
    if reply.fault == "no_choices":  # a billed 200 with nothing in it
        out["choices"] = []
    if reply.fault != "no_usage":
        tokens_in = max(1, prompt_chars // 4)
        tokens_out = reply.completion_tokens or max(1, len(content) // 4)
        out["usage"] = {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
            "prompt_tokens_details": {"cached_tokens": min(reply.cached_tokens, tokens_in)},
        }
    return out


class JudgeServer:
    """The server. ``start()`` runs it in a background thread; ``url`` is its base URL."""

    def __init__(
        self, responder: Responder, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0
    ):
        self.responder = responder
        self.host, self.port, self.latency = host, port, latency
        self.requests: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._number = 0
        self.batch_api = BatchAPI(self.complete)

    def complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """What this server answers a chat-completions request ``body``, without the
        network faults (for Batch API lines): (HTTP status, response body)."""
        reply = self.responder(read_shown(body))
        with self._lock:
            self._number += 1
            number = self._number
        if reply.status != 200:
            error = {"message": reply.error_message or f"injected {reply.status}"}
            return reply.status, {"error": error}
        return 200, completion_body(body, reply, number)

    async def _send_answer(self, writer: asyncio.StreamWriter, answer: BatchAnswer) -> bool:
        if answer.hang:
            await asyncio.sleep(3600)
        if answer.partial:
            half = answer.payload[: len(answer.payload) // 2]
            await _send_raw(writer, answer.status, half, answer.ctype, length=len(answer.payload))
            await asyncio.sleep(3600)
        await _send_raw(writer, answer.status, answer.payload, answer.ctype)
        return True

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> JudgeServer:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="judge-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("judge server did not start")
        return self

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, limit=2**24, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            # let each connection's handler close its socket before the loop stops
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> JudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def request_keys(self) -> Counter[str]:
        """How many times each distinct request content arrived (retries included)."""
        with self._lock:
            return Counter(self.attempts)

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (x.partition(":") for x in lines[1:] if x)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                keep = await self._respond(method, path, body, writer, headers)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()

    async def _respond(
        self,
        method: str,
        path: str,
        raw: bytes,
        writer: asyncio.StreamWriter,
        headers: dict[str, str] | None = None,
    ) -> bool:
        answer = self.batch_api.handle(method, path, headers or {}, raw)
        if answer is not None:
            return await self._send_answer(writer, answer)
        if method == "GET" and path.rstrip("/").endswith("/models"):
            await _send(
                writer,
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": "test-judge", "object": "model", "created": 0, "owned_by": "labeler"}
                    ],
                },
            )
            return True
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            await _send(
                writer,
                404,
                {
                    "error": {
                        "message": f"no route {method} {path}",
                        "type": "invalid_request_error",
                    }
                },
            )
            return True
        body = json.loads(raw)
        shown = read_shown(body)
        key = hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest()[
            :16
        ]
        with self._lock:
            self._number += 1
            number = self._number
            self.requests.append(body)
            self.arrivals.append(time.monotonic())
            self.attempts[key] += 1
        reply = self.responder(shown)
        delay = self.latency + reply.delay
        if delay:
            await asyncio.sleep(delay)
        if reply.fault == "hang":
            await asyncio.sleep(3600)
        if reply.fault == "drop":
            return False
        if reply.fault == "garbage":
            await _send_raw(writer, 200, b"this is not JSON {", "application/json")
            return True
        if reply.fault == "html":  # a web page where the API should be (a wrong base_url)
            await _send_raw(writer, 200, b"<!doctype html><title>Welcome</title>", "text/html")
            return True
        if reply.status != 200:
            await _send(
                writer,
                reply.status,
                {
                    "error": {
                        "message": reply.error_message or f"injected {reply.status}",
                        "type": "invalid_request_error" if reply.status == 400 else "server_error",
                    }
                },
                reply.headers,
            )
            return True
        payload = json.dumps(completion_body(body, reply, number)).encode()
        if reply.fault == "truncate":
            await _send_raw(
                writer, 200, payload[: len(payload) // 2], "application/json", length=len(payload)
            )
            return False
        await _send_raw(writer, 200, payload, "application/json", headers=reply.headers)
        return True


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


async def _send(
    writer: asyncio.StreamWriter, status: int, obj: Any, headers: dict[str, str] | None = None
) -> None:
    await _send_raw(writer, status, json.dumps(obj).encode(), "application/json", headers=headers)


async def _send_raw(
    writer: asyncio.StreamWriter,
    status: int,
    payload: bytes,
    ctype: str,
    length: int | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {length or len(payload)}\r\n"
        f"{extra}\r\n"
    ).encode()
    writer.write(head + payload)
    await writer.drain()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per reply")
    parser.add_argument("--reply", default="A HIGH\nbecause", help="fixed reply text")
    args = parser.parse_args(argv)
    alternatives = {"A": 0.9, "B": 0.08, "TIE": 0.02}
    serve_forever(
        JudgeServer(
            lambda shown: Scripted(args.reply, alternatives), args.host, args.port, args.latency
        )
    )


def serve_forever(server: JudgeServer) -> None:
    """Start ``server``, print its URL, and serve until Ctrl-C (the command-line entries)."""
    server.start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
