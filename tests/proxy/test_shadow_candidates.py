"""Shadow candidates: several candidates mirrored at once, each at its own rate, cap and deadline.

Real servers on 127.0.0.1: a fake OpenAI primary and three fake candidates with
their own latencies and answers, the proxy in front, the official SDK as client.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry

from core import ErrorKind, Exchange, FlagState, Role, RolloutMode, RoutingDecision
from core.errors import ConfigError
from core.memory_sink import InMemorySink
from proxy.config import ShadowCandidate
from proxy.routing import decide
from proxy.shadows import chosen_shadow_candidates
from tests.fakes import FakeOpenAI, Fault, RunningServer, start_server
from tests.proxy.conftest import CLIENT_KEY, chat
from understudy.logs import configure_logging
from understudy.server import RunningSite, start_site
from understudy.settings import LogFormat, load_settings
from understudy.wiring import build_app

# name -> (first-byte delay, mapped model): each candidate answers at its own pace.
CANDIDATES = {
    "gemma": (0.005, "gemma-2-9b"),
    "llama": (0.015, "llama3.1:8b"),
    "qwen": (0.03, "qwen2.5"),
}


@dataclass
class Fleet:
    primary: FakeOpenAI
    candidates: dict[str, FakeOpenAI]
    sink: InMemorySink
    registry: CollectorRegistry
    proxy: RunningSite
    logs: io.StringIO
    servers: list[RunningServer] = field(default_factory=list)

    def client(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=f"{self.proxy.url}/v1", api_key=CLIENT_KEY, max_retries=0)

    async def exchanges(self, count: int, timeout: float = 10.0) -> list[Exchange]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.sink.exchanges) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.sink.exchanges)} exchanges, wanted {count}")
            await asyncio.sleep(0.01)
        return list(self.sink.exchanges)

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


FleetFactory = Callable[..., Awaitable[Fleet]]


@pytest.fixture
async def make_fleet() -> AsyncIterator[FleetFactory]:
    started: list[Fleet] = []

    async def factory(
        rates: dict[str, float],
        candidate: dict[str, dict[str, Any]] | None = None,
        **rollout: Any,
    ) -> Fleet:
        primary = FakeOpenAI(persona="openai")
        fakes = {
            name: FakeOpenAI(persona=name, first_byte_delay_s=delay)
            for name, (delay, _) in CANDIDATES.items()
        }
        servers = [await start_server(primary.app)]
        servers += [await start_server(f.app) for f in fakes.values()]
        candidates = [
            {
                "name": name,
                "base_url": f"{server.url}/v1",
                "model_map": {"gpt-4o-mini": CANDIDATES[name][1]},
                "timeout_s": 5,
                **(candidate or {}).get(name, {}),
            }
            for name, server in zip(fakes, servers[1:], strict=True)
        ]
        settings = load_settings(
            primary={"base_url": f"{servers[0].url}/v1"},
            candidates=candidates,
            rollout={
                "mode": "shadow",
                "candidate": "gemma",
                "shadow_candidates": [{"name": n, "rate": r} for n, r in rates.items()],
                **rollout,
            },
            shutdown_grace_s=0.5,
        )
        logs = io.StringIO()
        configure_logging("info", LogFormat.JSON, stream=logs, cache=False)
        sink, registry = InMemorySink(), CollectorRegistry()
        site = await start_site(build_app(settings, sink=sink, registry=registry), "127.0.0.1", 0)
        fleet = Fleet(primary, fakes, sink, registry, site, logs, servers)
        started.append(fleet)
        return fleet

    yield factory
    for fleet in started:
        await fleet.proxy.stop()
        for server in fleet.servers:
            await server.close()


def shadows_of(exchange: Exchange) -> Counter[str]:
    return Counter(o.upstream for o in exchange.observations if o.role is Role.SHADOW)


async def test_each_candidate_is_mirrored_at_about_its_own_rate(make_fleet: FleetFactory) -> None:
    # gemma is the rollout's candidate (shadow rate 1) and also listed: never twice.
    rates = {"gemma": 1.0, "llama": 0.5, "qwen": 0.2}
    fleet = await make_fleet(rates)
    client = fleet.client()
    n = 240
    for start in range(0, n, 12):
        answers = await asyncio.gather(
            *(
                client.chat.completions.create(**chat(f"question {i}"))
                for i in range(start, start + 12)
            )
        )
        # The client always gets the primary's answer, whoever else was asked.
        assert all(a.choices[0].message.content.startswith("openai:") for a in answers)  # type: ignore[union-attr]
    exchanges = await fleet.exchanges(n)
    counts: Counter[str] = Counter()
    for exchange in exchanges:
        per_exchange = shadows_of(exchange)
        assert max(per_exchange.values()) == 1  # at most one shadow per candidate
        counts.update(per_exchange)
        assert exchange.served_by == "openai" and exchange.decision.shadow == "gemma"
        for obs in exchange.observations:
            if obs.role is Role.SHADOW:
                assert obs.ok and obs.text is not None and obs.text.startswith(f"{obs.upstream}:")
                assert obs.model == CANDIDATES[obs.upstream][1]
    assert counts["gemma"] == n
    for name in ("llama", "qwen"):
        # Independent draws: a binomial count, within 4.5 standard deviations of n * rate.
        mean, sd = n * rates[name], math.sqrt(n * rates[name] * (1 - rates[name]))
        assert abs(counts[name] - mean) < 4.5 * sd, (name, counts[name])
        assert len(fleet.candidates[name].requests) == counts[name]
    # The draws are independent of each other: both extras on about rate * rate of requests.
    both = sum(1 for e in exchanges if {"llama", "qwen"} <= set(shadows_of(e)))
    p = rates["llama"] * rates["qwen"]
    assert abs(both - n * p) < 4.5 * math.sqrt(n * p * (1 - p))
    await client.close()


async def timed(client: AsyncOpenAI, n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        await client.chat.completions.create(**chat(f"timed {i}"))
        out.append((time.perf_counter() - start) * 1000)
    return out


async def test_a_hung_candidate_leaves_the_others_and_the_primary_untouched(
    make_fleet: FleetFactory,
) -> None:
    fleet = await make_fleet(
        {"llama": 1.0, "qwen": 1.0}, candidate={"qwen": {"max_concurrency": 4, "timeout_s": 3}}
    )
    fleet.primary.first_byte_delay_s = 0.02
    client = fleet.client()
    healthy = await timed(client, 12)
    fleet.candidates["qwen"].fault = Fault.HANG
    hung = await timed(client, 24)
    # One log line per exchange, each shadow's figures under its own name.
    [line] = [json.loads(x) for x in fleet.logs.getvalue().splitlines() if '"exchange"' in x][:1]
    assert line["shadow_status"] == 200 and line["shadow_llama_status"] == 200
    # qwen never answers: its 4 slots fill and stay full until its 3 s deadline, and the
    # primary's answers keep their own pace (a ratio within this run).
    assert statistics.median(hung) < statistics.median(healthy) * 1.5 + 5
    assert (
        fleet.metric("understudy_shadows_skipped_total", upstream="qwen", reason="at_capacity")
        == 20
    )
    assert fleet.metric("understudy_shadows_in_flight", upstream="qwen") == 4
    for name in ("gemma", "llama"):
        assert (
            fleet.metric("understudy_shadows_skipped_total", upstream=name, reason="at_capacity")
            == 0
        )
    exchanges = await fleet.exchanges(36, timeout=8)
    for exchange in exchanges[12:]:
        by_upstream = {o.upstream: o for o in exchange.observations if o.role is Role.SHADOW}
        assert by_upstream["gemma"].ok and by_upstream["llama"].ok
        assert exchange.arm(Role.SERVED).ok  # type: ignore[union-attr]
    timed_out = [o for e in exchanges for o in e.observations if o.upstream == "qwen" and not o.ok]
    assert len(timed_out) == 4 and all(o.error_kind is ErrorKind.TIMEOUT for o in timed_out)
    await client.close()


async def test_an_unhealthy_shadow_candidate_is_skipped_and_the_rest_go_on(
    make_fleet: FleetFactory,
) -> None:
    # qwen's server does not list its mapped model: its probe fails, it gets no shadows.
    fleet = await make_fleet(
        {"llama": 1.0, "qwen": 1.0}, candidate={"qwen": {"probe_interval_s": 0.05}}
    )
    fleet.candidates["qwen"].models = ["something-else"]
    client = fleet.client()
    healthy = {"candidate": "qwen"}
    for _ in range(200):  # until a probe has failed (the gauge has no value before one)
        if fleet.registry.get_sample_value("understudy_candidate_healthy", healthy) == 0.0:
            break
        await asyncio.sleep(0.02)
    for i in range(5):
        await client.chat.completions.create(**chat(f"q {i}"))
    exchanges = await fleet.exchanges(5)
    assert all(set(shadows_of(e)) == {"gemma", "llama"} for e in exchanges)
    assert (
        fleet.metric("understudy_shadows_skipped_total", upstream="qwen", reason="unhealthy") == 5
    )
    assert not [r for r in fleet.candidates["qwen"].requests if r.path != "/v1/models"]
    await client.close()


async def test_a_queued_shadow_candidate_is_shed_and_the_rest_go_on(
    make_fleet: FleetFactory,
) -> None:
    # llama's server reports 5 requests waiting, over its threshold of 2: shadows to it
    # are shed; qwen's reports none and keeps getting its own.
    watch = {"kind": "vllm", "scrape_metrics": True, "scrape_interval_s": 0.05}
    fleet = await make_fleet(
        {"llama": 1.0, "qwen": 1.0},
        candidate={
            "llama": {**watch, "shed_shadows_above_queue": 2},
            "qwen": {**watch, "shed_shadows_above_queue": 2},
        },
    )
    fleet.candidates["llama"].metrics = {'vllm:num_requests_waiting{model_name="m"}': 5.0}
    fleet.candidates["qwen"].metrics = {'vllm:num_requests_waiting{model_name="m"}': 0.0}
    for _ in range(200):  # until both pages were read
        waiting = [
            fleet.registry.get_sample_value(
                "understudy_candidate_requests_waiting", {"candidate": n}
            )
            for n in ("llama", "qwen")
        ]
        if waiting == [5.0, 0.0]:
            break
        await asyncio.sleep(0.02)
    client = fleet.client()
    for i in range(6):
        await client.chat.completions.create(**chat(f"q {i}"))
    exchanges = await fleet.exchanges(6)
    assert all(set(shadows_of(e)) == {"gemma", "qwen"} for e in exchanges)
    shed = fleet.metric("understudy_shadows_skipped_total", upstream="llama", reason="backpressure")
    assert shed == 6
    assert not [r for r in fleet.candidates["llama"].requests if r.path.endswith("/completions")]
    await client.close()


async def test_no_shadow_candidates_while_killed_or_off(make_fleet: FleetFactory) -> None:
    fleet = await make_fleet({"llama": 1.0}, mode="off")
    client = fleet.client()
    await client.chat.completions.create(**chat())
    [exchange] = await fleet.exchanges(1)
    assert [o.role for o in exchange.observations] == [Role.SERVED]
    assert not fleet.candidates["llama"].requests
    await client.close()


def flag(**kw: Any) -> FlagState:
    base: dict[str, Any] = {
        "key": "default",
        "mode": RolloutMode.SHADOW,
        "candidate": "gemma",
        "percent": 0.0,
        "shadow_rate": 1.0,
        "noise_rate": 0.0,
    }
    return FlagState(**{**base, **kw})


def decided(state: FlagState, subject: str = "alice") -> RoutingDecision:
    return decide(state, subject, primary="openai", shadow_draw=0.5, noise_draw=0.5)


LISTED = (
    ShadowCandidate("gemma", 1.0),
    ShadowCandidate("llama", 0.5),
    ShadowCandidate("qwen", 0.2),
)


def test_the_choice_is_a_pure_function_of_the_decision_and_the_draws() -> None:
    decision = decided(flag())
    choose = lambda draws: chosen_shadow_candidates(  # noqa: E731
        LISTED, decision, rollout_candidate="gemma", draws=draws
    )
    assert choose([0.0, 0.49, 0.19]) == ("llama", "qwen")  # the rollout's own is the decision's
    assert choose([0.0, 0.5, 0.19]) == ("qwen",)  # each rate is a strict bound, as decide's
    assert choose([0.0, 0.49, 0.2]) == ("llama",)
    assert choose([0.3, 0.3, 0.1]) == choose([0.3, 0.3, 0.1])
    with pytest.raises(ValueError, match="one draw"):
        choose([0.1])


def test_no_shadow_candidates_when_killed_off_or_the_candidate_serves() -> None:
    for state in (
        flag(killed=True),
        flag(mode=RolloutMode.OFF),
        flag(mode=RolloutMode.CUTOVER, percent=100.0),
        flag(mode=RolloutMode.SPLIT, percent=100.0),
    ):
        decision = decided(state)
        assert (
            chosen_shadow_candidates(
                LISTED, decision, rollout_candidate="gemma", draws=[0.0, 0.0, 0.0]
            )
            == ()
        )
    # In split, the users the primary serves are mirrored to the shadow candidates.
    split = decided(flag(mode=RolloutMode.SPLIT, percent=0.0))
    assert chosen_shadow_candidates(
        LISTED, split, rollout_candidate="gemma", draws=[0.0, 0.0, 0.0]
    ) == ("llama", "qwen")


def test_settings_name_configured_candidates_once_each() -> None:
    candidates = [{"name": n, "base_url": "http://127.0.0.1:9/v1"} for n in ("gemma", "llama")]
    ok = load_settings(
        candidates=candidates,
        rollout={"mode": "shadow", "candidate": "gemma", "shadow_candidates": [{"name": "llama"}]},
    )
    assert ok.rollout.shadow_candidates[0].rate == 1.0
    for listed, message in (
        ([{"name": "mistral", "rate": 0.5}], "'mistral' is not among the configured"),
        ([{"name": "llama"}, {"name": "llama", "rate": 0.2}], "twice"),
        ([{"name": "llama", "rate": 1.5}], "less than or equal to 1"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_settings(
                candidates=candidates,
                rollout={"mode": "shadow", "candidate": "gemma", "shadow_candidates": listed},
            )


def test_the_setting_reads_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "UNDERSTUDY_CANDIDATES",
        '[{"name": "gemma", "base_url": "http://127.0.0.1:9/v1"},'
        ' {"name": "llama", "base_url": "http://127.0.0.1:9/v1"}]',
    )
    monkeypatch.setenv("UNDERSTUDY_ROLLOUT__CANDIDATE", "gemma")
    monkeypatch.setenv("UNDERSTUDY_ROLLOUT__SHADOW_CANDIDATES", '[{"name": "llama", "rate": 0.25}]')
    listed = load_settings().rollout.shadow_candidates
    assert [(c.name, c.rate) for c in listed] == [("llama", 0.25)]
