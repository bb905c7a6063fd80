"""Conversation affinity: a follow-up (``previous_response_id``) goes to the arm holding its
parent whatever the percentage says now, on any of two replicas sharing one database;
mirrors of it go only where the parent's twin lives; GET and DELETE reach the holder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry
from sqlalchemy import select

import migrations
from core import RolloutMode
from rollout.changes import NewValues, RolloutAction
from rollout.state import RolloutRules
from rollout.store import RolloutStore
from storage.database import Database
from storage.flags import FlagRecord
from storage.models import ExchangeRow
from storage.response_owners import ResponseOwnerRepository
from tests.fakes import FakeOpenAI, RunningServer, start_server
from tests.proxy.conftest import CANDIDATE_KEY, CLIENT_KEY
from tests.storage.conftest import db_url, pg_server, pg_url
from understudy.server import RunningSite, start_site
from understudy.settings import load_settings
from understudy.wiring import build_app

__all__ = ["db_url", "pg_server", "pg_url"]

SEED = FlagRecord(
    route=None, mode="shadow", candidate="local", percent=0.0, shadow_rate=1.0, noise_rate=0.0
)
RULES = RolloutRules(flag_key="default", candidates=("local",))


@dataclass
class Replicas:
    url: str
    primary: FakeOpenAI
    candidate: FakeOpenAI
    sites: list[RunningSite] = field(default_factory=list)
    registries: list[CollectorRegistry] = field(default_factory=list)
    servers: list[RunningServer] = field(default_factory=list)

    def client(self, replica: int) -> AsyncOpenAI:
        return AsyncOpenAI(
            base_url=f"{self.sites[replica].url}/v1", api_key=CLIENT_KEY, max_retries=0
        )

    def metric(self, replica: int, name: str, **labels: str) -> float:
        return self.registries[replica].get_sample_value(name, labels) or 0.0

    async def set_percent(self, percent: float) -> None:
        """A change from elsewhere (the CLI), then both replicas following it."""
        async with Database(self.url) as db:
            await RolloutStore(db, RULES, SEED).change(
                RolloutAction.SET,
                actor="test",
                reason="moving users",
                values=NewValues(mode=RolloutMode.SPLIT, percent=percent),
            )
        for replica in range(len(self.sites)):
            await until(
                lambda r=replica: (
                    self.metric(r, "understudy_rollout_percent", route="responses") == percent
                )
            )


async def until(check: Callable[[], Any], limit_s: float = 5.0) -> None:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit_s, "not within the limit"
        await asyncio.sleep(0.01)


@pytest.fixture
async def start_replicas(
    tmp_path: Any,
) -> AsyncIterator[Callable[..., Any]]:
    started: list[Replicas] = []

    async def start(url: str, mode: str, has_api: bool) -> Replicas:
        await migrations.upgrade(url)
        primary = FakeOpenAI(persona="openai")
        candidate = FakeOpenAI(persona="candidate", expected_api_key=CANDIDATE_KEY)
        candidate.responses.enabled = has_api
        replicas = Replicas(url, primary, candidate)
        started.append(replicas)
        replicas.servers = [await start_server(f.app) for f in (primary, candidate)]
        settings = load_settings(
            primary={"base_url": f"{replicas.servers[0].url}/v1"},
            candidates=[
                {
                    "name": "local",
                    "base_url": f"{replicas.servers[1].url}/v1",
                    "api_key": CANDIDATE_KEY,
                    "responses": mode,
                    "timeout_s": 5,
                }
            ],
            database_url=url,
            storage={"spill_dir": str(tmp_path / "spill")},
            rollout={
                "mode": "shadow",
                "candidate": "local",
                "shadow_rate": 1.0,
                "reverse_shadow_rate": 1.0,
                "poll_interval_s": 0.1,
                "controller": {"enabled": False},
            },
            shutdown_grace_s=1.0,
        )
        for _ in range(2):
            registry = CollectorRegistry()
            app = build_app(settings, registry=registry)
            replicas.sites.append(await start_site(app, "127.0.0.1", 0))
            replicas.registries.append(registry)
        return replicas

    yield start
    for replicas in started:
        for site in replicas.sites:
            await site.stop()
        for server in replicas.servers:
            await server.close()


async def twin_stored(url: str, response_id: str) -> str:
    """The twin of ``response_id`` once the database has it (the mirror ends after the client)."""
    async with Database(url) as db:
        owners = ResponseOwnerRepository(db)
        start = time.monotonic()
        while True:
            owner = await owners.load_owner(response_id)
            if owner is not None and owner.twin_id is not None:
                return owner.twin_id
            assert time.monotonic() - start < 5.0, "the twin was never stored"
            await asyncio.sleep(0.02)


async def raw(method: str, url: str) -> tuple[int, str, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as r,
    ):
        return r.status, r.headers["x-understudy-served-by"], await r.json()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "has_api"),
    [("native", True), ("translate", False)],
    ids=["native", "translate"],
)
async def test_conversations_stay_with_their_arm_while_the_percentage_moves(
    start_replicas: Callable[..., Any], db_url: str, mode: str, has_api: bool
) -> None:
    r: Replicas = await start_replicas(db_url, mode, has_api)
    a, b = r.client(0), r.client(1)

    # A conversation the primary starts, shadowed: the candidate's answer is its twin.
    first = await a.responses.with_raw_response.create(
        model="gpt-4o-mini", input="Name a bread.", user="ada"
    )
    assert first.headers["x-understudy-served-by"] == "openai"
    first_id = first.parse().id
    candidate_first = await twin_stored(r.url, first_id)
    await r.set_percent(100.0)

    # Everyone is moved now, but the follow-up stays on the primary, on the other replica;
    # its shadow continues the candidate's own side of the conversation.
    second = await b.responses.with_raw_response.create(
        model="gpt-4o-mini", input="And its history?", user="ada", previous_response_id=first_id
    )
    assert second.headers["x-understudy-served-by"] == "openai"
    assert second.parse().previous_response_id == first_id
    assert r.metric(1, "understudy_responses_pinned_total", upstream="openai", moved="yes") == 1
    await twin_stored(r.url, second.parse().id)
    if mode == "native":
        sent = [q.body for q in r.candidate.requests if q.path == "/v1/responses"]
        assert sent[-1]["previous_response_id"] == candidate_first
    else:  # the whole conversation as the candidate saw it, its own first answer included
        sent = [q.body for q in r.candidate.requests if q.path == "/v1/chat/completions"]
        roles = [m["role"] for m in sent[-1]["messages"]]
        assert roles == ["user", "assistant", "user"]
        assert sent[-1]["messages"][0]["content"] == "Name a bread."

    # A conversation the candidate starts, reverse-shadowed to the primary; then everyone
    # is moved back, and its follow-up still goes to the candidate.
    third = await b.responses.with_raw_response.create(
        model="gpt-4o-mini", input="Name a cheese.", user="grace"
    )
    assert third.headers["x-understudy-served-by"] == "local"
    third_id = third.parse().id
    primary_twin = await twin_stored(r.url, third_id)
    await r.set_percent(0.0)
    fourth = await a.responses.with_raw_response.create(
        model="gpt-4o-mini",
        input="Where is it from?",
        user="grace",
        previous_response_id=third_id,
        stream=True,
    )
    assert fourth.headers["x-understudy-served-by"] == "local"
    events = [event async for event in fourth.parse()]
    assert events[-1].type == "response.completed"
    await twin_stored(r.url, events[-1].response.id)  # type: ignore[union-attr]
    primary_sent = [q.body for q in r.primary.requests if q.path == "/v1/responses"]
    assert primary_sent[-1]["previous_response_id"] == primary_twin

    # GET and DELETE go to the holder, from either replica.
    base = [site.url for site in r.sites]
    status, served_by, body = await raw("GET", f"{base[0]}/v1/responses/{third_id}")
    assert (status, served_by, body["id"]) == (200, "local", third_id)
    status, served_by, body = await raw("GET", f"{base[1]}/v1/responses/{first_id}")
    assert (status, served_by, body["id"]) == (200, "openai", first_id)
    status, served_by, body = await raw("POST", f"{base[1]}/v1/responses/{third_id}/cancel")
    assert (status, served_by) == (400, "local") and "background" in body["error"]["message"]
    status, served_by, body = await raw("DELETE", f"{base[1]}/v1/responses/{third_id}")
    assert (status, served_by, body["deleted"]) == (200, "local", True)
    status, served_by, body = await raw("GET", f"{base[0]}/v1/responses/{third_id}")
    assert status == 404 and body["error"]["message"]
    await a.close()
    await b.close()

    for site in r.sites:  # the writers flush at stop
        await site.stop()
    r.sites.clear()
    async with Database(r.url) as db, db.sessions() as session:
        routes = (await session.execute(select(ExchangeRow.route))).scalars().all()
    assert routes == ["responses"] * 4
