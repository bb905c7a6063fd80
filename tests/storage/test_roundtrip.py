"""Every field of an exchange survives the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import inspect

from core import Role, RolloutMode, Route
from storage import codec
from storage.database import Database
from storage.inserts import insert_exchanges
from storage.judgments import Judgment, add_judgments, list_judgments
from storage.repository import (
    count_exchanges,
    find_by_prefix,
    get_exchange,
    get_exchanges,
    iter_exchanges,
    list_exchanges,
)
from storage.window import ExchangeWindow
from tests.storage.factories import (
    T0,
    decision,
    full_exchange,
    minimal_exchange,
    served_arm,
    shadow_arm,
    simple_exchange,
)
from tests.storage.helpers import count_rows


async def store(db: Database, *exchanges: object) -> None:
    async with db.engine.begin() as conn:
        await insert_exchanges(conn, list(exchanges))  # type: ignore[arg-type]


async def test_every_field_round_trips(database: Database) -> None:
    full, minimal = full_exchange(), minimal_exchange()
    await store(database, full, minimal)

    assert await get_exchange(database, full.id) == full
    assert await get_exchange(database, minimal.id) == minimal
    got = await get_exchange(database, full.id)
    assert got is not None
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)
    assert [o.role for o in got.observations] == [Role.SERVED, Role.SHADOW, Role.NOISE]


async def test_other_timezones_are_stored_as_the_same_instant(database: Database) -> None:
    paris = timezone(timedelta(hours=1))
    exchange = full_exchange(created_at=datetime(2025, 1, 15, 13, 0, tzinfo=paris))
    await store(database, exchange)
    got = await get_exchange(database, exchange.id)
    assert got is not None
    assert got.created_at == datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
    assert got.created_at.tzinfo == UTC


async def test_same_id_twice_is_stored_once_first_copy_wins(database: Database) -> None:
    first = simple_exchange()
    second = dataclasses.replace(first, observations=(*first.observations, served_arm()))
    await store(database, first, second)
    await store(database, second)
    assert await count_rows(database, "exchanges") == 1
    assert await count_rows(database, "observations") == 2
    assert await get_exchange(database, first.id) == first


async def test_unknown_id_reads_as_none(database: Database) -> None:
    assert await get_exchange(database, uuid.uuid4()) is None
    assert await get_exchanges(database, []) == []


async def test_filters(database: Database) -> None:
    shadowed = [simple_exchange(i) for i in range(5)]
    split = simple_exchange(
        10,
        decision=decision(
            served="vllm-llama", served_is_candidate=True, shadow=None, mode=RolloutMode.SPLIT
        ),
        served_by="vllm-llama",
        observations=(served_arm(upstream="vllm-llama"),),
    )
    fallback = simple_exchange(
        11,
        decision=decision(
            served="vllm-llama", served_is_candidate=True, shadow=None, mode=RolloutMode.SPLIT
        ),
        served_by="openai",
        fallback=True,
    )
    other = simple_exchange(12, route=Route.COMPLETIONS, decision=decision(shadow="tgi"))
    await store(database, *shadowed, split, fallback, other)

    async def ids(
        *, served: str | None = None, role: Role | None = None, limit: int = 100, **kw: Any
    ) -> list[uuid.UUID]:
        window = ExchangeWindow(**kw)
        found = await list_exchanges(database, window, served=served, role=role, limit=limit)
        return [e.id for e in found]

    everything = await ids()
    assert everything == [other.id, fallback.id, split.id, *[e.id for e in reversed(shadowed)]]
    assert await ids(limit=2) == [other.id, fallback.id]
    assert await ids(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3)) == [
        shadowed[2].id,
        shadowed[1].id,
    ]
    assert await ids(route=Route.COMPLETIONS) == [other.id]
    assert await ids(candidate="tgi") == [other.id]
    assert len(await ids(candidate="vllm-llama")) == 7
    assert await ids(served="candidate") == [split.id]
    assert set(await ids(served="primary")) == set(everything) - {split.id}
    assert await ids(served="vllm-llama") == [split.id]
    assert await ids(role=Role.SHADOW, route=Route.CHAT) == [
        fallback.id,
        *[e.id for e in reversed(shadowed)],
    ]
    assert await count_exchanges(database, ExchangeWindow(candidate="vllm-llama")) == 7
    # Every factory exchange was routed under flag version 7.
    assert await ids(first_flag_version=7, last_flag_version=7) == everything
    assert await ids(first_flag_version=8) == [] and await ids(last_flag_version=6) == []


async def test_iter_exchanges_pages_through_everything_oldest_first(database: Database) -> None:
    # Same timestamp for several rows: the id breaks ties so pages neither skip nor repeat.
    batch = [simple_exchange(i // 3) for i in range(23)]
    await store(database, *batch)
    seen = [e.id async for e in iter_exchanges(database, chunk_size=4)]
    assert sorted(seen) == sorted(e.id for e in batch)
    assert len(seen) == len(set(seen))
    times = [e.created_at async for e in iter_exchanges(database, chunk_size=5)]
    assert times == sorted(times)


async def test_find_by_prefix(database: Database) -> None:
    exchange = simple_exchange()
    await store(database, exchange)
    text = str(exchange.id)
    assert await find_by_prefix(database, text[:8]) == [exchange.id]
    assert await find_by_prefix(database, text) == [exchange.id]
    assert await find_by_prefix(database, text.replace("-", "")[:13]) == [exchange.id]
    assert await find_by_prefix(database, "zz") == []


async def test_judgments_round_trip_and_cascade(database: Database) -> None:
    exchange = simple_exchange()
    await store(database, exchange)
    judged = [
        Judgment(
            exchange_id=exchange.id,
            candidate="vllm-llama",
            judge_model="gpt-4o",
            prompt_version="pairwise-v2",
            outcome=outcome,  # type: ignore[arg-type]
            detail={"reason": "shorter", "swapped": i % 2 == 0, "scores": [1, 0.5]},
            created_at=T0 + timedelta(minutes=i),
        )
        for i, outcome in enumerate(("candidate", "primary", "tie"))
    ]
    await add_judgments(database, judged)
    await add_judgments(database, judged[:1])  # idempotent on id
    assert await list_judgments(database, exchange_id=exchange.id) == judged
    assert await list_judgments(database, candidate="other") == []
    assert await list_judgments(database, since=T0 + timedelta(minutes=1)) == judged[1:]

    async with database.engine.begin() as conn:
        from sqlalchemy import delete

        from storage.models import ExchangeRow

        await conn.execute(delete(ExchangeRow).where(ExchangeRow.id == exchange.id))
    assert await count_rows(database, "judgments") == 0
    assert await count_rows(database, "observations") == 0


def test_judgment_outcome_is_checked() -> None:
    with pytest.raises(ValueError, match="outcome"):
        Judgment(uuid.uuid4(), "c", "j", "v1", "maybe")  # type: ignore[arg-type]


async def test_indexes_exist_for_report_filters(database: Database) -> None:
    async with database.engine.connect() as conn:
        indexes = await conn.run_sync(
            lambda sync: {
                t: {tuple(i["column_names"]) for i in inspect(sync).get_indexes(t)}
                for t in ("exchanges", "observations", "judgments")
            }
        )
    assert {("created_at",), ("route",), ("candidate",), ("flag_version",)} <= indexes["exchanges"]
    assert ("role",) in indexes["observations"]
    assert ("candidate", "created_at") in indexes["judgments"]


def test_codec_round_trips_and_tolerates_unknown_keys() -> None:
    for exchange in (full_exchange(), minimal_exchange()):
        assert codec.loads(codec.dumps(exchange)) == exchange
    data = codec.exchange_to_json(full_exchange())
    data["added_later"] = {"x": 1}
    data["observations"][0]["added_later"] = 2
    del data["observations"][1]["usage"]
    assert codec.exchange_from_json(data).observations[1] == shadow_arm()


def test_codec_lines_are_ascii_even_with_lone_surrogates() -> None:
    exchange = full_exchange(observations=(served_arm(text="bad \ud800 half"),))
    line = codec.dumps(exchange)
    assert line.isascii()
    assert codec.loads(line).observations[0].text == "bad \ud800 half"


def test_the_hand_off_bytes_round_trip_whatever_the_text() -> None:
    for text in ("plain", "naïve – 日本語 🙂", "bad \ud800 half", "\x00 nul"):
        exchange = full_exchange(observations=(served_arm(text=text),))
        data = codec.dump_bytes(exchange)
        assert json.loads(data) == json.loads(codec.dumps(exchange))  # the same document
        assert codec.loads(data) == exchange
        assert codec.loads(codec.dumps(exchange)) == exchange
