"""Sign-in attempts per client address in a sliding minute, in this process's memory."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from aiohttp import web

WINDOW_S = 60.0
MAX_TRACKED = 10_000  # addresses remembered; the least recently seen is forgotten first


class SignInLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = per_minute
        self._clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def attempt(self, address: str) -> float | None:
        """Count an attempt; None when allowed, else the seconds to wait before the next."""
        now = self._clock()
        times = self._seen.pop(address, None) or deque()
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        self._seen[address] = times
        if len(self._seen) > MAX_TRACKED:
            self._seen.popitem(last=False)
        if len(times) >= self._limit:
            return max(1.0, math.ceil(times[0] + WINDOW_S - now))
        times.append(now)
        return None


LIMITER = web.AppKey("ui_signin_limiter", SignInLimiter)
