"""Connections to an upstream: as many as the traffic needs now, not as many as a burst once did."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from proxy.upstreams.pool import RecentFirstConnector
from tests.fakes import FakeOpenAI, start_server
from tests.proxy.conftest import RigFactory, chat

BURST = 8
IDLE_S = 0.5
STEADY_GAP_S = 0.02  # BURST connections in turn: each reused well within IDLE_S


async def _burst_then_steady(
    post: Callable[[], Awaitable[None]], fake: FakeOpenAI, *others: FakeOpenAI
) -> tuple[int, int]:
    """Open BURST connections at once, then send one request at a time for a while:
    ``fake``'s connections open after the burst, and at the end."""
    for slowed in (fake, *others):
        slowed.first_byte_delay_s = 0.2  # the burst's requests overlap, one connection each
    await asyncio.gather(*(post() for _ in range(BURST)))
    after_burst = fake.open_connections
    for slowed in (fake, *others):
        slowed.first_byte_delay_s = 0.0
    deadline = asyncio.get_running_loop().time() + 4 * IDLE_S
    while asyncio.get_running_loop().time() < deadline:
        await post()
        await asyncio.sleep(STEADY_GAP_S)
    return after_burst, fake.open_connections


async def _pool_after_burst(connector: aiohttp.TCPConnector) -> tuple[int, int]:
    fake = FakeOpenAI()
    server = await start_server(fake.app)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post() -> None:
                async with session.post(f"{server.url}/v1/chat/completions", json=chat()) as r:
                    await r.read()

            return await _burst_then_steady(post, fake)
    finally:
        await server.close()


async def test_the_newest_idle_connection_goes_first_so_the_surplus_closes() -> None:
    opened, kept = await _pool_after_burst(RecentFirstConnector(keepalive_timeout=IDLE_S))
    assert opened == BURST
    assert kept == 1


async def test_aiohttps_own_pool_keeps_every_connection_a_burst_opened() -> None:
    """Why the pool exists: aiohttp reuses its oldest idle connection first, so under
    steady traffic none stays idle long enough to close."""
    opened, kept = await _pool_after_burst(aiohttp.TCPConnector(keepalive_timeout=IDLE_S))
    assert opened == BURST
    assert kept == BURST


async def test_the_proxy_closes_connections_to_the_primary_and_candidate_a_burst_left(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(
        primary={"idle_connection_timeout_s": IDLE_S},
        candidate={"idle_connection_timeout_s": IDLE_S},
    )
    client = rig.client()

    async def post() -> None:
        await client.chat.completions.create(**chat())

    opened, kept = await _burst_then_steady(post, rig.primary, rig.candidate)
    assert opened == BURST
    assert kept == 1
    await rig.exchanges(len(rig.primary.requests))  # the last shadow has ended
    assert len(rig.candidate.requests) == len(rig.primary.requests)  # every one shadowed
    assert rig.candidate.open_connections == 1
