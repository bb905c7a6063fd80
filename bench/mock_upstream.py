"""A fast OpenAI-compatible mock: canned answers, no delays. Run: python -m bench.mock_upstream PORT"""

from __future__ import annotations

import json
import sys

import uvloop
from aiohttp import web

_ANSWER = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "A short benchmark answer of a few words."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}
_BODY = json.dumps(_ANSWER).encode()
_WORDS = ["A ", "short ", "benchmark ", "answer ", "of ", "a ", "few ", "words."]


def _chunk(delta: dict[str, str], finish: str | None) -> bytes:
    payload = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


_STREAM = [_chunk({"role": "assistant", "content": w}, None) for w in _WORDS]
_STREAM += [_chunk({}, "stop"), b"data: [DONE]\n\n"]


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if not body.get("stream"):
        return web.Response(body=_BODY, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for chunk in _STREAM:
        await response.write(chunk)
    await response.write_eof()
    return response


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        backlog=2048,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
