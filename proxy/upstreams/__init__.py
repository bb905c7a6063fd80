"""Upstream adapters behind one registry: adding a kind is one module plus one entry here."""

from __future__ import annotations

from proxy.config import UpstreamConfig
from proxy.upstreams.base import HttpUpstream
from proxy.upstreams.ollama import OllamaUpstream
from proxy.upstreams.openai import OpenAIUpstream

KINDS: dict[str, type[HttpUpstream]] = {
    "openai": OpenAIUpstream,
    "ollama": OllamaUpstream,
}


def build_upstream(config: UpstreamConfig) -> HttpUpstream:
    try:
        kind = KINDS[config.kind]
    except KeyError:
        raise ValueError(f"unknown upstream kind {config.kind!r}; known: {sorted(KINDS)}") from None
    return kind(config)


__all__ = ["KINDS", "HttpUpstream", "build_upstream"]
