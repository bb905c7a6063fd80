"""Deterministic "model output" shared by the fake upstreams.

Everything here is a pure function of the request, so the same request always
gets the same bytes back: tests can compare an answer relayed by the proxy
with the answer fetched directly, byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import struct
from collections.abc import Sequence
from typing import Any

DEFAULT_REPLY_TEMPLATE = (
    "{persona}: {model} answers request {digest}. The quick brown fox jumps over the lazy dog."
)
# What a reasoning model (a fake's switch) thinks before it answers.
REASONING_TEMPLATE = "Thinking it over ({digest}): the request wants a short plain answer."

# OpenAI's tokens carry their leading space (" world"), so splitting before
# each run of whitespace gives pieces whose concatenation is the exact text.
_WORDS = re.compile(r"\s*\S+|\s+$")
# Tool-call arguments stream in small fragments such as '{"', 'location', '":"'.
_ARG_FRAGMENTS = re.compile(r"[A-Za-z0-9_]+|[^A-Za-z0-9_]+")


def digest(*parts: Any) -> str:
    """Short stable hash of JSON-able parts (key order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def split_tokens(text: str) -> list[str]:
    """Split text into token-like pieces that concatenate back to the text."""
    return _WORDS.findall(text)


def split_arguments(arguments: str) -> list[str]:
    """Split a JSON arguments string the way OpenAI streams tool-call arguments."""
    return _ARG_FRAGMENTS.findall(arguments)


def message_text(content: Any) -> str:
    """Text of a chat message `content`: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def count_tokens(text: str) -> int:
    return len(split_tokens(text))


def apply_limits(
    pieces: list[str], max_tokens: int | None, stop: str | list[str] | None
) -> tuple[list[str], str]:
    """Cut the pieces at a stop sequence or after max_tokens; return the finish reason."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if stops:
        text = "".join(pieces)
        cut = min((text.find(s) for s in stops if s and s in text), default=-1)
        if cut >= 0:
            return split_tokens(text[:cut]), "stop"
    if max_tokens is not None and len(pieces) > max_tokens:
        return pieces[:max_tokens], "length"
    return pieces, "stop"


def pick_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function the model "decides" to call: the one named by tool_choice, or,
    when the last user message asks for weather or names a tool, that tool."""
    tools: list[dict[str, Any]] = [
        t["function"] for t in body.get("tools") or [] if t.get("type") == "function"
    ]
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t["name"] == wanted), None)
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    text = message_text(last.get("content")).lower() if last.get("role") == "user" else ""
    named = next((t for t in tools if t["name"].lower() in text), None)
    if named is not None:
        return named
    if "weather" in text:
        return next((t for t in tools if "weather" in t["name"].lower()), tools[0])
    return tools[0] if choice == "required" else None


def example_from_schema(schema: Any, seed: str = "") -> Any:
    """A small deterministic value that satisfies a (simple) JSON schema."""
    if not isinstance(schema, dict):
        return {}
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_from_schema(sub, seed) for name, sub in props.items()}
    if kind == "array":
        return [example_from_schema(schema.get("items", {}), seed)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"example-{seed[:6]}" if seed else "example"


def embedding(text_or_tokens: Any, dims: int) -> list[float]:
    """Unit-length vector seeded by the input; values are exact float32s so the
    float and base64 encodings of one input carry the same numbers."""
    rng = random.Random(digest(text_or_tokens))
    raw = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    packed = struct.pack(f"<{dims}f", *(v / norm for v in raw))
    return list(struct.unpack(f"<{dims}f", packed))


def embedding_base64(vector: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def huge_text(size: int) -> str:
    """Exactly `size` characters of filler for the huge_line fault."""
    unit = "lorem ipsum "
    return (unit * (size // len(unit) + 1))[:size]
