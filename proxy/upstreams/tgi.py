"""Text Generation Inference through its OpenAI API (``/v1``): ``/health`` at its root.

TGI serves the one model it was started with whatever a request names, so there is no
model to check: ``/health`` answers 200 once that model is loaded and answering.
"""

from __future__ import annotations

from proxy.upstreams.base import server_root
from proxy.upstreams.load_metrics import TGI_NAMES
from proxy.upstreams.openai import OpenAIUpstream
from proxy.upstreams.port import ProbeResult
from proxy.upstreams.probing import expect_ok


class TGIUpstream(OpenAIUpstream):
    load_names = TGI_NAMES

    async def probe(self, timeout_s: float) -> ProbeResult:
        return await expect_ok(self, f"{server_root(self.config.base_url)}/health", timeout_s)
