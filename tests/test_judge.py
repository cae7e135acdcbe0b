"""The openai-based judge client against the real local server, faults included."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from itertools import count
from typing import Any

import pytest

from labeler.config import JudgeConfig
from labeler.demo.judge_server import JudgeServer, Scripted, Shown
from labeler.errors import JudgeError
from labeler.judge import JudgeReply, OpenAIJudge, batch_result

MESSAGES = [{"role": "user", "content": "<prompt>\nq\n</prompt>"}]


def ask(server: JudgeServer, **kw: object) -> JudgeReply:
    cfg = JudgeConfig(
        **{
            "base_url": server.url,
            "api_key_required": False,
            "timeout_s": 2.0,
            "max_retries": 2,
            **kw,
        }
    )  # type: ignore[arg-type]

    async def go() -> JudgeReply:
        judge = OpenAIJudge(cfg, "test-key")
        try:
            return await judge.judge(MESSAGES)
        finally:
            await judge.aclose()

    return asyncio.run(go())


def first_then(fault: Scripted, times: int = 1) -> Callable[[Shown], Scripted]:
    n = count()
    ok = Scripted("B LOW\nfine", {"B": 0.6, "A": 0.3, "TIE": 0.1})
    return lambda shown: fault if next(n) < times else ok


def test_request_body_and_parsed_reply(judge_server) -> None:
    server = judge_server(lambda s: Scripted("A HIGH\nok", {"A": 0.9, "B": 0.08, "TIE": 0.02}))
    reply = ask(server, model="judge-x", max_tokens=33, top_logprobs=3)
    body = server.requests[0]
    assert body["model"] == "judge-x" and body["max_tokens"] == 33
    assert body["logprobs"] is True and body["top_logprobs"] == 3
    assert body["messages"] == MESSAGES and body["temperature"] == 0.0
    assert reply.text == "A HIGH\nok" and reply.error is None
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert reply.positions is not None
    token, _lp, alternatives = reply.positions[0]
    assert token == "A" and {a for a, _ in alternatives} == {"A", "B", "TIE"}


def test_no_logprobs_when_config_says_so(judge_server) -> None:
    server = judge_server()
    reply = ask(server, logprobs=False)
    assert "logprobs" not in server.requests[0] and reply.positions is None


def test_429_retry_after_is_honoured(judge_server) -> None:
    server = judge_server(first_then(Scripted(status=429, headers={"retry-after-ms": "400"})))
    reply = ask(server)
    assert reply.text == "B LOW\nfine"
    assert len(server.requests) == 2
    assert server.arrivals[1] - server.arrivals[0] >= 0.35


@pytest.mark.parametrize(
    "fault",
    [
        Scripted(status=500),
        Scripted(fault="drop"),
        Scripted(fault="truncate"),
        Scripted(status=503),
    ],
)
def test_transient_faults_are_retried(judge_server, fault: Scripted) -> None:
    server = judge_server(first_then(fault))
    reply = ask(server)
    assert reply.error is None and reply.text == "B LOW\nfine"
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        (Scripted(status=500), "500 after retries"),
        (Scripted(fault="drop"), "connection failed after retries"),
        (Scripted(fault="hang"), "timeout after 0.5s"),
        (Scripted(status=429, headers={"retry-after": "0"}), "429 after retries"),
    ],
)
def test_persistent_faults_become_transient_errors(
    judge_server, fault: Scripted, needle: str
) -> None:
    server = judge_server(lambda s: fault)
    reply = ask(server, max_retries=1, timeout_s=0.5)
    assert reply.error is not None and needle in reply.error
    assert not reply.permanent
    assert len(server.requests) == 2


def test_garbage_body_is_an_error_not_a_crash(judge_server) -> None:
    server = judge_server(lambda s: Scripted(fault="garbage"))
    reply = ask(server, max_retries=0)
    assert reply.error is not None and reply.text is None


def test_bad_request_is_permanent(judge_server) -> None:
    server = judge_server(lambda s: Scripted(status=400))
    reply = ask(server)
    assert reply.permanent and reply.error and reply.error.startswith("400")
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("status", "needle"),
    [
        (401, "refused the API key"),
        (403, "refused the API key"),
        (404, "'gpt-x' or the chat completions"),
    ],
)
def test_fatal_statuses_raise(judge_server, status: int, needle: str) -> None:
    server = judge_server(lambda s: Scripted(status=status))
    with pytest.raises(JudgeError, match=needle):
        ask(server, model="gpt-x")


def test_a_web_page_where_the_api_should_be_stops_with_the_url_to_check(judge_server) -> None:
    """A base_url pointing at a website (200, text/html) was 'reply has no choices' for
    every pair, which went to humans after the retries."""
    server = judge_server(lambda s: Scripted(fault="html"))
    with pytest.raises(JudgeError, match="answered with text, not the OpenAI API's JSON"):
        ask(server)


def test_a_key_echoed_in_a_reply_is_not_kept(judge_server) -> None:
    """Error bodies were redacted; a 200 reply quoting the key was stored as it came."""
    server = judge_server(lambda s: Scripted("A HIGH\nyour key test-key is fine"))
    reply = ask(server)
    assert reply.text == "A HIGH\nyour key *** is fine"


def test_a_key_echoed_in_a_batch_result_is_not_kept() -> None:
    body = {
        "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "B LOW\nkey test-key"}}],
    }  # fmt: skip
    line = {"custom_id": "x", "response": {"status_code": 200, "body": body}}
    cid, reply = batch_result(line, "test-key")
    assert cid == "x" and reply.text == "B LOW\nkey ***"


def test_missing_usage_counts_zero_tokens(judge_server) -> None:
    server = judge_server(lambda s: Scripted("A HIGH", fault="no_usage"))
    reply = ask(server)
    assert reply.text == "A HIGH" and reply.prompt_tokens == 0


def reasoning_model(shown: Any) -> Any:
    """Like OpenAI's reasoning models: no max_tokens (max_completion_tokens instead), no
    temperature but the default, no logprobs. Its errors are worded as OpenAI words them."""
    from labeler.demo.judge_server import Scripted

    body = shown.body
    if "max_tokens" in body:
        return Scripted(
            status=400,
            error_message="Unsupported parameter: 'max_tokens' is not supported with this "
            "model. Use 'max_completion_tokens' instead.",
        )
    if body.get("temperature", 1) != 1:
        return Scripted(
            status=400,
            error_message="Unsupported value: 'temperature' does not support 0.0 with this "
            "model. Only the default (1) value is supported.",
        )
    if body.get("logprobs"):
        return Scripted(status=400, error_message="logprobs are not supported with this model")
    better = "A" if "good" in shown.a else "B"
    return Scripted(f"{better} HIGH\nclearly")


def test_a_judge_without_max_tokens_temperature_or_logprobs(project: Any, judge_server) -> None:
    """Issue 12: reasoning models refuse max_tokens, temperature and logprobs. Each 400
    that names the parameter is retried once without it, and remembered for later runs."""
    from tests.conftest import good_bad_rows

    server = judge_server(reasoning_model)
    project.set(judge={"base_url": server.url})
    project.pairs(good_bad_rows(6))
    data = project.run_json("round")
    assert data["status"] == "completed" and data["judged"] == 6
    assert "judge_error" not in data["review"]
    asked_first = len(server.requests)
    project.pairs(good_bad_rows(10))
    again = project.run_json("round")
    assert again["judged"] == 4
    new = server.requests[asked_first:]
    assert len(new) == 8  # 4 pairs x 2 orders, no refused form any more
    assert all(
        "max_completion_tokens" in b and "temperature" not in b and "logprobs" not in b for b in new
    )
