"""A Responses API request as a Chat Completions request (for ``translate`` candidates).

Only bodies ``proxy.responses.modes.untranslatable`` passed come here: each part either
has a Chat Completions form or changes nothing a chat server could act on (``store``,
``metadata``, ``include``, ``truncation``), so nothing the answer depends on is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

# Responses sampling fields and their Chat Completions names.
_SAME_MEANING = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_output_tokens": "max_tokens",
    "parallel_tool_calls": "parallel_tool_calls",
    "user": "user",
}


def input_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chat messages this turn adds: ``input`` as a user's text or as items."""
    given = body.get("input")
    if given is None:
        return []
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    messages: list[dict[str, Any]] = []
    for item in given:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item))
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id") or item.get("id") or ""),
                "type": "function",
                "function": {
                    "name": str(item.get("name", "")),
                    "arguments": str(item.get("arguments", "")),
                },
            }
            last = messages[-1] if messages else None
            # Consecutive calls are one assistant turn with several calls, as chat has them.
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output", "")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": str(item.get("call_id", "")),
                    "content": output if isinstance(output, str) else json.dumps(output),
                }
            )
    return messages


def _message(item: Mapping[str, Any]) -> dict[str, Any]:
    role = str(item.get("role", "user"))
    role = "system" if role == "developer" else role  # not every chat server knows developer
    content = item.get("content")
    if not isinstance(content, list):
        return {"role": role, "content": "" if content is None else str(content)}
    texts = [str(p.get("text", "")) for p in content if p.get("type") != "input_image"]
    images = [p["image_url"] for p in content if p.get("type") == "input_image"]
    if not images or role != "user":
        return {"role": role, "content": "".join(texts)}
    parts: list[dict[str, Any]] = [{"type": "text", "text": t} for t in texts]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return {"role": role, "content": parts}


def _tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, Mapping):
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return choice


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if not isinstance(fmt, Mapping) or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    schema = {k: fmt[k] for k in ("name", "description", "schema", "strict") if k in fmt}
    return {"type": "json_schema", "json_schema": schema}


def chat_request(
    body: Mapping[str, Any], history: Sequence[Mapping[str, Any]], stream: bool
) -> dict[str, Any]:
    """The chat body for ``body`` (model already mapped) after ``history``'s messages.

    ``instructions`` lead as a system message; those of earlier turns are not carried
    over, as with ``previous_response_id`` on OpenAI.
    """
    messages: list[Mapping[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    messages += [*history, *input_messages(body)]
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    for ours, theirs in _SAME_MEANING.items():
        if body.get(ours) is not None:
            chat[theirs] = body[ours]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if (fmt := _response_format(body.get("text"))) is not None:
        chat["response_format"] = fmt
    reasoning = body.get("reasoning")
    if isinstance(reasoning, Mapping) and reasoning.get("effort") is not None:
        # Chat Completions' name for it; vLLM and Ollama's translation read it too.
        chat["reasoning_effort"] = reasoning["effort"]
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat
