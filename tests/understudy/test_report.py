"""``understudy report`` end to end: a real database seeded with synthetic pairs, the CLI run.

The PostgreSQL fixtures come from ``tests/storage/conftest.py`` (a throwaway
server for the session); they are imported here, not copied.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import migrations
from core import ConfigError, Exchange, Role, RolloutMode, Usage
from evaluation.cost import SECONDS_PER_MONTH, SelfHosted
from storage.database import Database
from storage.inserts import insert_exchanges
from storage.judgments import Judgment, add_judgments
from tests.storage.conftest import db_url, pg_server, pg_url  # noqa: F401  (fixtures)
from tests.storage.factories import T0, decision, full_exchange, noise_arm, served_arm, shadow_arm
from understudy.cli import main
from understudy.reporting import self_hosted_for
from understudy.settings import load_settings

Capture = pytest.CaptureFixture[str]

CANDIDATE = "vllm-llama"
PAIRS = 600  # above the 500 pairs a promotion needs
ANSWERS = (
    "Paris is the capital of France.",
    "The capital of France is Paris, on the Seine.",
    "France's capital city is Paris.",
)


def shadow_pair(i: int, rng: random.Random, slowdown: float, *, noise: bool = False) -> Exchange:
    """A chat exchange the primary served and the candidate mirrored, ``i`` seconds after T0."""
    base = rng.lognormvariate(math.log(500.0), 0.4)
    primary_ms = base * rng.lognormvariate(0.0, 0.05)
    candidate_ms = slowdown * base * rng.lognormvariate(0.0, 0.05)
    tokens = Usage(prompt_tokens=40, completion_tokens=30, cached_tokens=0)
    arms = [
        served_arm(
            latency_ms=primary_ms,
            ttft_ms=primary_ms / 5,
            usage=tokens,
            text=ANSWERS[i % 3],
            tool_calls=(),
            finish_reason="stop",
            truncated=False,
        ),
        shadow_arm(
            upstream=CANDIDATE,
            status=200,
            error_kind=None,
            latency_ms=candidate_ms,
            ttft_ms=candidate_ms / 5,
            usage=tokens,
            text=ANSWERS[(i + 1) % 3],
        ),
    ]
    if noise:
        arms.append(
            noise_arm(status=200, error_kind=None, text=ANSWERS[i % 3], latency_ms=primary_ms)
        )
    return full_exchange(
        created_at=T0 + timedelta(seconds=i),
        decision=decision(shadow=CANDIDATE, noise=noise),
        fallback=False,
        observations=tuple(arms),
    )


def split_exchange(i: int, rng: random.Random, slowdown: float) -> Exchange:
    """A split-mode exchange; a quarter of the 80 users are served by the candidate."""
    user = i % 80
    on_candidate = user % 4 == 0
    latency = rng.lognormvariate(math.log(500.0), 0.3) * (slowdown if on_candidate else 1.0)
    upstream = CANDIDATE if on_candidate else "openai"
    return full_exchange(
        created_at=T0 + timedelta(seconds=i),
        subject_hash=f"user-{user}",
        decision=decision(
            served=upstream,
            served_is_candidate=on_candidate,
            shadow=None,
            noise=False,
            mode=RolloutMode.SPLIT,
            percent=25.0,
        ),
        served_by=upstream,
        fallback=False,
        observations=(
            served_arm(upstream=upstream, latency_ms=latency, ttft_ms=latency / 5, tool_calls=()),
        ),
    )


def seed(url: str, exchanges: Sequence[Exchange], judgments: Sequence[Judgment] = ()) -> None:
    async def run() -> None:
        await migrations.upgrade(url)
        async with Database(url) as db:
            async with db.engine.begin() as conn:
                await insert_exchanges(conn, list(exchanges))
            await add_judgments(db, list(judgments))

    asyncio.run(run())


def report(capsys: Capture, *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def metric(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in data["verdict"]["metrics"] if m["name"] == name)
    return found


def finding(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in data["findings"] if f["name"] == name)
    return found


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", url)
    return url


def test_a_slower_candidate_is_rolled_back_on_both_databases(
    db_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capture,
) -> None:
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", db_url)
    rng = random.Random(1)
    seed(db_url, [shadow_pair(i, rng, 1.5, noise=i % 5 == 0) for i in range(PAIRS)])

    code, out, err = report(capsys, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["mode"] == "shadow" and data["n"] == PAIRS
    assert data["title"] == f"{CANDIDATE} vs openai"
    assert data["verdict"]["decision"] in ("rollback", "hold")
    total = metric(data, "latency_total")
    assert total["label"] == "fail"
    assert total["estimate"] == pytest.approx(1.5, abs=0.03)
    assert finding(data, "total latency: typical ratio")["estimate"] == pytest.approx(1.5, abs=0.03)
    assert metric(data, "error_rate")["estimate"] == pytest.approx(0.0)
    # Every pair has text; a fifth has the primary's second answer for the noise floor.
    assert {t["n"] for t in data["text_metrics"] if t["name"] == "chrf"} == {PAIRS}
    assert any(nf["n"] == PAIRS // 5 for nf in data["noise"])
    assert data["quality"] is None  # nothing judged yet
    # The observed models are priced: the primary's dated snapshot, the candidate unlisted.
    assert any("no list price for 'meta-llama/Llama-3.1-8B-Instruct'" in n for n in data["notes"])

    code, text, _ = report(capsys)
    assert code == 0
    assert "DECISION: ROLLBACK" in text or "DECISION: HOLD" in text
    for m in data["verdict"]["metrics"]:
        assert m["reason"] in text, m["name"]
    code, markdown, _ = report(capsys, "--format", "markdown", "--stage", "shadow-1")
    assert code == 0 and markdown.startswith("# Understudy report: vllm-llama vs openai")


def test_an_equal_candidate_may_promote_or_continue(sqlite_url: str, capsys: Capture) -> None:
    rng = random.Random(2)
    seed(sqlite_url, [shadow_pair(i, rng, 1.0) for i in range(PAIRS)])
    code, out, err = report(capsys, "--format", "json", "--candidate", CANDIDATE)
    assert code == 0, err
    data = json.loads(out)
    assert data["verdict"]["decision"] in ("promote", "continue")
    assert metric(data, "latency_total")["estimate"] == pytest.approx(1.0, abs=0.03)
    assert metric(data, "latency_total")["label"] == "pass"


def test_window_route_and_cost_options(sqlite_url: str, capsys: Capture) -> None:
    rng = random.Random(3)
    seed(sqlite_url, [shadow_pair(i, rng, 1.2) for i in range(300)])
    until = (T0 + timedelta(seconds=100)).isoformat()
    args = ["--format", "json", "--until", until, "--route", "chat.completions"]
    code, out, _ = report(capsys, *args, "--gpu-usd-per-hour", "2", "--output-tokens-per-s", "500")
    assert code == 0
    data = json.loads(out)
    assert data["n"] == 100
    cost = data["cost"]
    assert cost["n"] == 100 and cost["replicas_needed"] == 1
    # 40 prompt + 30 completion tokens of gpt-4o-mini at its listed price.
    assert cost["primary_usd_per_request"] > 0
    assert cost["candidate_usd_per_request"] == pytest.approx(30 / 500 * 2 / 3600)

    code, out, _ = report(capsys, "--format", "json", "--since", until, "--primary-model", "gpt-4o")
    assert code == 0 and json.loads(out)["n"] == 200


HOSTED_TOML = f"""
[[candidates]]
name = "{CANDIDATE}"
base_url = "http://127.0.0.1:8000/v1"
kind = "vllm"
gpu_usd_per_hour = 2.5
output_tokens_per_s = 600
gpus = 2
"""


def test_a_self_hosted_candidate_is_priced_from_its_settings(
    sqlite_url: str, tmp_path: Path, capsys: Capture
) -> None:
    rng = random.Random(8)
    seed(sqlite_url, [shadow_pair(i, rng, 1.0) for i in range(100)])
    config = tmp_path / "understudy.toml"
    config.write_text(HOSTED_TOML, encoding="utf-8")
    code, out, err = report(capsys, "--format", "json", "--config", str(config))
    assert code == 0, err
    data = json.loads(out)
    cost = data["cost"]
    assert cost is not None, data["notes"]
    usd_per_s = 2.5 * 2 / 3600  # two GPUs per replica
    # 30 completion tokens at 600 tokens/s; one request a second needs one replica.
    assert cost["n"] == 100 and cost["replicas_needed"] == 1
    assert cost["candidate_usd_per_request"] == pytest.approx(30 / 600 * usd_per_s)
    assert cost["replica_capacity_requests_per_s"] == pytest.approx(600 / 30)
    assert cost["candidate_monthly_usd"] == pytest.approx(usd_per_s * SECONDS_PER_MONTH)
    assert cost["break_even_requests_per_s"] == pytest.approx(
        usd_per_s / cost["primary_usd_per_request"]
    )
    assert cost["monthly_savings_usd"] == pytest.approx(
        cost["primary_monthly_usd"] - cost["candidate_monthly_usd"]
    )
    assert not any("no list price" in n for n in data["notes"])
    code, text, _ = report(capsys, "--config", str(config))
    assert code == 0 and "self-hosting breaks even above" in text

    # The command's flags replace the settings' GPU cost as a whole (--gpus defaults to 1).
    flags = ["--gpu-usd-per-hour", "1", "--output-tokens-per-s", "300"]
    code, out, _ = report(capsys, "--format", "json", "--config", str(config), *flags)
    assert code == 0
    cost = json.loads(out)["cost"]
    assert cost["candidate_usd_per_request"] == pytest.approx(30 / 300 * 1 / 3600)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"gpu_usd_per_hour": 2.0}, "UNDERSTUDY_CANDIDATES__0: .*go together"),
        ({"output_tokens_per_s": 500.0}, "UNDERSTUDY_CANDIDATES__0: .*go together"),
        ({"gpus": 4}, "UNDERSTUDY_CANDIDATES__0: .*gpus counts toward the GPU cost"),
        (
            {"gpu_usd_per_hour": -1.0, "output_tokens_per_s": 500.0},
            "UNDERSTUDY_CANDIDATES__0__GPU_USD_PER_HOUR: .*greater than or equal to 0",
        ),
        (
            {"gpu_usd_per_hour": 2.0, "output_tokens_per_s": 0.0},
            "UNDERSTUDY_CANDIDATES__0__OUTPUT_TOKENS_PER_S: .*greater than 0",
        ),
        (
            {"gpu_usd_per_hour": 2.0, "output_tokens_per_s": 500.0, "gpus": 0},
            "UNDERSTUDY_CANDIDATES__0__GPUS: .*greater than or equal to 1",
        ),
    ],
)
def test_a_gpu_cost_setting_is_checked(extra: dict[str, Any], problem: str) -> None:
    candidate = {"name": CANDIDATE, "base_url": "http://127.0.0.1:8000/v1", **extra}
    with pytest.raises(ConfigError, match=problem):
        load_settings(candidates=[candidate])


def test_the_gpu_cost_settings_give_the_candidate_its_self_hosted_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosted = {"gpu_usd_per_hour": 1.8, "output_tokens_per_s": 1200, "gpus": 4}
    candidates = [
        {"name": CANDIDATE, "base_url": "http://127.0.0.1:8000/v1", **hosted},
        {"name": "listed", "base_url": "https://api.example.com/v1"},
    ]
    monkeypatch.setenv("UNDERSTUDY_CANDIDATES", json.dumps(candidates))
    settings = load_settings()
    assert self_hosted_for(settings, CANDIDATE) == SelfHosted(1.8, 1200.0, gpus=4)
    assert self_hosted_for(settings, "listed") is None  # priced by its list price, if any
    assert self_hosted_for(settings, "unconfigured") is None


def test_judgments_count_in_the_quality_metric(
    db_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capture,
) -> None:
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", db_url)
    rng = random.Random(4)
    pairs = [shadow_pair(i, rng, 1.0) for i in range(PAIRS)]
    outcomes = ("candidate", "primary", "tie")
    judged = [
        Judgment(e.id, CANDIDATE, "judge-1", "pairwise-v1", outcomes[i % 3])
        for i, e in enumerate(pairs[:90])
    ]
    # A second judge model on the same pairs: each pair still counts once (the newest).
    rejudged = [
        Judgment(
            e.id,
            CANDIDATE,
            "judge-2",
            "pairwise-v1",
            "candidate",
            created_at=j.created_at + timedelta(seconds=1),
        )
        for e, j in zip(pairs[:30], judged, strict=False)
    ]
    seed(db_url, pairs, judged)
    asyncio.run(_add(db_url, rejudged))

    code, out, _ = report(capsys, "--format", "json", "--judge-model", "judge-1")
    assert code == 0
    tally = json.loads(out)["quality"]["tally"]
    assert tally == {"wins": 30, "losses": 30, "ties": 30}
    code, out, _ = report(capsys, "--format", "json")
    assert code == 0
    assert json.loads(out)["quality"]["tally"] == {"wins": 50, "losses": 20, "ties": 20}


async def _add(url: str, judgments: Sequence[Judgment]) -> None:
    async with Database(url) as db:
        await add_judgments(db, list(judgments))


def test_split_mode_compares_the_users_each_arm_served(sqlite_url: str, capsys: Capture) -> None:
    rng = random.Random(5)
    served = [split_exchange(i, rng, 1.4) for i in range(800)]
    # The candidate was chosen for these but failed before its first byte; OpenAI answered.
    fallbacks = [
        full_exchange(
            created_at=T0 + timedelta(seconds=900 + i),
            subject_hash="user-0",
            decision=decision(
                served=CANDIDATE,
                served_is_candidate=True,
                shadow=None,
                noise=False,
                mode=RolloutMode.SPLIT,
                percent=25.0,
            ),
            served_by="openai",
            fallback=True,
            observations=(
                shadow_arm(upstream=CANDIDATE, role=Role.FAILED_OVER),
                served_arm(tool_calls=()),
            ),
        )
        for i in range(20)
    ]
    seed(sqlite_url, served + fallbacks)
    code, out, err = report(capsys, "--format", "json", "--candidate", CANDIDATE)
    assert code == 0, err
    data = json.loads(out)
    assert data["mode"] == "split" and data["n"] == 820
    median = finding(data, "total latency: median ratio")
    assert median["estimate"] == pytest.approx(1.4, rel=0.15)
    # Fallbacks count against the candidate they were assigned to.
    assert finding(data, "error rate difference")["estimate"] == pytest.approx(20 / 220)
    assert data["cost"] is None

    code, _, err = report(capsys, "--mode", "shadow", "--candidate", CANDIDATE)
    assert code == 1 and "no exchanges match: no shadow pairs" in err


def test_no_data_is_one_clear_line(sqlite_url: str, capsys: Capture) -> None:
    seed(sqlite_url, [])
    code, out, err = report(capsys)
    assert code == 1 and out == ""
    assert err.startswith("understudy: no exchanges match")
    assert "Traceback" not in err

    rng = random.Random(6)
    seed(sqlite_url, [shadow_pair(i, rng, 1.0) for i in range(10)])
    code, _, err = report(capsys, "--since", "1h")  # everything was recorded in 2025
    assert code == 1 and "no exchanges match" in err
    code, _, err = report(capsys, "--candidate", "nobody")
    assert code == 1
    assert "no shadow pairs or split-mode exchanges of candidate 'nobody'" in err


def test_a_missing_database_is_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    path = tmp_path / "absent.db"
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    code, _, err = report(capsys)
    assert code == 1 and "no database" in err and not path.exists()


def test_failed_arms_count_as_errors_not_latency(sqlite_url: str, capsys: Capture) -> None:
    rng = random.Random(7)
    pairs = [shadow_pair(i, rng, 1.0) for i in range(200)]
    broken = [
        full_exchange(
            created_at=T0 + timedelta(seconds=1000 + i),
            decision=decision(shadow=CANDIDATE, noise=False),
            fallback=False,
            observations=(served_arm(tool_calls=()), shadow_arm(upstream=CANDIDATE)),  # timeout
        )
        for i in range(20)
    ]
    seed(sqlite_url, pairs + broken)
    code, out, _ = report(capsys, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["n"] == 220
    assert metric(data, "error_rate")["estimate"] == pytest.approx(20 / 220)
    # The broken arms' 30 s timeouts do not enter the latency comparison.
    assert finding(data, "total latency: typical ratio")["n"] == 200
