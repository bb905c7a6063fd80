"""Simulated OpenAI-compatible upstreams for ``understudy demo``: no network, no model.

Each persona answers in its own words, with its own latency and streaming rhythm,
so the demo's pairs differ the way a real OpenAI/self-hosted pair would. A running
upstream can switch persona (``upstream.persona = DEGRADED_CANDIDATE_PERSONA``), so
the demo can make its candidate regress part-way, as a real deployment might.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Persona:
    name: str
    model_prefix: str
    first_token_s: tuple[float, float]  # log-normal median and spread, seconds
    per_token_s: float
    phrasing: tuple[str, ...]
    error_rate: float = 0.0


OPENAI_PERSONA = Persona(
    name="simulated-openai",
    model_prefix="",
    first_token_s=(0.35, 0.25),
    per_token_s=0.012,
    phrasing=(
        "Here is a concise answer: {topic} comes down to a few key ideas.",
        "In short, {topic} works by combining simple, well-understood parts.",
        "Good question. The essentials of {topic} are easy to summarise.",
    ),
)

# Faster than the simulated OpenAI, so the evidence that it is "no slower" builds up
# within the demo's short stages.
CANDIDATE_PERSONA = Persona(
    name="simulated-llama",
    model_prefix="llama-",
    first_token_s=(0.2, 0.25),
    per_token_s=0.006,
    phrasing=(
        "Sure! {topic} comes down to a few key ideas.",
        "Basically, {topic} works by combining simple parts.",
        "The essentials of {topic} are easy to summarise, so here they are.",
    ),
    error_rate=0.01,
)

# The same model after a bad deployment: it starts answering as soon, but generates
# several times slower, and fails ten times as often (not so often that failures in a
# row open the proxy's circuit breaker before the verdict sees the slowdown).
DEGRADED_CANDIDATE_PERSONA = replace(CANDIDATE_PERSONA, per_token_s=0.05, error_rate=0.1)


def _topic(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{"content": body.get("prompt", "")}]
    text = str(messages[-1].get("content", "")) if isinstance(messages[-1], dict) else ""
    words = [w.strip("?.,!") for w in text.split() if len(w) > 3]
    return " ".join(words[-3:]) or "this topic"


def _answer(persona: Persona, body: dict[str, Any], rng: random.Random) -> list[str]:
    sentence = rng.choice(persona.phrasing).format(topic=_topic(body))
    extra = " It is worth testing this on real traffic before deciding."
    return (sentence + extra).replace(" ", " \x00").split("\x00")


def _delay(persona: Persona, rng: random.Random) -> float:
    median, spread = persona.first_token_s
    return float(median * rng.lognormvariate(0.0, spread))


class SimulatedUpstream:
    """One simulated upstream. ``persona`` is read per request: set it to switch behaviour
    while the server runs."""

    def __init__(self, persona: Persona, seed: int | None = None) -> None:
        self.persona = persona
        self._rng = random.Random(seed)

    @property
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        persona, rng = self.persona, self._rng
        body = await request.json()
        if rng.random() < persona.error_rate:
            return web.json_response(
                {
                    "error": {
                        "message": "simulated overload",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
                status=503,
            )
        model = str(body.get("model", "model"))
        tokens = _answer(persona, body, rng)
        rid = "chatcmpl-" + hashlib.sha1(f"{time.time_ns()}".encode()).hexdigest()[:24]
        created = int(time.time())
        usage = {
            "prompt_tokens": 12 + len(json.dumps(body.get("messages", []))) // 4,
            "completion_tokens": len(tokens),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        await asyncio.sleep(_delay(persona, rng))
        if not body.get("stream"):
            await asyncio.sleep(persona.per_token_s * len(tokens))
            return web.json_response(
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(tokens)},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i, token in enumerate(tokens):
            delta = {"role": "assistant", "content": token} if i == 0 else {"content": token}
            await response.write(_chunk(rid, created, model, delta, None))
            await asyncio.sleep(persona.per_token_s * rng.uniform(0.5, 1.5))
        await response.write(_chunk(rid, created, model, {}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(
                _sse(
                    {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _models(self, _request: web.Request) -> web.Response:
        persona = self.persona
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": f"{persona.model_prefix}gpt-4o-mini",
                        "object": "model",
                        "created": 0,
                        "owned_by": persona.name,
                    }
                ],
            }
        )


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _chunk(rid: str, created: int, model: str, delta: dict[str, Any], finish: str | None) -> bytes:
    return _sse(
        {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
    )
