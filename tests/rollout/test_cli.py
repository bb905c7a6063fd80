"""``understudy rollout``: against the database with no server, on both databases."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

import migrations
from storage.database import Database
from storage.flags import audit_entries, latest_version
from storage.models import AuditRow
from understudy.cli import main

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings for the CLI: two candidates, shadow mode; returns the kill file's path."""
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", db_url)
    monkeypatch.setenv(
        "UNDERSTUDY_CANDIDATES",
        json.dumps(
            [
                {"name": "local", "base_url": "http://127.0.0.1:9/v1"},
                {"name": "other", "base_url": "http://127.0.0.1:9/v1"},
            ]
        ),
    )
    monkeypatch.setenv("UNDERSTUDY_ROLLOUT__MODE", "shadow")
    monkeypatch.setenv("UNDERSTUDY_ROLLOUT__CANDIDATE", "local")
    kill_file = tmp_path / "kill"
    monkeypatch.setenv("UNDERSTUDY_KILL_FILE", str(kill_file))
    monkeypatch.chdir(tmp_path)
    return kill_file


def upgrade(url: str) -> None:
    asyncio.run(migrations.upgrade(url))


def status(capsys: Capture) -> dict[str, object]:
    assert main(["rollout", "status", "--json"]) == 0
    parsed: dict[str, object] = json.loads(capsys.readouterr().out)
    return parsed


def test_changes_print_the_new_state_and_version(
    cli_env: Path, db_url: str, capsys: Capture
) -> None:
    upgrade(db_url)
    assert main(["rollout", "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rollout version 0: nothing stored yet")
    assert "chat.completions  shadow to local" in out

    assert main(["rollout", "set", "--percent", "5", "--reason", "first users"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("set (default row): rollout now at version 2\n")
    assert "chat.completions  split to local, 5% of users served by it" in out
    assert "embeddings        shadow to local, 0% of users served by it" in out

    assert main(["rollout", "set", "--route", "chat", "--percent", "25", "--reason", "r"]) == 0
    assert "rollout now at version 3" in capsys.readouterr().out
    assert main(["rollout", "pause", "--reason", "weekend"]) == 0
    assert main(["rollout", "kill", "--route", "completions", "--reason", "errors"]) == 0
    capsys.readouterr()
    state = status(capsys)
    routes = state["routes"]
    assert isinstance(routes, dict)
    assert state["version"] == 5
    assert routes["chat.completions"]["percent"] == 25 and routes["chat.completions"]["own_row"]
    assert routes["completions"]["killed"] and not routes["chat.completions"]["killed"]
    assert routes["completions"]["paused"]  # copied from the default row when it got its own
    assert not routes["chat.completions"]["paused"]  # its own row was written before the pause
    assert routes["embeddings"]["mode"] == "shadow"
    assert state["kill_file"] == {"path": str(cli_env), "present": False}

    cli_env.touch()
    assert main(["rollout", "status"]) == 0
    assert f"kill file {cli_env} exists" in capsys.readouterr().out

    assert main(["rollout", "unkill", "--route", "completions", "--reason", "fixed"]) == 0
    assert main(["rollout", "resume", "--reason", "monday"]) == 0
    assert (
        main(["rollout", "set", "--mode", "cutover", "--candidate", "other", "--reason", "r"]) == 0
    )
    capsys.readouterr()
    routes = status(capsys)["routes"]
    assert isinstance(routes, dict)
    assert (routes["completions"]["mode"], routes["completions"]["candidate"]) == ("split", "local")
    assert routes["completions"]["served_percent"] == 5 and not routes["completions"]["killed"]


def test_history_lists_every_change_with_its_reason(
    cli_env: Path, db_url: str, capsys: Capture
) -> None:
    upgrade(db_url)
    commands = [
        ["set", "--percent", "5", "--reason", "first users"],
        ["kill", "--reason", "latency doubled"],
        ["unkill", "--reason", "candidate restarted"],
        ["set", "--shadow-rate", "0.5", "--noise-rate", "0.1", "--reason", "cheaper"],
    ]
    for command in commands:
        assert main(["rollout", *command]) == 0
    capsys.readouterr()
    assert main(["rollout", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert "v5  cli" in lines[0] and "shadow_rate 1.0 -> 0.5, noise_rate 0.0 -> 0.1" in lines[0]
    assert "unkill" in lines[1] and "killed True -> False; reason: candidate restarted" in lines[1]
    assert "kill" in lines[2] and "reason: latency doubled" in lines[2]
    assert "mode shadow -> split, percent 0.0 -> 5.0; reason: first users" in lines[3]
    assert "v1  settings   seed" in lines[4]

    assert main(["rollout", "history", "--json", "--limit", "2"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["action"], e["actor"], e["flag_version"]) for e in entries] == [
        ("set", "cli", 5),
        ("unkill", "cli", 4),
    ]
    assert entries[1]["before"]["killed"] is True and entries[1]["after"]["killed"] is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set", "--percent", "150"], "percent: must be between 0 and 100, got 150"),
        (["set", "--percent", "-1"], "percent: must be between 0 and 100, got -1"),
        (["set", "--candidate", "gpt-5"], "unknown candidate 'gpt-5': configured candidates are"),
        (["set", "--shadow-rate", "2"], "shadow_rate: must be between 0 and 1, got 2"),
        (["set"], "give at least one of"),
        (["set", "--route", "embeddings", "--percent", "5"], "mixing them in one index corrupts"),
    ],
)
def test_refusals_are_one_line_and_exit_1(
    cli_env: Path, db_url: str, capsys: Capture, argv: list[str], message: str
) -> None:
    upgrade(db_url)
    assert main(["rollout", *argv, "--reason", "x"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "\n" not in err and err.startswith("understudy: cannot change the rollout: ")
    assert message in err

    async def written() -> tuple[int, int]:
        async with Database(db_url) as db:
            return await latest_version(db), len(await audit_entries(db))

    assert asyncio.run(written()) == (0, 0)  # not even the seed row


def test_bad_arguments_exit_2(cli_env: Path, db_url: str, capsys: Capture) -> None:
    upgrade(db_url)
    for argv in (["kill"], ["set", "--percent", "nan", "--reason", "x"], ["set", "--percent", "x"]):
        with pytest.raises(SystemExit) as caught:
            main(["rollout", *argv])
        assert caught.value.code == 2
    assert "--reason" in capsys.readouterr().err


def test_no_database(
    cli_env: Path, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.db"
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", f"sqlite+aiosqlite:///{missing}")
    assert main(["rollout", "kill", "--reason", "x"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"understudy: no database at {missing}: start the proxy, or run `understudy db upgrade`\n"
    )
    assert not missing.exists()

    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:9/none")
    assert main(["rollout", "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("understudy: ") and err.count("\n") == 1
    assert "nobody" not in err or "password" not in err


def test_schema_behind(cli_env: Path, db_url: str, capsys: Capture) -> None:
    asyncio.run(migrations.upgrade(db_url, "0001"))
    assert main(["rollout", "status"]) == 1
    assert "understudy db upgrade" in capsys.readouterr().err


def test_purge_command_keeps_the_audit_log(cli_env: Path, db_url: str, capsys: Capture) -> None:
    upgrade(db_url)
    assert main(["rollout", "kill", "--reason", "incident"]) == 0

    async def backdate_and_count() -> int:
        async with Database(db_url) as db:
            async with db.engine.begin() as conn:
                await conn.execute(
                    insert(AuditRow).values(
                        at=datetime.now(UTC) - timedelta(days=400), actor="cli", action="kill"
                    )
                )
            return len(await audit_entries(db))

    async def count() -> int:
        async with Database(db_url) as db:
            return len(await audit_entries(db))

    before = asyncio.run(backdate_and_count())
    assert before == 3  # seed, kill, and one from long ago
    assert main(["purge", "--older-than", "1d"]) == 0
    assert asyncio.run(count()) == before
