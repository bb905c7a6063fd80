"""Overload: a 503 with Retry-After past the in-flight limit, shadows shed before that,
ops endpoints always answered, and upstream pools that stay bounded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import openai
import pytest

from core import Role
from proxy.config import UpstreamConfig
from proxy.load import RequestLoad
from proxy.upstream_set import NOISE_MAX_CONCURRENCY, UpstreamSet
from tests.proxy.conftest import CLIENT_KEY, Rig, RigFactory, chat

AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], bytes]:
    async with session.get(url, headers=AUTH) as r:
        return r.status, dict(r.headers), await r.read()


async def post_chat(session: aiohttp.ClientSession, rig: Rig) -> int:
    async with session.post(rig.base_url + "/chat/completions", json=chat(), headers=AUTH) as r:
        await r.read()
        return r.status


async def test_over_the_limit_is_a_503_at_once_without_an_upstream_call(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(limits={"max_concurrent_requests": 4}, rollout={"mode": "off"})
    rig.primary.first_byte_delay_s = 1.5
    async with aiohttp.ClientSession() as session:
        held = [asyncio.create_task(post_chat(session, rig)) for _ in range(2)]
        held += [asyncio.create_task(get(session, rig.base_url + "/models")) for _ in range(2)]
        await until(lambda: len(rig.primary.requests) == 4)
        assert rig.metric("understudy_requests_in_flight") == 4

        client = rig.client()
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as refused:
            await client.chat.completions.create(**chat())
        refused_after = time.monotonic() - started
        assert refused.value.status_code == 503
        assert refused.value.response.headers["retry-after"] == "1"
        assert refused.value.type == "server_error" and refused.value.code == "overloaded"
        assert len(refused.value.response.headers["x-understudy-request-id"]) == 36
        assert "x-understudy-exchange-id" not in refused.value.response.headers
        status, headers, _ = await get(session, rig.base_url + "/models/gpt-4o-mini")
        assert status == 503 and headers["Retry-After"] == "1"
        assert refused_after < 1.0  # not queued behind the 1.5 s upstream
        assert len(rig.primary.requests) == 4  # the refused ones reached nothing

        # Operators can still see in: health, readiness and metrics are never refused.
        for path in ("/healthz", "/readyz", "/metrics"):
            status, _, body = await get(session, rig.proxy.url + path)
            assert status == 200, path
        assert b"understudy_overloaded_requests_total 2.0" in body

        results = await asyncio.gather(*held)
        assert [r if isinstance(r, int) else r[0] for r in results] == [200] * 4
        await client.close()
        # Capacity is back once the held requests are done.
        assert await post_chat(session, rig) == 200
    assert rig.metric("understudy_requests_in_flight") == 0
    refusals = [e for e in rig.log_events() if e["event"] == "overloaded"]
    assert len(refusals) == 2 and all(len(e["request_id"]) == 36 for e in refusals)


async def test_near_the_limit_shadows_and_noise_are_shed_but_clients_served(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(
        limits={"max_concurrent_requests": 4, "shed_shadows_at": 0.5}, noise_rate=1.0
    )
    rig.primary.first_byte_delay_s = 0.5
    async with aiohttp.ClientSession() as session:
        first = asyncio.create_task(post_chat(session, rig))
        await until(lambda: len(rig.primary.requests_to("/v1/chat/completions")) >= 1)
        second = asyncio.create_task(post_chat(session, rig))  # 2 of 4 in flight: shed
        assert await first == 200 and await second == 200
    exchanges = await rig.exchanges(2)
    with_shadow = [e for e in exchanges if e.arm(Role.SHADOW) is not None]
    without = [e for e in exchanges if e.arm(Role.SHADOW) is None]
    assert len(with_shadow) == 1 and len(without) == 1
    assert without[0].arm(Role.NOISE) is None and without[0].arm(Role.SERVED).ok  # type: ignore[union-attr]
    assert len(rig.candidate.requests) == 1
    assert rig.metric("understudy_shadows_skipped_total", upstream="local", reason="overload") == 1
    assert rig.metric("understudy_shadows_skipped_total", upstream="openai", reason="overload") == 1
    skipped = [e for e in rig.log_events() if e["event"] == "exchange" and e.get("shadow_skipped")]
    assert len(skipped) == 1


def test_request_load_thresholds() -> None:
    load = RequestLoad(4, 0.75)
    assert load.shed_at == 3
    entered = [load.try_enter() for _ in range(5)]
    assert entered == [True, True, True, True, False]
    assert load.shedding and load.in_flight == 4
    load.leave()
    load.leave()
    assert not load.shedding and load.try_enter()
    assert RequestLoad(1, 0.1).shed_at == 1  # a tiny fraction still rounds to a request


async def test_primary_pool_is_bounded_by_max_connections(make_rig: RigFactory) -> None:
    rig = await make_rig(primary={"max_connections": 2})
    rig.primary.first_byte_delay_s = 0.4
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(get(session, rig.base_url + "/models") for _ in range(5)))
    assert [status for status, _, _ in answers] == [200] * 5
    arrivals = sorted(r.received_at for r in rig.primary.requests)
    # With two connections, a third request can only start once one of the first
    # two has taken its 0.4 s: no three arrivals fall within that time.
    assert all(
        later - earlier >= 0.35 for earlier, later in zip(arrivals, arrivals[2:], strict=False)
    )


async def test_noise_has_its_own_cap_not_the_primarys() -> None:
    primary = UpstreamConfig(name="openai", base_url="http://127.0.0.1:9/v1", max_concurrency=512)
    upstreams = UpstreamSet.build(primary, [])
    await upstreams.start()
    try:
        assert upstreams.caps() == {"openai": NOISE_MAX_CONCURRENCY}
        assert upstreams.primary.session.connector is not None
        assert upstreams.primary.session.connector.limit == 512
        assert upstreams.noise.session.connector is not None
        assert upstreams.noise.session.connector.limit == NOISE_MAX_CONCURRENCY
    finally:
        await upstreams.close()
