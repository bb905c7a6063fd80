"""``understudy.reporting.assess`` is the report: the CLI prints exactly what a direct call returns.

One seeded database holds two rollout stages: flag version 1 with a candidate
as fast as the primary, flag version 2 with one half again as slow. Windows by
time and by flag version must select each stage, and the CLI and the function
must agree on every figure.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from core import Exchange
from evaluation.render import render_json
from storage.database import Database
from tests.storage.conftest import db_url, pg_server, pg_url  # noqa: F401  (fixtures)
from tests.storage.factories import T0
from tests.understudy.test_report import CANDIDATE, PAIRS, Capture, report, seed, shadow_pair
from understudy.cli import main
from understudy.reporting import NoData, ReportRequest, assess
from understudy.settings import load_settings


def staged_pair(i: int, rng: random.Random) -> Exchange:
    """Pairs 0..PAIRS-1 under flag version 1 (equal speed), the next PAIRS under version 2."""
    version = 1 if i < PAIRS else 2
    pair = shadow_pair(i, rng, 1.0 if version == 1 else 1.5)
    return replace(pair, decision=replace(pair.decision, flag_version=version))


def direct(url: str, request: ReportRequest) -> str:
    async def run() -> str:
        async with Database(url) as db:
            return render_json(await assess(db, request, load_settings(None)))

    return asyncio.run(run())


def test_the_cli_prints_what_a_direct_call_returns_for_time_and_flag_windows(
    db_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capture,
) -> None:
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", db_url)
    rng = random.Random(7)
    seed(db_url, [staged_pair(i, rng) for i in range(2 * PAIRS)])
    second_stage_starts = T0 + timedelta(seconds=PAIRS)

    printed: dict[str, str] = {}
    for name, args, request in (
        (
            "stage 1 by time",
            ["--until", second_stage_starts.isoformat()],
            ReportRequest(until=second_stage_starts),
        ),
        (
            "stage 2 by time",
            ["--since", second_stage_starts.isoformat()],
            ReportRequest(since=second_stage_starts),
        ),
        (
            "stage 1 by flag",
            ["--flag-version", "1"],
            ReportRequest(first_flag_version=1, last_flag_version=1),
        ),
        (
            "stage 2 by flag",
            ["--flag-version", "2"],
            ReportRequest(first_flag_version=2, last_flag_version=2),
        ),
        (
            "both by flag",
            ["--flag-version", "1-2"],
            ReportRequest(first_flag_version=1, last_flag_version=2),
        ),
    ):
        code, out, err = report(capsys, "--format", "json", *args)
        assert code == 0, (name, err)
        assert out == direct(db_url, request), name
        printed[name] = out

    # A stage's window by flag version is the same exchanges as by time, so the same report.
    assert printed["stage 1 by flag"] == printed["stage 1 by time"]
    assert printed["stage 2 by flag"] == printed["stage 2 by time"]
    first, second, both = (
        json.loads(printed[k]) for k in ("stage 1 by flag", "stage 2 by flag", "both by flag")
    )
    assert (first["n"], second["n"], both["n"]) == (PAIRS, PAIRS, 2 * PAIRS)

    def latency(data: dict[str, object]) -> dict[str, object]:
        metrics = data["verdict"]["metrics"]  # type: ignore[index]
        return next(m for m in metrics if m["name"] == "latency_total")  # type: ignore[no-any-return]

    assert latency(first)["label"] == "pass"
    assert latency(second)["label"] == "fail"
    assert latency(second)["estimate"] == pytest.approx(1.5, abs=0.03)
    assert second["verdict"]["decision"] in ("rollback", "hold")


def test_an_empty_window_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", url)
    rng = random.Random(8)
    seed(url, [staged_pair(i, rng) for i in range(20)])

    async def run(request: ReportRequest) -> None:
        async with Database(url) as db:
            await assess(db, request, load_settings(None))

    nine = ReportRequest(first_flag_version=9, last_flag_version=9)
    with pytest.raises(NoData, match="no candidate took part in any exchange at flag version 9"):
        asyncio.run(run(nine))
    named = f"no shadow pairs or split-mode exchanges of candidate '{CANDIDATE}' at flag version 9"
    with pytest.raises(NoData, match=named):
        asyncio.run(run(replace(nine, candidate=CANDIDATE)))
    code, _, err = report(capsys, "--flag-version", "9")
    assert code != 0 and "at flag version 9" in err
    with pytest.raises(SystemExit) as caught:
        main(["report", "--flag-version", "3-2"])
    assert caught.value.code == 2 and "V <= W" in capsys.readouterr().err
