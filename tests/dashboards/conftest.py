"""The server as ``serve`` builds it, with the web UI, on a real SQLite database with pairs."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

import migrations
from core import Exchange, Role, RolloutMode, Route
from dashboards.accounts import new_token, token_hash
from storage.database import Database
from storage.inserts import insert_exchanges
from storage.reviewers import add_reviewer
from tests.storage.conftest import pg_server, pg_url
from tests.storage.factories import decision, full_exchange, served_arm, shadow_arm
from understudy.server import RunningSite, start_site
from understudy.settings import Settings, load_settings
from understudy.wiring import build_app

__all__ = ["pg_server", "pg_url"]

ADMIN_TOKEN = "ui-admin-token-0123456789abcdef"
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ITEM = re.compile(r'name="item" value="([^"]+)"')
PRIMARY_MODEL = "gpt-4o-mini-2024-07-18"
CANDIDATE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def pair(n: int, *, route: Route = Route.CHAT, candidate_text: str | None = None) -> Exchange:
    """A shadow pair of candidate "local" against "openai", both answered with text."""
    return full_exchange(
        id=uuid.uuid4(),
        created_at=datetime.now(UTC) - timedelta(minutes=n),
        route=route,
        decision=decision(shadow="local", noise=False, mode=RolloutMode.SHADOW),
        fallback=False,
        request={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Q{n}?"}]},
        observations=(
            served_arm(text=f"The sky is blue, says reply {n}.", tool_calls=(), latency_ms=812.25),
            shadow_arm(
                upstream="local",
                role=Role.SHADOW,
                status=200,
                error_kind=None,
                latency_ms=1234.5,
                ttft_ms=99.0,
                text=candidate_text or f"Blue is the colour of the sky, answer {n}.",
            ),
        ),
    )


async def store_pairs(db: Database, exchanges: list[Exchange]) -> None:
    async with db.engine.begin() as conn:
        await insert_exchanges(conn, exchanges)


@dataclass
class UiRig:
    settings: Settings
    site: RunningSite
    db: Database
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.site.url

    def client(self) -> aiohttp.ClientSession:
        """A browser-like client: keeps cookies (for 127.0.0.1 too), never follows redirects."""
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.sessions.append(session)
        return session

    async def form_token(self, client: aiohttp.ClientSession, path: str) -> str:
        async with client.get(self.url + path, allow_redirects=False) as response:
            found = CSRF.search(await response.text())
        assert found is not None, f"no form on {path}"
        return found.group(1)

    async def post(
        self,
        client: aiohttp.ClientSession,
        path: str,
        data: dict[str, str],
        *,
        origin: str | None = "",
    ) -> aiohttp.ClientResponse:
        headers = {} if origin is None else {"Origin": origin or self.url}
        response = await client.post(
            self.url + path, data=data, headers=headers, allow_redirects=False
        )
        await response.read()
        return response

    async def invite(self, name: str) -> str:
        token = new_token()
        now = datetime.now(UTC)
        await add_reviewer(self.db, name, token_hash(token), now, now + timedelta(days=1))
        return f"/ui/invite/{token}"

    async def reviewer(self, name: str) -> aiohttp.ClientSession:
        """A client signed in as a new reviewer ``name``."""
        client = self.client()
        link = await self.invite(name)
        csrf = await self.form_token(client, link)
        answer = await self.post(
            client, link, {"csrf": csrf, "password": PASSWORD, "confirm": PASSWORD}
        )
        assert answer.status == 303, answer.status
        return client

    async def admin(self) -> aiohttp.ClientSession:
        client = self.client()
        csrf = await self.form_token(client, "/ui/signin")
        answer = await self.post(client, "/ui/signin/admin", {"csrf": csrf, "token": ADMIN_TOKEN})
        assert answer.status == 303
        return client


RigFactory = Callable[..., Awaitable[UiRig]]


@pytest.fixture
def ui_backend(request: pytest.FixtureRequest) -> str:
    """The rig's database: SQLite unless a test parametrizes this indirectly."""
    backend: str = getattr(request, "param", "sqlite")
    return backend


@pytest.fixture
async def make_ui_rig(
    tmp_path: Path, ui_backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[RigFactory]:
    """Keyword arguments are Settings overrides. Upstreams are never called: pairs are
    stored directly, and the rollout is off."""
    rigs: list[UiRig] = []

    async def factory(**overrides: Any) -> UiRig:
        if ui_backend == "postgresql":
            assert not rigs, "one PostgreSQL rig per test"
            url: str = request.getfixturevalue("pg_url")
        else:
            url = f"sqlite+aiosqlite:///{tmp_path / f'understudy-{len(rigs)}.db'}"
        await migrations.upgrade(url)
        values: dict[str, Any] = {
            "primary": {"base_url": "http://127.0.0.1:9/v1"},
            "candidates": [{"name": "local", "base_url": "http://127.0.0.1:9/v1"}],
            "database_url": url,
            "storage": {"spill_dir": str(tmp_path / "spill")},
            "admin_tokens": {"ops": ADMIN_TOKEN},
            "shutdown_grace_s": 0.2,
            **overrides,
        }
        settings = load_settings(**values)
        site = await start_site(build_app(settings, registry=CollectorRegistry()), "127.0.0.1", 0)
        rig = UiRig(settings, site, Database(url))
        rigs.append(rig)
        return rig

    yield factory
    for rig in rigs:
        for session in rig.sessions:
            await session.close()
        await rig.site.stop()
        await rig.db.dispose()
