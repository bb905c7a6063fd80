"""Responses API objects and events, built from what a Chat Completions server answered.

Shapes follow the official SDK's types (``openai.types.responses``): a ``Response`` with
``reasoning``, ``message`` and ``function_call`` output items, and the event stream from
``response.created`` to ``response.completed`` (or ``response.incomplete``). A reasoning
model's thinking (vLLM's ``reasoning_content``, newer vLLM's ``reasoning``; Ollama's
``thinking`` comes as ``reasoning_content`` from its adapter) becomes a ``reasoning`` item
with ``reasoning_text`` content, as gpt-oss answers on OpenAI's own Responses server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

# Chat finish reasons that end a response early, and the reason Responses gives.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def sse(event: Mapping[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


def usage(chat_usage: Any) -> dict[str, Any] | None:
    if not isinstance(chat_usage, Mapping):
        return None
    prompt = _count(chat_usage.get("prompt_tokens"))
    completion = _count(chat_usage.get("completion_tokens"))
    details = chat_usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    out_details = chat_usage.get("completion_tokens_details")
    reasoning = (
        _count(out_details.get("reasoning_tokens")) if isinstance(out_details, Mapping) else 0
    )
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def _count(value: Any) -> int:
    return value if type(value) is int else 0


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def reasoning_part(text: str) -> dict[str, Any]:
    return {"type": "reasoning_text", "text": text}


def reasoning_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [reasoning_part(text)]
    return {"id": item_id, "type": "reasoning", "status": status, "summary": [], "content": content}


def reasoning_of(message: Mapping[str, Any]) -> str:
    """A chat message's or delta's reasoning: ``reasoning_content``, else ``reasoning``."""
    for name in ("reasoning_content", "reasoning"):
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def status_of(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """The response's status and incomplete_details for a chat finish reason."""
    reason = _INCOMPLETE.get(finish_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response(
    rid: str,
    created: int,
    request: Mapping[str, Any],
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A whole Response object; the request's settings are echoed as OpenAI does."""
    text = request.get("text") if isinstance(request.get("text"), Mapping) else None
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": request.get("model"),
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": text or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation", "disabled"),
        "usage": usage,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def assistant_message(output: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat message an answer's output items stand for, to continue the conversation:
    its text and tool calls; its reasoning items are left out, as a chat server expects."""
    text = "".join(
        part["text"] for item in output if item["type"] == "message" for part in item["content"]
    )
    calls = [
        {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        for item in output
        if item["type"] == "function_call"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def output_of_chat(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A chat completion's message as output items: its reasoning, its text, then its tool
    calls."""
    output: list[dict[str, Any]] = []
    thinking = reasoning_of(message)
    if thinking:
        output.append(reasoning_item(new_id("rs"), thinking, "completed"))
    content = message.get("content")
    if isinstance(content, str) and content:
        output.append(message_item(new_id("msg"), content, "completed"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(
            call_item(
                new_id("fc"),
                str(call.get("id") or new_id("call")),
                str(function.get("name", "")),
                str(function.get("arguments", "")),
                "completed",
            )
        )
    return output
