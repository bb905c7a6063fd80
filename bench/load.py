"""Load generator: open loop at a fixed rate, or closed loop at a fixed concurrency.

Prints one JSON object with latency and time-to-first-token percentiles and the
achieved request rate. Run: python -m bench.load URL --open 200 --duration 10 [--stream]

Its connections are pooled as the openai SDK pools them: an idle connection is reused
before a new one is opened, the surplus a burst opened is left idle, and a connection
idle for 5 s (the SDK's keep-alive expiry) is closed. aiohttp's own pool would reuse its
oldest connection first and so keep, and have the server hold, every connection a
burst ever opened.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
import numpy as np
import uvloop

from proxy.upstreams.pool import RecentFirstConnector

KEEPALIVE_S = 5.0  # the openai SDK's (httpx's) keep-alive expiry
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say something short for the benchmark."}],
    "user": "bench-user",
}


async def one(
    session: aiohttp.ClientSession, url: str, payload: bytes, stream: bool
) -> tuple[float, float, bool]:
    start = time.perf_counter()
    first = None
    async with session.post(url, data=payload, headers={"Content-Type": "application/json"}) as r:
        if stream:
            async for _chunk in r.content.iter_any():
                if first is None:
                    first = time.perf_counter()
        else:
            await r.read()
        ok = r.status == 200
    end = time.perf_counter()
    return (end - start) * 1000, ((first or end) - start) * 1000, ok


async def run(args: argparse.Namespace) -> dict[str, Any]:
    payload = json.dumps({**BODY, "stream": args.stream}).encode()
    url = f"{args.url}/v1/chat/completions"
    results: list[tuple[float, float, bool]] = []
    connector = RecentFirstConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(50):  # warm up connections and code paths
            await one(session, url, payload, args.stream)
        started = time.perf_counter()
        deadline = started + args.duration
        if args.open:
            interval = 1.0 / args.open
            tasks: list[asyncio.Task[tuple[float, float, bool]]] = []
            n = 0
            while (due := started + n * interval) < deadline:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(session, url, payload, args.stream)))
                n += 1
            results = list(await asyncio.gather(*tasks))
        else:

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    results.append(await one(session, url, payload, args.stream))

            await asyncio.gather(*(worker() for _ in range(args.closed)))
        elapsed = time.perf_counter() - started
    total = np.array([r[0] for r in results])
    ttft = np.array([r[1] for r in results])
    figures: dict[str, Any] = {
        "requests": len(results),
        "errors": sum(not r[2] for r in results),
        "rps": len(results) / elapsed,
        "p50_ms": float(np.percentile(total, 50)),
        "p99_ms": float(np.percentile(total, 99)),
        "ttft_p50_ms": float(np.percentile(ttft, 50)),
        "ttft_p99_ms": float(np.percentile(ttft, 99)),
    }
    if args.samples:  # every latency, for distribution plots
        figures["latency_samples_ms"] = [round(float(v), 3) for v in total]
        figures["ttft_samples_ms"] = [round(float(v), 3) for v in ttft]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--open", type=float, default=0.0, help="open loop: requests per second")
    parser.add_argument("--closed", type=int, default=32, help="closed loop: concurrent clients")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--samples", action="store_true", help="also print every latency")
    args = parser.parse_args()
    sys.stdout.write(json.dumps(uvloop.run(run(args))) + "\n")


if __name__ == "__main__":
    main()
