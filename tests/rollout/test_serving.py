"""The proxy as ``serve`` builds it, on SQLite: seeded from the settings, then following the
flag store and the kill file while it serves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from core import Route
from rollout.changes import NewValues, RolloutAction
from storage.database import Database
from storage.flags import audit_entries
from tests.fakes import FakeOpenAI, start_server
from understudy.server import RunningSite, start_site
from understudy.settings import Settings, load_settings
from understudy.wiring import build_app, rollout_store

SERVED_BY = "x-understudy-served-by"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Settings, RunningSite, CollectorRegistry]]:
    servers = [await start_server(FakeOpenAI(persona=p).app) for p in ("openai", "candidate")]
    settings = load_settings(
        primary={"base_url": f"{servers[0].url}/v1"},
        candidates=[{"name": "local", "base_url": f"{servers[1].url}/v1"}],
        rollout={"mode": "shadow", "percent": 0, "poll_interval_s": 0.25},
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}",
        storage={"spill_dir": str(tmp_path / "spill")},
        kill_file=str(tmp_path / "kill"),
        shutdown_grace_s=0.5,
    )
    registry = CollectorRegistry()
    site = await start_site(build_app(settings, registry=registry), "127.0.0.1", 0)
    yield settings, site, registry
    await site.stop()
    for server in servers:
        await server.close()


async def served_by(session: aiohttp.ClientSession, url: str, route: Route) -> str:
    body: dict[str, object] = {"model": "gpt-4o-mini", "input": "hello"}
    path = "/v1/embeddings"
    if route is Route.CHAT:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        path = "/v1/chat/completions"
    async with session.post(
        f"{url}{path}", json=body, headers={"Authorization": "Bearer sk-client"}
    ) as response:
        await response.read()
        assert response.status == 200
        return response.headers[SERVED_BY]


async def first_answer_from(
    session: aiohttp.ClientSession, url: str, server: str, since: float
) -> float:
    while time.monotonic() - since < 10:
        if await served_by(session, url, Route.CHAT) == server:
            return time.monotonic() - since
        await asyncio.sleep(0.01)
    raise AssertionError(f"never served by {server}")


async def test_serve_follows_the_store_and_the_kill_file(
    served: tuple[Settings, RunningSite, CollectorRegistry],
) -> None:
    settings, site, registry = served
    kill_file = settings.kill_file
    assert kill_file is not None
    async with aiohttp.ClientSession() as session:
        assert await served_by(session, site.url, Route.CHAT) == "openai"
        assert registry.get_sample_value("understudy_rollout_flag_version") == 1  # the seed

        start = time.monotonic()
        async with Database(settings.database_url) as db:
            change = await rollout_store(settings, db).change(
                RolloutAction.SET, actor="cli", reason="all", values=NewValues(percent=100)
            )
        assert await first_answer_from(session, site.url, "local", start) < 1.0
        # Split reaches chat, not embeddings: those stay in shadow unless allowed.
        assert await served_by(session, site.url, Route.EMBEDDINGS) == "openai"
        assert registry.get_sample_value("understudy_rollout_flag_version") == change.version
        percent = registry.get_sample_value("understudy_rollout_percent", {"route": "embeddings"})
        assert percent == 0

        start = time.monotonic()
        kill_file.touch()
        assert await first_answer_from(session, site.url, "openai", start) < 1.0
        kill_file.unlink()
        assert await first_answer_from(session, site.url, "local", time.monotonic()) < 1.0

    async with Database(settings.database_url) as db:
        entries = await audit_entries(db)
    assert [(e.actor, e.action) for e in entries] == [("cli", "set"), ("settings", "seed")]
