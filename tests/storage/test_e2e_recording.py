"""End to end: the real ``understudy serve`` process under load, recording into PostgreSQL.

A PostgreSQL outage and a SIGTERM in the middle of the traffic must not lose,
nor double, a single exchange whose answer reached the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from storage.database import Database
from storage.privacy import PrivacyPolicy
from storage.writer import ExchangeWriter
from tests.fakes import FakeOpenAI, ThreadedServer
from tests.pg import PostgresServer, free_port
from tests.storage.helpers import spill_records

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
RATE = 200  # requests per second
EXCHANGE_ID_HEADER = "x-understudy-exchange-id"


@dataclass
class Proxy:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def metrics(self) -> dict[str, float]:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            body = response.read().decode()
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }

    def terminate(self, timeout_s: float = 60.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)


@pytest.fixture
def upstreams() -> Iterator[tuple[str, str]]:
    primary = FakeOpenAI(persona="openai", first_byte_delay_s=0.02)
    candidate = FakeOpenAI(persona="candidate", first_byte_delay_s=0.05)
    with ThreadedServer(primary.app) as p, ThreadedServer(candidate.app) as c:
        yield f"{p.url}/v1", f"{c.url}/v1"


def start_proxy(tmp_path: Path, database_url: str, upstreams: tuple[str, str]) -> Proxy:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "UNDERSTUDY_HOST": "127.0.0.1",
        "UNDERSTUDY_PORT": str(port),
        "UNDERSTUDY_PRIMARY__BASE_URL": upstreams[0],
        "UNDERSTUDY_CANDIDATES": json.dumps([{"name": "local", "base_url": upstreams[1]}]),
        "UNDERSTUDY_ROLLOUT__MODE": "shadow",
        "UNDERSTUDY_DATABASE_URL": database_url,
        "UNDERSTUDY_STORAGE__SPILL_DIR": str(tmp_path / "spill"),
        "UNDERSTUDY_LOG_FORMAT": "json",
        "UNDERSTUDY_LOG_LEVEL": "warning",
        "UNDERSTUDY_SHUTDOWN_GRACE_S": "10",
    }
    log = tmp_path / "proxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "understudy.cli", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    proxy = Proxy(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 30
    import urllib.error
    import urllib.request

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"proxy exited at start:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{proxy.url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return proxy
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"proxy not ready in 30 s:\n{log.read_text()}")


@dataclass
class Load:
    answered: set[uuid.UUID] = field(default_factory=set)
    failed: int = 0
    sent: int = 0


async def drive(url: str, seconds: float, load: Load) -> None:
    """Send RATE requests a second for ``seconds``, half of them streamed."""
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def one(i: int) -> None:
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Question number {i}?"}],
                "stream": i % 2 == 0,
            }
            headers = {"Authorization": "Bearer sk-client-e2e", "x-understudy-subject": f"u{i}"}
            try:
                async with session.post(
                    f"{url}/v1/chat/completions", json=body, headers=headers
                ) as response:
                    await response.read()
                    if response.status == 200:
                        load.answered.add(uuid.UUID(response.headers[EXCHANGE_ID_HEADER]))
                    else:
                        load.failed += 1
            except (aiohttp.ClientError, TimeoutError):
                load.failed += 1

        tasks: set[asyncio.Task[None]] = set()
        start = loop.time()
        while (elapsed := loop.time() - start) < seconds:
            due = start + load.sent / RATE
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            task = asyncio.create_task(one(load.sent), name=f"e2e-request-{load.sent}")
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            load.sent += 1
        del elapsed
        await asyncio.gather(*tasks)


async def stored_ids(url: str) -> list[uuid.UUID]:
    async with Database(url) as db, db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id FROM exchanges"))).scalars().all()
    return [r if isinstance(r, uuid.UUID) else uuid.UUID(str(r)) for r in rows]


async def wait_until_stored(url: str, wanted: set[uuid.UUID], timeout_s: float) -> set[uuid.UUID]:
    """The wanted ids still missing once they all arrived or time ran out."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = wanted - set(await stored_ids(url))
        if not missing or time.monotonic() > deadline:
            return missing
        await asyncio.sleep(1)


async def test_postgres_outage_under_load_loses_nothing(
    tmp_path: Path, pg_server: PostgresServer, pg_url: str, upstreams: tuple[str, str]
) -> None:
    import migrations

    await migrations.upgrade(pg_url)
    proxy = await asyncio.to_thread(start_proxy, tmp_path, pg_url, upstreams)
    try:
        load = Load()
        traffic = asyncio.create_task(drive(proxy.url, 50, load), name="e2e-traffic")
        await asyncio.sleep(10)
        await asyncio.to_thread(pg_server.kill)
        await asyncio.sleep(30)
        spilled_during_outage = len(spill_records(tmp_path / "spill"))
        await asyncio.to_thread(pg_server.start)
        await traffic

        missing = await wait_until_stored(pg_url, load.answered, timeout_s=120)
        metrics = proxy.metrics()
    finally:
        exit_code = await asyncio.to_thread(proxy.terminate)

    log = proxy.log.read_text()
    assert exit_code == 0, log[-3000:]
    assert load.sent >= 0.95 * RATE * 50
    assert len(load.answered) >= 0.99 * load.sent, f"{load.failed} requests failed"
    assert spilled_during_outage > 0, "nothing was spilled while PostgreSQL was down"
    assert not missing, f"{len(missing)} answered exchanges never stored"
    ids = await stored_ids(pg_url)
    assert len(ids) == len(set(ids))
    assert metrics["understudy_storage_dropped_total"] == 0
    assert (
        metrics["understudy_storage_replayed_total"] >= metrics["understudy_storage_spilled_total"]
    )
    assert spill_records(tmp_path / "spill") == []


async def test_sigterm_under_load_loses_nothing(
    tmp_path: Path, pg_url: str, upstreams: tuple[str, str]
) -> None:
    import migrations

    await migrations.upgrade(pg_url)
    proxy = await asyncio.to_thread(start_proxy, tmp_path, pg_url, upstreams)
    load = Load()
    traffic = asyncio.create_task(drive(proxy.url, 10, load), name="e2e-traffic")
    await asyncio.sleep(5)
    exit_code = await asyncio.to_thread(proxy.terminate)
    await traffic
    assert exit_code == 0, proxy.log.read_text()[-3000:]
    assert len(load.answered) >= 0.9 * RATE * 5

    # Whatever shutdown could not write is on disk; a new writer replays it.
    async with Database(pg_url) as db:
        writer = ExchangeWriter(
            db,
            spill_dir=tmp_path / "spill",
            privacy=PrivacyPolicy(),
            registry=CollectorRegistry(),
        )
        await writer.start()
        await writer.wait_idle()
        await writer.stop()
    ids = await stored_ids(pg_url)
    assert len(ids) == len(set(ids))
    missing = load.answered - set(ids)
    assert not missing, f"{len(missing)} of {len(load.answered)} answered exchanges lost"
