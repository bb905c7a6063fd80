"""Shadow mode: the primary always wins; the candidate is mirrored, measured, never in the way."""

from __future__ import annotations

import asyncio
import statistics
import time

from core import ErrorKind, Role
from tests.fakes import Fault
from tests.proxy.conftest import CANDIDATE_KEY, CLIENT_KEY, RigFactory, chat


async def test_shadow_arrives_with_mapped_model_and_own_key(make_rig: RigFactory) -> None:
    rig = await make_rig()
    client = rig.client()
    answer = await client.chat.completions.create(**chat(), user="alice")
    assert answer.model == "gpt-4o-mini"
    [exchange] = await rig.exchanges(1)
    [shadow_request] = rig.candidate.requests
    assert shadow_request.body["model"] == "llama3.1:8b"
    assert shadow_request.body["messages"] == chat()["messages"]
    assert shadow_request.headers["authorization"] == f"Bearer {CANDIDATE_KEY}"
    [primary_request] = rig.primary.requests
    assert primary_request.headers["authorization"] == f"Bearer {CLIENT_KEY}"
    shadow = exchange.arm(Role.SHADOW)
    assert shadow is not None and shadow.model == "llama3.1:8b" and shadow.ok
    assert shadow.text and shadow.text != exchange.arm(Role.SERVED).text  # type: ignore[union-attr]
    assert exchange.decision.shadow == "local" and exchange.served_by == "openai"
    await client.close()


async def test_streaming_shadow_is_consumed_as_a_stream_with_usage(make_rig: RigFactory) -> None:
    rig = await make_rig()
    client = rig.client()
    stream = await client.chat.completions.create(**chat(), stream=True)
    async for _ in stream:
        pass
    [exchange] = await rig.exchanges(1)
    [shadow_request] = rig.candidate.requests
    [primary_request] = rig.primary.requests
    assert shadow_request.body["stream"] is True
    assert shadow_request.body["stream_options"] == {"include_usage": True}
    assert "stream_options" not in primary_request.body
    shadow = exchange.arm(Role.SHADOW)
    assert shadow is not None and shadow.ttft_ms is not None and shadow.usage.prompt_tokens
    assert shadow.finish_reason == "stop"
    await client.close()


async def test_configured_primary_key_replaces_the_clients(make_rig: RigFactory) -> None:
    rig = await make_rig(primary={"api_key": "sk-primary-configured"})
    client = rig.client()
    await client.chat.completions.create(**chat())
    await rig.exchanges(1)
    assert rig.primary.requests[0].headers["authorization"] == "Bearer sk-primary-configured"
    assert all(CLIENT_KEY not in str(dict(r.headers)) for r in rig.candidate.requests)
    await client.close()


async def timed_requests(rig_client: object, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        await rig_client.chat.completions.create(**chat())  # type: ignore[attr-defined]
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


async def test_hung_candidate_does_not_move_the_primarys_latency(make_rig: RigFactory) -> None:
    rig = await make_rig(candidate={"timeout_s": 30, "max_concurrency": 8})
    rig.primary.first_byte_delay_s = 0.03
    client = rig.client()
    healthy = await timed_requests(client, 15)
    rig.candidate.fault = Fault.HANG
    hung = await timed_requests(client, 30)
    # The candidate never answers and its deadline is 30 s; the primary's answers
    # must still come back at the primary's own pace.
    assert max(hung) < 30 + 500
    assert statistics.median(hung) < statistics.median(healthy) + 10
    assert (
        rig.metric("understudy_shadows_skipped_total", upstream="local", reason="at_capacity")
        == 30 - 8
    )
    assert rig.metric("understudy_shadows_in_flight", upstream="local") == 8
    await client.close()


async def test_shadow_deadline_records_a_timeout(make_rig: RigFactory) -> None:
    rig = await make_rig(candidate={"timeout_s": 0.3})
    rig.candidate.fault = Fault.HANG
    client = rig.client()
    await client.chat.completions.create(**chat())
    [exchange] = await rig.exchanges(1, timeout=3)
    shadow = exchange.arm(Role.SHADOW)
    assert shadow is not None and shadow.error_kind is ErrorKind.TIMEOUT and not shadow.ok
    assert exchange.arm(Role.SERVED).ok  # type: ignore[union-attr]
    assert (
        rig.metric("understudy_shadows_failed_total", upstream="local", error_kind="timeout") == 1
    )
    await client.close()


async def test_candidate_faults_become_data_and_the_client_never_sees_them(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig()
    client = rig.client()
    expected = {
        Fault.HTTP_500: ErrorKind.HTTP_STATUS,
        Fault.GARBAGE_JSON: ErrorKind.INVALID_RESPONSE,
        Fault.CUT_STREAM: ErrorKind.INCOMPLETE_STREAM,
        Fault.RESET: ErrorKind.CONNECT,
    }
    direct = (await client.chat.completions.create(**chat())).model_dump()
    await rig.exchanges(1)
    for i, (fault, kind) in enumerate(expected.items()):
        rig.candidate.fault = fault
        stream = await client.chat.completions.create(**chat(), stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == direct["choices"][0]["message"]["content"]
        exchange = (await rig.exchanges(i + 2))[-1]
        shadow = exchange.arm(Role.SHADOW)
        assert shadow is not None and shadow.error_kind is kind, (fault, shadow)
    await client.close()


async def test_huge_sse_line_from_the_candidate_is_recorded_truncated(make_rig: RigFactory) -> None:
    rig = await make_rig(limits={"max_recorded_chars": 10_000})
    rig.candidate.fault = Fault.HUGE_LINE
    client = rig.client()
    stream = await client.chat.completions.create(**chat(), stream=True)
    async for _ in stream:
        pass
    [exchange] = await rig.exchanges(1)
    shadow = exchange.arm(Role.SHADOW)
    assert shadow is not None and shadow.truncated and len(shadow.text or "") == 10_000
    assert shadow.error_kind is None
    await client.close()


async def test_noise_sends_the_primary_a_second_time(make_rig: RigFactory) -> None:
    rig = await make_rig(noise_rate=1.0)
    client = rig.client()
    await client.chat.completions.create(**chat())
    [exchange] = await rig.exchanges(1)
    noise = exchange.arm(Role.NOISE)
    assert noise is not None and noise.upstream == "openai" and noise.ok
    assert len(rig.primary.requests) == 2
    assert all(r.headers["authorization"] == f"Bearer {CLIENT_KEY}" for r in rig.primary.requests)
    await client.close()


async def test_one_canonical_log_line_per_exchange_and_no_keys(make_rig: RigFactory) -> None:
    rig = await make_rig(noise_rate=1.0)
    client = rig.client()
    for _ in range(3):
        await client.chat.completions.create(**chat())
    exchanges = await rig.exchanges(3)
    await asyncio.sleep(0.05)
    lines = [e for e in rig.log_events() if e["event"] == "exchange"]
    assert sorted(e["exchange_id"] for e in lines) == sorted(str(x.id) for x in exchanges)
    assert all(line["shadow_status"] == 200 and line["noise_status"] == 200 for line in lines)
    text = rig.logs.getvalue()
    assert CLIENT_KEY not in text and CANDIDATE_KEY not in text and "Bearer" not in text
    await client.close()


async def test_shutdown_records_exchanges_whose_shadow_is_still_running(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(candidate={"timeout_s": 30})
    rig.candidate.fault = Fault.HANG
    client = rig.client()
    for _ in range(3):
        await client.chat.completions.create(**chat())
    assert len(rig.sink.exchanges) == 0  # each waits on its hung shadow
    await client.close()
    await rig.proxy.stop()  # grace is 0.5 s in the rig, then the shadows are cut off
    exchanges = list(rig.sink.exchanges)
    assert len(exchanges) == 3
    for exchange in exchanges:
        shadow = exchange.arm(Role.SHADOW)
        assert shadow is not None and shadow.error_kind is ErrorKind.TIMEOUT
        assert exchange.arm(Role.SERVED).ok  # type: ignore[union-attr]
