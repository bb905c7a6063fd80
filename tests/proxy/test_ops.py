"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from tests.proxy.conftest import RigFactory, chat


async def test_health_ready_and_metrics(make_rig: RigFactory) -> None:
    rig = await make_rig(noise_rate=1.0)
    client = rig.client()
    await client.chat.completions.create(**chat())
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=[])
    await rig.exchanges(1)
    async with aiohttp.ClientSession() as s:
        async with s.get(rig.proxy.url + "/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
        async with s.get(rig.proxy.url + "/readyz") as r:
            assert r.status == 200
        async with s.get(rig.proxy.url + "/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
    for line in [
        'understudy_requests_total{arm="served",route="chat.completions",status="200",upstream="openai"} 1.0',
        'understudy_requests_total{arm="shadow",route="chat.completions",status="200",upstream="local"} 1.0',
        'understudy_requests_total{arm="noise",route="chat.completions",status="200",upstream="openai"} 1.0',
        'understudy_rejected_requests_total{code="invalid_value",route="chat.completions"} 1.0',
        "understudy_sink_queue_depth 0.0",
    ]:
        assert line in text, line
    for name in (
        "understudy_upstream_latency_seconds_bucket",
        "understudy_upstream_ttft_seconds_bucket",
        "understudy_shadows_in_flight",
        "understudy_fallbacks",
        "understudy_sink_dropped_total",
    ):
        assert name in text, name
    await client.close()


async def test_not_ready_while_shutting_down(make_rig: RigFactory) -> None:
    from proxy.app import OPS

    rig = await make_rig()
    rig.proxy.runner.app[OPS].shutting_down = True
    async with aiohttp.ClientSession() as s, s.get(rig.proxy.url + "/readyz") as r:
        assert r.status == 503
        assert (await r.json())["reasons"] == ["shutting down"]
