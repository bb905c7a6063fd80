"""``understudy serve`` with UNDERSTUDY_ADMIN_PORT: the admin API on its own listener only."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

import migrations
from tests.faults.fake_process import FakeProcess
from tests.faults.serve import start_proxy
from tests.pg import free_port

TOKEN = "ops-token-5f0c2a7e9b14d3c8"


@pytest.mark.slow
async def test_serve_puts_the_admin_api_on_its_own_port(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    await migrations.upgrade(db_url)
    admin_port = free_port()
    with (
        FakeProcess(persona="openai", first_byte_delay_s=0.005) as primary,
        FakeProcess(persona="candidate", first_byte_delay_s=0.005) as candidate,
    ):
        proxy = await asyncio.to_thread(
            start_proxy,
            tmp_path,
            db_url,
            (primary.base_url, candidate.base_url),
            env={
                "UNDERSTUDY_ADMIN_PORT": str(admin_port),
                "UNDERSTUDY_ADMIN_TOKENS": json.dumps({"ops": TOKEN}),
                "UNDERSTUDY_ROLLOUT__MODE": "cutover",
            },
            log_level="info",
        )
        admin = f"http://127.0.0.1:{admin_port}/admin/api/v1"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        try:
            async with aiohttp.ClientSession() as session:

                async def served_by() -> str:
                    async with session.post(
                        f"{proxy.url}/v1/chat/completions",
                        json=chat,
                        headers={"Authorization": "Bearer sk-client"},
                    ) as response:
                        assert response.status == 200
                        return response.headers["x-understudy-served-by"]

                async with session.get(f"{proxy.url}/admin/api/v1/rollout", headers=auth) as r:
                    assert r.status == 404  # not on the port apps talk to
                async with session.get(f"{admin}/rollout") as r:
                    assert r.status == 401
                assert await served_by() == "local"
                async with session.post(
                    f"{admin}/rollout/kill", json={"reason": "drill"}, headers=auth
                ) as r:
                    assert r.status == 200 and (await r.json())["stored"] is True
                assert await served_by() == "openai"  # at once, on this replica
                async with session.get(f"{admin}/rollout/history", headers=auth) as r:
                    history = (await r.json())["data"]
                assert (history[0]["actor"], history[0]["action"]) == ("ops", "kill")
        finally:
            assert proxy.terminate() == 0
    lines = [json.loads(line) for line in proxy.log.read_text().splitlines() if line.strip()]
    listening = next(line for line in lines if line["event"] == "listening")
    assert listening["admin_api"] == f"http://127.0.0.1:{admin_port}/admin/api/v1"
    changes = [line for line in lines if line["event"] == "admin_change"]
    assert [(c["actor"], c["path"]) for c in changes] == [("ops", "/admin/api/v1/rollout/kill")]
    assert TOKEN not in proxy.log.read_text()
