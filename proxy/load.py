"""How many client requests are in flight, against the limits that refuse or shed work."""

from __future__ import annotations

import math


class RequestLoad:
    """In-flight client requests on the API, with two thresholds.

    At ``max_in_flight`` new requests are refused (the caller answers 503). From
    ``shed_at`` (a fraction of it) on, requests are still served but start no
    background calls, so the primary keeps the capacity its clients need.
    """

    def __init__(self, max_in_flight: int, shed_fraction: float) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if not 0 < shed_fraction <= 1:
            raise ValueError("shed_fraction must be in (0, 1]")
        self.max_in_flight = max_in_flight
        self.shed_at = max(1, math.ceil(shed_fraction * max_in_flight))
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def shedding(self) -> bool:
        """Whether background calls should be skipped now (this request counted)."""
        return self._in_flight >= self.shed_at

    def try_enter(self) -> bool:
        """Count one more request, or return False when the limit is reached."""
        if self._in_flight >= self.max_in_flight:
            return False
        self._in_flight += 1
        return True

    def leave(self) -> None:
        self._in_flight -= 1
