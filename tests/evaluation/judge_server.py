"""A small OpenAI-compatible judge server for tests: a real aiohttp app on 127.0.0.1:0.

It answers chat completions deterministically: it prefers the answer that
contains ``preferred_word``, says TIE when both or neither do, and can be told
to always answer "A" (a maximally position-biased judge) or to fail.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_ANSWER = re.compile(r"<answer_(a|b)>\n(.*?)\n</answer_\1>", re.DOTALL)


@dataclass
class JudgeBehaviour:
    preferred_word: str = "Paris"
    always: str | None = None  # "A", "B" or free text, ignoring the answers
    fail_status: int | None = None  # answer every request with this HTTP error
    requests: list[dict[str, Any]] = field(default_factory=list)


def _choose(content: str, behaviour: JudgeBehaviour) -> str:
    if behaviour.always is not None:
        return behaviour.always
    answers = dict(_ANSWER.findall(content))
    has_a = behaviour.preferred_word in answers.get("a", "")
    has_b = behaviour.preferred_word in answers.get("b", "")
    if has_a == has_b:
        return "TIE"
    return "A" if has_a else "B"


def build_app(behaviour: JudgeBehaviour) -> web.Application:
    async def completions(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer test-key":
            return web.json_response(
                {"error": {"message": "bad key", "type": "invalid_request_error"}}, status=401
            )
        body = await request.json()
        behaviour.requests.append(body)
        if behaviour.fail_status is not None:
            return web.json_response(
                {"error": {"message": "judge overloaded", "type": "server_error"}},
                status=behaviour.fail_status,
            )
        content = body["messages"][-1]["content"]
        choice = _choose(content, behaviour)
        prompt_tokens = sum(len(m["content"]) for m in body["messages"]) // 4
        return web.json_response(
            {
                "id": f"chatcmpl-{len(behaviour.requests)}",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": choice},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": 1,
                    "total_tokens": prompt_tokens + 1,
                },
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


@asynccontextmanager
async def running_judge(behaviour: JudgeBehaviour) -> AsyncIterator[str]:
    """Start the server on a free port; yield its base URL."""
    runner = web.AppRunner(build_app(behaviour))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()
