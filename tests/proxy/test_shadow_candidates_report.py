"""Three candidates shadowed side by side, judged and ranked in one report, end to end.

Real servers on 127.0.0.1 (a fake OpenAI primary, three fake candidates, a judge
server), the proxy recording to a real SQLite database through the official SDK,
then ``understudy judge`` and ``understudy report`` as subprocesses.

The judge prefers the answer containing the digit 7. Each fake answers with a
stable hash of the request cut to its own length (the primary 1 hex digit, gemma 8,
llama 3, qwen none), so each candidate wins, loses and ties at its own rate and
the stored texts say what every verdict must be.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry
from sqlalchemy import text

import migrations
from core import Exchange
from core.outcome import PairOutcome, QualitySource
from storage.database import Database
from storage.inserts import insert_exchanges
from storage.judge_queries import unjudged_pairs
from storage.judgments import Judgment, add_judgments, list_judgments
from storage.pair_outcomes import compared_candidates, pair_outcomes
from storage.report_queries import load_shadow_columns
from storage.window import ExchangeWindow
from tests.evaluation.judge_server import JudgeBehaviour, running_judge
from tests.fakes import FakeOpenAI, start_server
from tests.proxy.conftest import CLIENT_KEY, chat
from tests.storage.conftest import database, db_url, pg_server, pg_url
from tests.storage.factories import T0, decision, full_exchange, served_arm, shadow_arm
from understudy.logs import configure_logging
from understudy.server import start_site
from understudy.settings import LogFormat, load_settings
from understudy.wiring import build_app

__all__ = ["database", "db_url", "pg_server", "pg_url"]  # fixtures of each backend

TEMPLATES = {
    "openai": "{persona} answers {digest:.1}.",
    "gemma": "{persona} answers {digest:.8}.",
    "llama": "{persona} answers {digest:.3}.",
    "qwen": "{persona} answers.",
}
MODELS = {"gemma": "gemma-2-9b", "llama": "llama3.1:8b", "qwen": "qwen2.5"}
REQUESTS = 200
JUDGE_KEY = "test-key"  # what the judge server accepts


async def record_traffic(url: str) -> dict[str, Any]:
    """Send the requests through the proxy; return the settings' environment."""
    fakes = {name: FakeOpenAI(persona=name, reply_template=t) for name, t in TEMPLATES.items()}
    servers = {name: await start_server(fake.app) for name, fake in fakes.items()}
    env = {
        "UNDERSTUDY_DATABASE_URL": url,
        "UNDERSTUDY_PRIMARY__BASE_URL": f"{servers['openai'].url}/v1",
        "UNDERSTUDY_CANDIDATES": json.dumps(
            [
                {"name": n, "base_url": f"{servers[n].url}/v1", "model_map": {"gpt-4o-mini": m}}
                for n, m in MODELS.items()
            ]
        ),
        "UNDERSTUDY_ROLLOUT__MODE": "shadow",
        "UNDERSTUDY_ROLLOUT__CANDIDATE": "gemma",
        "UNDERSTUDY_ROLLOUT__SHADOW_CANDIDATES": json.dumps(
            [{"name": "llama", "rate": 1.0}, {"name": "qwen", "rate": 1.0}]
        ),
    }
    settings = load_settings(
        database_url=url,
        primary={"base_url": env["UNDERSTUDY_PRIMARY__BASE_URL"]},
        candidates=json.loads(env["UNDERSTUDY_CANDIDATES"]),
        rollout={
            "mode": "shadow",
            "candidate": "gemma",
            "shadow_candidates": json.loads(env["UNDERSTUDY_ROLLOUT__SHADOW_CANDIDATES"]),
            "controller": {"enabled": False},
        },
        shutdown_grace_s=2,
    )
    configure_logging("info", LogFormat.JSON, stream=io.StringIO(), cache=False)
    site = await start_site(build_app(settings, registry=CollectorRegistry()), "127.0.0.1", 0)
    client = AsyncOpenAI(base_url=f"{site.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    try:
        for start in range(0, REQUESTS, 10):
            await asyncio.gather(
                *(
                    client.chat.completions.create(**chat(f"question number {i}"))
                    for i in range(start, start + 10)
                )
            )
    finally:
        await client.close()
        await site.stop()  # the writer flushes every exchange before it stops
        for server in servers.values():
            await server.close()
    return env


async def understudy(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """The CLI in a subprocess, while this event loop keeps serving the judge."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "understudy.cli",
        *args,
        env={**clean, **env, "JUDGE_KEY": JUDGE_KEY},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def expected_outcomes(url: str) -> dict[str, dict[str, PairOutcome]]:
    """What the judge must say about each stored pair, from the stored texts."""
    query = text(
        "SELECT p.exchange_id, c.upstream, c.text, p.text FROM observations c "
        "JOIN observations p ON p.exchange_id = c.exchange_id AND p.role = 'served' "
        "WHERE c.role = 'shadow'"
    )
    async with Database(url) as db, db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    out: dict[str, dict[str, PairOutcome]] = {name: {} for name in MODELS}
    for exchange_id, upstream, candidate_text, primary_text in rows:
        c7, p7 = "7" in candidate_text, "7" in primary_text
        outcome = (
            PairOutcome.CANDIDATE
            if c7 and not p7
            else PairOutcome.PRIMARY
            if p7 and not c7
            else PairOutcome.TIE
        )
        out[upstream][str(exchange_id).replace("-", "")] = outcome
    return out


def tally(outcomes: dict[str, PairOutcome]) -> tuple[int, int, int]:
    values = list(outcomes.values())
    return (
        values.count(PairOutcome.CANDIDATE),
        values.count(PairOutcome.PRIMARY),
        values.count(PairOutcome.TIE),
    )


@pytest.mark.slow
async def test_three_candidates_are_judged_and_ranked_in_one_report(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    await migrations.upgrade(url)
    env = await record_traffic(url)
    expected = await expected_outcomes(url)
    assert {name: len(pairs) for name, pairs in expected.items()} == dict.fromkeys(MODELS, REQUESTS)

    async with running_judge(JudgeBehaviour(preferred_word="7")) as judge_url:
        args = ("judge", "--base-url", judge_url, "--model", "judge-1", "--api-key-env")
        # One limit for the whole run, spent candidate by candidate.
        code, _, err = await understudy(env, *args, "JUDGE_KEY", "--limit", "250")
        assert code == 0, err
        async with Database(url) as db:
            judged = [len(await list_judgments(db, candidate=name)) for name in MODELS]
        assert judged == [200, 50, 0]
        code, out, err = await understudy(env, *args, "JUDGE_KEY", "--max-requests", "5000")
    assert code == 0, err
    assert "judged 150 pairs of llama" in out and "judged 0 pairs of gemma" in out
    # One summary line per candidate: the rollout's first, then the shadow candidates.
    assert [line.split(" pairs of ")[1].split(" ")[0] for line in out.splitlines()] == [
        "gemma",
        "llama",
        "qwen",
    ]
    async with Database(url) as db:
        for name, pairs in expected.items():
            stored = await list_judgments(db, candidate=name)
            assert {j.exchange_id.hex: j.outcome for j in stored} == pairs

    code, out, err = await understudy(env, "report", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["title"] == "gemma vs openai" and report["n"] == REQUESTS
    assert [(c["name"], c["pairs"]) for c in report["candidates"]] == [
        ("gemma", REQUESTS),
        ("llama", REQUESTS),
        ("qwen", REQUESTS),
    ]
    ranking = report["ranking"]
    assert ranking["level"] == 0.95 and ranking["draws"] == 1000
    systems = {s["name"]: s for s in ranking["systems"]}
    for name, pairs in expected.items():
        s = systems[name]
        assert (s["wins"], s["losses"], s["ties"]) == tally(pairs) and s["pairs"] == REQUESTS
        assert s["lower"] <= s["rating"] <= s["upper"]

    # The order is that of each candidate's score against the primary (ties half).
    def score(name: str) -> float:
        if name == "openai":
            return 0.5
        wins, _, ties = tally(expected[name])
        return (wins + ties / 2) / REQUESTS

    order = [s["name"] for s in ranking["systems"]]
    assert order == sorted(order, key=score, reverse=True)
    assert order[0] == "gemma" and order[-1] == "qwen"  # by construction, far apart

    code, out, err = await understudy(env, "report", "--candidate", "llama", "--format", "json")
    assert code == 0, err
    llama = json.loads(out)
    assert llama["title"] == "llama vs openai" and llama["n"] == REQUESTS
    wins, losses, ties = tally(expected["llama"])
    assert llama["quality"]["tally"] == {"wins": wins, "losses": losses, "ties": ties}

    code, out, err = await understudy(env, "report")
    assert code == 0, err
    assert out.startswith("Understudy report: gemma vs openai")
    assert "All candidates (shadow pairs against openai):" in out and "\nRanking:\n" in out
    assert "95% bootstrap intervals over pairs, 1,000 draws, seed 0" in out


def stored_pair(i: int, decided: str | None, shadows: tuple[str, ...]) -> Exchange:
    """A primary-served exchange whose decision mirrored ``decided`` and that has a shadow
    arm for each of ``shadows`` (the rollout's own and shadow candidates alike)."""
    return full_exchange(
        created_at=T0 + timedelta(seconds=i),
        decision=decision(shadow=decided, noise=False),
        fallback=False,
        observations=(
            served_arm(text=f"primary {i}", tool_calls=()),
            *(
                shadow_arm(
                    upstream=name,
                    status=200,
                    error_kind=None,
                    latency_ms=500.0 + i,
                    ttft_ms=90.0,
                    text=f"{name} {i}",
                )
                for name in shadows
            ),
        ),
    )


async def test_a_shadow_candidates_pairs_are_found_on_both_backends(database: Database) -> None:
    both = stored_pair(0, "gemma", ("gemma", "llama"))
    llama_only = stored_pair(1, None, ("llama",))  # the rollout's own draw missed
    gemma_only = stored_pair(2, "gemma", ("gemma",))
    async with database.engine.begin() as conn:
        await insert_exchanges(conn, [both, llama_only, gemma_only])
    window = ExchangeWindow()
    assert await compared_candidates(database, window) == ["gemma", "llama"]
    llama = replace(window, candidate="llama")
    loaded = await load_shadow_columns(database, llama)
    assert len(loaded) == 2
    assert loaded.columns.candidate.latency_ms.tolist() == [500.0, 501.0]
    assert len(await load_shadow_columns(database, replace(window, candidate="gemma"))) == 2
    batch = await unjudged_pairs(database, llama, judge_model="j", prompt_version="v")
    assert [(p.candidate_text, p.primary_text) for p in batch.pairs] == [
        ("llama 0", "primary 0"),
        ("llama 1", "primary 1"),
    ]
    await add_judgments(
        database,
        [
            Judgment(both.id, "llama", "j", "v", PairOutcome.CANDIDATE),
            Judgment(llama_only.id, "llama", "j", "v", PairOutcome.TIE),
            Judgment(both.id, "gemma", "j", "v", PairOutcome.PRIMARY),
        ],
    )
    outcomes = await pair_outcomes(
        database, window, ["gemma", "llama", "qwen"], prefer=QualitySource.REVIEWERS
    )
    assert {name: sorted(codes.tolist()) for name, codes in outcomes.items()} == {
        "gemma": [-1],
        "llama": [0, 1],
        "qwen": [],
    }
