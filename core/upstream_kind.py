"""The kinds of upstream Understudy can talk to: settings name them, the proxy builds them."""

from __future__ import annotations

from enum import StrEnum


class UpstreamKind(StrEnum):
    # Any OpenAI-compatible server: OpenAI, LM Studio, or any of the three below when
    # only its OpenAI API is known. Probed with GET /v1/models.
    OPENAI = "openai"
    OLLAMA = "ollama"  # Ollama's native /api/* endpoints; probed with GET /api/tags
    # OpenAI-compatible servers with a health endpoint and Prometheus metrics of their own.
    VLLM = "vllm"
    TGI = "tgi"
    LLAMACPP = "llamacpp"  # llama.cpp's server
