"""A body that goes silent is cut after its idle timeout and recorded with that error.

Every upstream's total timeout is far longer than the test runs (600 s for the
primary, 5 s for the candidate), so an answer within a second or two can only
come from the idle timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import pytest

from core import ErrorKind, Role
from tests.fakes import Fault
from tests.proxy.conftest import CLIENT_KEY, Rig, RigFactory, chat

IDLE_S = 0.3
PRIMARY_IDLE = {"stream_idle_timeout_s": IDLE_S}
CANDIDATE_IDLE = {"stream_idle_timeout_s": IDLE_S, "timeout_s": 5}


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def read_stream(rig: Rig, **kw: Any) -> tuple[list[str], BaseException | None]:
    """The content pieces the SDK saw, and how the stream ended (None: cleanly)."""
    client = rig.client()
    pieces: list[str] = []
    try:
        stream = await client.chat.completions.create(**chat(**kw), stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    except Exception as exc:
        return pieces, exc
    finally:
        await client.close()
    return pieces, None


async def test_primary_stream_stalling_after_its_first_chunk_is_cut(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout={"mode": "off"}, primary=PRIMARY_IDLE)
    rig.primary.fault = Fault.STALL
    rig.primary.stall_after_chunks = 2
    started = time.monotonic()
    _pieces, ended = await read_stream(rig)
    elapsed = time.monotonic() - started
    assert ended is not None, "a stalled stream must not end as if complete"
    assert elapsed < 3.0
    [exchange] = await rig.exchanges(1)
    served = exchange.arm(Role.SERVED)
    assert served is not None and served.status == 200
    assert served.error_kind is ErrorKind.INCOMPLETE_STREAM
    await until(lambda: len(rig.primary.cancelled) == 1)  # we closed the upstream connection


async def test_primary_body_silent_from_the_start_is_a_timeout(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout={"mode": "off"}, primary=PRIMARY_IDLE)
    rig.primary.fault = Fault.STALL
    rig.primary.stall_after_chunks = 0  # headers, then nothing
    client = rig.client()
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(**chat())
    assert time.monotonic() - started < 3.0
    assert refused.value.status_code == 504
    assert refused.value.code == "upstream_timeout"
    [exchange] = await rig.exchanges(1)
    assert exchange.arm(Role.SERVED).error_kind is ErrorKind.TIMEOUT  # type: ignore[union-attr]
    assert refused.value.response.headers["x-understudy-exchange-id"] == str(exchange.id)
    await client.close()


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_stalling_shadow_is_cut_and_recorded(make_rig: RigFactory, kind: str) -> None:
    rig = await make_rig(candidate_kind=kind, candidate=CANDIDATE_IDLE)
    fake = rig.ollama if kind == "ollama" else rig.candidate
    fake.fault = Fault.STALL
    pieces, ended = await read_stream(rig)
    assert ended is None and pieces  # the primary's answer, whole
    started = time.monotonic()
    [exchange] = await rig.exchanges(1, timeout=3.0)
    assert time.monotonic() - started < 3.0  # recorded long before the 5 s total timeout
    shadow = exchange.arm(Role.SHADOW)
    assert shadow is not None and shadow.error_kind is ErrorKind.INCOMPLETE_STREAM
    assert exchange.arm(Role.SERVED).ok  # type: ignore[union-attr]


async def test_non_streaming_shadow_body_stalling_is_recorded(make_rig: RigFactory) -> None:
    rig = await make_rig(candidate=CANDIDATE_IDLE)
    rig.candidate.fault = Fault.STALL  # half the JSON body, then silence
    client = rig.client()
    answer = await client.chat.completions.create(**chat())
    assert answer.choices[0].message.content
    [exchange] = await rig.exchanges(1, timeout=3.0)
    shadow = exchange.arm(Role.SHADOW)
    assert shadow is not None and shadow.error_kind is ErrorKind.INCOMPLETE_STREAM
    await client.close()


async def test_candidate_stalling_after_first_chunk_is_never_replaced_by_the_primary(
    make_rig: RigFactory,
) -> None:
    """Cutover: the client got the candidate's first bytes, so it gets a cut stream,
    not a second answer spliced in from the primary."""
    rig = await make_rig(
        # No reverse shadow (5 % by default): the primary must see no request at all.
        rollout={"mode": "cutover", "candidate": "local", "reverse_shadow_rate": 0.0},
        candidate=CANDIDATE_IDLE,
    )
    rig.candidate.fault = Fault.STALL
    rig.candidate.stall_after_chunks = 2
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            rig.base_url + "/chat/completions",
            json=chat(stream=True),
            headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        ) as r,
    ):
        assert r.status == 200
        assert r.headers["x-understudy-served-by"] == "local"
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    assert time.monotonic() - started < 3.0
    [exchange] = await rig.exchanges(1)
    assert rig.primary.requests == []
    assert exchange.served_by == "local" and not exchange.fallback
    served = exchange.arm(Role.SERVED)
    assert served is not None and served.error_kind is ErrorKind.INCOMPLETE_STREAM
    assert exchange.arm(Role.FAILED_OVER) is None


async def test_candidate_silent_before_first_chunk_falls_back_to_the_primary(
    make_rig: RigFactory,
) -> None:
    """Before any byte went to the client, falling back is still allowed and used."""
    rig = await make_rig(
        rollout={"mode": "cutover", "candidate": "local"}, candidate=CANDIDATE_IDLE
    )
    rig.candidate.fault = Fault.STALL
    rig.candidate.stall_after_chunks = 0
    pieces, ended = await read_stream(rig)
    assert ended is None and pieces
    [exchange] = await rig.exchanges(1)
    assert exchange.served_by == "openai" and exchange.fallback
    failed = exchange.arm(Role.FAILED_OVER)
    assert failed is not None and failed.error_kind is ErrorKind.TIMEOUT
