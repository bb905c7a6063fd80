"""Calling one upstream to the end, in the background, under a cap and a deadline."""

from __future__ import annotations

from core import UpstreamError, UpstreamRequest
from proxy.capture import Capture
from proxy.upstreams.port import Upstream


class ConcurrencyCaps:
    """In-flight call counts per upstream; a full cap means skip, never queue."""

    def __init__(self, caps: dict[str, int]) -> None:
        self._caps = caps
        self._in_flight: dict[str, int] = dict.fromkeys(caps, 0)

    def try_acquire(self, name: str) -> bool:
        if self._in_flight[name] >= self._caps[name]:
            return False
        self._in_flight[name] += 1
        return True

    def release(self, name: str) -> None:
        self._in_flight[name] -= 1

    def in_flight(self, name: str) -> int:
        return self._in_flight[name]


async def call_to_end(upstream: Upstream, request: UpstreamRequest, capture: Capture) -> None:
    """Read the whole response into ``capture``. Failures become data, never exceptions.

    The deadline is the upstream session's total timeout, which covers reading the body.
    """
    try:
        response = await upstream.send(request)
        capture.status = response.status
        try:
            async for chunk in response:
                capture.add(chunk)
        finally:
            await response.aclose()
    except UpstreamError as exc:
        capture.finish(exc.kind)
    else:
        capture.finish()
