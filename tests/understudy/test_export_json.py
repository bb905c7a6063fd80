"""CLI JSON output is standard JSON: non-finite floats in the database come out as null."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, NoReturn

import pytest

import migrations
from core import Exchange
from storage.database import Database
from storage.inserts import insert_exchanges
from tests.storage.conftest import db_url, pg_server, pg_url  # noqa: F401  (fixtures)
from tests.storage.factories import full_exchange, served_arm, shadow_arm
from understudy.cli import main
from understudy.commands.common import finite, strict_json

Capture = pytest.CaptureFixture[str]


def reject_constant(name: str) -> NoReturn:
    raise ValueError(f"non-standard JSON constant {name}")


def strict_loads(text: str) -> Any:
    return json.loads(text, parse_constant=reject_constant)


def seed(url: str, exchanges: list[Exchange]) -> None:
    async def run() -> None:
        await migrations.upgrade(url)
        async with Database(url) as db, db.engine.begin() as conn:
            await insert_exchanges(conn, exchanges)

    asyncio.run(run())


def non_finite_exchange() -> Exchange:
    return full_exchange(
        observations=(
            served_arm(latency_ms=math.inf, ttft_ms=-math.inf),
            shadow_arm(latency_ms=math.nan, ttft_ms=math.inf),
        ),
    )


def test_list_and_show_print_null_for_non_finite_floats(
    db_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capture,
) -> None:
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", db_url)
    exchange = non_finite_exchange()
    seed(db_url, [exchange])

    assert main(["exchanges", "list", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out and "Infinity" not in out
    [listed] = strict_loads(out)
    arms = {o["role"]: o for o in listed["observations"]}
    assert arms["served"]["latency_ms"] is None and arms["served"]["ttft_ms"] is None
    assert arms["shadow"]["latency_ms"] is None and arms["shadow"]["ttft_ms"] is None

    assert main(["exchanges", "show", str(exchange.id), "--format", "json"]) == 0
    shown = strict_loads(capsys.readouterr().out)
    assert shown["id"] == str(exchange.id)
    assert all(o["latency_ms"] is None for o in shown["observations"])


def test_strict_json_nulls_nested_non_finite_floats_and_keeps_the_rest() -> None:
    data = {"a": [1.5, math.nan, {"b": -math.inf}], "c": (math.inf, 2), "d": "NaN", "e": True}
    text = strict_json(data)
    expected = {"a": [1.5, None, {"b": None}], "c": [None, 2], "d": "NaN", "e": True}
    assert strict_loads(text) == expected
    assert finite(1e308) == 1e308 and finite(-0.0) == 0.0
