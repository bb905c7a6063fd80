"""Exchange <-> JSON: the one shape used by spill files and ``--format json``.

The shape is documented in ``storage/JSON_SHAPE.md``. Decoding ignores keys it
does not know and fills optional ones that are missing, so files written by a
newer or older version still load.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from core import (
    ErrorKind,
    Exchange,
    Observation,
    Role,
    RolloutMode,
    Route,
    RoutingDecision,
    ToolCall,
    Usage,
)


def candidate_of(decision: RoutingDecision) -> str | None:
    """The candidate a decision involves: the split/cutover server, else the shadow."""
    return decision.served if decision.served_is_candidate else decision.shadow


def decision_to_json(decision: RoutingDecision) -> dict[str, Any]:
    return {
        "served": decision.served,
        "served_is_candidate": decision.served_is_candidate,
        "shadow": decision.shadow,
        "noise": decision.noise,
        "reverse_shadow": decision.reverse_shadow,
        "mode": decision.mode.value,
        "percent": decision.percent,
        "flag_version": decision.flag_version,
        "bucket": decision.bucket,
    }


def observation_to_json(obs: Observation) -> dict[str, Any]:
    return {
        "upstream": obs.upstream,
        "role": obs.role.value,
        "model": obs.model,
        "status": obs.status,
        "error_kind": obs.error_kind.value if obs.error_kind is not None else None,
        "latency_ms": obs.latency_ms,
        "ttft_ms": obs.ttft_ms,
        "usage": {
            "prompt_tokens": obs.usage.prompt_tokens,
            "completion_tokens": obs.usage.completion_tokens,
            "cached_tokens": obs.usage.cached_tokens,
            "reasoning_tokens": obs.usage.reasoning_tokens,
        },
        "finish_reason": obs.finish_reason,
        "text": obs.text,
        "tool_calls": [tool_call_to_json(c) for c in obs.tool_calls],
        "truncated": obs.truncated,
        "embedding_dims": obs.embedding_dims,
        "reasoning_text": obs.reasoning_text,
        "ttft_any_ms": obs.ttft_any_ms,
    }


def tool_call_to_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def exchange_to_json(exchange: Exchange) -> dict[str, Any]:
    return {
        "id": str(exchange.id),
        "created_at": to_utc(exchange.created_at).isoformat(),
        "route": exchange.route.value,
        "requested_model": exchange.requested_model,
        "subject_hash": exchange.subject_hash,
        "stream": exchange.stream,
        "served_by": exchange.served_by,
        "fallback": exchange.fallback,
        "candidate": candidate_of(exchange.decision),
        "decision": decision_to_json(exchange.decision),
        "request": dict(exchange.request) if exchange.request else None,
        "observations": [observation_to_json(o) for o in exchange.observations],
    }


def to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; give a timezone-aware value")
    return value.astimezone(UTC)


def decision_from_json(data: Mapping[str, Any]) -> RoutingDecision:
    return RoutingDecision(
        served=data["served"],
        served_is_candidate=bool(data["served_is_candidate"]),
        shadow=data.get("shadow"),
        noise=bool(data.get("noise", False)),
        mode=RolloutMode(data["mode"]),
        percent=float(data.get("percent", 0.0)),
        flag_version=int(data.get("flag_version", 0)),
        bucket=int(data.get("bucket", 0)),
        reverse_shadow=bool(data.get("reverse_shadow", False)),
    )


def tool_call_from_json(data: Mapping[str, Any]) -> ToolCall:
    return ToolCall(name=data["name"], arguments=data.get("arguments", ""), id=data.get("id"))


def observation_from_json(data: Mapping[str, Any]) -> Observation:
    usage = data.get("usage") or {}
    error_kind = data.get("error_kind")
    return Observation(
        upstream=data["upstream"],
        role=Role(data["role"]),
        model=data["model"],
        status=data.get("status"),
        latency_ms=data.get("latency_ms"),
        ttft_ms=data.get("ttft_ms"),
        usage=Usage(
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            cached_tokens=usage.get("cached_tokens"),
            reasoning_tokens=usage.get("reasoning_tokens"),
        ),
        text=data.get("text"),
        tool_calls=tuple(tool_call_from_json(c) for c in data.get("tool_calls") or ()),
        finish_reason=data.get("finish_reason"),
        error_kind=ErrorKind(error_kind) if error_kind is not None else None,
        truncated=bool(data.get("truncated", False)),
        embedding_dims=data.get("embedding_dims"),
        reasoning_text=data.get("reasoning_text"),
        ttft_any_ms=data.get("ttft_any_ms"),
    )


def exchange_from_json(data: Mapping[str, Any]) -> Exchange:
    return Exchange(
        id=uuid.UUID(data["id"]),
        created_at=to_utc(datetime.fromisoformat(data["created_at"])),
        route=Route(data["route"]),
        requested_model=data["requested_model"],
        subject_hash=data["subject_hash"],
        stream=bool(data["stream"]),
        decision=decision_from_json(data["decision"]),
        served_by=data["served_by"],
        fallback=bool(data.get("fallback", False)),
        request=data.get("request") or {},
        observations=tuple(observation_from_json(o) for o in data.get("observations") or ()),
    )


def dumps(exchange: Exchange) -> str:
    """One JSON line, ASCII only so any string (even lone surrogates) survives a file."""
    return json.dumps(exchange_to_json(exchange), ensure_ascii=True, separators=(",", ":"))


def dump_bytes(exchange: Exchange) -> bytes:
    """``dumps`` as UTF-8 bytes, by orjson where it can (several times faster): the
    recorder hand-off's form. Lone surrogates or integers orjson cannot hold take
    ``dumps``'s way."""
    document = exchange_to_json(exchange)
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        return json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def loads(line: str | bytes) -> Exchange:
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:  # an escaped lone surrogate: only json reads it
        document = json.loads(line)
    return exchange_from_json(document)
