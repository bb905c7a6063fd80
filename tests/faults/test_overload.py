"""500 clients at once against a proxy limited to 64 requests in flight.

What is over the limit is refused at once with a 503, Retry-After and OpenAI's
error shape, and reaches no upstream; what is admitted is served in its usual
time, never queued. The clients retry as the SDK does, after Retry-After, so the
pressure lasts; once they stop, the proxy serves as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest

import migrations
from tests.faults.checks import assert_log_is_json
from tests.faults.fake_process import FakeProcess
from tests.faults.load import percentile
from tests.faults.raw_http import RawClient
from tests.faults.serve import Proxy, start_proxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CLIENTS = 500
LIMIT = 64
SECONDS = 10.0
PRIMARY_DELAY_S = 2.0
RETRY_AFTER = "1"
# A refusal must reach its client before the client would retry. Refused clients come
# back together after Retry-After, so refusals arrive in bursts of ~400 that one event
# loop answers one after the other: the last of a burst waits for all the others.
REFUSAL_MAX_S = float(RETRY_AFTER)
# An admitted request waits for the primary, never for another request's place: that
# would take at least two primary delays.
ADMITTED_MAX_S = 2 * PRIMARY_DELAY_S
IN_FLIGHT_SAMPLE_S = 0.1


@dataclass
class Pressure:
    """What the clients saw, by status."""

    latencies_s: dict[int, list[float]] = field(default_factory=dict)
    refusals: list[tuple[str | None, bytes]] = field(default_factory=list)  # Retry-After, body
    in_flight: list[float] = field(default_factory=list)  # the proxy's gauge, sampled

    def count(self, status: int) -> int:
        return len(self.latencies_s.get(status, []))


async def client(url: str, number: int, stop_at: float, seen: Pressure) -> None:
    """One client on its own connection, sending requests back to back, waiting
    Retry-After when refused (as the SDK does). A broken connection is opened again."""
    loop = asyncio.get_running_loop()
    request = RawClient.post_bytes(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Client {number}?"}]},
        {"Authorization": "Bearer sk-client-e2e", "x-understudy-subject": f"c{number}"},
    )
    while loop.time() < stop_at:
        async with RawClient(url) as connection:
            while loop.time() < stop_at:
                start = loop.time()
                try:
                    response = await connection.send(request)
                except (OSError, asyncio.IncompleteReadError):
                    seen.latencies_s.setdefault(0, []).append(loop.time() - start)
                    break
                seen.latencies_s.setdefault(response.status, []).append(loop.time() - start)
                if response.status == 503:
                    retry_after = response.headers.get("retry-after")
                    seen.refusals.append((retry_after, response.body))
                    await asyncio.sleep(float(retry_after or 1))


async def sample_in_flight(proxy: Proxy, seen: Pressure, stop: asyncio.Event) -> None:
    while not stop.is_set():
        metrics = await asyncio.to_thread(proxy.metrics)
        seen.in_flight.append(metrics["understudy_requests_in_flight"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), IN_FLIGHT_SAMPLE_S)


async def press(proxy: Proxy) -> Pressure:
    seen = Pressure()
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + SECONDS
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_in_flight(proxy, seen, stop), name="in-flight-sampler")
    await asyncio.gather(*(client(proxy.url, n, stop_at, seen) for n in range(CLIENTS)))
    stop.set()
    await sampler
    return seen


async def test_500_clients_over_a_limit_of_64_are_refused_fast_and_the_rest_served(
    tmp_path: Path, figure: Callable[[str], None]
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    await migrations.upgrade(db_url)
    env = {"UNDERSTUDY_LIMITS__MAX_CONCURRENT_REQUESTS": str(LIMIT)}
    with (
        FakeProcess(persona="openai", first_byte_delay_s=PRIMARY_DELAY_S) as primary,
        FakeProcess(persona="candidate", first_byte_delay_s=PRIMARY_DELAY_S) as candidate,
    ):
        proxy = await asyncio.to_thread(
            start_proxy, tmp_path, db_url, (primary.base_url, candidate.base_url), env=env
        )
        try:
            seen = await press(proxy)
            # Afterwards: the official client is served at once, nothing is left in flight.
            async with openai.AsyncOpenAI(
                base_url=f"{proxy.url}/v1", api_key="sk-client-e2e", max_retries=0
            ) as sdk:
                answer = await sdk.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "Still there?"}]
                )
            metrics = await asyncio.to_thread(proxy.metrics)
            primary_calls = len(await asyncio.to_thread(primary.questions))
        finally:
            exit_code = await asyncio.to_thread(proxy.terminate)
    assert exit_code == 0, proxy.log.read_text()[-3000:]

    served, refused = seen.latencies_s.get(200, []), seen.latencies_s.get(503, [])
    figure(
        f"{CLIENTS} clients, limit {LIMIT}, {SECONDS:g} s: {len(served)} served "
        f"(max {max(served) * 1000:.0f} ms, p50 {percentile(served, 50) * 1000:.0f} ms; "
        f"primary {PRIMARY_DELAY_S * 1000:.0f} ms), {len(refused)} refused "
        f"(p50 {percentile(refused, 50) * 1000:.1f} ms, p99 {percentile(refused, 99) * 1000:.1f} ms,"
        f" max {max(refused) * 1000:.1f} ms), other statuses "
        f"{ {s: len(v) for s, v in seen.latencies_s.items() if s not in (200, 503)} }; "
        f"in flight peak {max(seen.in_flight):.0f}"
    )
    # Only two answers: served or refused. No 500, no reset, no timeout.
    assert set(seen.latencies_s) == {200, 503}, set(seen.latencies_s)
    assert len(refused) >= CLIENTS - LIMIT
    assert max(refused) < REFUSAL_MAX_S
    assert max(served) < ADMITTED_MAX_S
    # The limit held, and refused requests reached no upstream.
    assert max(seen.in_flight) <= LIMIT
    assert metrics["understudy_overloaded_requests_total"] == len(refused)
    assert primary_calls == len(served) + 1
    for retry_after, body in seen.refusals:
        assert retry_after == RETRY_AFTER
        error = json.loads(body)["error"]
        assert error["type"] == "server_error" and error["code"] == "overloaded"
        assert error["param"] is None and str(LIMIT) in error["message"]
    assert answer.choices[0].message.content
    assert metrics["understudy_requests_in_flight"] == 0
    figure(f"{assert_log_is_json(proxy)} log lines, every one JSON")
