"""A fake Ollama native API.

Routes: POST /api/chat and /api/generate (NDJSON stream unless "stream": false),
POST /api/embed, GET /api/tags, GET /api/version, and the model-management paths
(/api/pull, /api/create, /api/delete, /api/copy, /api/push), which only record
the call so a test can assert that the proxy never forwarded one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ._base import FakeUpstream, Fault, RecordedRequest
from ._content import (
    DEFAULT_REPLY_TEMPLATE,
    REASONING_TEMPLATE,
    apply_limits,
    count_tokens,
    digest,
    embedding,
    example_from_schema,
    huge_text,
    message_text,
    pick_tool,
    split_tokens,
)

MANAGEMENT_PATHS = ("/api/pull", "/api/create", "/api/delete", "/api/copy", "/api/push")
DEFAULT_MODELS = ("llama3.2:latest", "qwen2.5:7b", "all-minilm:latest")
_LOAD_DURATION_NS = 1_200_000


class FakeOllama(FakeUpstream):
    """A fake Ollama server. See `FakeUpstream` for the log, faults and delays."""

    stream_content_type = "application/x-ndjson"

    def __init__(
        self,
        persona: str = "ollama",
        expected_api_key: str | None = None,
        token_delay_s: float = 0.0,
        first_byte_delay_s: float = 0.0,
        *,
        reply_template: str = DEFAULT_REPLY_TEMPLATE,
        models: Sequence[str] = DEFAULT_MODELS,
        embedding_dims: int = 384,
    ) -> None:
        super().__init__(
            expected_api_key=expected_api_key,
            token_delay_s=token_delay_s,
            first_byte_delay_s=first_byte_delay_s,
        )
        self.persona = persona
        self.reply_template = reply_template
        self.models = list(models)
        self.embedding_dims = embedding_dims
        # A thinking model (qwen3, gpt-oss): chat answers think first, in message.thinking,
        # unless the request sets "think": false. Off: a request asking to think gets
        # Ollama's 400 "does not support thinking".
        self.thinks = False
        self.reasoning_template = REASONING_TEMPLATE  # "{digest}" is filled in
        # On: a model not in `models` gets Ollama's 404 "not found, try pulling it first".
        self.pulled_only = False
        # Set: a chat stream fails after this many lines with Ollama's mid-stream error
        # line, {"error": ...}, under the 200 already sent.
        self.error_after_lines: int | None = None

    @property
    def management_calls(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path in MANAGEMENT_PATHS]

    def reasoning_text(self, model: str, prompt: Any) -> str:
        return self.reasoning_template.format(digest=digest(model, prompt)[:8])

    def reply_text(self, model: str, prompt: Any, index: int = 0) -> str:
        return self.reply_template.format(
            persona=self.persona,
            model=model,
            digest=digest(model, prompt, index)[:8],
            index=index,
        )

    # -- flavour hooks -----------------------------------------------------------

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/chat", self._chat)
        router.add_post("/api/generate", self._generate)
        router.add_post("/api/embed", self._embed)
        router.add_get("/api/tags", self._tags)
        router.add_get("/api/version", self._version)
        for path in MANAGEMENT_PATHS:
            router.add_route("*", path, self._management)
        router.add_route("*", "/{tail:.*}", self._not_found)

    def error_response(
        self,
        status: int,
        message: str,
        *,
        type_: str,
        code: str | None = None,
        param: str | None = None,
    ) -> web.Response:
        # Ollama's errors are a bare {"error": "..."}; type/code have no place in them.
        body = _compact({"error": message}).rstrip()
        return web.Response(body=body, status=status, content_type="application/json")

    def garbage_response(self, streaming: bool) -> web.Response:
        if streaming:
            return web.Response(body=b'{"model":"garb\n', content_type=self.stream_content_type)
        return web.Response(body=b"<html>bad gateway</html>", content_type="application/json")

    def wants_stream(self, record: RecordedRequest) -> bool:
        streams_by_default = record.path in ("/api/chat", "/api/generate")
        body = record.body if isinstance(record.body, dict) else {}
        return bool(body.get("stream", True)) and streams_by_default

    def auth_error(self, given: str | None) -> web.Response:
        return self.error_response(401, "unauthorized", type_="")

    def encode_json(self, payload: Any) -> bytes:
        return _compact(payload)

    # -- generation ----------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, error = self._body_or_error(request)
        if error is not None:
            return error
        model, messages = body["model"], body.get("messages") or []
        started = self.record_of(request).received_at
        think = body.get("think")
        if think not in (None, False) and not self.thinks:
            return self.error_response(400, f'"{model}" does not support thinking', type_="")
        thoughts = split_tokens(self.reasoning_text(model, messages))
        thoughts = thoughts if self.thinks and think is not False else []
        tool = pick_tool({"tools": body.get("tools"), "messages": messages})
        # A few tokens of chat template around each message, as real models have.
        pieces: list[str]
        prompt_tokens = sum(4 + count_tokens(message_text(m.get("content"))) for m in messages)

        if tool is not None:
            arguments = example_from_schema(tool.get("parameters"), digest(model, messages))
            function = {"index": 0, "name": tool["name"], "arguments": arguments}
            calls = [{"id": "call_" + digest(model, messages)[:8], "function": function}]
            message = {"role": "assistant", "content": "", "tool_calls": calls}
            pieces, finish = [], "stop"
        else:
            text = self._text(body, self.reply_text(model, messages))
            pieces, finish = self._limit(request, text, body)
            message = {"role": "assistant", "content": "".join(pieces)}

        # eval_count counts every generated token, thinking included.
        generated = len(thoughts) + (len(pieces) or 1)
        if not self.wants_stream(self.record_of(request)):
            if thoughts:
                message["thinking"] = "".join(thoughts)
            final = {"model": model, "created_at": _now(), "message": message, "done": True}
            final |= _stats(finish, started, prompt_tokens, generated)
            return await self.send_json(request, final, tokens=len(thoughts) + len(pieces))

        def line(msg: dict[str, Any]) -> bytes:
            return _compact({"model": model, "created_at": _now(), "message": msg, "done": False})

        thinking = [[line({"role": "assistant", "content": "", "thinking": t})] for t in thoughts]
        steps = [[line({"role": "assistant", "content": p})] for p in pieces]
        if tool is not None:
            steps = [[line(message)]]
        done = {"role": "assistant", "content": ""}
        final = {"model": model, "created_at": _now(), "message": done, "done": True}
        final |= _stats(
            finish, started, prompt_tokens, generated, self._stream_s([*thoughts, *pieces])
        )
        steps = [*thinking, *steps, [_compact(final)]]
        if self.error_after_lines is not None:
            failure = _compact({"error": "an error was encountered while running the model"})
            steps = [*steps[: self.error_after_lines], [failure]]
        return await self.send_stream(request, steps)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body, error = self._body_or_error(request)
        if error is not None:
            return error
        model, prompt = body["model"], body.get("prompt", "")
        started = self.record_of(request).received_at
        text = self._text(body, self.reply_text(model, prompt))
        pieces, finish = self._limit(request, text, body)
        prompt_tokens = count_tokens(f"{body.get('system', '')} {prompt}")
        # Ollama hands back the conversation as token ids to continue from.
        context = [int(digest(model, prompt, i)[:4], 16) for i in range(prompt_tokens + 1)]

        def final(still_to_go_s: float = 0.0) -> dict[str, Any]:
            stats = _stats(finish, started, prompt_tokens, len(pieces) or 1, still_to_go_s)
            done = {"model": model, "created_at": _now(), "response": "", "done": True}
            return {**done, "done_reason": stats.pop("done_reason"), "context": context, **stats}

        if not self.wants_stream(self.record_of(request)):
            payload = final() | {"response": "".join(pieces)}
            return await self.send_json(request, payload, tokens=len(pieces))
        steps = [
            [_compact({"model": model, "created_at": _now(), "response": p, "done": False})]
            for p in pieces
        ]
        return await self.send_stream(request, [*steps, [_compact(final(self._stream_s(pieces)))]])

    def _stream_s(self, pieces: list[str]) -> float:
        return self.token_delay_s * max(len(pieces) - 1, 0)

    def _limit(
        self, request: web.Request, text: str, body: dict[str, Any]
    ) -> tuple[list[str], str]:
        if self.fault_of(request) == Fault.HUGE_LINE:
            return [huge_text(self.huge_line_bytes)], "stop"
        options = body.get("options") or {}
        return apply_limits(split_tokens(text), options.get("num_predict"), options.get("stop"))

    def _text(self, body: dict[str, Any], reply: str) -> str:
        fmt = body.get("format")
        if fmt == "json":
            return json.dumps({"persona": self.persona, "answer": reply})
        if isinstance(fmt, dict):
            return json.dumps(example_from_schema(fmt, digest(body.get("model"))))
        return reply

    # -- other endpoints --------------------------------------------------------------

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        body, error = self._body_or_error(request)
        if error is not None:
            return error
        raw = body.get("input", "")
        inputs = raw if isinstance(raw, list) else [raw]
        dims = body.get("dimensions") or self.embedding_dims
        started = self.record_of(request).received_at
        payload = {
            "model": body["model"],
            "embeddings": [embedding(text, dims) for text in inputs],
            "total_duration": _LOAD_DURATION_NS + _ns_since(started),
            "load_duration": _LOAD_DURATION_NS,
            "prompt_eval_count": sum(count_tokens(str(text)) for text in inputs),
        }
        return await self.send_json(request, payload)

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        return await self.send_json(request, {"models": [_tag(name) for name in self.models]})

    async def _version(self, request: web.Request) -> web.StreamResponse:
        return await self.send_json(request, {"version": "0.6.2"})

    async def _management(self, request: web.Request) -> web.StreamResponse:
        # Recorded by the middleware already; answering success keeps callers calm.
        return await self.send_json(request, {"status": "success"})

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        # Go's default mux answer, which is what Ollama sends for unknown paths.
        return web.Response(status=404, text="404 page not found")

    def _body_or_error(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        body = self.record_of(request).body
        if not isinstance(body, dict):
            return {}, self.error_response(400, "invalid character in request body", type_="")
        if not body.get("model"):
            return body, self.error_response(400, "model is required", type_="")
        if self.pulled_only and body["model"] not in self.models:
            message = f'model "{body["model"]}" not found, try pulling it first'
            return body, self.error_response(404, message, type_="")
        return body, None


# -- shapes --------------------------------------------------------------------------


def _compact(payload: Any) -> bytes:
    # Go's encoding/json: no spaces; NDJSON lines end in "\n".
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ns_since(monotonic_start: float) -> int:
    return max(int((time.monotonic() - monotonic_start) * 1e9), 1)


def _stats(
    finish: str, started: float, prompt_tokens: int, eval_count: int, still_to_go_s: float = 0.0
) -> dict[str, Any]:
    """Ollama's timing fields, from the wall time this request took so far plus
    the time a stream is still going to take (its last line is built up front)."""
    elapsed = _ns_since(started) + int(still_to_go_s * 1e9)
    prompt_eval = elapsed // 10
    return {
        "done_reason": finish,
        "total_duration": _LOAD_DURATION_NS + elapsed,
        "load_duration": _LOAD_DURATION_NS,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": prompt_eval,
        "eval_count": eval_count,
        "eval_duration": max(elapsed - prompt_eval, 1),
    }


def _tag(name: str) -> dict[str, Any]:
    family = name.split(":")[0].rstrip("0123456789.") or name
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-01-01T00:00:00.000000Z",
        "size": 2_019_393_189,
        "digest": digest(name),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }
