"""An arm's Responses API answer as an Observation: text, tool calls, usage, timing, status.

The time to first token is that of the first ``response.output_text.delta`` (or of a
function call's first arguments, the answer being a call); the finish is the final
response's status, with the reason when it ended incomplete.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core import ErrorKind, Observation, Role, ToolCall, Usage
from proxy.capture import Capture
from proxy.sse import data_events

# Events that end a response stream, with its final Response object.
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_ANSWER_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)


@dataclass(slots=True)
class _Reading:
    deltas: list[str] = field(default_factory=list)
    final: Mapping[str, Any] | None = None
    first_token_at: float | None = None


def observe_responses(
    capture: Capture, *, upstream: str, role: Role, model: str, stream: bool, max_chars: int
) -> Observation:
    """Everything worth recording about one arm. Never raises on a malformed body."""
    error = capture.error
    reading = _Reading()
    if capture.status is not None and capture.status < 400 and capture.chunks:
        try:
            if stream:
                _read_stream(capture, reading)
                if reading.final is None and error is None:
                    error = ErrorKind.INCOMPLETE_STREAM
            else:
                body = json.loads(capture.body())
                reading.final = body if isinstance(body, Mapping) else None
                if reading.final is None:
                    error = error or ErrorKind.INVALID_RESPONSE
        except _UNREADABLE:
            error = error or ErrorKind.INVALID_RESPONSE
    if error is None and capture.status is not None and capture.status >= 400:
        error = ErrorKind.HTTP_STATUS
    if error is None and capture.status is not None and not capture.chunks:
        error = ErrorKind.INVALID_RESPONSE

    final = reading.final or {}
    output: list[Any] = final["output"] if isinstance(final.get("output"), list) else []
    pieces = reading.deltas or _texts(output)
    whole = "".join(pieces) if pieces else None
    ttft = capture.first_byte_ms
    if stream and reading.first_token_at is not None:
        ttft = (reading.first_token_at - capture.started) * 1000
    return Observation(
        upstream=upstream,
        role=role,
        model=model,
        status=capture.status,
        latency_ms=capture.latency_ms,
        ttft_ms=ttft,
        usage=_usage(final.get("usage")),
        text=None if whole is None else whole[:max_chars],
        tool_calls=_calls(output),
        finish_reason=_finish(final) if reading.final is not None else None,
        error_kind=error,
        truncated=whole is not None and len(whole) > max_chars,
    )


def _read_stream(capture: Capture, reading: _Reading) -> None:
    for at, data in data_events(capture.chunks):
        event = json.loads(data)
        kind = event.get("type")
        if kind in _ANSWER_DELTAS:
            reading.first_token_at = reading.first_token_at or at
            if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
                reading.deltas.append(event["delta"])
        elif kind in _FINAL_EVENTS and isinstance(event.get("response"), Mapping):
            reading.final = event["response"]


def _texts(output: list[Any]) -> list[str]:
    return [
        part["text"]
        for item in output
        if isinstance(item, Mapping) and item.get("type") == "message"
        for part in item.get("content") or ()
        if isinstance(part, Mapping)
        and part.get("type") == "output_text"
        and isinstance(part.get("text"), str)
    ]


def _calls(output: list[Any]) -> tuple[ToolCall, ...]:
    return tuple(
        ToolCall(
            name=_text(item.get("name")),
            arguments=_text(item.get("arguments")),
            id=_text(item.get("call_id")) or None,
        )
        for item in output
        if isinstance(item, Mapping) and item.get("type") == "function_call"
    )


def _finish(final: Mapping[str, Any]) -> str | None:
    """``completed``, ``failed``, or the reason an incomplete response stopped."""
    status = final.get("status")
    details = final.get("incomplete_details")
    if status == "incomplete" and isinstance(details, Mapping):
        return _text(details.get("reason")) or "incomplete"
    return status if isinstance(status, str) else None


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, Mapping):
        return Usage()
    details = raw.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return Usage(
        prompt_tokens=_count(raw.get("input_tokens")),
        completion_tokens=_count(raw.get("output_tokens")),
        cached_tokens=_count(cached),
    )


# An upstream's answer is untrusted: a field of the wrong type is recorded as absent.
def _count(value: Any) -> int | None:
    return value if type(value) is int else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
