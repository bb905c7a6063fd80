"""How a candidate is reached for the Responses API: natively, or translated to Chat
Completions; and what a translation cannot carry."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from core.upstream_kind import UpstreamKind
from proxy.config import UpstreamConfig


class ResponsesMode(StrEnum):
    NATIVE = "native"  # the server has /v1/responses: forward with the model mapped
    TRANSLATE = "translate"  # Chat Completions only: turn the request and answer around


# Servers known to answer /v1/responses themselves. llama.cpp's own server does in recent
# builds, but llama-cpp-python's does not, so llamacpp translates unless told otherwise.
_NATIVE_KINDS = frozenset({UpstreamKind.OPENAI, UpstreamKind.VLLM})


def responses_mode(config: UpstreamConfig) -> ResponsesMode:
    kind = UpstreamKind(config.kind)
    if kind is UpstreamKind.OLLAMA:  # its adapter speaks Ollama's own /api/chat
        return ResponsesMode.TRANSLATE
    if config.responses is not None:
        return ResponsesMode(config.responses)
    native = kind in _NATIVE_KINDS
    return ResponsesMode.NATIVE if native else ResponsesMode.TRANSLATE


# Input item types a Chat Completions request can carry; reasoning items are the model's
# own notes from an earlier turn and are left out, as a chat server never made them.
_CARRIED_ITEMS = frozenset({"message", "function_call", "function_call_output", "reasoning"})
_CARRIED_PARTS = frozenset({"input_text", "output_text", "text", "input_image", "refusal"})
# Request fields naming server-side state or work a chat server does not have.
_SERVER_SIDE = {
    "background": "background",
    "conversation": "conversation",
    "prompt": "prompt_template",
}


def untranslatable(body: Mapping[str, Any]) -> str | None:
    """Why ``body`` cannot be sent as Chat Completions without losing part of it, or None."""
    for name, reason in _SERVER_SIDE.items():
        if body.get(name) not in (None, False):
            return reason
    for tool in body.get("tools") or ():
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            return "builtin_tool"
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") != "function":
        return "builtin_tool"
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), Mapping) else None
    if isinstance(fmt, Mapping) and fmt.get("type") not in ("text", "json_object", "json_schema"):
        return "text_format"
    items = body.get("input")
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            return "input_item"
        kind = item.get("type", "message")
        if kind not in _CARRIED_ITEMS:
            return "input_item"
        content = item.get("content")
        for part in content if kind == "message" and isinstance(content, list) else ():
            if not isinstance(part, Mapping) or part.get("type") not in _CARRIED_PARTS:
                return "input_item"
            if part.get("type") == "input_image" and not part.get("image_url"):
                return "input_item"  # an uploaded file's id: the chat server cannot fetch it
    return None
