"""Health probes shared by the adapters: a GET that must answer 200, and the model check.

A probe never raises: every failure becomes a ProbeResult with a short problem that
names the error kind or status, never a body (it may quote a key).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from core import UpstreamError
from proxy.upstreams.base import HttpUpstream
from proxy.upstreams.port import HEALTHY, ProbeResult

# Reads the served model names out of a JSON answer; raises on an unexpected shape.
ModelNames = Callable[[Any], Iterable[str]]


def openai_model_ids(answer: Any) -> Iterable[str]:
    """``GET /v1/models``: ``{"data": [{"id": ...}, ...]}``."""
    return [str(item["id"]) for item in answer["data"]]


def ollama_model_names(answer: Any) -> Iterable[str]:
    """``GET /api/tags``: ``{"models": [{"name": ..., "model": ...}, ...]}``."""
    return [str(item.get("name") or item["model"]) for item in answer["models"]]


def ollama_tagged(name: str) -> str:
    """Ollama reads a model name without a tag as ``:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


async def expect_ok(upstream: HttpUpstream, url: str, timeout_s: float) -> ProbeResult:
    """Healthy when ``url`` answers 200."""
    try:
        status, _body = await upstream.get(url, timeout_s)
    except UpstreamError as exc:
        return ProbeResult.failed(exc.kind.value)
    return HEALTHY if status == 200 else ProbeResult.failed(f"status {status}")


async def serves_models(
    upstream: HttpUpstream,
    url: str,
    timeout_s: float,
    names: ModelNames,
    normalise: Callable[[str], str] = str,
) -> ProbeResult:
    """Healthy when ``url`` answers 200 with a model list holding every mapped model."""
    try:
        status, body = await upstream.get(url, timeout_s)
    except UpstreamError as exc:
        return ProbeResult.failed(exc.kind.value)
    if status != 200:
        return ProbeResult.failed(f"status {status}")
    try:
        served = {normalise(name) for name in names(json.loads(body))}
    except (ValueError, KeyError, TypeError, AttributeError):
        return ProbeResult.failed("model list unreadable")
    wanted = sorted(set(upstream.config.model_map.values()))
    missing = tuple(m for m in wanted if normalise(m) not in served)
    if missing:
        return ProbeResult(False, "model missing", missing)
    return HEALTHY
