"""The Responses API on the fake OpenAI server, as OpenAI and vLLM serve it.

POST /v1/responses (streamed or not), GET and DELETE /v1/responses/{id}, and
POST /v1/responses/{id}/cancel. Every answer is remembered with the conversation it
ends, so `previous_response_id` continues it and an unknown id is refused as OpenAI
refuses it. The answer itself is the chat route's (same text, tool call or JSON), so a
conversation reads the same over either API.

`enabled = False` makes these paths 404 like a server that speaks Chat Completions only.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import _openai_shapes as shapes
from ._base import Fault
from ._content import digest

if TYPE_CHECKING:
    from .openai_server import FakeOpenAI

_INCOMPLETE = {"length": "max_output_tokens"}


class ResponsesAPI:
    def __init__(self, fake: FakeOpenAI) -> None:
        self._fake = fake
        self.enabled = True
        self.stored: dict[str, dict[str, Any]] = {}  # id -> the Response object
        self.conversations: dict[str, list[dict[str, Any]]] = {}  # id -> chat messages

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/responses", self._create)
        router.add_get("/v1/responses/{rid}", self._get)
        router.add_delete("/v1/responses/{rid}", self._delete)
        router.add_post("/v1/responses/{rid}/cancel", self._cancel)

    # -- create ------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        fake = self._fake
        if not self.enabled:
            return await fake._invalid_url(request)
        body = fake.record_of(request).body
        if not isinstance(body, dict) or not body.get("model"):
            return fake.error_response(
                400, "Missing required parameter: 'model'.", type_="invalid_request_error"
            )
        history: list[dict[str, Any]] = []
        parent = body.get("previous_response_id")
        if parent is not None:
            if parent not in self.conversations:
                return fake.error_response(
                    400,
                    f"Previous response with id '{parent}' not found.",
                    type_="invalid_request_error",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            history = self.conversations[parent]
        turn = _messages(body.get("input"))
        system = (
            [{"role": "system", "content": body["instructions"]}]
            if body.get("instructions")
            else []
        )
        chat = _chat_body(body, [*system, *history, *turn])
        answer = fake._chat_answer(chat, 0, fake.fault_of(request) == Fault.HUGE_LINE)
        answer = fake._thought(chat, 0, answer)  # reasoning first, when the fake is set to
        # Like chat ids, the id ignores the stream flag: a streamed and a plain answer share it.
        rid = "resp_" + digest(fake.persona, {k: v for k, v in body.items() if k != "stream"})[:40]
        output = _output(rid, answer)
        response = _response(rid, body, output, answer, chat)
        self.stored[rid] = response
        self.conversations[rid] = [*history, *turn, _assistant(answer)]
        if body.get("stream") is True:
            return await fake.send_stream(request, _steps(response, answer))
        return await fake.send_json(request, response, tokens=answer.tokens)

    # -- by id ---------------------------------------------------------------------------

    def _unknown(self, rid: str) -> web.Response:
        return self._fake.error_response(
            404, f"Response with id '{rid}' not found.", type_="invalid_request_error"
        )

    async def _get(self, request: web.Request) -> web.StreamResponse:
        rid = request.match_info["rid"]
        if not self.enabled:
            return await self._fake._invalid_url(request)
        if rid not in self.stored:
            return self._unknown(rid)
        return await self._fake.send_json(request, self.stored[rid])

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        rid = request.match_info["rid"]
        if not self.enabled:
            return await self._fake._invalid_url(request)
        if rid not in self.stored:
            return self._unknown(rid)
        del self.stored[rid]
        self.conversations.pop(rid, None)
        return await self._fake.send_json(
            request, {"id": rid, "object": "response", "deleted": True}
        )

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        rid = request.match_info["rid"]
        if not self.enabled:
            return await self._fake._invalid_url(request)
        if rid not in self.stored:
            return self._unknown(rid)
        return self._fake.error_response(
            400,
            "Only responses created with background=true can be cancelled.",
            type_="invalid_request_error",
        )


def _messages(given: Any) -> list[dict[str, Any]]:
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    out: list[dict[str, Any]] = []
    for item in given or ():
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            text = (
                content
                if isinstance(content, str)
                else "".join(p.get("text", "") for p in content or ())
            )
            out.append({"role": item.get("role", "user"), "content": text})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return out


def _chat_body(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
    if tools:
        chat["tools"] = [{"type": "function", "function": t} for t in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif isinstance(choice, str):
        chat["tool_choice"] = choice
    fmt = (body.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": fmt}
    elif fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    return chat


def _assistant(answer: shapes.Answer) -> dict[str, Any]:
    message = shapes.message(answer)
    return {k: v for k, v in message.items() if k in ("role", "content", "tool_calls")}


def _output(rid: str, answer: shapes.Answer) -> list[dict[str, Any]]:
    thinking = []
    if answer.reasoning:  # a reasoning model's item comes first, as OpenAI's o-series send it
        text = {"type": "reasoning_text", "text": "".join(answer.reasoning)}
        thinking = [{"id": "rs_" + rid[5:], "type": "reasoning", "summary": [], "content": [text]}]
    return thinking + _answer_items(rid, answer)


def _answer_items(rid: str, answer: shapes.Answer) -> list[dict[str, Any]]:
    if answer.tool_call is not None:
        call_id, name, fragments = answer.tool_call
        return [
            {
                "id": "fc_" + rid[5:],
                "type": "function_call",
                "status": "completed",
                "call_id": call_id,
                "name": name,
                "arguments": "".join(fragments),
            }
        ]
    text = {
        "type": "output_text",
        "text": "".join(answer.pieces),
        "annotations": [],
        "logprobs": [],
    }
    return [
        {
            "id": "msg_" + rid[5:],
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [text],
        }
    ]


def _response(
    rid: str,
    body: dict[str, Any],
    output: list[dict[str, Any]],
    answer: shapes.Answer,
    chat: dict[str, Any],
) -> dict[str, Any]:
    reason = _INCOMPLETE.get(answer.finish_reason)
    prompt = shapes.chat_prompt_tokens(chat["messages"], chat.get("tools"))
    return {
        "id": rid,
        "object": "response",
        "created_at": shapes.CREATED,
        "status": "incomplete" if reason else "completed",
        "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": answer.tokens,
            "output_tokens_details": {"reasoning_tokens": len(answer.reasoning)},
            "total_tokens": prompt + answer.tokens,
        },
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _steps(response: dict[str, Any], answer: shapes.Answer) -> list[list[bytes]]:
    """The event stream: opening events, one step per token (the reasoning's first, as a
    reasoning model streams it), closing events."""
    sequence = itertools.count()

    def event(kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": next(sequence), **fields}
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return f"event: {kind}\ndata: {data}\n\n".encode()

    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    pending["incomplete_details"] = None
    steps = [[event("response.created", response=pending)]]
    steps[0].append(event("response.in_progress", response=pending))
    *thinking, item = response["output"]
    index = len(thinking)
    for thought in thinking:  # at most one: the reasoning item
        at = {"item_id": thought["id"], "output_index": 0, "content_index": 0}
        steps[-1].append(
            event("response.output_item.added", output_index=0, item={**thought, "content": []})
        )
        steps += [
            [event("response.reasoning_text.delta", **at, delta=piece)]
            for piece in answer.reasoning
        ]
        text = thought["content"][0]["text"]
        steps.append([event("response.reasoning_text.done", **at, text=text)])
        steps[-1].append(event("response.output_item.done", output_index=0, item=thought))
    at = {"item_id": item["id"], "output_index": index}
    if item["type"] == "function_call":
        added = {**item, "arguments": "", "status": "in_progress"}
        steps[-1].append(event("response.output_item.added", output_index=index, item=added))
        steps += [
            [event("response.function_call_arguments.delta", **at, delta=fragment)]
            for fragment in answer.tool_call[2]  # type: ignore[index]
        ]
        done = {"name": item["name"], "arguments": item["arguments"]}
        closing = [event("response.function_call_arguments.done", **at, **done)]
    else:
        part = item["content"][0]
        added = {**item, "status": "in_progress", "content": []}
        steps[-1].append(event("response.output_item.added", output_index=index, item=added))
        steps[-1].append(
            event("response.content_part.added", **at, content_index=0, part={**part, "text": ""})
        )
        steps += [
            [event("response.output_text.delta", **at, content_index=0, delta=piece, logprobs=[])]
            for piece in answer.pieces
        ]
        closing = [
            event(
                "response.output_text.done", **at, content_index=0, text=part["text"], logprobs=[]
            ),
            event("response.content_part.done", **at, content_index=0, part=part),
        ]
    closing.append(event("response.output_item.done", output_index=index, item=item))
    final = "response.completed" if response["status"] == "completed" else "response.incomplete"
    closing.append(event(final, response=response))
    return [*steps, closing]
