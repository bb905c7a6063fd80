"""Open-loop load against the proxy: a fixed request rate, bounded in count and time."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

RATE = 200  # requests per second, unless told otherwise
EXCHANGE_ID_HEADER = "x-understudy-exchange-id"
CLIENT_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the client saw for one request."""

    index: int
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    latency_s: float  # from sending to the last byte read
    exchange_id: uuid.UUID | None
    body: bytes = b""  # kept for answers other than 200 only


@dataclass
class Load:
    answered: set[uuid.UUID] = field(default_factory=set)  # exchange ids of 200 answers
    failed: int = 0
    sent: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def latencies_s(self, status: int = 200) -> list[float]:
        return [o.latency_s for o in self.outcomes if o.status == status]

    def exchange_ids(self) -> set[uuid.UUID]:
        """Every exchange id the client was told, whatever the status."""
        return {o.exchange_id for o in self.outcomes if o.exchange_id is not None}


def chat_request(i: int) -> dict[str, Any]:
    """Request ``i``: a distinct question, every other one streamed."""
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"Question number {i}?"}],
        "stream": i % 2 == 0,
    }


async def drive(
    url: str,
    seconds: float,
    load: Load,
    *,
    rate: float = RATE,
    request: Callable[[int], dict[str, Any]] = chat_request,
) -> None:
    """Send ``rate`` requests a second for ``seconds`` (at most ``rate * seconds`` in all),
    then wait for every answer; each is added to ``load``."""
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=0)
    most = math.ceil(rate * seconds)
    first_index = load.sent
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def one(i: int) -> None:
            headers = {"Authorization": "Bearer sk-client-e2e", "x-understudy-subject": f"u{i}"}
            start = loop.time()
            status, exchange_id, body = 0, None, b""
            try:
                async with session.post(
                    f"{url}/v1/chat/completions", json=request(i), headers=headers
                ) as response:
                    body = await response.read()
                    status = response.status
                    header = response.headers.get(EXCHANGE_ID_HEADER)
                    exchange_id = uuid.UUID(header) if header else None
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            latency = loop.time() - start
            if status == 200 and exchange_id is not None:
                load.answered.add(exchange_id)
                body = b""
            else:
                load.failed += 1
            load.outcomes.append(Outcome(i, status, latency, exchange_id, body))

        tasks: set[asyncio.Task[None]] = set()
        start = loop.time()
        while loop.time() - start < seconds and load.sent - first_index < most:
            due = start + (load.sent - first_index) / rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            task = asyncio.create_task(one(load.sent), name=f"load-request-{load.sent}")
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            load.sent += 1
        await asyncio.gather(*tasks)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank: a value that was really measured."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
