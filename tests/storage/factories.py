"""Test factories: exchanges with every field set, or as little as possible."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

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

T0 = datetime(2025, 1, 15, 12, 0, 0, 123456, tzinfo=UTC)


def decision(**overrides: Any) -> RoutingDecision:
    base = RoutingDecision(
        served="openai",
        served_is_candidate=False,
        shadow="vllm-llama",
        noise=True,
        mode=RolloutMode.SHADOW,
        percent=25.5,
        flag_version=7,
        bucket=4321,
    )
    return dataclasses.replace(base, **overrides)


def served_arm(**overrides: Any) -> Observation:
    base = Observation(
        upstream="openai",
        role=Role.SERVED,
        model="gpt-4o-mini-2024-07-18",
        status=200,
        latency_ms=812.25,
        ttft_ms=140.5,
        ttft_any_ms=90.25,
        usage=Usage(prompt_tokens=31, completion_tokens=12, cached_tokens=8, reasoning_tokens=5),
        text="Bonjour ! Ça va très bien. 🚀",
        reasoning_text="Il faut répondre poliment, en français.",
        tool_calls=(
            ToolCall(name="get_weather", arguments='{"city": "Paris"}', id="call_1"),
            ToolCall(name="noop", arguments="{}"),
        ),
        finish_reason="tool_calls",
        truncated=True,
    )
    return dataclasses.replace(base, **overrides)


def shadow_arm(**overrides: Any) -> Observation:
    base = Observation(
        upstream="vllm-llama",
        role=Role.SHADOW,
        model="meta-llama/Llama-3.1-8B-Instruct",
        status=None,
        latency_ms=30000.0,
        ttft_ms=None,
        error_kind=ErrorKind.TIMEOUT,
    )
    return dataclasses.replace(base, **overrides)


def noise_arm(**overrides: Any) -> Observation:
    base = Observation(
        upstream="openai",
        role=Role.NOISE,
        model="gpt-4o-mini-2024-07-18",
        status=500,
        latency_ms=50.0,
        ttft_ms=49.0,
        error_kind=ErrorKind.HTTP_STATUS,
        finish_reason=None,
    )
    return dataclasses.replace(base, **overrides)


def full_exchange(**overrides: Any) -> Exchange:
    """An exchange with every field set to a non-default value."""
    base = Exchange(
        id=uuid.uuid4(),
        created_at=T0,
        route=Route.CHAT,
        requested_model="gpt-4o-mini",
        subject_hash="5f3c9a",
        stream=True,
        decision=decision(),
        served_by="openai",
        fallback=True,
        request={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Salut, ça va ?"}],
            "temperature": 0.7,
            "max_tokens": 64,
            "stream": True,
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
            "nested": {"list": [1, 2.5, None, True, "x"]},
        },
        observations=(served_arm(), shadow_arm(), noise_arm()),
    )
    return dataclasses.replace(base, **overrides)


def minimal_exchange(**overrides: Any) -> Exchange:
    """An embeddings exchange with every optional field empty."""
    base = Exchange(
        id=uuid.uuid4(),
        created_at=T0,
        route=Route.EMBEDDINGS,
        requested_model="text-embedding-3-small",
        subject_hash="",
        stream=False,
        decision=RoutingDecision(
            served="openai",
            served_is_candidate=False,
            shadow=None,
            noise=False,
            mode=RolloutMode.OFF,
            percent=0.0,
            flag_version=0,
            bucket=0,
        ),
        served_by="openai",
        fallback=False,
        request={},
        observations=(
            Observation(
                upstream="openai",
                role=Role.SERVED,
                model="text-embedding-3-small",
                status=200,
                latency_ms=None,
                ttft_ms=None,
                embedding_dims=1536,
            ),
        ),
    )
    return dataclasses.replace(base, **overrides)


def simple_exchange(n: int = 0, **overrides: Any) -> Exchange:
    """A small shadowed chat exchange; ``n`` spreads ``created_at`` a second apart."""
    fields: dict[str, Any] = {
        "created_at": T0 + timedelta(seconds=n),
        "fallback": False,
        "observations": (served_arm(text=f"answer {n}"), shadow_arm()),
    }
    return full_exchange(**(fields | overrides))
