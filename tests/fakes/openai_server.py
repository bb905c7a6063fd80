"""A fake OpenAI API shaped like the real one, answering deterministically.

Routes: POST /v1/chat/completions, /v1/completions, /v1/embeddings,
/v1/moderations; GET /v1/models, /v1/models/{id}; as a model server (vLLM, TGI,
llama.cpp), GET /health and /metrics; anything else gets OpenAI's "Invalid URL" 404. Non-streamed bodies are indented like OpenAI's; SSE lines
are compact JSON.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from . import _openai_shapes as shapes
from ._base import FakeUpstream, Fault, RecordedRequest
from ._content import (
    DEFAULT_REPLY_TEMPLATE,
    REASONING_TEMPLATE,
    apply_limits,
    digest,
    embedding,
    embedding_base64,
    example_from_schema,
    huge_text,
    pick_tool,
    split_arguments,
    split_tokens,
)
from ._server_ops import health_response, metrics_response
from .responses_server import ResponsesAPI

DEFAULT_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "omni-moderation-latest",
)
_EMBEDDING_DIMS = {"text-embedding-3-large": 3072}
_DEFAULT_EMBEDDING_DIMS = 1536
_MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
_BAD_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you "
    "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
    "but what was sent was not valid JSON.)"
)


class FakeOpenAI(FakeUpstream):
    """A fake OpenAI upstream. See `FakeUpstream` for the log, faults and delays."""

    def __init__(
        self,
        persona: str = "openai",
        expected_api_key: str | None = None,
        token_delay_s: float = 0.0,
        first_byte_delay_s: float = 0.0,
        *,
        reply_template: str = DEFAULT_REPLY_TEMPLATE,
        models: Sequence[str] = DEFAULT_MODELS,
        embedding_dims: int | None = None,
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
        # GET /health answers this status; None: no such endpoint (404), as OpenAI.
        self.health_status: int | None = None
        # GET /metrics serves these samples (see _server_ops); None: 404, as OpenAI.
        self.metrics: dict[str, float] | None = None
        # A reasoning model as vLLM serves it: each chat answer thinks first, in this
        # message/delta field ("reasoning_content", or newer vLLM's "reasoning"); None: no
        # reasoning, as OpenAI's Chat Completions.
        self.reasoning_field: str | None = None
        self.reasoning_template = REASONING_TEMPLATE  # "{digest}" is filled in
        self._request_ids = itertools.count(1)
        self.responses = ResponsesAPI(self)  # the Responses API; `.enabled = False`: chat only

    @property
    def system_fingerprint(self) -> str:
        return "fp_" + digest(self.persona)[:10]

    def reasoning_text(self, model: str, prompt: Any, index: int = 0) -> str:
        """What a reasoning model thinks before answering `prompt`."""
        return self.reasoning_template.format(digest=digest(model, prompt, index)[:8])

    def reply_text(self, model: str, prompt: Any, index: int = 0) -> str:
        """The text this fake answers to `prompt` (chat messages or a completion prompt)."""
        return self.reply_template.format(
            persona=self.persona,
            model=model,
            digest=digest(model, prompt, index)[:8],
            index=index,
        )

    # -- flavour hooks ---------------------------------------------------------

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/chat/completions", self._chat)
        router.add_post("/v1/completions", self._completions)
        router.add_post("/v1/embeddings", self._embeddings)
        router.add_post("/v1/moderations", self._moderations)
        router.add_get("/v1/models", self._list_models)
        # Model ids may contain "/" (e.g. "meta-llama/Llama-3.1-8B" on vLLM).
        router.add_get("/v1/models/{model_id:.+}", self._get_model)
        router.add_get("/health", self._health)
        router.add_get("/metrics", self._metrics)
        self.responses.add_routes(router)
        router.add_route("*", "/{tail:.*}", self._invalid_url)

    def error_response(
        self,
        status: int,
        message: str,
        *,
        type_: str,
        code: str | None = None,
        param: str | None = None,
    ) -> web.Response:
        error = {"message": message, "type": type_, "param": param, "code": code}
        return web.Response(
            status=status,
            body=json.dumps({"error": error}, indent=4).encode() + b"\n",
            content_type="application/json",
            headers=self.response_headers(),
        )

    def garbage_response(self, streaming: bool) -> web.Response:
        if streaming:
            return web.Response(
                body=b'data: {"id": "chatcmpl-garb\n\n', content_type="text/event-stream"
            )
        return web.Response(
            body=b"<html><body>upstream proxy error</body></html>",
            content_type="application/json",
        )

    def wants_stream(self, record: RecordedRequest) -> bool:
        return isinstance(record.body, dict) and record.body.get("stream") is True

    def auth_error(self, given: str | None) -> web.Response:
        if given is None:
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return self.error_response(401, message, type_="invalid_request_error")
        # OpenAI echoes only the ends of a wrong key; never the whole secret.
        masked = given[:3] + "*" * max(len(given) - 7, 0) + given[-4:] if len(given) > 8 else "***"
        return self.error_response(
            401,
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            type_="invalid_request_error",
            code="invalid_api_key",
        )

    def encode_json(self, payload: Any) -> bytes:
        return json.dumps(payload, indent=2, ensure_ascii=False).encode()

    def response_headers(self) -> dict[str, str]:
        return {
            "x-request-id": f"req_{next(self._request_ids):032x}",
            "openai-version": "2020-10-01",
        }

    # -- request checks ----------------------------------------------------

    def _body_or_error(
        self, request: web.Request, *required: str
    ) -> tuple[dict[str, Any], web.Response | None]:
        body = self.record_of(request).body
        if not isinstance(body, dict):
            return {}, self.error_response(400, _BAD_JSON_MESSAGE, type_="invalid_request_error")
        if "model" in required and not body.get("model"):
            return body, self.error_response(
                400, "you must provide a model parameter", type_="invalid_request_error"
            )
        for name in required:
            if name != "model" and name not in body:
                return body, self.error_response(
                    400,
                    f"Missing required parameter: '{name}'.",
                    type_="invalid_request_error",
                    param=name,
                    code="missing_required_parameter",
                )
        return body, None

    # -- chat ------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, error = self._body_or_error(request, "model", "messages")
        if error is not None:
            return error
        model, messages = body["model"], body["messages"]
        huge = self.fault_of(request) == Fault.HUGE_LINE
        answers = [
            self._thought(body, index, self._chat_answer(body, index, huge))
            for index in range(body.get("n") or 1)
        ]
        # The id ignores stream flags, so a streamed and a plain answer share it.
        base = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        head = {
            "id": "chatcmpl-" + digest(base)[:29],
            "object": "chat.completion",
            "created": shapes.CREATED,
            "model": model,
        }
        usage = shapes.chat_usage(shapes.chat_prompt_tokens(messages, body.get("tools")), answers)
        if body.get("stream") is True:
            return await self.send_stream(request, self._chat_steps(body, head, answers, usage))
        choices = [
            {
                "index": index,
                "message": shapes.message(answer),
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
            for index, answer in enumerate(answers)
        ]
        payload = {
            **head,
            "choices": choices,
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": self.system_fingerprint,
        }
        return await self.send_json(request, payload, tokens=max(a.tokens for a in answers))

    def _thought(self, body: dict[str, Any], index: int, answer: shapes.Answer) -> shapes.Answer:
        if self.reasoning_field is None:
            return answer
        thought = self.reasoning_text(body["model"], body["messages"], index)
        return dataclasses.replace(
            answer, reasoning=tuple(split_tokens(thought)), reasoning_field=self.reasoning_field
        )

    def _chat_answer(self, body: dict[str, Any], index: int, huge: bool) -> shapes.Answer:
        model, messages = body["model"], body["messages"]
        seed = digest(model, messages, index)
        if huge:
            return shapes.Answer([huge_text(self.huge_line_bytes)], "stop")
        tool = pick_tool(body)
        if tool is not None:
            arguments = json.dumps(
                example_from_schema(tool.get("parameters"), seed), separators=(",", ":")
            )
            # OpenAI reports "stop", not "tool_calls", when the caller named the tool.
            forced = isinstance(body.get("tool_choice"), dict)
            call = ("call_" + seed[:24], tool["name"], split_arguments(arguments))
            return shapes.Answer([], "stop" if forced else "tool_calls", call)
        fmt = body.get("response_format") or {}
        reply = self.reply_text(model, messages, index)
        if fmt.get("type") == "json_object":
            text = json.dumps({"persona": self.persona, "model": model, "answer": reply})
        elif fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            text = json.dumps(example_from_schema(schema, seed))
        else:
            text = reply
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        pieces, finish = apply_limits(split_tokens(text), limit, body.get("stop"))
        return shapes.Answer(pieces, finish)

    def _chat_steps(
        self,
        body: dict[str, Any],
        head: dict[str, Any],
        answers: list[shapes.Answer],
        usage: dict[str, Any],
    ) -> list[list[bytes]]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk_head = {
            **head,
            "object": "chat.completion.chunk",
            "service_tier": "default",
            "system_fingerprint": self.system_fingerprint,
        }

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            payload = {**chunk_head, "choices": [choice]}
            if include_usage:
                payload["usage"] = None  # OpenAI sends the key on every chunk once asked
            return shapes.sse(payload)

        opening = [chunk(i, shapes.opening_delta(a)) for i, a in enumerate(answers)]
        middle = [
            [chunk(i, delta) for i, a in enumerate(answers) if (delta := shapes.delta(a, step))]
            for step in range(max(shapes.delta_count(a) for a in answers))
        ]
        closing = [chunk(i, {}, a.finish_reason) for i, a in enumerate(answers)]
        if include_usage:
            closing.append(shapes.sse({**chunk_head, "choices": [], "usage": usage}))
        closing.append(b"data: [DONE]\n\n")
        return [opening, *middle, closing]

    # -- legacy completions -------------------------------------------------------

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body, error = self._body_or_error(request, "model", "prompt")
        if error is not None:
            return error
        model, n = body["model"], body.get("n") or 1
        prompts = shapes.as_batch(body["prompt"])
        huge = self.fault_of(request) == Fault.HUGE_LINE
        texts = [
            self._completion_text(body, prompt, index, huge)
            for prompt in prompts
            for index in range(n)
        ]
        base = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        head = {
            "id": "cmpl-" + digest(base)[:29],
            "object": "text_completion",
            "created": shapes.CREATED,
            "model": model,
        }
        prompt_tokens = sum(shapes.prompt_size(p) for p in prompts)
        completion_tokens = sum(len(pieces) for pieces, _ in texts)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            steps = shapes.completion_steps(head, texts, usage, include_usage)
            return await self.send_stream(request, steps)
        choices = [
            {"text": "".join(pieces), "index": i, "logprobs": None, "finish_reason": finish}
            for i, (pieces, finish) in enumerate(texts)
        ]
        payload = {**head, "choices": choices, "usage": usage}
        return await self.send_json(request, payload, tokens=max(len(p) for p, _ in texts))

    def _completion_text(
        self, body: dict[str, Any], prompt: Any, index: int, huge: bool
    ) -> tuple[list[str], str]:
        if huge:
            return [huge_text(self.huge_line_bytes)], "stop"
        text = self.reply_text(body["model"], prompt, index)
        pieces, finish = apply_limits(split_tokens(text), body.get("max_tokens"), body.get("stop"))
        if body.get("echo") and isinstance(prompt, str):
            pieces = [prompt, *pieces]
        return pieces, finish

    # -- embeddings, moderations, models -------------------------------------------

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, error = self._body_or_error(request, "model", "input")
        if error is not None:
            return error
        model = body["model"]
        dims = (
            body.get("dimensions")
            or self.embedding_dims
            or _EMBEDDING_DIMS.get(model, _DEFAULT_EMBEDDING_DIMS)
        )
        inputs = shapes.as_batch(body["input"])
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = embedding(item, dims)
            encoded: Any = embedding_base64(vector) if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(shapes.prompt_size(item) for item in inputs)
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return await self.send_json(request, payload)

    async def _moderations(self, request: web.Request) -> web.StreamResponse:
        body, error = self._body_or_error(request, "input")
        if error is not None:
            return error
        model = body.get("model") or "omni-moderation-latest"
        results = [
            {
                "flagged": False,
                "categories": dict.fromkeys(_MODERATION_CATEGORIES, False),
                "category_scores": dict.fromkeys(_MODERATION_CATEGORIES, 1e-06),
                "category_applied_input_types": {c: ["text"] for c in _MODERATION_CATEGORIES},
            }
            for _ in shapes.as_batch(body["input"])
        ]
        payload = {"id": "modr-" + digest(body)[:24], "model": model, "results": results}
        return await self.send_json(request, payload)

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        data = [shapes.model_object(model_id) for model_id in self.models]
        return await self.send_json(request, {"object": "list", "data": data})

    async def _get_model(self, request: web.Request) -> web.StreamResponse:
        model_id = request.match_info["model_id"]
        if model_id not in self.models:
            return self.error_response(
                404,
                f"The model '{model_id}' does not exist",
                type_="invalid_request_error",
                param="model",
                code="model_not_found",
            )
        return await self.send_json(request, shapes.model_object(model_id))

    async def _health(self, request: web.Request) -> web.StreamResponse:
        if self.health_status is None:
            return await self._invalid_url(request)
        return health_response(self.health_status)

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        if self.metrics is None:
            return await self._invalid_url(request)
        return metrics_response(self.metrics)

    async def _invalid_url(self, request: web.Request) -> web.StreamResponse:
        return self.error_response(
            404, f"Invalid URL ({request.method} {request.path})", type_="invalid_request_error"
        )
