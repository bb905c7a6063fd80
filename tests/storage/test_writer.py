"""The batched writer: batching, idempotency, overflow, outages, shutdown, disk failures."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import event
from structlog.testing import capture_logs

from core import Exchange
from storage import codec
from storage.database import Database
from storage.privacy import PrivacyPolicy
from storage.repository import get_exchange
from storage.writer import ExchangeWriter
from tests.pg import PostgresServer
from tests.storage.factories import served_arm, simple_exchange
from tests.storage.helpers import count_rows, exchange_ids, spill_records

POLICY = PrivacyPolicy()


def value(registry: CollectorRegistry, name: str) -> float:
    found = registry.get_sample_value(f"understudy_storage_{name}_total")
    return found if found is not None else 0.0


def make_writer(db: Database, spill_dir: Path, **kw: Any) -> ExchangeWriter:
    kw.setdefault("registry", CollectorRegistry())
    return ExchangeWriter(db, spill_dir=spill_dir, privacy=kw.pop("privacy", POLICY), **kw)


@pytest.fixture
async def writer(database: Database, spill_dir: Path) -> AsyncIterator[ExchangeWriter]:
    w = make_writer(database, spill_dir, batch_size=100)
    yield w
    await w.stop()


async def assert_stored_once(db: Database, exchanges: list[Exchange]) -> None:
    ids = await exchange_ids(db)
    assert len(ids) == len(set(ids)), "an exchange was stored twice"
    assert sorted(ids) == sorted(e.id.hex for e in exchanges)


def commit_counter(db: Database) -> Callable[[], int]:
    commits = 0

    def on_commit(_conn: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(db.engine.sync_engine, "commit", on_commit)
    return lambda: commits


async def test_writes_in_batches(database: Database, writer: ExchangeWriter) -> None:
    commits = commit_counter(database)
    batch = [simple_exchange(i) for i in range(1000)]
    for e in batch:
        writer.put(e)
    assert writer.queue_depth() == 1000
    await writer.start()
    await writer.wait_idle()
    assert commits() == 10  # 1000 exchanges, batch_size 100
    assert value(writer.metrics.registry, "written") == 1000
    assert writer.queue_depth() == 0
    await assert_stored_once(database, batch)
    assert await get_exchange(database, batch[17].id) == batch[17]


async def test_same_id_twice_is_one_row(database: Database, writer: ExchangeWriter) -> None:
    await writer.start()
    first = simple_exchange()
    writer.put(first)
    writer.put(dataclasses.replace(first, observations=(served_arm(text="other"),)))
    await writer.wait_idle()
    writer.put(first)
    await writer.wait_idle()
    assert await count_rows(database, "exchanges") == 1
    assert await get_exchange(database, first.id) == first


async def test_put_never_awaits_and_full_queue_overflows_to_disk(
    database: Database, spill_dir: Path
) -> None:
    w = make_writer(database, spill_dir, queue_size=10, batch_size=5)
    await w.start()
    batch = [simple_exchange(i) for i in range(500)]
    for e in batch:  # no await between puts: the writer cannot take any yet
        w.put(e)
    assert w.queue_depth() == 500
    await w.wait_idle()
    await w.stop()
    registry = w.metrics.registry
    assert value(registry, "spilled") == 490
    assert value(registry, "replayed") == 490
    assert value(registry, "written") == 10
    assert value(registry, "dropped") == 0
    await assert_stored_once(database, batch)
    assert list(spill_dir.glob("*.jsonl")) == []


async def test_stop_drains_the_queue(database: Database, spill_dir: Path) -> None:
    w = make_writer(database, spill_dir)
    await w.start()
    batch = [simple_exchange(i) for i in range(2000)]
    for e in batch:
        w.put(e)
    await w.stop(timeout_s=30)
    assert value(w.metrics.registry, "spilled") == 0
    await assert_stored_once(database, batch)


async def test_stop_out_of_time_spills_the_rest_and_the_next_start_replays(
    database: Database, spill_dir: Path
) -> None:
    w = make_writer(database, spill_dir, batch_size=50)
    await w.start()
    batch = [simple_exchange(i) for i in range(3000)]
    for e in batch:
        w.put(e)
    await asyncio.sleep(0)
    await w.stop(timeout_s=0)
    stored = set(await exchange_ids(database))
    spilled = {uuid.UUID(r["id"]).hex for r in spill_records(spill_dir)}
    assert stored | spilled == {e.id.hex for e in batch}, "an exchange was lost at shutdown"
    assert spilled

    after_put = simple_exchange(9999)
    w.put(after_put)  # after stop: straight to disk
    assert after_put.id.hex in {uuid.UUID(r["id"]).hex for r in spill_records(spill_dir)}

    again = make_writer(database, spill_dir)
    await again.start()
    await again.wait_idle()
    await again.stop()
    await assert_stored_once(database, [*batch, after_put])
    assert list(spill_dir.glob("*.jsonl")) == []


async def test_unreachable_database_spills_then_another_writer_replays(
    tmp_path: Path, spill_dir: Path, database: Database
) -> None:
    # SQLite cannot open a file in a folder that does not exist: a real outage.
    down = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    w = make_writer(down, spill_dir)
    await w.start()
    batch = [simple_exchange(i) for i in range(300)]
    for e in batch:
        w.put(e)
    await w.stop(timeout_s=10)
    await down.dispose()
    assert value(w.metrics.registry, "spilled") == 300
    assert value(w.metrics.registry, "written") == 0
    assert len(spill_records(spill_dir)) == 300

    up = make_writer(database, spill_dir)
    await up.start()
    await up.wait_idle()
    await up.stop()
    assert value(up.metrics.registry, "replayed") == 300
    await assert_stored_once(database, batch)


async def test_database_and_disk_both_down_counts_and_logs_drops(tmp_path: Path) -> None:
    down = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    not_a_dir = tmp_path / "spill"
    not_a_dir.write_text("a file where the spill folder should be")
    w = make_writer(down, not_a_dir)
    batch = [simple_exchange(i) for i in range(7)]
    with capture_logs() as logs:
        await w.start()
        for e in batch:
            w.put(e)
        await w.stop(timeout_s=10)
    await down.dispose()
    assert value(w.metrics.registry, "dropped") == 7
    dropped = [entry for entry in logs if entry["event"].startswith("exchange dropped")]
    assert sorted(entry["exchange_id"] for entry in dropped) == sorted(str(e.id) for e in batch)


async def test_a_record_the_database_refuses_is_set_aside(
    database: Database, writer: ExchangeWriter, spill_dir: Path
) -> None:
    good = [simple_exchange(i) for i in range(20)]
    bad = simple_exchange(99, observations=(served_arm(status=2**70),))
    await writer.start()
    for e in [*good[:10], bad, *good[10:]]:
        writer.put(e)
    await writer.wait_idle()
    await assert_stored_once(database, good)
    assert value(writer.metrics.registry, "rejected") == 1
    rejected = spill_records(spill_dir, prefix="rejected-")
    assert [r["id"] for r in rejected] == [str(bad.id)]
    assert list(spill_dir.glob("spill-*.jsonl")) == []  # not retried forever


async def test_a_torn_spill_line_is_dropped_and_the_rest_replayed(
    database: Database, spill_dir: Path
) -> None:
    batch = [simple_exchange(i) for i in range(5)]
    spill_dir.mkdir()
    lines = [codec.dumps(e) for e in batch]
    (spill_dir / "spill-00000000000000000001-1-1.jsonl").write_text(
        "\n".join(lines) + "\n" + lines[0][:40]
    )
    w = make_writer(database, spill_dir)
    with capture_logs() as logs:
        await w.start()
        await w.wait_idle()
        await w.stop()
    await assert_stored_once(database, batch)
    assert value(w.metrics.registry, "dropped") == 1
    assert any(entry["event"] == "unreadable line in spill file dropped" for entry in logs)


def test_metrics_go_to_a_private_registry_by_default(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    one = ExchangeWriter(db, spill_dir=tmp_path, privacy=POLICY)
    two = ExchangeWriter(db, spill_dir=tmp_path, privacy=POLICY)
    assert one.metrics.registry is not two.metrics.registry
    shared = CollectorRegistry()
    ExchangeWriter(db, spill_dir=tmp_path, privacy=POLICY, registry=shared)
    assert shared.get_sample_value("understudy_storage_dropped_total") == 0


# -- a real PostgreSQL outage -------------------------------------------------------


@pytest.mark.postgres
async def test_postgres_outage_spills_and_replays_exactly_once(
    pg_server: PostgresServer, pg_database: Database, spill_dir: Path
) -> None:
    w = make_writer(pg_database, spill_dir, batch_size=20)
    await w.start()
    sent: list[Exchange] = []

    async def traffic(n: int) -> None:
        for _ in range(n):
            e = simple_exchange(len(sent))
            sent.append(e)
            w.put(e)
            await asyncio.sleep(0.002)

    await traffic(100)
    await asyncio.to_thread(pg_server.kill)
    await traffic(300)
    assert spill_records(spill_dir), "nothing was spilled while the database was down"
    await asyncio.to_thread(pg_server.start)
    await traffic(100)
    await w.wait_idle(timeout_s=60)
    await w.stop()

    registry = w.metrics.registry
    assert value(registry, "spilled") > 0
    assert value(registry, "replayed") >= value(registry, "spilled")
    assert value(registry, "dropped") == 0
    await assert_stored_once(pg_database, sent)
    assert list(spill_dir.glob("*.jsonl")) == []


@pytest.mark.postgres
async def test_recovery_is_noticed_without_new_traffic(
    pg_server: PostgresServer, pg_database: Database, spill_dir: Path
) -> None:
    w = make_writer(pg_database, spill_dir)
    await w.start()
    await asyncio.to_thread(pg_server.kill)
    batch = [simple_exchange(i) for i in range(50)]
    for e in batch:
        w.put(e)
    async with asyncio.timeout(20):  # spilled once the write is refused (slower under load)
        while len(spill_records(spill_dir)) < 50:
            await asyncio.sleep(0.05)
    assert len(spill_records(spill_dir)) == 50
    await asyncio.to_thread(pg_server.start)
    await w.wait_idle(timeout_s=60)  # no put after the restart
    await w.stop()
    await assert_stored_once(pg_database, batch)


@pytest.mark.postgres
async def test_shutdown_while_postgres_is_down_spills_everything(
    pg_server: PostgresServer, pg_database: Database, spill_dir: Path
) -> None:
    w = make_writer(pg_database, spill_dir)
    await w.start()
    await asyncio.to_thread(pg_server.kill)
    batch = [simple_exchange(i) for i in range(1000)]
    for e in batch:
        w.put(e)
    await w.stop(timeout_s=5)
    assert {r["id"] for r in spill_records(spill_dir)} == {str(e.id) for e in batch}

    await asyncio.to_thread(pg_server.start)
    again = make_writer(pg_database, spill_dir)
    await again.start()
    await again.wait_idle(timeout_s=60)
    await again.stop()
    await assert_stored_once(pg_database, batch)


def test_spill_lines_are_one_json_object_each(spill_dir: Path, tmp_path: Path) -> None:
    async def run() -> None:
        down = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
        w = make_writer(down, spill_dir)
        await w.start()
        for i in range(3):
            w.put(simple_exchange(i))
        await w.stop()
        await down.dispose()

    asyncio.run(run())
    files = list(spill_dir.glob("spill-*.jsonl"))
    assert len(files) >= 1
    assert all(oct(f.stat().st_mode & 0o777) == oct(0o600) for f in files)
    for f in files:
        for line in f.read_text().splitlines():
            assert isinstance(json.loads(line), dict)


def test_spill_files_rotate_and_torn_tails_do_not_merge(tmp_path: Path) -> None:
    from storage.spill import SpillDir

    spill = SpillDir(tmp_path, max_lines_per_file=3, max_bytes_per_file=10_000)
    lines = [codec.dumps(simple_exchange(i)) for i in range(7)]
    spill.append(lines[:2])
    first = spill.files()[0]
    with first.open("a") as handle:
        handle.write('{"torn": ')  # a crash in the middle of a line
    spill.append(lines[2:3])
    spill.append(lines[3:7])
    assert len(spill.files()) == 2
    assert first.read_text().splitlines() == [lines[0], lines[1], '{"torn": ', lines[2]]
    assert spill.files()[1].read_text().splitlines() == lines[3:7]

    big = SpillDir(tmp_path / "big", max_bytes_per_file=len(lines[0]) * 2)
    for line in lines:
        big.append([line])
    assert len(big.files()) == 4
