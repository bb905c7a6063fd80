"""A fast OpenAI-compatible mock with canned answers.

Run: python -m bench.mock_upstream PORT [--delay-ms MS] [--hang]
--delay-ms waits before answering (a slower model); --hang accepts and never answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json

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


DELAY_S = web.AppKey("delay_s", float)
HANG = web.AppKey("hang", bool)


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if request.app[HANG]:
        await asyncio.Event().wait()  # until the client gives up
    if request.app[DELAY_S]:
        await asyncio.sleep(request.app[DELAY_S])
    if not body.get("stream"):
        return web.Response(body=_BODY, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for chunk in _STREAM:
        await response.write(chunk)
    await response.write_eof()
    return response


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args()
    app = web.Application()
    app[DELAY_S] = args.delay_ms / 1000
    app[HANG] = args.hang
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        backlog=2048,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
