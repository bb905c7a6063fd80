"""Stored traffic to replay: exchanges with their prompts, some without, and a CLI runner."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import migrations
from core import Exchange, Role, Route
from storage.database import Database
from storage.inserts import insert_exchanges
from tests.storage.factories import T0, decision, full_exchange, noise_arm, served_arm

CANDIDATE = "vllm-llama"
CANDIDATE_MODEL = "llama-3.1-8b"
CANDIDATE_KEY = "sk-candidate-secret-4f2b9e1a"
PRIMARY_KEY = "sk-primary-secret-8c1d7a33"
WITH_PROMPTS = 20
WITHOUT_PROMPTS = 3


def primary_text(i: int) -> str:
    return f"The answer to question {i} is {i * 7} apples."


def stored_exchange(i: int, *, prompt: bool = True) -> Exchange:
    """Exchange ``i``: a chat request (streamed every other time) the primary answered."""
    request: dict[str, Any] = {"model": "gpt-4o-mini", "temperature": 0.2, "stream": i % 2 == 0}
    if prompt:
        request["messages"] = [{"role": "user", "content": f"Question {i}: how many apples?"}]
    return full_exchange(
        id=uuid.uuid4(),
        created_at=T0 + timedelta(seconds=i),
        route=Route.CHAT,
        stream=i % 2 == 0,
        decision=decision(shadow=CANDIDATE, noise=i % 4 == 0),
        fallback=False,
        request=request,
        observations=(
            served_arm(text=primary_text(i), tool_calls=(), finish_reason="stop", truncated=False),
            *(
                [noise_arm(status=200, error_kind=None, text=primary_text(i), role=Role.NOISE)]
                if i % 4 == 0
                else []
            ),
        ),
    )


def traffic() -> list[Exchange]:
    """20 exchanges with prompts, and 3 recorded with ``store_prompts`` off, interleaved."""
    out = [stored_exchange(i) for i in range(WITH_PROMPTS)]
    out += [stored_exchange(100 + i, prompt=False) for i in range(WITHOUT_PROMPTS)]
    return out


def seed(url: str, exchanges: Sequence[Exchange]) -> None:
    async def run() -> None:
        await migrations.upgrade(url)
        async with Database(url) as db, db.engine.begin() as conn:
            await insert_exchanges(conn, exchanges)

    asyncio.run(run())


def write_config(path: Path, primary_url: str, candidate_url: str) -> Path:
    path.write_text(
        f'[primary]\nbase_url = "{primary_url}/v1"\napi_key = "{PRIMARY_KEY}"\n'
        f'[[candidates]]\nname = "{CANDIDATE}"\nbase_url = "{candidate_url}/v1"\n'
        f'api_key = "{CANDIDATE_KEY}"\nmodel_map = {{"gpt-4o-mini" = "{CANDIDATE_MODEL}"}}\n'
    )
    return path


def cli_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
    return {**env, "UNDERSTUDY_DATABASE_URL": url, **extra}


def understudy(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "understudy.cli", *args],
        env=cli_env(url, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def start(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "understudy.cli", *args],
        env=cli_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
