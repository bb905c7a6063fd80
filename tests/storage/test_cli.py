"""The storage commands: ``db``, ``exchanges list|show``, end to end on both databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

import migrations
from core import Exchange, RolloutMode, Route
from storage import codec
from storage.database import Database
from storage.inserts import insert_exchanges
from storage.judgments import Judgment, add_judgments
from tests.storage.factories import decision, full_exchange, served_arm, simple_exchange
from understudy.cli import main

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def cli_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", db_url)
    return db_url


def seed(url: str, exchanges: list[Exchange], judgments: Sequence[Judgment] = ()) -> None:
    async def run() -> None:
        await migrations.upgrade(url)
        async with Database(url) as db:
            async with db.engine.begin() as conn:
                await insert_exchanges(conn, exchanges)
            await add_judgments(db, list(judgments))

    asyncio.run(run())


def test_db_commands(cli_db: str, capsys: Capture) -> None:
    head = migrations.head_revision()
    assert main(["db", "current"]) == 0
    assert "at revision none" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert f"at revision {head} (head)" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert f"{head} (head)" in capsys.readouterr().out
    assert main(["db", "downgrade", "base"]) == 0
    assert "at revision none" in capsys.readouterr().out
    assert main(["db", "upgrade", head]) == 0


@pytest.mark.postgres
def test_db_commands_never_print_the_password(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    # The throwaway server trusts every login, so any password is accepted.
    monkeypatch.setenv(
        "UNDERSTUDY_DATABASE_URL", pg_url.replace("postgres@", "postgres:hunter2secret@")
    )
    assert main(["db", "upgrade"]) == 0
    captured = capsys.readouterr()
    assert "hunter2secret" not in captured.out + captured.err
    assert "***" in captured.out


def test_reading_an_unmigrated_database_says_what_to_do(cli_db: str, capsys: Capture) -> None:
    assert main(["exchanges", "list"]) == 1
    err = capsys.readouterr().err
    assert "understudy db upgrade" in err
    assert "Traceback" not in err


def test_list_table_and_filters(cli_db: str, capsys: Capture) -> None:
    now = datetime.now(UTC)
    recent = simple_exchange(created_at=now - timedelta(minutes=5))
    old = simple_exchange(created_at=now - timedelta(days=3), route=Route.COMPLETIONS)
    split = simple_exchange(
        created_at=now - timedelta(minutes=1),
        decision=decision(served="tgi", served_is_candidate=True, mode=RolloutMode.SPLIT),
        served_by="tgi",
        observations=(served_arm(upstream="tgi"),),
    )
    seed(cli_db, [recent, old, split])

    assert main(["exchanges", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["ID", "CREATED", "(UTC)"]
    assert [line.split()[0] for line in lines[1:]] == [str(split.id), str(recent.id), str(old.id)]

    assert main(["exchanges", "list", "--since", "1h"]) == 0
    assert str(old.id) not in capsys.readouterr().out
    assert main(["exchanges", "list", "--route", "completions"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == [str(old.id)]
    assert main(["exchanges", "list", "--served", "candidate"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == [str(split.id)]
    assert main(["exchanges", "list", "--candidate", "nobody"]) == 0
    assert capsys.readouterr().out == "no exchanges match\n"
    assert main(["exchanges", "list", "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_list_and_show_json_is_the_codec_shape(cli_db: str, capsys: Capture) -> None:
    exchange = full_exchange()
    judgment = Judgment(exchange.id, "vllm-llama", "gpt-4o", "pairwise-v1", "candidate")
    seed(cli_db, [exchange, simple_exchange(1)], [judgment])

    assert main(["exchanges", "list", "--format", "json", "--until", "2025-01-15T12:00:01"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [codec.exchange_to_json(exchange)]
    assert codec.exchange_from_json(listed[0]) == exchange

    assert main(["exchanges", "show", str(exchange.id)[:8], "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown.pop("judgments")[0]["outcome"] == "candidate"
    assert shown == codec.exchange_to_json(exchange)


def test_show_table(cli_db: str, capsys: Capture) -> None:
    exchange = full_exchange()
    seed(cli_db, [exchange])
    assert main(["exchanges", "show", str(exchange.id)]) == 0
    out = capsys.readouterr().out
    assert f"exchange    {exchange.id}" in out
    assert "arm 1: served — openai" in out
    assert "arm 2: shadow — vllm-llama" in out
    assert "error timeout" in out
    assert "tool call get_weather" in out
    assert "| Bonjour" in out
    assert "(fallback to the primary)" in out


def test_show_unknown_or_ambiguous(cli_db: str, capsys: Capture) -> None:
    seed(cli_db, [simple_exchange(i) for i in range(40)])
    assert main(["exchanges", "show", "00000000-0000-4000-8000-000000000000"]) == 1
    assert "no exchange" in capsys.readouterr().err
    assert main(["exchanges", "show", "abc"]) == 1  # too short to look up
    capsys.readouterr()


def test_bad_time_is_a_usage_error(cli_db: str, capsys: Capture) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["exchanges", "list", "--since", "yesterday-ish"])
    assert caught.value.code == 2
    assert "not a time" in capsys.readouterr().err
