"""The primary answering half of the requests with 500: relayed as is, never retried, recorded."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import migrations
from core import Role
from storage.database import Database
from storage.repository import get_exchanges
from tests.faults.checks import assert_log_is_json
from tests.faults.fake_process import FakeProcess
from tests.faults.load import Load, chat_request, drive
from tests.faults.serve import start_proxy

pytestmark = pytest.mark.slow

RATE = 50
SECONDS = 8.0
# What the fake OpenAI says with its 500 (tests/fakes/_base.py), to check it arrives unchanged.
UPSTREAM_MESSAGE = "The server had an error while processing your request. Sorry about that!"


async def test_half_5xx_primary_is_called_once_per_request_and_relayed_and_recorded(
    tmp_path: Path, figure: Callable[[str], None]
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    await migrations.upgrade(db_url)
    load = Load()
    with (
        FakeProcess(persona="openai", first_byte_delay_s=0.01, error_ratio=0.5) as primary,
        FakeProcess(persona="candidate", first_byte_delay_s=0.02) as candidate,
    ):
        proxy = await asyncio.to_thread(
            start_proxy,
            tmp_path,
            db_url,
            (primary.base_url, candidate.base_url),
            log_level="info",
        )
        try:
            await drive(proxy.url, SECONDS, load, rate=RATE)
            questions = await asyncio.to_thread(primary.questions)
        finally:
            exit_code = await asyncio.to_thread(proxy.terminate)
    assert exit_code == 0, proxy.log.read_text()[-3000:]

    statuses = Counter(o.status for o in load.outcomes)
    calls = Counter(questions)
    repeated = {q: n for q, n in calls.items() if n > 1}
    figure(
        f"{load.sent} client requests, {len(questions)} primary calls, "
        f"client statuses {dict(statuses)}, questions asked more than once: {len(repeated)}"
    )
    # No retry storm: one primary call per client request, each request's own.
    assert len(questions) == load.sent
    assert not repeated
    assert set(calls) == {chat_request(i)["messages"][-1]["content"] for i in range(load.sent)}
    # The client sees exactly what the primary said: as many 500s as it served, unchanged.
    assert set(statuses) == {200, 500}, statuses
    assert statuses[500] == load.sent // 2
    for outcome in load.outcomes:
        if outcome.status == 500:
            error = json.loads(outcome.body)["error"]
            assert error["message"] == UPSTREAM_MESSAGE
            assert error["type"] == "server_error"

    # Every exchange, failed or not, is recorded with the status its client saw.
    seen = {o.exchange_id: o.status for o in load.outcomes if o.exchange_id is not None}
    assert len(seen) == load.sent
    async with Database(db_url) as db:
        stored = await get_exchanges(db, list(seen))
    assert len(stored) == load.sent, f"{load.sent - len(stored)} exchanges not recorded"
    for exchange in stored:
        served = exchange.arm(Role.SERVED)
        assert served is not None
        assert served.status == seen[exchange.id], exchange.id
    figure(f"{assert_log_is_json(proxy)} log lines, every one JSON")
