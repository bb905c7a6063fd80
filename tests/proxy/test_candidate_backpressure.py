"""Back-pressure: the candidate's own Prometheus figures are read, re-exported as gauges,
and while its queue is over the threshold shadows to it are shed (counted) and users it
serves in split are still served by it."""

from __future__ import annotations

import pytest

from core import ErrorKind, UpstreamError
from proxy.config import UpstreamConfig
from proxy.upstreams import build_upstream
from proxy.upstreams.load_metrics import LoadReading
from tests.fakes import FakeOpenAI, running
from tests.proxy.watched import Watched, until, vllm_candidate, watched
from understudy.settings import CandidateSettings
from understudy.wiring import watch_config

# vLLM V1 with two engines, as its /metrics page shows them.
VLLM_PAGE = {
    'vllm:num_requests_running{engine="0",model_name="m"}': 2.0,
    'vllm:num_requests_running{engine="1",model_name="m"}': 1.0,
    'vllm:num_requests_waiting{engine="0",model_name="m"}': 4.0,
    'vllm:num_requests_waiting{engine="1",model_name="m"}': 1.0,
    'vllm:kv_cache_usage_perc{engine="0",model_name="m"}': 0.42,
    'vllm:kv_cache_usage_perc{engine="1",model_name="m"}': 0.17,
    'vllm:prefix_cache_queries_total{engine="0",model_name="m"}': 1000.0,
    'vllm:prefix_cache_hits_total{engine="0",model_name="m"}': 250.0,
    'vllm:generation_tokens_total{engine="0",model_name="m"}': 12345.0,
}


async def read(kind: str, samples: dict[str, float] | None) -> LoadReading:
    fake = FakeOpenAI()
    fake.metrics = samples
    async with running(fake.app) as server:
        upstream = build_upstream(UpstreamConfig(name="c", base_url=f"{server.url}/v1", kind=kind))
        await upstream.start()
        try:
            return await upstream.read_load(f"{server.url}/metrics", timeout_s=1.0)
        finally:
            await upstream.close()


async def test_each_kind_reads_its_own_names() -> None:
    assert await read("vllm", VLLM_PAGE) == LoadReading(
        running=3.0,
        waiting=5.0,
        kv_cache_usage=0.42,  # the fullest engine
        prefix_cache_hits=250.0,
        prefix_cache_queries=1000.0,
    )
    # vLLM before 0.9: the gpu_ names, and before V1 the hit rate as a gauge.
    old = {
        'vllm:gpu_cache_usage_perc{model_name="m"}': 0.9,
        'vllm:gpu_prefix_cache_hit_rate{model_name="m"}': 0.3,
        'vllm:num_requests_waiting{model_name="m"}': 0.0,
    }
    assert await read("vllm", old) == LoadReading(
        waiting=0.0, kv_cache_usage=0.9, prefix_cache_hit_rate=0.3
    )
    tgi = {"tgi_queue_size": 7.0, "tgi_batch_current_size": 4.0, "tgi_request_count_total": 9.0}
    assert await read("tgi", tgi) == LoadReading(running=4.0, waiting=7.0)
    llama = {"llamacpp:requests_processing": 1.0, "llamacpp:requests_deferred": 3.0}
    assert await read("llamacpp", llama) == LoadReading(running=1.0, waiting=3.0)
    assert await read("tgi", llama) == LoadReading()  # another server's names mean nothing
    # The generic kind knows every vocabulary.
    assert (await read("openai", llama)).waiting == 3.0


async def test_a_missing_or_garbled_page_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError) as missing:
        await read("vllm", None)
    assert missing.value.kind is ErrorKind.HTTP_STATUS and missing.value.status == 404
    fake = FakeOpenAI()
    async with running(fake.app) as server:
        upstream = build_upstream(UpstreamConfig(name="c", base_url=f"{server.url}/v1"))
        await upstream.start()
        try:
            with pytest.raises(UpstreamError) as garbled:
                # An OpenAI-shaped JSON page is no Prometheus text.
                await upstream.read_load(f"{server.url}/v1/models", timeout_s=1.0)
        finally:
            await upstream.close()
    assert garbled.value.kind is ErrorKind.INVALID_RESPONSE


async def served_by(w: Watched, users: range) -> list[str]:
    client = w.client()
    out = []
    for user in users:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            user=f"user-{user}",
        )
        assert raw.parse().choices[0].message.content
        out.append(raw.headers["x-understudy-served-by"])
    await client.close()
    return out


async def test_a_queued_candidate_gets_no_shadows_while_its_split_users_are_served() -> None:
    fake = vllm_candidate()
    fake.metrics = dict(VLLM_PAGE)  # 5 waiting, over the threshold of 2
    async with watched(
        fake,
        rollout={"mode": "split", "candidate": "local", "percent": 50},
        scrape_metrics=True,
        scrape_interval_s=0.05,
        shed_shadows_above_queue=2,
    ) as w:
        await until(
            lambda: w.metric("understudy_candidate_requests_waiting", candidate="local") == 5, 2
        )
        by = await served_by(w, range(40))
        by_candidate, by_primary = by.count("local"), by.count("openai")
        assert by_candidate >= 5 and by_primary >= 5, by
        await until(lambda: len(w.sink.exchanges) == 40, 5)
        # The candidate saw its own users' requests and not one shadow.
        assert w.chat_calls() == by_candidate
        shed = w.metric("understudy_shadows_skipped_total", upstream="local", reason="backpressure")
        assert shed == by_primary

        text = await w.metrics_text()
        for line in (
            'understudy_candidate_requests_running{candidate="local"} 3.0',
            'understudy_candidate_requests_waiting{candidate="local"} 5.0',
            'understudy_candidate_kv_cache_usage{candidate="local"} 0.42',
            'understudy_candidate_prefix_cache_hit_rate{candidate="local"} 0.25',
            'understudy_candidate_metrics_up{candidate="local"} 1.0',
        ):
            assert line in text, line
        status, ready = await w.readyz()
        assert status == 200
        assert ready["candidates"]["local"]["load"]["shedding_shadows"] is True

        # The queue drains, and 600 of the next 1000 queried tokens hit the cache.
        fake.metrics = {
            **VLLM_PAGE,
            'vllm:num_requests_waiting{engine="0",model_name="m"}': 1.0,
            'vllm:prefix_cache_queries_total{engine="0",model_name="m"}': 2000.0,
            'vllm:prefix_cache_hits_total{engine="0",model_name="m"}': 850.0,
        }
        await until(
            lambda: w.metric("understudy_candidate_requests_waiting", candidate="local") == 2, 2
        )
        assert w.metric("understudy_candidate_prefix_cache_hit_rate", candidate="local") == 0.6
        calls = w.chat_calls()
        again = await served_by(w, range(40, 60))
        await until(lambda: len(w.sink.exchanges) == 60, 5)
        # Every request reached the candidate: its own users', and a shadow of the rest.
        await until(lambda: w.chat_calls() == calls + len(again), 5)
        assert (
            w.metric("understudy_shadows_skipped_total", upstream="local", reason="backpressure")
            == shed
        )


async def test_a_failed_scrape_sheds_nothing_and_is_counted() -> None:
    fake = vllm_candidate()  # no metrics page: 404
    async with watched(fake, scrape_metrics=True, scrape_interval_s=0.05) as w:
        await until(
            lambda: (
                w.metric(
                    "understudy_candidate_scrape_failures_total",
                    candidate="local",
                    error_kind="http_status",
                )
                >= 2
            ),
            2,
        )
        assert (
            w.registry.get_sample_value("understudy_candidate_metrics_up", {"candidate": "local"})
            == 0
        )
        assert await served_by(w, range(3)) == ["openai"] * 3
        await until(lambda: w.chat_calls() == 3, 5)  # all three shadowed
        assert (await w.readyz())[1]["candidates"]["local"]["load"]["metrics_up"] is False


async def test_the_candidate_key_goes_to_its_own_server_only() -> None:
    key = "sk-candidate-scrape-5e0a"
    own, elsewhere = FakeOpenAI(expected_api_key=key), FakeOpenAI()
    own.metrics = elsewhere.metrics = {"vllm:num_requests_waiting": 1.0}
    async with running(own.app) as server, running(elsewhere.app) as other:
        config = UpstreamConfig(name="c", base_url=f"{server.url}/v1", kind="vllm", api_key=key)
        upstream = build_upstream(config)
        await upstream.start()
        try:
            assert (await upstream.read_load(f"{server.url}/metrics", 1.0)).waiting == 1.0
            assert (await upstream.read_load(f"{other.url}/metrics", 1.0)).waiting == 1.0
        finally:
            await upstream.close()
    assert own.requests[0].headers["authorization"] == f"Bearer {key}"
    assert "authorization" not in elsewhere.requests[0].headers


def test_settings_say_where_the_metrics_are() -> None:
    vllm = CandidateSettings(
        name="c", base_url="http://gpu-1:8000/v1", kind="vllm", scrape_metrics=True
    )
    assert watch_config(vllm).metrics_url == "http://gpu-1:8000/metrics"
    moved = vllm.model_copy(update={"metrics_url": "http://gpu-1:9090/metrics"})
    assert watch_config(moved).metrics_url == "http://gpu-1:9090/metrics"
    assert watch_config(vllm.model_copy(update={"scrape_metrics": False})).metrics_url is None
    with pytest.raises(ValueError, match="Ollama exports no Prometheus metrics"):
        CandidateSettings(name="c", base_url="http://h:11434", kind="ollama", scrape_metrics=True)
