"""vLLM's OpenAI-compatible server: ``/health`` at its root, and its own Prometheus names."""

from __future__ import annotations

from proxy.upstreams.base import server_root
from proxy.upstreams.load_metrics import VLLM_NAMES
from proxy.upstreams.openai import OpenAIUpstream
from proxy.upstreams.port import ProbeResult
from proxy.upstreams.probing import expect_ok


class VLLMUpstream(OpenAIUpstream):
    load_names = VLLM_NAMES

    async def probe(self, timeout_s: float) -> ProbeResult:
        """``GET /health`` answers 200 (the engine is alive), then the model check:
        vLLM refuses a model name it does not serve, so a missing one fails every call."""
        alive = await expect_ok(self, f"{server_root(self.config.base_url)}/health", timeout_s)
        return alive if not alive.healthy else await super().probe(timeout_s)
