"""The kinds of upstream Understudy can talk to: settings name them, the proxy builds them."""

from __future__ import annotations

from enum import StrEnum


class UpstreamKind(StrEnum):
    OPENAI = "openai"  # any OpenAI-compatible server: OpenAI, vLLM, llama.cpp, TGI, LM Studio
    OLLAMA = "ollama"  # Ollama's native /api/* endpoints
