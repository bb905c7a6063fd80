"""Any OpenAI-compatible server: OpenAI itself, vLLM, llama.cpp server, TGI's /v1, LM Studio."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from core import Route, UpstreamRequest, UpstreamResponse
from proxy.upstreams.base import HttpUpstream
from proxy.upstreams.port import ProbeResult
from proxy.upstreams.probing import openai_model_ids, serves_models

ROUTE_PATHS = {
    Route.CHAT: "/chat/completions",
    Route.COMPLETIONS: "/completions",
    Route.EMBEDDINGS: "/embeddings",
    Route.RESPONSES: "/responses",
}


def encode_body(body: Mapping[str, Any]) -> bytes | str:
    """A request body as JSON: by orjson (several times faster, compact UTF-8), or by json
    for what orjson cannot write (integers beyond 64 bits, non-string keys, lone surrogates)."""
    try:
        return orjson.dumps(body)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(body)


class OpenAIUpstream(HttpUpstream):
    """Sends the request as is; the response is already in OpenAI's wire format."""

    async def probe(self, timeout_s: float) -> ProbeResult:
        """``GET /v1/models`` answers, and lists every mapped model."""
        return await serves_models(self, self.url("/models"), timeout_s, openai_model_ids)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        headers = dict(request.headers)
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        headers["Content-Type"] = "application/json"
        raw = request.raw_body if request.raw_body is not None else encode_body(request.body)
        # Error statuses come back as responses: the proxy relays a primary's
        # error to the client untouched and records a candidate's.
        return await self.call("POST", self.url(ROUTE_PATHS[request.route]), raw, headers)
