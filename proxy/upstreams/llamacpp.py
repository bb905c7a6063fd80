"""llama.cpp's server through its OpenAI API (``/v1``).

Its ``/health`` answers 200 once the model is loaded (503 while loading). Servers built on
it without that endpoint (llama-cpp-python's answers 404) are probed by their model list.
"""

from __future__ import annotations

from proxy.upstreams.base import server_root
from proxy.upstreams.load_metrics import LLAMACPP_NAMES
from proxy.upstreams.openai import OpenAIUpstream
from proxy.upstreams.port import ProbeResult
from proxy.upstreams.probing import expect_ok

_NO_HEALTH_ENDPOINT = "status 404"


class LlamaCppUpstream(OpenAIUpstream):
    load_names = LLAMACPP_NAMES

    async def probe(self, timeout_s: float) -> ProbeResult:
        alive = await expect_ok(self, f"{server_root(self.config.base_url)}/health", timeout_s)
        if alive.problem == _NO_HEALTH_ENDPOINT:
            return await super().probe(timeout_s)
        return alive
