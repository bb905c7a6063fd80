"""``kill -9`` under 200 req/s, then a restart on the same database and spill folder.

A killed process runs no shutdown code: what was only in memory is gone. That is
the writer's queue, the batch it is committing, exchanges still waiting for their
shadow, and overflow not yet on disk; the writer spills whatever its queue cannot
hold, so a small queue bounds the loss. Everything else must be intact after the
restart: no torn or invalid row, no exchange stored twice, every spill replayed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import migrations
from tests.faults.checks import assert_log_is_json
from tests.faults.fake_process import FakeProcess
from tests.faults.load import RATE, Load, drive
from tests.faults.serve import start_proxy
from tests.faults.stored import id_counts, integrity_check, question_counts, row_problems
from tests.storage.helpers import spill_records
from understudy.settings import CandidateSettings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

KILL_AT_S = 8.0  # into the traffic, well past warm-up
TRAFFIC_S = 9.0  # the requests sent after the kill are refused at once
AFTER_RESTART_S = 3.0
STORE_WAIT_S = 60.0
QUEUE_SIZE = 50
BATCH_SIZE = 25
SHADOW_CAP = CandidateSettings(name="c", base_url="http://c").max_concurrency
# Overflow is encoded and fsynced by a thread that shares the GIL with a saturated
# event loop; what overflows meanwhile waits in memory. Half a second of traffic.
OVERFLOW_WAITING = RATE // 2
LOSS_BOUND = QUEUE_SIZE + BATCH_SIZE + SHADOW_CAP + OVERFLOW_WAITING


async def wait_until_stored(
    db: Path, spill: Path, wanted: set[uuid.UUID], timeout_s: float
) -> set[uuid.UUID]:
    """The wanted ids still missing once all arrived and every spill file was replayed,
    or time ran out."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = wanted - set(await asyncio.to_thread(id_counts, db))
        replayed = not await asyncio.to_thread(spill_records, spill)
        if (not missing and replayed) or time.monotonic() > deadline:
            return missing
        await asyncio.sleep(0.5)


async def test_kill_9_under_load_loses_only_what_memory_held_and_corrupts_nothing(
    tmp_path: Path, figure: Callable[[str], None]
) -> None:
    db, spill = tmp_path / "understudy.db", tmp_path / "spill"
    db_url = f"sqlite+aiosqlite:///{db}"
    await migrations.upgrade(db_url)
    env = {
        "UNDERSTUDY_STORAGE__QUEUE_SIZE": str(QUEUE_SIZE),
        "UNDERSTUDY_STORAGE__BATCH_SIZE": str(BATCH_SIZE),
    }
    before, after = Load(), Load()
    with (
        FakeProcess(persona="openai", first_byte_delay_s=0.02) as primary,
        FakeProcess(persona="candidate", first_byte_delay_s=0.05) as candidate,
    ):
        upstreams = (primary.base_url, candidate.base_url)
        proxy = await asyncio.to_thread(
            start_proxy, tmp_path, db_url, upstreams, env=env, log_level="info"
        )
        try:
            traffic = asyncio.create_task(
                drive(proxy.url, TRAFFIC_S, before), name="traffic-before-kill"
            )
            await asyncio.sleep(KILL_AT_S)
            await asyncio.to_thread(proxy.kill)
            await traffic
        finally:
            if proxy.process.poll() is None:
                await asyncio.to_thread(proxy.kill)
        stored_at_kill = len(await asyncio.to_thread(id_counts, db))
        spilled_at_kill = len(await asyncio.to_thread(spill_records, spill))

        restarted = await asyncio.to_thread(
            start_proxy, tmp_path, db_url, upstreams, env=env, log_level="info"
        )
        try:
            after.sent = before.sent  # new questions: each client request asks its own
            await drive(restarted.url, AFTER_RESTART_S, after)
            missing_after = await wait_until_stored(db, spill, after.answered, STORE_WAIT_S)
            metrics = await asyncio.to_thread(restarted.metrics)
        finally:
            exit_code = await asyncio.to_thread(restarted.terminate)
    assert exit_code == 0, restarted.log.read_text()[-3000:]

    ids = id_counts(db)
    lost = before.answered - set(ids)
    unanswered = sum(1 for o in before.outcomes if o.status == 0)
    figure(
        f"{before.sent} requests before the kill: {len(before.answered)} answered, "
        f"{unanswered} unanswered; at the kill {stored_at_kill} rows stored and "
        f"{spilled_at_kill} exchanges spilled; after restart and replay {len(lost)} answered "
        f"exchanges lost ({len(lost) * 1000 / RATE:.0f} ms of traffic at {RATE} req/s), "
        f"bound {LOSS_BOUND} (queue {QUEUE_SIZE} + batch {BATCH_SIZE} + shadows {SHADOW_CAP} "
        f"+ overflow {OVERFLOW_WAITING})"
    )
    # The kill really hit the traffic, and losing everything would break the bound.
    assert len(before.answered) > LOSS_BOUND
    assert unanswered > 0
    assert len(lost) <= LOSS_BOUND

    # After the restart the file is sound, every row decodes, nothing is there twice.
    assert integrity_check(db) == ["ok"]
    assert row_problems(db) == []
    assert [i for i, n in ids.items() if n > 1] == []
    assert [q for q, n in question_counts(db).items() if n > 1] == []
    assert before.answered.isdisjoint(after.answered)
    # The restarted proxy replayed the spill and serves and stores everything again.
    assert after.failed == 0, after.failed
    assert not missing_after, f"{len(missing_after)} exchanges answered after restart not stored"
    assert spill_records(spill) == []
    assert metrics["understudy_storage_dropped_total"] == 0
    figure(
        f"{len(ids)} rows after restart, integrity ok, ids and questions unique; "
        f"{len(after.answered)} answered after restart, all stored; "
        f"{metrics['understudy_storage_replayed_total']:.0f} replayed from spill"
    )
    figure(f"{assert_log_is_json(restarted)} log lines across both runs, every one JSON")
