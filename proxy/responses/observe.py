"""An arm's Responses API answer as an Observation: text, tool calls, usage, timing, status.

The time to first token is that of the first ``response.output_text.delta`` (or of a
function call's first arguments, the answer being a call); the finish is the final
response's status, with the reason when it ended incomplete.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core import ErrorKind, Observation, Role, ToolCall, Usage
from proxy import jsonfast
from proxy.capture import Capture
from proxy.sse import data_events

# Events that end a response stream, with its final Response object.
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_ANSWER_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})
# A reasoning model's thinking as it streams: the full text, or the summary OpenAI shows.
_REASONING_DELTAS = frozenset(
    {"response.reasoning_text.delta", "response.reasoning_summary_text.delta"}
)
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)


@dataclass(slots=True)
class _Reading:
    deltas: list[str] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    final: Mapping[str, Any] | None = None
    first_token_at: float | None = None  # of the visible answer
    first_thought_at: float | None = None


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
                body = jsonfast.loads(capture.body())
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
    thoughts = reading.thoughts or _thoughts(output)
    thinking = "".join(thoughts) if thoughts else None
    ttft, ttft_any = _ttfts(capture, reading, stream)
    return Observation(
        upstream=upstream,
        role=role,
        model=model,
        status=capture.status,
        latency_ms=capture.latency_ms,
        ttft_ms=ttft,
        ttft_any_ms=ttft_any,
        usage=_usage(final.get("usage")),
        text=None if whole is None else whole[:max_chars],
        reasoning_text=None if thinking is None else thinking[:max_chars],
        tool_calls=_calls(output),
        finish_reason=_finish(final) if reading.final is not None else None,
        error_kind=error,
        truncated=any(t is not None and len(t) > max_chars for t in (whole, thinking)),
    )


def _ttfts(capture: Capture, reading: _Reading, stream: bool) -> tuple[float | None, float | None]:
    """Times to the first visible answer token and to the first token of any kind; both the
    first byte without streaming. A stream that only reasoned showed its user no token."""
    first_byte = capture.first_byte_ms
    if not stream:
        return first_byte, first_byte

    def since_start(at: float | None) -> float | None:
        return None if at is None else (at - capture.started) * 1000

    firsts = [at for at in (reading.first_token_at, reading.first_thought_at) if at is not None]
    if not firsts:
        return first_byte, first_byte
    return since_start(reading.first_token_at), since_start(min(firsts))


def _read_stream(capture: Capture, reading: _Reading) -> None:
    for at, data in data_events(capture.chunks):
        event = jsonfast.loads(data)
        kind = event.get("type")
        if kind in _ANSWER_DELTAS:
            reading.first_token_at = reading.first_token_at or at
            if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
                reading.deltas.append(event["delta"])
        elif kind in _REASONING_DELTAS:
            reading.first_thought_at = reading.first_thought_at or at
            if isinstance(event.get("delta"), str):
                reading.thoughts.append(event["delta"])
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


def _thoughts(output: list[Any]) -> list[str]:
    """A reasoning item's text, or its summary when the server shows only that."""
    pieces: list[str] = []
    for item in output:
        if not isinstance(item, Mapping) or item.get("type") != "reasoning":
            continue
        parts = item.get("content") or item.get("summary") or ()
        pieces += [
            p["text"] for p in parts if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        ]
    return pieces


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
    # Reasoning tokens are part of output_tokens, as OpenAI counts them.
    out_details = raw.get("output_tokens_details")
    reasoning = out_details.get("reasoning_tokens") if isinstance(out_details, Mapping) else None
    return Usage(
        prompt_tokens=_count(raw.get("input_tokens")),
        completion_tokens=_count(raw.get("output_tokens")),
        cached_tokens=_count(cached),
        reasoning_tokens=_count(reasoning),
    )


# An upstream's answer is untrusted: a field of the wrong type is recorded as absent.
def _count(value: Any) -> int | None:
    return value if type(value) is int else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
