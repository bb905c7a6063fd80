"""``understudy rollout plan|promote|rollback``: the plan from settings, moves along it by hand."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from storage.database import Database
from storage.flags import audit_entries, current_flags
from tests.rollout.test_cli import cli_env, upgrade
from understudy.cli import main

__all__ = ["cli_env"]

Capture = pytest.CaptureFixture[str]

PLAN_TOML = """
[[rollout.plan]]
name = "shadow"
mode = "shadow"
min_units = 200
min_duration = "10m"
max_duration = "2d"
promotion = "manual"

[[rollout.plan]]
name = "10%"
mode = "split"
percent = 10
min_duration = "30m"
gates = ["latency_total", "error_rate"]

[[rollout.plan]]
name = "all"
mode = "cutover"
percent = 100
"""


def test_plan_prints_the_default_plan(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNDERSTUDY_ROLLOUT__PLAN", raising=False)
    assert main(["rollout", "plan"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines[1:8]]
    assert names == ["shadow", "5%", "25%", "50%", "75%", "95%", "100%"]
    assert lines[1].split()[:3] == ["shadow", "shadow", "0%"] and "manual" in lines[1]
    assert "500" in lines[2] and "auto" in lines[2]  # min units: evaluation.min_samples


def test_plan_from_a_toml_file(tmp_path: Path, capsys: Capture) -> None:
    config = tmp_path / "understudy.toml"
    config.write_text(PLAN_TOML)
    assert main(["rollout", "plan", "--config", str(config), "--json"]) == 0
    stages = json.loads(capsys.readouterr().out)["stages"]
    assert [(s["name"], s["mode"], s["percent"]) for s in stages] == [
        ("shadow", "shadow", 0),
        ("10%", "split", 10),
        ("all", "cutover", 100),
    ]
    assert stages[0]["min_duration_s"] == 600 and stages[0]["max_duration_s"] == 172800
    assert stages[0]["min_units"] == 200 and stages[1]["min_units"] == 500
    assert stages[1]["gates"] == ["latency_total", "error_rate"]


def test_a_bad_plan_is_one_line_naming_the_rule(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.setenv(
        "UNDERSTUDY_ROLLOUT__PLAN", json.dumps([{"name": "5%", "mode": "split", "percent": 5}])
    )
    with pytest.raises(SystemExit) as exit_:
        main(["rollout", "plan"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "the first stage must be a shadow stage" in err and len(err.splitlines()) == 1


def test_promote_walks_the_plan_and_rollback_returns_to_shadow_paused(
    cli_env: Path, db_url: str, capsys: Capture
) -> None:
    upgrade(db_url)
    walked = []
    for _ in range(6):
        assert main(["rollout", "promote", "--reason", "looks good"]) == 0
        out = capsys.readouterr().out
        walked.append(out.split("-> ")[1].split(",")[0])
    assert walked == ["5%", "25%", "50%", "75%", "95%", "100%"]
    assert "cutover to local, 100% of users served by it" in out
    assert main(["rollout", "promote", "--reason", "more"]) == 1
    assert "stage: already at the last stage, 100%" in capsys.readouterr().err

    assert main(["rollout", "rollback", "--reason", "p95 regressed"]) == 0
    out = capsys.readouterr().out
    assert "rollback (default row): stage 100% -> shadow" in out
    assert "shadow to local, 0% of users served by it" in out and "paused" in out

    async def check() -> None:
        async with Database(db_url) as db:
            row = (await current_flags(db))[None]
            assert (row.mode, row.percent, row.stage, row.paused) == ("shadow", 0.0, "shadow", True)
            entries = await audit_entries(db)
        assert [e.action for e in entries[:2]] == ["rollback", "promote"]
        assert entries[0].actor == "cli" and entries[0].reason == "p95 regressed"
        assert entries[0].before is not None and entries[0].before["stage"] == "100%"

    asyncio.run(check())


def test_promote_from_a_share_set_by_hand_goes_to_the_next_larger_stage(
    cli_env: Path, db_url: str, capsys: Capture
) -> None:
    upgrade(db_url)
    assert main(["rollout", "set", "--percent", "30", "--reason", "by hand"]) == 0
    assert main(["rollout", "promote", "--reason", "next"]) == 0
    assert "stage - -> 50%" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ("latency", "Input should be 'latency_total'"),
        ("latency_tpot", "gates on 'latency_tpot', which the verdict does not measure"),
    ],
)
def test_a_gate_the_verdict_cannot_decide_on_is_refused_at_load(
    gate: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    plan = [{"name": "shadow", "mode": "shadow", "gates": [gate]}]
    monkeypatch.setenv("UNDERSTUDY_ROLLOUT__PLAN", json.dumps(plan))
    with pytest.raises(SystemExit) as exit_:
        main(["rollout", "plan"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1
