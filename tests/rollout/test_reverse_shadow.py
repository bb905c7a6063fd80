"""After cutover the comparison goes on: a sample of candidate-served requests is also sent to
the primary in the background (the reverse shadow), recorded as a pair, and a candidate that
degrades is rolled back by the controller on those pairs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry

from core import Exchange, Role, Route
from rollout.changes import NewValues, RolloutAction
from rollout.controller import Controller, SoleLeader, StageWindow
from rollout.controller_metrics import ControllerMetrics
from rollout.reconcile import HasVerdict, TransitionKind
from storage.database import Database
from storage.flags import audit_entries, current_flags
from storage.report_queries import load_shadow_columns
from storage.repository import count_exchanges, list_exchanges
from storage.window import ExchangeWindow
from tests.fakes import FakeOpenAI, Fault, RunningServer, start_server
from understudy.controller_wiring import stage_report
from understudy.plan_settings import stage_plan
from understudy.server import RunningSite, start_site
from understudy.settings import Settings, load_settings
from understudy.wiring import build_app, rollout_store

CANDIDATE = "local"
GATES = ["latency_total", "error_rate"]
PLAN = [
    {"name": "shadow", "mode": "shadow", "min_units": 40, "gates": GATES},
    {"name": "100%", "mode": "cutover", "percent": 100, "min_units": 40, "gates": GATES},
]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@dataclass
class Rig:
    settings: Settings
    site: RunningSite
    primary: FakeOpenAI
    candidate: FakeOpenAI
    client: AsyncOpenAI
    registry: CollectorRegistry

    async def ask(self, n: int, *, stream: bool = False, concurrency: int = 8) -> list[str]:
        """``n`` questions through the proxy; the text of each answer."""
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> str:
            async with gate:
                if stream:
                    chunks = await self.client.chat.completions.create(
                        model="gpt-4o-mini", messages=QUESTION, stream=True, user=f"user-{i}"
                    )
                    return "".join([c.choices[0].delta.content or "" async for c in chunks])
                answer = await self.client.chat.completions.create(
                    model="gpt-4o-mini", messages=QUESTION, user=f"user-{i}"
                )
                return answer.choices[0].message.content or ""

        return await asyncio.gather(*(one(i) for i in range(n)))

    async def recorded(self, n: int, limit_s: float = 20.0) -> list[Exchange]:
        """The exchanges stored so far, once there are at least ``n``."""
        deadline = time.monotonic() + limit_s
        async with Database(self.settings.database_url) as db:
            while await count_exchanges(db) < n:
                assert time.monotonic() < deadline, f"fewer than {n} exchanges recorded"
                await asyncio.sleep(0.1)
            return await list_exchanges(db, limit=None)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    primary = FakeOpenAI(persona="openai", first_byte_delay_s=0.02)
    candidate = FakeOpenAI(persona="candidate", first_byte_delay_s=0.02)
    servers: list[RunningServer] = [
        await start_server(primary.app),
        await start_server(candidate.app),
    ]
    settings = load_settings(
        primary={"base_url": f"{servers[0].url}/v1", "api_key": "sk-primary-key"},
        candidates=[{"name": CANDIDATE, "base_url": f"{servers[1].url}/v1"}],
        rollout={
            "mode": "cutover",
            "percent": 100,
            "candidate": CANDIDATE,
            "reverse_shadow_rate": 1.0,
            "plan": PLAN,
            "controller": {"enabled": False},  # the test takes the controller's looks itself
        },
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}",
        storage={"spill_dir": str(tmp_path / "spill")},
        shutdown_grace_s=2.0,
    )
    registry = CollectorRegistry()
    site = await start_site(build_app(settings, registry=registry), "127.0.0.1", 0)
    client = AsyncOpenAI(base_url=f"{site.url}/v1", api_key="sk-client", max_retries=0)
    yield Rig(settings, site, primary, candidate, client, registry)
    await client.close()
    await site.stop()
    for server in servers:
        await server.close()


def roles(exchange: Exchange) -> dict[Role, str]:
    return {o.role: o.upstream for o in exchange.observations}


async def test_in_cutover_each_answer_is_paired_with_the_primary_in_the_background(
    rig: Rig,
) -> None:
    answers = await rig.ask(10) + await rig.ask(10, stream=True)
    exchanges = await rig.recorded(20)

    # The client got the candidate's answers, and the primary answered the same requests.
    assert all(a.startswith("candidate:") for a in answers), answers[:2]
    assert all(
        roles(e) == {Role.SERVED: CANDIDATE, Role.REVERSE_SHADOW: "openai"} for e in exchanges
    )
    assert all(e.decision.reverse_shadow and e.served_by == CANDIDATE for e in exchanges)
    assert all(o.ok and o.text for e in exchanges for o in e.observations)
    sent = rig.primary.requests_to("/v1/chat/completions")
    assert len(sent) == 20
    # As the primary's own traffic: its key, the model the app asked for.
    assert {r.headers["Authorization"] for r in sent} == {"Bearer sk-primary-key"}
    assert {r.body["model"] for r in sent} == {"gpt-4o-mini"}

    # They are pairs like any shadow pair: the report compares them.
    async with Database(rig.settings.database_url) as db:
        pairs = await load_shadow_columns(db, ExchangeWindow(CANDIDATE, route=Route.CHAT))
    assert len(pairs) == 20


async def test_the_primary_noise_is_measured_after_cutover_too(rig: Rig) -> None:
    async with Database(rig.settings.database_url) as db:
        await rollout_store(rig.settings, db).change(
            RolloutAction.SET, actor="cli", reason="noise", values=NewValues(noise_rate=1.0)
        )
    await asyncio.sleep(1.0)  # replicas follow the store within a second
    await rig.ask(5)
    for e in await rig.recorded(5):
        arms = sorted((o.role.value, o.upstream) for o in e.observations)
        assert arms == [("noise", "openai"), ("reverse_shadow", "openai"), ("served", CANDIDATE)]
        assert all(o.ok for o in e.observations)


async def test_a_failing_reverse_shadow_is_counted_and_costs_the_user_nothing(rig: Rig) -> None:
    rig.primary.fault = Fault.HTTP_500
    answers = await rig.ask(4)
    exchanges = await rig.recorded(4)

    assert all(a.startswith("candidate:") for a in answers)
    for e in exchanges:
        reverse = e.arm(Role.REVERSE_SHADOW)
        assert reverse is not None and reverse.status == 500 and not reverse.ok
    failed = rig.registry.get_sample_value(
        "understudy_shadows_failed_total", {"upstream": "openai", "error_kind": "http_status"}
    )
    assert failed == 4


async def test_a_fallback_is_not_reverse_shadowed(rig: Rig) -> None:
    rig.candidate.fault = Fault.HTTP_500
    answers = await rig.ask(6)
    exchanges = await rig.recorded(6)

    assert all(a.startswith("openai:") for a in answers)
    # The primary answered each request once, as the server: no second call in the background.
    assert len(rig.primary.requests_to("/v1/chat/completions")) == 6
    for e in exchanges:
        assert e.fallback and e.served_by == "openai"
        assert roles(e) == {Role.FAILED_OVER: CANDIDATE, Role.SERVED: "openai"}


async def test_a_candidate_that_degrades_after_cutover_is_rolled_back(rig: Rig) -> None:
    settings = rig.settings
    async with Database(settings.database_url) as db:
        store = rollout_store(settings, db)
        plan = stage_plan(settings.rollout.plan)

        async def assess(window: StageWindow) -> HasVerdict | None:
            return await stage_report(db, settings, window)

        controller = Controller(
            db, store, plan, assess, SoleLeader(), ControllerMetrics(CollectorRegistry())
        )
        at = await controller.position()
        assert at is not None and at.position.stage is not None
        assert at.position.stage.name == "100%"

        # Models drift: weeks after cutover the candidate answers ten times slower.
        rig.candidate.first_byte_delay_s = 0.2
        await rig.ask(60)
        await rig.recorded(60)
        transition = await controller.tick()

        assert transition is not None and transition.kind is TransitionKind.ROLLBACK
        assert "latency_total" in transition.reason
        row = (await current_flags(db))[None]
        assert (row.mode, row.percent, row.stage, row.paused) == ("shadow", 0.0, "shadow", True)
        entry = (await audit_entries(db, limit=1))[0]
        assert (entry.actor, entry.action) == ("controller", "rollback")
        assert entry.verdict is not None and entry.verdict["n"] >= 60
        latency = next(m for m in entry.verdict["metrics"] if m["name"] == "latency_total")
        assert latency["label"] == "fail" and latency["estimate"] > 1.5

    # Within a poll the proxy serves from the primary again, the candidate back in shadow.
    deadline = time.monotonic() + 5
    while not (await rig.ask(1))[0].startswith("openai:"):
        assert time.monotonic() < deadline, "still served by the candidate after the rollback"
        await asyncio.sleep(0.1)
