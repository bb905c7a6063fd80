"""A replica's view of the rollout: follows the store within a second, keeps its last state
when the database is down and says how stale it is; the kill file needs no database."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import migrations
from core import RolloutMode, Route
from proxy.tasks import BackgroundTasks
from rollout.changes import NewValues, RolloutAction
from rollout.live import DatabaseFollower, LiveFlags, watch_kill_file
from rollout.metrics import RolloutMetrics
from rollout.state import RolloutSnapshot
from rollout.store import RolloutStore
from storage.database import Database
from tests.pg import PostgresServer
from tests.rollout.conftest import RULES, SEED
from understudy.logs import configure_logging
from understudy.settings import LogFormat

CHANGE_DEADLINE_S = 1.0


@dataclass
class Replica:
    """What one serving process holds: its flags, metrics and the loops feeding them."""

    flags: LiveFlags
    follower: DatabaseFollower
    registry: CollectorRegistry
    tasks: BackgroundTasks
    db: Database

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        assert value is not None, name
        return value


async def start_replica(url: str, poll_s: float, kill_file: Path | None = None) -> Replica:
    db = Database(url)
    registry = CollectorRegistry()
    flags = LiveFlags(RolloutSnapshot.build({None: SEED}, RULES), RolloutMetrics(registry))
    follower = DatabaseFollower(db, RolloutStore(db, RULES, SEED), RULES, flags, poll_s=poll_s)
    await follower.load()
    tasks = BackgroundTasks()
    tasks.spawn(follower.run(), name="rollout-flags")
    if kill_file is not None:
        tasks.spawn(watch_kill_file(kill_file, flags, 0.25), name="rollout-kill-file")
    return Replica(flags, follower, registry, tasks, db)


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        await replica.tasks.drain(0)
        await replica.db.dispose()


async def seconds_until(
    check: Callable[[], bool], limit_s: float = 10.0, since: float | None = None
) -> float:
    """Seconds from ``since`` (default: now) until ``check()`` holds."""
    start = time.monotonic() if since is None else since
    while not check():
        if time.monotonic() - start > limit_s:
            raise AssertionError(f"not seen within {limit_s} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def change_percent(url: str, value: float) -> int:
    """A change from elsewhere (the CLI, another replica), through its own connection."""
    async with Database(url) as db:
        change = await RolloutStore(db, RULES, SEED).change(
            RolloutAction.SET, actor="cli", reason="test", values=NewValues(percent=value)
        )
    return change.version


async def test_sqlite_replicas_follow_by_polling(
    tmp_path: Path, replicas: list[Replica], figure: Callable[[str], None]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    await migrations.upgrade(url)
    replicas += [await start_replica(url, poll_s=0.25) for _ in range(2)]
    logs = io.StringIO()
    configure_logging("info", LogFormat.JSON, stream=logs, cache=False)
    waits = []
    for value in (5.0, 25.0, 0.0):
        before = time.monotonic()  # the commit's own time counts too
        version = await change_percent(url, value)
        for r in replicas:
            waits.append(
                await seconds_until(
                    lambda r=r, v=version: r.flags.current(Route.CHAT).version == v, since=before
                )
            )
            state = r.flags.current(Route.CHAT)
            assert state.percent == value
            assert state.mode is (RolloutMode.SPLIT if value else RolloutMode.SHADOW)
            assert r.metric("understudy_rollout_flag_version") == version
            assert r.metric("understudy_rollout_percent", route="chat.completions") == value
    figure(f"SQLite polling every 0.25 s: changes seen after {max(waits):.3f} s at most")
    assert max(waits) < CHANGE_DEADLINE_S
    changed = [json.loads(line) for line in logs.getvalue().splitlines()]
    changed = [e for e in changed if e["event"] == "rollout_changed"]
    # One line per change per replica, naming the version and what each route does now.
    assert sorted(e["flag_version"] for e in changed) == [2, 2, 3, 3, 4, 4]
    assert {e["routes"]["chat.completions"] for e in changed if e["flag_version"] == 3} == {
        "split 25% local"
    }


@pytest.mark.postgres
async def test_postgres_notify_beats_the_poll(
    pg_url: str, replicas: list[Replica], figure: Callable[[str], None]
) -> None:
    await migrations.upgrade(pg_url)
    # Polling only every 5 s: seeing changes within a second takes LISTEN/NOTIFY.
    replicas += [await start_replica(pg_url, poll_s=5.0) for _ in range(2)]
    await seconds_until(lambda: all(r.follower.listening for r in replicas))
    waits = []
    for value in (5.0, 50.0):
        before = time.monotonic()
        version = await change_percent(pg_url, value)
        for r in replicas:
            waits.append(
                await seconds_until(
                    lambda r=r, v=version: r.flags.current(Route.CHAT).version == v, since=before
                )
            )
    figure(f"PostgreSQL LISTEN/NOTIFY: changes seen after {max(waits):.3f} s at most")
    assert max(waits) < CHANGE_DEADLINE_S


@pytest.mark.postgres
async def test_database_down_keeps_state_grows_staleness_and_kill_file_still_works(
    pg_server: PostgresServer,
    pg_url: str,
    tmp_path: Path,
    replicas: list[Replica],
    figure: Callable[[str], None],
) -> None:
    await migrations.upgrade(pg_url)
    kill_file = tmp_path / "kill"
    replica = await start_replica(pg_url, poll_s=0.25, kill_file=kill_file)
    replicas.append(replica)
    version = await change_percent(pg_url, 40.0)
    await seconds_until(lambda: replica.flags.current(Route.CHAT).version == version)
    staleness = "understudy_rollout_flag_staleness_seconds"
    assert replica.metric(staleness) < 1.0

    pg_server.stop("immediate")
    try:
        await asyncio.sleep(2.5)
        first = replica.metric(staleness)
        await asyncio.sleep(1.0)
        second = replica.metric(staleness)
        # The last state read stays in force: no flapping to a default.
        state = replica.flags.current(Route.CHAT)
        assert (state.mode, state.percent, state.version) == (RolloutMode.SPLIT, 40.0, version)
        assert first >= 2.0 and second >= first + 0.9, (first, second)

        kill_file.touch()
        killed_after = await seconds_until(lambda: replica.flags.current(Route.CHAT).killed)
        assert all(replica.flags.current(r).killed for r in Route)
        assert replica.metric("understudy_rollout_percent", route="chat.completions") == 0
        assert replica.metric("understudy_rollout_killed", route="embeddings") == 1
        kill_file.unlink()
        unkilled_after = await seconds_until(lambda: not replica.flags.current(Route.CHAT).killed)
    finally:
        pg_server.start()
    figure(
        f"database down: staleness {first:.2f} s then {second:.2f} s; kill file obeyed after "
        f"{killed_after:.3f} s, its removal after {unkilled_after:.3f} s"
    )
    assert killed_after < CHANGE_DEADLINE_S and unkilled_after < CHANGE_DEADLINE_S

    # Back up: fresh again, and changes flow.
    await seconds_until(lambda: replica.metric(staleness) < 1.0, limit_s=15)
    version = await change_percent(pg_url, 10.0)
    await seconds_until(lambda: replica.flags.current(Route.CHAT).version == version, limit_s=3)
    assert replica.flags.current(Route.CHAT).percent == 10.0


async def test_kill_file_without_a_database(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    flags = LiveFlags(RolloutSnapshot.build({None: SEED}, RULES), RolloutMetrics(registry))
    kill_file = tmp_path / "kill"
    tasks = BackgroundTasks()
    tasks.spawn(watch_kill_file(kill_file, flags, 0.25), name="rollout-kill-file")
    try:
        assert not flags.current(Route.CHAT).killed
        kill_file.write_text("")
        assert await seconds_until(lambda: flags.current(Route.CHAT).killed) < CHANGE_DEADLINE_S
        assert registry.get_sample_value("understudy_rollout_kill_file_present") == 1
        kill_file.unlink()
        assert await seconds_until(lambda: not flags.current(Route.CHAT).killed) < CHANGE_DEADLINE_S
    finally:
        await tasks.drain(0)
