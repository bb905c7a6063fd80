"""What the client sees when the primary misbehaves, and client aborts cancelling upstreams."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import openai
import pytest

from core import ErrorKind, Role
from tests.fakes import Fault
from tests.proxy.conftest import CLIENT_KEY, RigFactory, chat


async def test_primary_errors_are_relayed_untouched(make_rig: RigFactory) -> None:
    rig = await make_rig()
    rig.primary.fault = Fault.HTTP_500
    direct = rig.servers[0].url + "/v1/chat/completions"
    async with aiohttp.ClientSession() as s:
        async with s.post(direct, json=chat()) as r:
            direct_body, direct_status = await r.read(), r.status
        async with s.post(rig.base_url + "/chat/completions", json=chat()) as r:
            proxied_body, proxied_status = await r.read(), r.status
    assert proxied_status == direct_status == 500 and proxied_body == direct_body
    client = rig.client()
    rig.primary.fault = Fault.HTTP_429
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(**chat())
    exchanges = await rig.exchanges(2)
    assert [e.arm(Role.SERVED).error_kind for e in exchanges] == [ErrorKind.HTTP_STATUS] * 2  # type: ignore[union-attr]
    await client.close()


async def test_unreachable_or_hung_primary_gets_502_or_504(make_rig: RigFactory) -> None:
    rig = await make_rig(primary={"timeout_s": 0.3})
    client = rig.client()
    rig.primary.fault = Fault.HANG
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(**chat())
    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"
    rig.primary.fault = Fault.RESET
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(**chat())
    assert caught.value.status_code == 502
    await client.close()


async def test_primary_stream_cut_reaches_the_client_as_a_cut(make_rig: RigFactory) -> None:
    rig = await make_rig()
    rig.primary.fault = Fault.CUT_STREAM
    async with (
        aiohttp.ClientSession() as s,
        s.post(rig.base_url + "/chat/completions", json=chat(stream=True)) as r,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    [exchange] = await rig.exchanges(1)
    assert exchange.arm(Role.SERVED).error_kind is ErrorKind.INCOMPLETE_STREAM  # type: ignore[union-attr]


async def test_primary_huge_line_is_relayed_whole(make_rig: RigFactory) -> None:
    rig = await make_rig()
    rig.primary.fault = Fault.HUGE_LINE
    client = rig.client()
    stream = await client.chat.completions.create(**chat(), stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert len(text) >= 2 * 1024 * 1024 - 1024
    await client.close()


async def test_garbage_from_the_primary_is_relayed_and_recorded(make_rig: RigFactory) -> None:
    rig = await make_rig()
    rig.primary.fault = Fault.GARBAGE_JSON
    client = rig.client()
    with pytest.raises(ValueError):  # the SDK cannot decode it, exactly as when called directly
        await client.chat.completions.create(**chat())
    [exchange] = await rig.exchanges(1)
    assert exchange.arm(Role.SERVED).error_kind is ErrorKind.INVALID_RESPONSE  # type: ignore[union-attr]
    await client.close()


async def wait_for(predicate: object, timeout: float) -> float:
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_client_abort_cancels_the_primary_within_a_second(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout={"mode": "off"})
    rig.primary.fault = Fault.HANG
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as s:
        with pytest.raises(asyncio.TimeoutError):
            async with s.post(
                rig.base_url + "/chat/completions",
                json=chat(),
                headers={"Authorization": f"Bearer {CLIENT_KEY}"},
            ) as r:
                await r.read()
    gave_up = time.monotonic()
    await wait_for(lambda: rig.primary.cancelled, 1.0)
    assert rig.primary.cancelled[0].at - gave_up < 1.0
    [exchange] = await rig.exchanges(1)
    assert exchange.arm(Role.SERVED).error_kind is ErrorKind.CLIENT_ABORTED  # type: ignore[union-attr]


async def test_client_abort_mid_stream_cancels_the_primary(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout={"mode": "off"})
    rig.primary.token_delay_s = 0.2
    async with aiohttp.ClientSession() as s:
        r = await s.post(rig.base_url + "/chat/completions", json=chat(stream=True))
        await r.content.readany()
        r.close()
    gave_up = time.monotonic()
    await wait_for(lambda: rig.primary.cancelled, 1.0)
    assert rig.primary.cancelled[0].at - gave_up < 1.0
    [exchange] = await rig.exchanges(1)
    served = exchange.arm(Role.SERVED)
    assert served is not None and served.error_kind is ErrorKind.CLIENT_ABORTED
    assert served.status == 200
