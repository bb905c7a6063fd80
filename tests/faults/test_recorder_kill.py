"""``kill -9`` of the recorder process under 200 req/s: nothing answered is lost, nothing doubled.

The proxy keeps every exchange it handed over until the recorder says it is settled
(committed or spilled). When the recorder dies, the proxy spills what it had not seen
settled and what arrives until a new recorder is up; the new one replays the spill.
An exchange the dead recorder committed but never confirmed comes back from the spill
and is skipped by its id.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import migrations
from tests.faults.checks import assert_log_is_json
from tests.faults.fake_process import FakeProcess
from tests.faults.load import Load, drive
from tests.faults.serve import start_proxy
from tests.faults.stored import id_counts, integrity_check, question_counts, row_problems
from tests.faults.test_kill_restart import wait_until_stored

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

KILL_AT_S = 4.0
TRAFFIC_S = 10.0
STORE_WAIT_S = 60.0


async def test_a_killed_recorder_loses_nothing_the_proxy_answered(
    tmp_path: Path, figure: Callable[[str], None]
) -> None:
    db, spill = tmp_path / "understudy.db", tmp_path / "spill"
    db_url = f"sqlite+aiosqlite:///{db}"
    await migrations.upgrade(db_url)
    load = Load()
    with (
        FakeProcess(persona="openai", first_byte_delay_s=0.02) as primary,
        FakeProcess(persona="candidate", first_byte_delay_s=0.05) as candidate,
    ):
        proxy = await asyncio.to_thread(
            start_proxy, tmp_path, db_url, (primary.base_url, candidate.base_url)
        )
        try:
            first_recorder = await asyncio.to_thread(proxy.recorder_pid)
            traffic = asyncio.create_task(drive(proxy.url, TRAFFIC_S, load), name="traffic")
            await asyncio.sleep(KILL_AT_S)
            os.kill(first_recorder, signal.SIGKILL)
            killed_at = time.monotonic()
            while True:  # the proxy starts a new recorder
                await asyncio.sleep(0.05)
                try:
                    second_recorder = await asyncio.to_thread(proxy.recorder_pid)
                except (AssertionError, OSError):
                    continue
                if second_recorder != first_recorder:
                    break
            replaced_after_s = time.monotonic() - killed_at
            await traffic
            missing = await wait_until_stored(db, spill, load.answered, STORE_WAIT_S)
            metrics = await asyncio.to_thread(proxy.metrics)
        finally:
            exit_code = await asyncio.to_thread(proxy.terminate)
    assert exit_code == 0, proxy.log.read_text()[-3000:]

    ids = id_counts(db)
    figure(
        f"recorder killed {KILL_AT_S:g} s into {TRAFFIC_S:g} s of 200 req/s; a new one "
        f"took connections {replaced_after_s:.2f} s later; {load.sent} sent, "
        f"{len(load.answered)} answered, {len(missing)} of them not stored; the proxy spilled "
        f"{metrics['understudy_recorder_handoff_spilled_total']:.0f} itself and the new recorder "
        f"replayed {metrics['understudy_storage_replayed_total']:.0f}"
    )
    assert load.failed == 0  # the users noticed nothing
    assert not missing, f"{len(missing)} answered exchanges never stored"
    assert [i for i, n in ids.items() if n > 1] == []
    assert [q for q, n in question_counts(db).items() if n > 1] == []
    assert integrity_check(db) == ["ok"]
    assert row_problems(db) == []
    # The spill path really carried exchanges while no recorder was there.
    assert metrics["understudy_recorder_handoff_spilled_total"] > 0
    assert metrics["understudy_recorder_restarts_total"] == 1
    assert metrics["understudy_recorder_handoff_dropped_total"] == 0
    assert metrics["understudy_storage_dropped_total"] == 0
    assert_log_is_json(proxy)
