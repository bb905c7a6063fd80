"""Turn a Capture into an Observation: assembled text, tool calls, usage, timing, error kind."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core import ErrorKind, Observation, Role, Route, ToolCall, Usage
from proxy import jsonfast
from proxy.capture import Capture
from proxy.sse import DONE, data_events


@dataclass(slots=True)
class _Assembly:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tools: dict[int, dict[str, str]] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    first_token_at: float | None = None  # of the visible answer: text or a tool call
    first_any_at: float | None = None  # of any kind, reasoning included
    done: bool = False
    embedding_dims: int | None = None


def observe(
    capture: Capture,
    *,
    upstream: str,
    role: Role,
    model: str,
    route: Route,
    stream: bool,
    max_chars: int,
) -> Observation:
    """Everything worth recording about one arm. Never raises on a malformed body."""
    error = capture.error
    assembly = _Assembly()
    if capture.status is not None and capture.chunks:
        try:
            if stream and capture.status < 400 and route is not Route.EMBEDDINGS:
                _read_stream(capture, route, assembly)
                if not assembly.done and error is None:
                    error = ErrorKind.INCOMPLETE_STREAM
            elif capture.status < 400:
                _read_body(capture.document(), route, assembly)
        except (
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            IndexError,
            OverflowError,
            RecursionError,  # an upstream's body nested deeper than the parser goes
        ):
            error = error or ErrorKind.INVALID_RESPONSE
    if error is None and capture.status is not None and capture.status >= 400:
        error = ErrorKind.HTTP_STATUS
    if error is None and capture.status is not None and not capture.chunks:
        error = ErrorKind.INVALID_RESPONSE

    text, text_cut = _capped(assembly.text, max_chars)
    reasoning, reasoning_cut = _capped(assembly.reasoning, max_chars)
    ttft, ttft_any = _ttfts(capture, assembly, stream)
    return Observation(
        upstream=upstream,
        role=role,
        model=model,
        status=capture.status,
        latency_ms=capture.latency_ms,
        ttft_ms=ttft,
        ttft_any_ms=ttft_any,
        usage=assembly.usage,
        text=text,
        reasoning_text=reasoning,
        tool_calls=tuple(
            ToolCall(name=t["name"], arguments=t["arguments"], id=t.get("id") or None)
            for _, t in sorted(assembly.tools.items())
        ),
        finish_reason=assembly.finish_reason,
        error_kind=error,
        truncated=text_cut or reasoning_cut,
        embedding_dims=assembly.embedding_dims,
    )


def _capped(pieces: list[str], max_chars: int) -> tuple[str | None, bool]:
    """The pieces joined and cut at ``max_chars``, and whether they were cut."""
    if not pieces:
        return None, False
    whole = "".join(pieces)
    return whole[:max_chars], len(whole) > max_chars


def _ttfts(
    capture: Capture, assembly: _Assembly, stream: bool
) -> tuple[float | None, float | None]:
    """Times to the first visible answer token and to the first token of any kind.

    Without streaming both are the first byte. A stream that only reasoned never showed
    its user a token: no visible time, rather than the time of a token they never saw.
    """
    first_byte = capture.first_byte_ms
    if not stream:
        return first_byte, first_byte

    def since_start(at: float | None) -> float | None:
        return None if at is None else (at - capture.started) * 1000

    any_token = since_start(assembly.first_any_at)
    if assembly.first_token_at is not None:
        return since_start(assembly.first_token_at), any_token
    if any_token is not None:
        return None, any_token
    return first_byte, first_byte


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, Mapping):
        return Usage()
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    # Reasoning tokens are part of completion_tokens, as OpenAI counts them.
    completion_details = raw.get("completion_tokens_details")
    reasoning = (
        completion_details.get("reasoning_tokens")
        if isinstance(completion_details, Mapping)
        else None
    )
    return Usage(
        prompt_tokens=_count(raw.get("prompt_tokens")),
        completion_tokens=_count(raw.get("completion_tokens")),
        cached_tokens=_count(cached),
        reasoning_tokens=_count(reasoning),
    )


# An upstream's answer is untrusted: a field of the wrong type is recorded as absent,
# so a number where text belongs cannot break assembling or storing the observation.
def _count(value: Any) -> int | None:
    return value if type(value) is int else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _read_stream(capture: Capture, route: Route, assembly: _Assembly) -> None:
    for at, data in data_events(capture.chunks):
        if data.strip() == DONE:
            assembly.done = True
            continue
        event = jsonfast.loads(data)
        if event.get("usage"):
            assembly.usage = _usage(event["usage"])
        for choice in event.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # only the first choice is recorded
            if choice.get("finish_reason"):
                assembly.finish_reason = _text_or_none(choice["finish_reason"])
            piece = _text(choice.get("text")) if route is Route.COMPLETIONS else ""
            delta = choice.get("delta") or {}
            if route is Route.CHAT:
                piece = _text(delta.get("content"))
                for call in delta.get("tool_calls") or ():
                    _merge_tool_fragment(assembly, call)
                    assembly.first_token_at = assembly.first_token_at or at
                if thought := _reasoning(delta):
                    assembly.reasoning.append(thought)
                    assembly.first_any_at = assembly.first_any_at or at
            if piece:
                assembly.text.append(piece)
                assembly.first_token_at = assembly.first_token_at or at
            if assembly.first_token_at is not None:
                assembly.first_any_at = assembly.first_any_at or assembly.first_token_at


def _reasoning(message: Mapping[str, Any]) -> str:
    """A message's or delta's reasoning: vLLM's ``reasoning_content``, or the newer
    ``reasoning`` (servers send one of the two)."""
    return _text(message.get("reasoning_content")) or _text(message.get("reasoning"))


def _merge_tool_fragment(assembly: _Assembly, call: Mapping[str, Any]) -> None:
    index = call.get("index", 0)
    slot = assembly.tools.setdefault(
        index if type(index) is int else 0, {"name": "", "arguments": "", "id": ""}
    )
    if call.get("id"):
        slot["id"] = _text(call["id"])
    function = call.get("function") or {}
    slot["name"] += _text(function.get("name"))
    slot["arguments"] += _text(function.get("arguments"))


def _read_body(body: Any, route: Route, assembly: _Assembly) -> None:
    assembly.usage = _usage(body.get("usage"))
    if route is Route.EMBEDDINGS:
        data = body["data"]
        if data:
            vector = data[0]["embedding"]
            assembly.embedding_dims = len(vector) if isinstance(vector, list) else _b64_dims(vector)
        return
    choices = body.get("choices") or []
    if not choices:
        return
    choice = choices[0]
    assembly.finish_reason = _text_or_none(choice.get("finish_reason"))
    if route is Route.COMPLETIONS:
        assembly.text.append(_text(choice.get("text")))
        return
    message = choice.get("message") or {}
    if content := _text(message.get("content")):
        assembly.text.append(content)
    if thought := _reasoning(message):
        assembly.reasoning.append(thought)
    for i, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        assembly.tools[i] = {
            "name": _text(function.get("name")),
            "arguments": _text(function.get("arguments")),
            "id": _text(call.get("id")),
        }


def _b64_dims(encoded: str) -> int | None:
    try:
        return len(base64.b64decode(encoded, validate=True)) // 4
    except (binascii.Error, ValueError):
        return None
