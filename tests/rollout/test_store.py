"""The flag store: versioned rows, route overrides, refusals, the audit log, on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, text

from core import RolloutMode, Route
from rollout.changes import NewValues, RolloutAction, RolloutRefused
from rollout.state import RolloutRules, RolloutSnapshot
from rollout.store import RolloutStore
from storage.database import Database
from storage.flags import StaleVersion, audit_entries, current_flags, latest_version
from storage.models import AuditRow
from storage.purge import purge_older_than
from tests.rollout.conftest import RULES, SEED
from tests.storage.helpers import count_rows


def percent(p: float) -> NewValues:
    return NewValues(percent=p)


async def test_round_trip_and_versions(store: RolloutStore, database: Database) -> None:
    assert await latest_version(database) == 0
    assert await store.rows() == {None: SEED}  # the settings, nothing written yet

    change = await store.change(RolloutAction.SET, actor="cli", reason="go", values=percent(5))
    assert change.version == 2  # version 1 is the seed row
    assert change.before is not None and change.before.version == 1
    assert change.before.mode == "shadow" and change.before.percent == 0.0
    after = change.after
    assert (after.mode, after.percent, after.candidate, after.noise_rate) == (
        "split",
        5.0,
        "local",
        0.1,
    )
    assert after.changed_at is not None and after.changed_at.tzinfo is not None
    assert abs(after.changed_at - datetime.now(UTC)) < timedelta(seconds=30)

    rows = await current_flags(database)
    assert rows == {None: after}
    assert await latest_version(database) == 2

    paused = await store.change(RolloutAction.PAUSE, actor="cli", reason="look")
    killed = await store.change(RolloutAction.KILL, actor="cli", reason="stop")
    assert (paused.version, killed.version) == (3, 4)
    assert killed.after.killed and killed.after.paused and killed.after.percent == 5.0
    assert await count_rows(database, "rollout_flags") == 4


async def test_concurrent_writers_get_distinct_increasing_versions(
    store: RolloutStore, database: Database
) -> None:
    await store.ensure_seeded()
    changes = await asyncio.gather(
        *(
            store.change(RolloutAction.SET, actor="cli", reason=f"w{i}", values=percent(i))
            for i in range(1, 13)
        )
    )
    versions = sorted(c.version for c in changes)
    assert versions == list(range(2, 14))
    # Every writer read the state it changed: each "before" is the version just below.
    assert sorted(c.before.version for c in changes) == list(range(1, 13))
    entries = await audit_entries(database)
    assert [e.flag_version for e in entries] == list(range(13, 0, -1))
    newest = await current_flags(database)
    assert newest[None].version == 13


async def test_route_override_and_kill_scope(store: RolloutStore, database: Database) -> None:
    await store.change(RolloutAction.SET, actor="cli", reason="r", values=percent(25))
    chat = await store.change(
        RolloutAction.SET, actor="cli", reason="r", route=Route.CHAT, values=percent(50)
    )
    # The route had no row of its own: it started from the default row it inherited.
    assert chat.before.route is None and chat.before.percent == 25
    assert chat.after.route == Route.CHAT.value
    snap = RolloutSnapshot.build(await store.rows(), RULES)
    assert snap.states[Route.CHAT].percent == 50
    assert snap.states[Route.COMPLETIONS].percent == 25
    # The default row's split does not reach embeddings unless allowed.
    assert snap.states[Route.EMBEDDINGS].mode is RolloutMode.SHADOW
    allowed = RolloutRules("default", ("local",), allow_embeddings_split=True)
    assert RolloutSnapshot.build(await store.rows(), allowed).states[Route.EMBEDDINGS].percent == 25

    # A route's own kill stops that route; a kill of the default row stops all of them.
    await store.change(RolloutAction.KILL, actor="cli", reason="r", route=Route.CHAT)
    snap = RolloutSnapshot.build(await store.rows(), RULES)
    assert [r for r in Route if snap.states[r].killed] == [Route.CHAT]
    await store.change(RolloutAction.UNKILL, actor="cli", reason="r", route=Route.CHAT)
    killed = await store.change(RolloutAction.KILL, actor="cli", reason="all")
    snap = RolloutSnapshot.build(await store.rows(), RULES)
    assert all(snap.states[r].killed for r in Route)
    assert snap.states[Route.CHAT].version == killed.version  # the kill is what routes it
    assert snap.version == killed.version


@pytest.mark.parametrize(
    ("route", "values", "field", "says"),
    [
        (None, NewValues(percent=101), "percent", "between 0 and 100"),
        (None, NewValues(percent=float("nan")), "percent", "between 0 and 100"),
        (None, NewValues(shadow_rate=1.5), "shadow_rate", "between 0 and 1"),
        (None, NewValues(candidate="gpt-5"), "candidate", "unknown candidate 'gpt-5'"),
        (None, NewValues(), "set", "at least one"),
        (Route.EMBEDDINGS, NewValues(percent=5), "mode", "different space"),
        (Route.EMBEDDINGS, NewValues(mode=RolloutMode.CUTOVER), "mode", "corrupts retrieval"),
    ],
)
async def test_refused_changes_write_nothing(
    store: RolloutStore,
    database: Database,
    route: Route | None,
    values: NewValues,
    field: str,
    says: str,
) -> None:
    await store.ensure_seeded()
    with pytest.raises(RolloutRefused) as caught:
        await store.change(RolloutAction.SET, actor="cli", reason="x", route=route, values=values)
    assert caught.value.field == field and says in str(caught.value)
    assert await latest_version(database) == 1
    assert await count_rows(database, "rollout_audit") == 1


async def test_embeddings_split_when_allowed(database: Database) -> None:
    store = RolloutStore(
        database, RolloutRules("default", ("local",), allow_embeddings_split=True), SEED
    )
    change = await store.change(
        RolloutAction.SET, actor="cli", reason="x", route=Route.EMBEDDINGS, values=percent(5)
    )
    assert change.after.mode == "split" and change.after.route == "embeddings"


async def test_a_mode_needs_a_candidate(database: Database) -> None:
    off = SEED.__class__(
        route=None, mode="off", candidate=None, percent=0, shadow_rate=1, noise_rate=0
    )
    store = RolloutStore(database, RolloutRules("default", ("local",)), off)
    with pytest.raises(RolloutRefused, match="needs a candidate"):
        await store.change(RolloutAction.SET, actor="cli", reason="x", values=percent(5))
    change = await store.change(
        RolloutAction.SET, actor="cli", reason="x", values=NewValues(percent=5, candidate="local")
    )
    assert (change.after.mode, change.after.candidate) == ("split", "local")
    back = await store.change(RolloutAction.SET, actor="cli", reason="x", values=percent(0))
    assert back.after.mode == "shadow"  # ending a split keeps the data flowing


async def test_stale_expected_version(store: RolloutStore, database: Database) -> None:
    with pytest.raises(StaleVersion, match="at version 0, not 1"):  # empty: the seed is pending
        await store.change(RolloutAction.PAUSE, actor="cli", reason="x", expected_version=1)
    await store.ensure_seeded()
    first = await store.change(RolloutAction.PAUSE, actor="cli", reason="x", expected_version=1)
    with pytest.raises(StaleVersion, match="at version 2, not 1"):
        await store.change(RolloutAction.RESUME, actor="cli", reason="x", expected_version=1)
    assert await latest_version(database) == first.version == 2


async def test_a_stored_candidate_no_longer_configured_serves_nobody(store: RolloutStore) -> None:
    await store.change(
        RolloutAction.SET, actor="cli", reason="x", values=NewValues(candidate="other", percent=50)
    )
    only_local = RolloutRules("default", ("local",))
    snap = RolloutSnapshot.build(await store.rows(), only_local)
    assert snap.states[Route.CHAT].candidate is None
    assert snap.unknown_candidates == {"other"}


async def test_audit_log_has_every_change(store: RolloutStore, database: Database) -> None:
    await store.change(RolloutAction.SET, actor="cli", reason="start", values=percent(5))
    await store.change(RolloutAction.KILL, actor="cli", reason="errors spiking", route=Route.CHAT)
    await store.change(RolloutAction.UNKILL, actor="cli", reason="fixed", route=Route.CHAT)
    entries = await audit_entries(database)
    assert [(e.actor, e.action, e.route, e.reason) for e in entries] == [
        ("cli", "unkill", "chat.completions", "fixed"),
        ("cli", "kill", "chat.completions", "errors spiking"),
        ("cli", "set", None, "start"),
        ("settings", "seed", None, "initial settings"),
    ]
    kill = entries[1]
    # The route had no row of its own: "before" is the default row it followed.
    assert kill.before is not None and kill.before["route"] is None
    assert kill.before["killed"] is False and kill.before["version"] == 2
    assert kill.after is not None and kill.after["killed"] is True and kill.after["percent"] == 5
    assert kill.after["route"] == "chat.completions"
    set_entry = entries[2]
    assert set_entry.before is not None and set_entry.after is not None
    assert (set_entry.before["mode"], set_entry.after["mode"]) == ("shadow", "split")
    assert set_entry.after["version"] == set_entry.flag_version == 2
    assert all(e.at.tzinfo is not None for e in entries)


@pytest.mark.parametrize("table", ["rollout_audit", "rollout_flags"])
async def test_history_is_append_only(store: RolloutStore, database: Database, table: str) -> None:
    await store.change(RolloutAction.KILL, actor="cli", reason="x")
    for statement in (f"UPDATE {table} SET route = 'x'", f"DELETE FROM {table}"):
        with pytest.raises(sa_exc.DBAPIError, match="append-only"):
            async with database.engine.begin() as conn:
                await conn.execute(text(statement))
    assert await count_rows(database, table) == 2


async def test_purge_leaves_the_rollout_history(
    store: RolloutStore, database: Database, tmp_path: Path
) -> None:
    await store.change(RolloutAction.SET, actor="cli", reason="x", values=percent(5))
    long_ago = datetime.now(UTC) - timedelta(days=400)
    async with database.engine.begin() as conn:  # an entry far older than any retention
        await conn.execute(
            insert(AuditRow).values(at=long_ago, actor="cli", action="kill", reason="old")
        )
    result = await purge_older_than(
        database, tmp_path / "spill", datetime.now(UTC) + timedelta(days=1)
    )
    assert result.exchanges == 0
    assert await count_rows(database, "rollout_audit") == 3
    assert await count_rows(database, "rollout_flags") == 2
