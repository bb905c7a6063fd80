"""The admin kill with PostgreSQL down: in force on the replica at once, stored on recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

import migrations
from storage.database import Database
from storage.flags import audit_entries
from tests.admin.conftest import RigFactory
from tests.faults.conftest import figure
from tests.pg import PostgresServer

__all__ = ["figure"]


async def stored_kills(url: str) -> list[tuple[str, str, str | None]]:
    async with Database(url) as db:
        entries = await audit_entries(db)
    return [(e.actor, e.action, e.reason) for e in entries if e.action == "kill"]


@pytest.mark.slow
async def test_admin_kill_works_with_the_database_down(
    make_admin_rig: RigFactory,
    pg_server: PostgresServer,
    pg_url: str,
    figure: Callable[[str], None],
) -> None:
    await migrations.upgrade(pg_url)
    rig = await make_admin_rig(
        database_url=pg_url, rollout={"mode": "cutover", "poll_interval_s": 0.25}
    )
    assert await rig.served_by() == "local"
    pg_server.stop("immediate")
    try:
        start = time.monotonic()
        status, answer = await rig.call("POST", "/rollout/kill", json={"reason": "db down"})
        answered_s = time.monotonic() - start
        assert status == 202, answer
        assert answer["stored"] is False and answer["version"] is None
        assert await rig.served_by() == "openai"
        kill_s = time.monotonic() - start
        figure(
            f"admin kill with PostgreSQL down: answered in {answered_s:.3f} s, "
            f"primary only after {kill_s:.3f} s"
        )
        assert kill_s < 1.0
        for _ in range(10):  # and the replica keeps serving, from the primary alone
            assert await rig.served_by() == "openai"
        status, state = await rig.call("GET", "/rollout")
        assert status == 200
        assert state["killed_here"] == [
            "chat.completions",
            "completions",
            "embeddings",
            "responses",
        ]
        assert all(r["killed"] for r in state["routes"].values())
        status, answer = await rig.call("POST", "/rollout/unkill", json={"reason": "too soon"})
        assert status == 503 and answer["error"]["code"] == "flag_store_unavailable"
        assert await rig.served_by() == "openai"  # ending a kill must be stored first
    finally:
        pg_server.start()

    deadline = time.monotonic() + 20
    while not await _stored(pg_url):
        assert time.monotonic() < deadline, "the held kill was never stored"
        await asyncio.sleep(0.25)
    figure(f"held kill stored {time.monotonic() - start:.1f} s after it was made")
    assert await stored_kills(pg_url) == [("alice", "kill", "db down")]
    deadline = time.monotonic() + 10
    while True:  # the store takes over from the hold once the replica reads it back
        status, state = await rig.call("GET", "/rollout")
        if state["killed_here"] == []:
            break
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)
    assert all(r["killed"] for r in state["routes"].values())
    assert await rig.served_by() == "openai"
    status, _ = await rig.call("POST", "/rollout/unkill", json={"reason": "db back"})
    assert status == 200
    unkilled = time.monotonic()
    while await rig.served_by() != "local":  # an unkill is followed from the store
        assert time.monotonic() - unkilled < 1.0, "the unkill was not followed within 1 s"
        await asyncio.sleep(0.02)


async def _stored(url: str) -> bool:
    try:
        return bool(await stored_kills(url))
    except OSError:
        return False
