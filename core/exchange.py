"""What one proxied request produced: an Exchange holding one Observation per arm."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from core.routing import RoutingDecision


class Route(StrEnum):
    """The OpenAI endpoints Understudy mirrors or splits."""

    CHAT = "chat.completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"


class Role(StrEnum):
    """Why an upstream was called for this exchange."""

    SERVED = "served"  # its answer went to the client
    SHADOW = "shadow"  # a candidate mirrored in the background
    REVERSE_SHADOW = "reverse_shadow"  # the primary mirrored in the background: the candidate served
    NOISE = "noise"  # the primary called a second time, for run-to-run noise
    FAILED_OVER = "failed_over"  # the candidate was to serve, failed before its first byte


class ErrorKind(StrEnum):
    """The closed set of ways an upstream call can fail."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    HTTP_STATUS = "http_status"
    INVALID_RESPONSE = "invalid_response"
    CLIENT_ABORTED = "client_aborted"
    INCOMPLETE_STREAM = "incomplete_stream"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    # Of completion_tokens, those a reasoning model spent thinking (when the server says).
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call as the model emitted it; ``arguments`` is the raw JSON text."""

    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One arm of an exchange: what a single upstream did with the request."""

    upstream: str
    role: Role
    model: str  # the model name actually sent to this upstream
    status: int | None  # HTTP status, None when no response arrived
    latency_ms: float | None
    # Time to the first token of the visible answer (text or a tool call), the one users
    # wait for; first content byte for non-streaming. ``ttft_any_ms`` counts reasoning too.
    ttft_ms: float | None
    usage: Usage = field(default_factory=Usage)
    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    error_kind: ErrorKind | None = None
    truncated: bool = False  # the text or the reasoning was cut at the recorder's size limit
    embedding_dims: int | None = None  # for embeddings: the vector length, not the vector
    # A reasoning model's thinking, kept apart from ``text`` so no answer metric sees it.
    reasoning_text: str | None = None
    ttft_any_ms: float | None = None  # time to the first token of any kind, reasoning included

    @property
    def ok(self) -> bool:
        return self.error_kind is None and self.status is not None and self.status < 400


@dataclass(frozen=True, slots=True)
class Exchange:
    """One client request and every upstream call made for it."""

    id: uuid.UUID
    created_at: datetime
    route: Route
    requested_model: str
    subject_hash: str
    stream: bool
    decision: RoutingDecision
    served_by: str  # the upstream whose answer the client received
    fallback: bool  # the candidate failed before its first byte and the primary answered
    request: Mapping[str, Any]  # the request body as parsed JSON (never headers or keys)
    observations: tuple[Observation, ...] = ()

    def arm(self, role: Role) -> Observation | None:
        """The first observation with ``role``, if any."""
        return next((o for o in self.observations if o.role is role), None)
