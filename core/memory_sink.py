"""An ExchangeSink that keeps exchanges in memory: for tests and runs without a database."""

from __future__ import annotations

from collections import deque

from core.exchange import Exchange


class InMemorySink:
    """Keeps the newest ``capacity`` exchanges; older ones are counted in ``dropped``."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.exchanges: deque[Exchange] = deque(maxlen=capacity)
        self.dropped = 0

    def put(self, exchange: Exchange) -> None:
        if len(self.exchanges) == self.exchanges.maxlen:
            self.dropped += 1
        self.exchanges.append(exchange)

    def queue_depth(self) -> int:
        return 0


class DiscardingSink:
    """Records nothing, by the operator's choice; counts what it was given."""

    def __init__(self) -> None:
        self.discarded = 0

    def put(self, exchange: Exchange) -> None:
        self.discarded += 1

    def queue_depth(self) -> int:
        return 0
