"""Mapping between ``core.Exchange`` values and table rows."""

from __future__ import annotations

from typing import Any

from core import Exchange, Observation, RolloutMode, Route, RoutingDecision
from storage.codec import (
    candidate_of,
    observation_from_json,
    to_utc,
    tool_call_to_json,
)
from storage.models import ExchangeRow, ObservationRow


def exchange_row(exchange: Exchange) -> dict[str, Any]:
    """Column values for the exchanges table."""
    d = exchange.decision
    return {
        "id": exchange.id,
        "created_at": to_utc(exchange.created_at),
        "route": exchange.route.value,
        "requested_model": exchange.requested_model,
        "subject_hash": exchange.subject_hash,
        "stream": exchange.stream,
        "mode": d.mode.value,
        "percent": d.percent,
        "flag_version": d.flag_version,
        "bucket": d.bucket,
        "decision_served": d.served,
        "served_is_candidate": d.served_is_candidate,
        "decision_shadow": d.shadow,
        "noise": d.noise,
        "reverse_shadow": d.reverse_shadow,
        "served_by": exchange.served_by,
        "fallback": exchange.fallback,
        "candidate": candidate_of(d),
        "request": dict(exchange.request) if exchange.request else None,
    }


def observation_rows(exchange: Exchange) -> list[dict[str, Any]]:
    """Column values for the observations table, one per arm in order."""
    return [_observation_row(exchange, i, o) for i, o in enumerate(exchange.observations)]


def _observation_row(exchange: Exchange, position: int, obs: Observation) -> dict[str, Any]:
    return {
        "exchange_id": exchange.id,
        "position": position,
        "upstream": obs.upstream,
        "role": obs.role.value,
        "model": obs.model,
        "status": obs.status,
        "error_kind": obs.error_kind.value if obs.error_kind is not None else None,
        "latency_ms": obs.latency_ms,
        "ttft_ms": obs.ttft_ms,
        "prompt_tokens": obs.usage.prompt_tokens,
        "completion_tokens": obs.usage.completion_tokens,
        "cached_tokens": obs.usage.cached_tokens,
        "finish_reason": obs.finish_reason,
        "text": obs.text,
        "tool_calls": [tool_call_to_json(c) for c in obs.tool_calls] or None,
        "truncated": obs.truncated,
        "embedding_dims": obs.embedding_dims,
        "ttft_any_ms": obs.ttft_any_ms,
        "reasoning_tokens": obs.usage.reasoning_tokens,
        "reasoning_text": obs.reasoning_text,
    }


def exchange_from_rows(row: ExchangeRow, observations: list[ObservationRow]) -> Exchange:
    return Exchange(
        id=row.id,
        created_at=row.created_at,
        route=Route(row.route),
        requested_model=row.requested_model,
        subject_hash=row.subject_hash,
        stream=row.stream,
        decision=RoutingDecision(
            served=row.decision_served,
            served_is_candidate=row.served_is_candidate,
            shadow=row.decision_shadow,
            noise=row.noise,
            mode=RolloutMode(row.mode),
            percent=row.percent,
            flag_version=row.flag_version,
            bucket=row.bucket,
            reverse_shadow=row.reverse_shadow,
        ),
        served_by=row.served_by,
        fallback=row.fallback,
        request=row.request or {},
        observations=tuple(observation_from_columns(o, o.role) for o in observations),
    )


def observation_from_columns(row: Any, role: str) -> Observation:
    """An Observation from a row holding the observation columns (an arm, or a replayed answer)."""
    return observation_from_json(
        {
            "upstream": row.upstream,
            "role": role,
            "model": row.model,
            "status": row.status,
            "error_kind": row.error_kind,
            "latency_ms": row.latency_ms,
            "ttft_ms": row.ttft_ms,
            "usage": {
                "prompt_tokens": row.prompt_tokens,
                "completion_tokens": row.completion_tokens,
                "cached_tokens": row.cached_tokens,
                "reasoning_tokens": row.reasoning_tokens,
            },
            "finish_reason": row.finish_reason,
            "text": row.text,
            "tool_calls": row.tool_calls,
            "truncated": bool(row.truncated),
            "embedding_dims": row.embedding_dims,
            "reasoning_text": row.reasoning_text,
            "ttft_any_ms": row.ttft_any_ms,
        }
    )
