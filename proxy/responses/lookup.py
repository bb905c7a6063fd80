"""``GET``, ``DELETE`` and cancel of ``/v1/responses/{id}``: sent to the arm holding it.

A response nobody here made (or one the primary made) goes through the pass-through,
as before. One a native candidate made is forwarded to it with the candidate's own key;
one a translating candidate made is answered from the turn remembered for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping

import structlog
from aiohttp import web

from core import UpstreamError
from proxy.body import read_body
from proxy.config import Limits
from proxy.errors import RequestError, error_response, redacted_upstream_error
from proxy.passthrough import PassthroughHandler, method_not_allowed, parse_target
from proxy.relay import SERVED_BY_HEADER
from proxy.responses.memory import ResponseMemory
from proxy.responses.modes import ResponsesMode, responses_mode
from proxy.upstreams.port import ForwardRequest, Upstream

log = structlog.get_logger("understudy.responses")

_METHODS = ("GET", "POST", "DELETE")


class ResponseLookups:
    def __init__(
        self,
        *,
        candidates: Mapping[str, Upstream],
        memory: ResponseMemory,
        passthrough: PassthroughHandler,
        limits: Limits,
        mirrored: Iterable[str],
        redact: Callable[[str], str],
    ) -> None:
        self._candidates = candidates
        self._memory = memory
        self._passthrough = passthrough
        self._limits = limits
        self._mirrored = tuple(mirrored)
        self._redact = redact

    async def handle(self, request: web.Request) -> web.StreamResponse:
        rid = request.match_info["response_id"]
        owner = await self._memory.owner(rid, fresh=True)
        candidate = self._candidates.get(owner.owner) if owner is not None else None
        if candidate is None:  # the primary's, or made before Understudy: the primary has it
            return await self._passthrough.handle(request)
        started = time.perf_counter()
        response = await self._at_candidate(request, candidate, rid)
        log.info(
            "response_lookup",
            method=request.method,
            owner=candidate.name,
            status=response.status,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        response.headers[SERVED_BY_HEADER] = candidate.name
        return response

    async def _at_candidate(
        self, request: web.Request, candidate: Upstream, rid: str
    ) -> web.Response:
        if request.method not in _METHODS:
            return method_not_allowed()
        action = request.match_info.get("action", "")
        if responses_mode(candidate.config) is ResponsesMode.TRANSLATE:
            return await self._translated(request.method, action, candidate, rid)
        try:
            target = parse_target(request.raw_path, self._mirrored)
            body = await read_body(request, self._limits) if request.can_read_body else None
        except RequestError as exc:
            return exc.response()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if candidate.config.api_key is not None:
            headers["Authorization"] = f"Bearer {candidate.config.api_key}"
        call = ForwardRequest(request.method, target.tail, target.query, body, headers)
        try:
            answer = await candidate.forward(call)
            try:
                raw = b"".join([chunk async for chunk in answer])
            finally:
                await answer.aclose()
        except UpstreamError as exc:
            return error_response(
                504 if exc.kind.value == "timeout" else 502,
                f"The server holding this response did not answer ({exc.kind.value}).",
                error_type="upstream_error",
                code=f"upstream_{exc.kind.value}",
            )
        if answer.status >= 400:
            raw = redacted_upstream_error(raw, self._redact)
        elif request.method == "DELETE" and not action:
            await self._forget(rid)
        content_type = next(
            (v for k, v in answer.headers.items() if k.lower() == "content-type"),
            "application/json",
        )
        return web.Response(status=answer.status, body=raw, headers={"Content-Type": content_type})

    async def _translated(
        self, method: str, action: str, candidate: Upstream, rid: str
    ) -> web.Response:
        turn = await self._memory.turn(rid, fresh=True)
        if turn is None or turn.upstream != candidate.name or action not in ("", "cancel"):
            return error_response(
                404, f"No response with id '{rid}' found.", code="response_not_found"
            )
        if action == "cancel":  # it was answered whole at once: nothing runs to cancel
            return error_response(
                400, "Only background responses can be cancelled.", code="not_background"
            )
        if method == "DELETE":
            await self._forget(rid)
            deleted = {"id": rid, "object": "response", "deleted": True}
            return web.Response(body=json.dumps(deleted), content_type="application/json")
        if method != "GET":
            return method_not_allowed()
        return web.Response(body=json.dumps(turn.response), content_type="application/json")

    async def _forget(self, rid: str) -> None:
        await self._memory.forget(rid)
