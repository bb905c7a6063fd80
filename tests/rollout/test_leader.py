"""Leader election on PostgreSQL: exactly one controller acts; when it dies, another takes over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from rollout.controller import Controller, SoleLeader, StageWindow
from rollout.controller_metrics import ControllerMetrics
from rollout.plan import default_plan
from rollout.reconcile import HasVerdict
from rollout.store import RolloutStore
from storage.database import Database
from storage.leader_lock import AdvisoryLeader
from tests.faults.fake_process import FakeProcess
from tests.faults.serve import Proxy, start_proxy
from tests.pg import PostgresServer
from tests.rollout.conftest import RULES, SEED

pytestmark = pytest.mark.postgres

LEADER = "understudy_rollout_controller_leader"
TAKEOVER_TARGET_S = 5.0  # the interval is 0.5 s: a few looks, plus a process start's jitter


async def test_one_lock_one_leader_and_a_lost_session_loses_the_lead(
    pg_database: Database,
) -> None:
    first, second = AdvisoryLeader(pg_database), AdvisoryLeader(pg_database)
    try:
        assert await first.hold() is True
        assert await second.hold() is False
        assert await first.hold() is True and await second.hold() is False  # it stays
        # The leader's session is cut on the server: the lock goes with it.
        async with pg_database.engine.begin() as conn:
            cut = await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'understudy-controller' "
                    "AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"
                )
            )
            assert cut.scalars().all() == [True]
        # Freed by the server: the other takes it (at once, or once the backend has exited).
        deadline = time.monotonic() + 5
        while not await second.hold():
            assert time.monotonic() < deadline, "the lock was not freed"
            await asyncio.sleep(0.05)
        assert await first.hold() is False  # it notices at its next look and cannot retake it
        assert await first.hold() is False
        await second.release()
        assert await first.hold() is True
    finally:
        await first.release()
        await second.release()


async def test_only_the_leader_reconciles(pg_database: Database) -> None:
    looked: list[str] = []
    store = RolloutStore(pg_database, RULES, SEED)
    await store.ensure_seeded()

    def controller(name: str, lead: AdvisoryLeader | SoleLeader) -> Controller:
        async def assess(window: StageWindow) -> HasVerdict | None:
            looked.append(name)
            return None

        metrics = ControllerMetrics(CollectorRegistry())
        return Controller(pg_database, store, default_plan(), assess, lead, metrics)

    leads = [AdvisoryLeader(pg_database), AdvisoryLeader(pg_database)]
    a, b = controller("a", leads[0]), controller("b", leads[1])
    try:
        for _ in range(3):
            await asyncio.gather(a.tick(), b.tick())
        assert len(set(looked)) == 1 and len(looked) == 3
    finally:
        for lead in leads:
            await lead.release()


def _leads(proxy: Proxy) -> bool:
    return proxy.metrics().get(LEADER) == 1.0


@pytest.mark.slow
async def test_two_servers_one_leader_and_a_killed_leader_is_replaced_within_seconds(
    pg_server: PostgresServer,
    pg_url: str,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    import migrations

    await migrations.upgrade(pg_url)
    env = {"UNDERSTUDY_ROLLOUT__CONTROLLER__INTERVAL_S": "0.5"}
    with (
        FakeProcess(persona="openai") as primary,
        FakeProcess(persona="candidate") as candidate,
    ):
        proxies: list[Proxy] = []
        try:
            for name in ("a", "b"):
                (tmp_path / name).mkdir()
                proxies.append(
                    await asyncio.to_thread(
                        start_proxy,
                        tmp_path / name,
                        pg_url,
                        (primary.base_url, candidate.base_url),
                        env=env,
                    )
                )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                leading = [await asyncio.to_thread(_leads, p) for p in proxies]
                if any(leading):
                    break
                await asyncio.sleep(0.1)
            assert leading.count(True) == 1, leading
            await asyncio.sleep(1.5)  # three looks later, still exactly one
            leading = [await asyncio.to_thread(_leads, p) for p in proxies]
            assert leading.count(True) == 1, leading
            leader, other = (proxies[0], proxies[1]) if leading[0] else (proxies[1], proxies[0])

            killed_at = time.monotonic()
            await asyncio.to_thread(leader.kill)
            while not await asyncio.to_thread(_leads, other):
                assert time.monotonic() - killed_at < 30, "nobody took over in 30 s"
                await asyncio.sleep(0.05)
            takeover_s = time.monotonic() - killed_at
            figure(f"controller takeover after kill -9: {takeover_s:.2f} s")
            assert takeover_s < TAKEOVER_TARGET_S
        finally:
            for p in proxies:
                if p.process.poll() is None:
                    p.terminate()
