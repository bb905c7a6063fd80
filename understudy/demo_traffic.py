"""The demo's client traffic: the official openai SDK, through the proxy, at a steady rate."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable

import structlog

QUESTIONS = (
    "How does a hash map handle collisions?",
    "Explain TCP slow start in two sentences.",
    "What is the difference between a process and a thread?",
    "Why do databases use write-ahead logging?",
    "Summarise how HTTPS protects a password.",
    "What does a load balancer do?",
)
# Enough users that each stage's share of them is close to its percent: routing is
# sticky per user, so with a handful of users 5 % could mean none or one in four.
USERS = 1000
PROGRESS_EVERY_S = 10.0  # how often the running count of answers is printed


async def generate(
    base_url: str, rate: float, counts: dict[str, int], write: Callable[[str], None]
) -> None:
    """Send chat requests at ``rate`` per second until cancelled; count who answered.

    Half are streamed, so time to first token means something.
    """
    from openai import APIError, AsyncOpenAI, AsyncStream  # here: slow to import

    log = structlog.get_logger("understudy.demo")
    client = AsyncOpenAI(base_url=base_url, api_key="sk-demo-client", max_retries=0)
    rng = random.Random(7)
    in_flight: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": rng.choice(QUESTIONS)}],
                user=f"demo-user-{rng.randrange(USERS)}",
                stream=i % 2 == 1,
            )
            answer = raw.parse()
            if isinstance(answer, AsyncStream):
                async for _chunk in answer:
                    pass
            served = raw.headers.get("x-understudy-served-by", "?")
            counts[served] = counts.get(served, 0) + 1
        except APIError as exc:
            counts["errors"] = counts.get("errors", 0) + 1
            log.warning("demo_request_failed", error=type(exc).__name__)

    loop = asyncio.get_running_loop()
    next_progress = loop.time() + PROGRESS_EVERY_S
    try:
        i = 0
        while True:
            task = loop.create_task(one(i), name=f"demo-request-{i}")
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            i += 1
            if loop.time() >= next_progress:
                next_progress += PROGRESS_EVERY_S
                write(f"  ({i} requests sent; answers by {json.dumps(counts, sort_keys=True)})")
            await asyncio.sleep(rng.expovariate(rate))
    finally:
        # Let requests already sent finish, so they are recorded as answered, not aborted.
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=5)
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        await client.close()
