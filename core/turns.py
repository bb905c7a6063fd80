"""The turns of a stored Responses API request as (role, text): its instructions, then its
``input`` as text or items. Chat requests keep theirs in ``messages``; this is the other shape."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Shown first when the request continues a conversation kept by the server that made it.
CONTINUES = ("note", "(continues an earlier response, not stored here)")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _item(item: Any) -> tuple[str, str] | None:
    if isinstance(item, str):
        return "user", item
    if not isinstance(item, Mapping):
        return None
    kind = item.get("type", "message")
    if kind == "message":
        return str(item.get("role", "user")), _text(item.get("content"))
    if kind == "function_call":
        return "assistant", f"{item.get('name', '')}({item.get('arguments', '')})"
    if kind == "function_call_output":
        output = item.get("output")
        return "tool", output if isinstance(output, str) else json.dumps(output)
    return None


def responses_turns(request: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """The turns of a request that carries ``input`` rather than ``messages``, else None."""
    if "messages" in request or "input" not in request:
        return None
    turns: list[tuple[str, str]] = []
    if request.get("previous_response_id"):
        turns.append(CONTINUES)
    if isinstance(request.get("instructions"), str):
        turns.append(("system", request["instructions"]))
    given = request["input"]
    items = given if isinstance(given, list) else [given]
    turns += [turn for item in items if (turn := _item(item)) is not None]
    return turns
