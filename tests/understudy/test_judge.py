"""``understudy judge`` against a real OpenAI-compatible judge server, then ``understudy report``.

The judge server (``tests/evaluation/judge_server.py``) runs in the test's event
loop on 127.0.0.1; the commands run as subprocesses, through the openai SDK.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import migrations
from core import Exchange, Usage
from evaluation.judge import PROMPT_VERSION
from storage.database import Database
from storage.inserts import insert_exchanges
from storage.judgments import Judgment, list_judgments
from tests.evaluation.judge_server import JudgeBehaviour, running_judge
from tests.storage.factories import T0, decision, full_exchange, served_arm, shadow_arm
from understudy.commands.judge import request_text

CANDIDATE = "vllm-llama"
JUDGE_MODEL = "judge-model-1"
KEY = "test-key"  # what the judge server accepts
PARIS = "The capital of France is Paris."
LYON = "The capital of France is Lyon."


def pair(i: int, candidate_text: str | None, primary_text: str | None) -> Exchange:
    return full_exchange(
        created_at=T0 + timedelta(seconds=i),
        decision=decision(shadow=CANDIDATE, noise=False),
        fallback=False,
        observations=(
            served_arm(latency_ms=400.0, ttft_ms=80.0, text=primary_text, tool_calls=()),
            shadow_arm(
                upstream=CANDIDATE,
                status=200,
                error_kind=None,
                latency_ms=440.0 + i % 7,
                ttft_ms=90.0,
                usage=Usage(prompt_tokens=30, completion_tokens=12),
                text=candidate_text,
            ),
        ),
    )


def pairs() -> list[Exchange]:
    """12 wins, 12 losses and 12 ties for a judge preferring answers that say Paris."""
    out = []
    for i in range(36):
        kind = i % 3
        candidate, primary = [(PARIS, LYON), (LYON, PARIS), (LYON, LYON)][kind]
        out.append(pair(i, candidate, primary))
    # Not judgeable: the candidate has no text, or failed.
    out.append(pair(100, None, PARIS))
    out.append(
        full_exchange(
            created_at=T0 + timedelta(seconds=101),
            decision=decision(shadow=CANDIDATE, noise=False),
            observations=(served_arm(tool_calls=()), shadow_arm(upstream=CANDIDATE)),
        )
    )
    return out


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"

    async def seed() -> None:
        await migrations.upgrade(url)
        async with Database(url) as db, db.engine.begin() as conn:
            await insert_exchanges(conn, pairs())

    asyncio.run(seed())
    return url


async def understudy(url: str, *args: str, key: str | None = KEY) -> tuple[int, str, str]:
    """Run the CLI in a subprocess while this event loop keeps serving the judge."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
    env["UNDERSTUDY_DATABASE_URL"] = url
    env.pop("JUDGE_KEY", None)
    if key is not None:
        env["JUDGE_KEY"] = key
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "understudy.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def judge_args(url: str, *extra: str) -> list[str]:
    return [
        "judge",
        "--base-url",
        url,
        "--model",
        JUDGE_MODEL,
        "--api-key-env",
        "JUDGE_KEY",
        *extra,
    ]


async def stored(url: str) -> list[Judgment]:
    async with Database(url) as db:
        return await list_judgments(db)


async def test_judge_stores_verdicts_once_and_the_report_counts_them(db_url: str) -> None:
    behaviour = JudgeBehaviour(preferred_word="Paris")
    async with running_judge(behaviour) as judge_url:
        code, out, err = await understudy(db_url, *judge_args(judge_url))
        assert code == 0, err
        assert out.startswith("judged 36 pairs of vllm-llama with judge-model-1 (pairwise-v1)")
        assert "12 candidate better, 12 primary better, 12 ties" in out
        assert "0 skipped for budget; 0 errors; 72 judge requests" in out
        assert len(behaviour.requests) == 72  # each pair in both orders
        assert KEY not in out + err

        judgments = await stored(db_url)
        assert len(judgments) == 36
        assert {(j.judge_model, j.prompt_version, j.candidate) for j in judgments} == {
            (JUDGE_MODEL, PROMPT_VERSION, CANDIDATE)
        }
        outcomes = sorted(j.outcome for j in judgments)
        assert outcomes == ["candidate"] * 12 + ["primary"] * 12 + ["tie"] * 12
        assert all(j.detail is not None and j.detail["consistent"] for j in judgments)

        # A second run finds nothing new to judge and calls the judge no more.
        code, out, _ = await understudy(db_url, *judge_args(judge_url))
        assert code == 0 and out.startswith("judged 0 pairs")
        assert len(behaviour.requests) == 72

    code, out, err = await understudy(db_url, "report", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["quality"]["tally"] == {"wins": 12, "losses": 12, "ties": 12}
    quality = next(m for m in report["verdict"]["metrics"] if m["name"] == "quality")
    assert quality["n"] == 24 and quality["estimate"] == pytest.approx(0.5)
    code, text, _ = await understudy(db_url, "report")
    assert "wins 12, losses 12, ties 12" in text


async def test_budget_limit_and_window(db_url: str) -> None:
    behaviour = JudgeBehaviour()
    async with running_judge(behaviour) as judge_url:
        code, out, err = await understudy(db_url, *judge_args(judge_url, "--max-requests", "10"))
        assert code == 0, err
        # 10 requests judge 5 pairs; the other 31 wait for more budget.
        assert out.startswith("judged 5 pairs") and "31 skipped for budget" in out
        assert len(behaviour.requests) == 10

        until = (T0 + timedelta(seconds=20)).isoformat()
        code, out, _ = await understudy(
            db_url, *judge_args(judge_url, "--limit", "4", "--until", until)
        )
        assert out.startswith("judged 4 pairs") and "0 skipped" in out
        code, out, _ = await understudy(db_url, *judge_args(judge_url, "--until", until))
        assert out.startswith("judged 11 pairs")  # 20 in the window, 9 judged before
    assert len(await stored(db_url)) == 20


async def test_judge_failures_are_counted_and_nothing_is_stored(db_url: str) -> None:
    behaviour = JudgeBehaviour(fail_status=400)  # not retried by the SDK
    async with running_judge(behaviour) as judge_url:
        code, out, err = await understudy(db_url, *judge_args(judge_url, "--limit", "3"))
    assert code == 1
    assert out.startswith("judged 0 pairs") and "3 errors" in out
    assert "first error: judge call failed: BadRequestError" in err
    assert await stored(db_url) == []


async def test_a_wrong_key_is_never_printed(db_url: str) -> None:
    secret = "sk-judge-secret-7f3a9c"
    async with running_judge(JudgeBehaviour()) as judge_url:
        code, out, err = await understudy(
            db_url, *judge_args(judge_url, "--limit", "2"), key=secret
        )
    assert code == 1 and "AuthenticationError" in err
    assert secret not in out + err


async def test_a_missing_key_variable_is_a_config_error(db_url: str) -> None:
    code, out, err = await understudy(db_url, *judge_args("http://127.0.0.1:9/v1"), key=None)
    assert code == 2 and out == ""
    assert "environment variable JUDGE_KEY is not set" in err
    assert "Traceback" not in err


def test_request_text_shows_the_conversation_or_the_prompt() -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
        ]
    }
    assert request_text(chat) == "system: Be brief.\nuser: Capital of France?"
    assert request_text({"prompt": "Once upon a time"}) == "Once upon a time"
    assert request_text(None) == "(the request was not stored)"
    assert request_text({"model": "gpt-4o"}) == "(the request's text was not stored)"
