"""Upstream adapters behind one registry: adding a kind is one module plus one entry here."""

from __future__ import annotations

from core.upstream_kind import UpstreamKind
from proxy.config import UpstreamConfig
from proxy.upstreams.base import HttpUpstream
from proxy.upstreams.llamacpp import LlamaCppUpstream
from proxy.upstreams.ollama import OllamaUpstream
from proxy.upstreams.openai import OpenAIUpstream
from proxy.upstreams.tgi import TGIUpstream
from proxy.upstreams.vllm import VLLMUpstream

# One adapter per kind; a test checks that every UpstreamKind has one.
KINDS: dict[UpstreamKind, type[HttpUpstream]] = {
    UpstreamKind.OPENAI: OpenAIUpstream,
    UpstreamKind.OLLAMA: OllamaUpstream,
    UpstreamKind.VLLM: VLLMUpstream,
    UpstreamKind.TGI: TGIUpstream,
    UpstreamKind.LLAMACPP: LlamaCppUpstream,
}


def build_upstream(config: UpstreamConfig) -> HttpUpstream:
    try:
        kind = KINDS[UpstreamKind(config.kind)]
    except ValueError:
        raise ValueError(f"unknown upstream kind {config.kind!r}; known: {sorted(KINDS)}") from None
    return kind(config)


__all__ = ["KINDS", "HttpUpstream", "build_upstream"]
