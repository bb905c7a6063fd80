"""The server as ``serve`` builds it, with the admin API, on a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from tests.fakes import FakeOpenAI, RunningServer, start_server
from tests.storage.conftest import pg_server, pg_url
from understudy.admin_wiring import ADMIN_APP
from understudy.server import RunningSite, start_site
from understudy.settings import Settings, load_settings
from understudy.wiring import build_app

__all__ = ["pg_server", "pg_url"]

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-fedcba9876543210"
PREFIX = "/admin/api/v1"
SERVED_BY = "x-understudy-served-by"


@dataclass
class AdminRig:
    settings: Settings
    site: RunningSite
    registry: CollectorRegistry
    session: aiohttp.ClientSession
    admin_site: RunningSite | None = None
    servers: list[RunningServer] = field(default_factory=list)

    @property
    def admin_url(self) -> str:
        return (self.admin_site or self.site).url + PREFIX

    async def call(
        self, method: str, path: str, token: str | None = ALICE, **kw: Any
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.session.request(
            method, f"{self.admin_url}{path}", headers=headers, **kw
        ) as response:
            return response.status, await response.json()

    async def served_by(self) -> str:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        async with self.session.post(
            f"{self.site.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-client"},
        ) as response:
            await response.read()
            assert response.status == 200
            return response.headers[SERVED_BY]


RigFactory = Callable[..., Awaitable[AdminRig]]


@pytest.fixture
async def make_admin_rig(tmp_path: Path) -> AsyncIterator[RigFactory]:
    """Keyword arguments are Settings overrides; by default alice and bob hold tokens."""
    rigs: list[AdminRig] = []

    async def factory(**overrides: Any) -> AdminRig:
        servers = [await start_server(FakeOpenAI(persona=p).app) for p in ("openai", "candidate")]
        values: dict[str, Any] = {
            "primary": {"base_url": f"{servers[0].url}/v1"},
            "candidates": [{"name": "local", "base_url": f"{servers[1].url}/v1"}],
            "rollout": {"mode": "shadow", "percent": 0, "poll_interval_s": 0.25},
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}",
            "storage": {"spill_dir": str(tmp_path / "spill")},
            "admin_tokens": {"alice": ALICE, "bob": BOB},
            "shutdown_grace_s": 0.5,
            **overrides,
        }
        settings = load_settings(**values)
        registry = CollectorRegistry()
        app = build_app(settings, registry=registry)
        site = await start_site(app, "127.0.0.1", 0)
        admin_site = None
        if ADMIN_APP in app:
            admin_site = await start_site(app[ADMIN_APP], "127.0.0.1", 0)
        rig = AdminRig(settings, site, registry, aiohttp.ClientSession(), admin_site, servers)
        rigs.append(rig)
        return rig

    yield factory
    for rig in rigs:
        await rig.session.close()
        if rig.admin_site is not None:
            await rig.admin_site.stop()
        await rig.site.stop()
        for server in rig.servers:
            await server.close()
