"""Split and cutover: sticky per subject, with transparent fallback to the primary."""

from __future__ import annotations

import aiohttp

from core import ErrorKind, Role
from tests.fakes import Fault
from tests.proxy.conftest import CLIENT_KEY, RigFactory, chat


async def served_by(
    rig_url: str, body: dict[str, object], headers: dict[str, str] | None = None
) -> str:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            rig_url + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {CLIENT_KEY}", **(headers or {})},
        ) as r,
    ):
        assert r.status == 200, await r.text()
        await r.read()
        return r.headers["x-understudy-served-by"]


async def test_split_is_sticky_per_user_and_near_the_percentage(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout={"mode": "split", "candidate": "local", "percent": 30})
    first = {u: await served_by(rig.base_url, chat(user=f"user-{u}")) for u in range(200)}
    again = {u: await served_by(rig.base_url, chat(user=f"user-{u}")) for u in range(200)}
    assert first == again
    share = sum(v == "local" for v in first.values()) / len(first)
    assert 0.2 < share < 0.4
    exchanges = await rig.exchanges(400)
    by_candidate = [e for e in exchanges if e.served_by == "local"]
    assert all(e.decision.served_is_candidate and e.arm(Role.SHADOW) is None for e in by_candidate)
    assert all(e.arm(Role.SERVED).model == "llama3.1:8b" for e in by_candidate)  # type: ignore[union-attr]


async def test_subject_header_and_client_key_are_sticky_too(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout={"mode": "split", "candidate": "local", "percent": 50})
    seen = {
        await served_by(rig.base_url, chat(), {"x-understudy-subject": "team-7"}) for _ in range(10)
    }
    assert len(seen) == 1
    keyed = {await served_by(rig.base_url, chat()) for _ in range(10)}
    assert len(keyed) == 1


async def test_cutover_serves_from_candidate_with_sdk(make_rig: RigFactory) -> None:
    rig = await make_rig(
        rollout={"mode": "cutover", "candidate": "local", "reverse_shadow_rate": 0}
    )
    client = rig.client()
    raw = await client.chat.completions.with_raw_response.create(**chat())
    assert raw.headers["x-understudy-served-by"] == "local"
    assert raw.parse().model == "llama3.1:8b"
    stream = await client.chat.completions.create(**chat(), stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert rig.primary.requests == []
    await client.close()


async def test_fallback_before_the_first_byte_is_transparent(make_rig: RigFactory) -> None:
    # Every fault in a row: a breaker would open after the first few (tests/proxy/test_breaker.py).
    rig = await make_rig(
        rollout={"mode": "cutover", "candidate": "local"},
        candidate={"timeout_s": 0.5},
        breaker={"enabled": False},
    )
    client = rig.client()
    expected = (await client.chat.completions.create(**chat())).choices[0].message.content
    faults = [Fault.HTTP_500, Fault.HTTP_429, Fault.RESET, Fault.HANG, Fault.GARBAGE_JSON]
    for fault in faults:
        rig.candidate.fault = fault
        for stream in (False, True):
            if fault is Fault.GARBAGE_JSON and stream:
                # The garbage stream's first byte reached the proxy, so it is relayed as is.
                async with (
                    aiohttp.ClientSession() as s,
                    s.post(rig.base_url + "/chat/completions", json=chat(stream=True)) as r,
                ):
                    assert r.headers["x-understudy-served-by"] == "local"
                    await r.read()
                continue
            raw = await client.chat.completions.with_raw_response.create(**chat(), stream=stream)
            assert raw.headers["x-understudy-served-by"] == "openai", (fault, stream)
            answer = raw.parse()
            if stream:
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in answer if c.choices]
                )
            else:
                text = answer.choices[0].message.content
            assert text and text != expected  # the primary's words, not the candidate's
    exchanges = await rig.exchanges(1 + 2 * len(faults), timeout=10)
    fell_back = [e for e in exchanges if e.fallback]
    assert (
        len(fell_back) == 2 * len(faults) - 1
    )  # a garbage stream's first byte arrived: no fallback
    for e in fell_back:
        failed = e.arm(Role.FAILED_OVER)
        assert failed is not None and failed.upstream == "local" and failed.error_kind is not None
        assert e.served_by == "openai" and e.arm(Role.SERVED).ok  # type: ignore[union-attr]
    kinds = {e.arm(Role.FAILED_OVER).error_kind for e in fell_back}  # type: ignore[union-attr]
    assert {ErrorKind.HTTP_STATUS, ErrorKind.TIMEOUT, ErrorKind.CONNECT} <= kinds
    total = sum(
        rig.metric(
            "understudy_fallbacks_total", route="chat.completions", upstream="local", reason=k.value
        )
        for k in ErrorKind
    )
    assert total == len(fell_back)
    await client.close()


async def test_candidate_at_capacity_falls_back(make_rig: RigFactory) -> None:
    rig = await make_rig(
        rollout={"mode": "cutover", "candidate": "local"}, candidate={"max_concurrency": 1}
    )
    rig.candidate.first_byte_delay_s = 0.3
    async with aiohttp.ClientSession() as s:
        import asyncio

        async def one() -> str:
            async with s.post(rig.base_url + "/chat/completions", json=chat()) as r:
                await r.read()
                return r.headers["x-understudy-served-by"]

        served = await asyncio.gather(one(), one(), one())
    assert sorted(served) == ["local", "openai", "openai"]
    assert (
        rig.metric(
            "understudy_fallbacks_total",
            route="chat.completions",
            upstream="local",
            reason="at_capacity",
        )
        == 2
    )
