"""``understudy reviewers add|list|remove`` against a real database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import migrations
from understudy.cli import main

LINK = re.compile(r"^http://127\.0\.0\.1:9191/ui/invite/([A-Za-z0-9_-]{40,})$", re.M)


@pytest.fixture
async def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    await migrations.upgrade(url)
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", url)
    monkeypatch.setenv("UNDERSTUDY_PORT", "9191")
    return url


def test_add_prints_a_one_time_link_list_and_remove(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["reviewers", "add", "alice"]) == 0
    out = capsys.readouterr().out
    found = LINK.search(out)
    assert found is not None, out
    assert main(["reviewers", "add", "alice"]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["reviewers", "add", "bad name!"]) == 2
    capsys.readouterr()

    assert main(["reviewers", "list"]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("alice\tinvited\t0 reviews\tlast never")
    assert found.group(1) not in listed  # the invite is printed once, never stored in clear

    assert main(["reviewers", "remove", "alice"]) == 0
    assert main(["reviewers", "remove", "alice"]) == 1
    capsys.readouterr()
    assert main(["reviewers", "list"]) == 0
    assert "no reviewers" in capsys.readouterr().out

    monkeypatch.setenv("UNDERSTUDY_UI__PUBLIC_URL", "https://review.example.com/")
    assert main(["reviewers", "add", "alice"]) == 0  # removed names can be invited again
    assert "https://review.example.com/ui/invite/" in capsys.readouterr().out
