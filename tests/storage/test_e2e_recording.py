"""End to end: the real ``understudy serve`` process under load, recording into PostgreSQL.

A PostgreSQL outage and a SIGTERM in the middle of the traffic must not lose,
nor double, a single exchange whose answer reached the client.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from storage.database import Database
from storage.privacy import PrivacyPolicy
from storage.writer import ExchangeWriter
from tests.fakes import FakeOpenAI, ThreadedServer
from tests.faults.load import RATE, Load, drive
from tests.faults.serve import start_proxy
from tests.pg import PostgresServer
from tests.storage.helpers import spill_records

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def upstreams() -> Iterator[tuple[str, str]]:
    primary = FakeOpenAI(persona="openai", first_byte_delay_s=0.02)
    candidate = FakeOpenAI(persona="candidate", first_byte_delay_s=0.05)
    with ThreadedServer(primary.app) as p, ThreadedServer(candidate.app) as c:
        yield f"{p.url}/v1", f"{c.url}/v1"


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
