"""Replay storage and the runner on SQLite and PostgreSQL, with an in-process candidate.

The candidate is a ``FunctionUpstream``: the runner calls it through the same seam as
an HTTP adapter, and its answers go through the proxy's capture and ``observe``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core import Route, UpstreamRequest, UpstreamResponse
from proxy.config import UpstreamConfig
from proxy.upstreams.function import ChunkedResponse, FunctionUpstream
from storage.database import Database
from storage.inserts import insert_exchanges
from storage.privacy import PrivacyPolicy
from storage.purge import purge_exchange
from storage.replay import (
    Selection,
    create_run,
    get_run,
    pending_exchanges,
    record_result,
    replay_pairs,
    select_exchanges,
)
from storage.window import ExchangeWindow
from tests.replay.stored import CANDIDATE, CANDIDATE_MODEL, WITH_PROMPTS, WITHOUT_PROMPTS, traffic
from tests.storage.conftest import database, db_url, pg_server, pg_url  # noqa: F401  (fixtures)
from tests.storage.helpers import count_rows, dump_all_text
from understudy.progress import Progress
from understudy.replay_runner import Pacer, ReplayPace, ReplayRunner

EMAIL = "jane.doe@example.com"


class Candidate:
    """Answers each request with the question echoed and an email address, JSON or SSE."""

    def __init__(self) -> None:
        self.requests: list[UpstreamRequest] = []
        self.upstream = FunctionUpstream(
            UpstreamConfig(
                name=CANDIDATE,
                base_url="http://in-process/v1",
                model_map={"gpt-4o-mini": CANDIDATE_MODEL},
            ),
            self.answer,
        )

    async def answer(self, request: UpstreamRequest) -> UpstreamResponse:
        self.requests.append(request)
        question = request.body["messages"][0]["content"]
        text = f"Echo {question} Mail {EMAIL}"
        if not request.stream:
            body = {
                "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 5},
            }
            return ChunkedResponse(200, [json.dumps(body).encode()])
        events = [
            {"choices": [{"index": 0, "delta": {"content": text}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5}},
        ]
        chunks = [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]
        return ChunkedResponse(200, chunks, {"Content-Type": "text/event-stream"})


@pytest.fixture
async def seeded(database: Database) -> AsyncIterator[Database]:  # noqa: F811
    async with database.engine.begin() as conn:
        await insert_exchanges(conn, traffic())
    yield database


async def new_run(db: Database, selection: Selection) -> int:
    return await create_run(
        db,
        candidate=CANDIDATE,
        target="openai http://in-process/v1",
        selection_key="k",
        parameters={"route": None},
        selection=selection,
    )


def runner(db: Database, run_id: int, candidate: Candidate, total: int) -> ReplayRunner:
    progress = Progress("run", total, 0, io.StringIO())
    pace = ReplayPace(concurrency=3, rate=None, max_chars=200_000)
    return ReplayRunner(
        db, run_id, candidate.upstream, PrivacyPolicy.create(redact=["email"]), pace, progress
    )


async def test_selection_skips_requests_stored_without_prompts(seeded: Database) -> None:
    everything = await select_exchanges(seeded, ExchangeWindow())
    assert len(everything.chosen) == WITH_PROMPTS
    assert everything.skipped_no_prompt == WITHOUT_PROMPTS
    assert everything.chosen == sorted(everything.chosen)

    oldest = await select_exchanges(seeded, ExchangeWindow(), limit=4)
    assert oldest.chosen == everything.chosen[:4]
    assert (await select_exchanges(seeded, ExchangeWindow(route=Route.EMBEDDINGS))).chosen == []

    sampled = await select_exchanges(seeded, ExchangeWindow(), sample=6, seed=3)
    ids = [exchange_id for _, exchange_id in everything.chosen]
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"3:{i}".encode()).digest())
    assert {i for _, i in sampled.chosen} == set(ranked[:6])
    assert sampled == await select_exchanges(seeded, ExchangeWindow(), sample=6, seed=3)


async def test_runner_replays_each_once_and_masks_answers_as_live_ones(seeded: Database) -> None:
    selection = await select_exchanges(seeded, ExchangeWindow())
    run_id = await new_run(seeded, selection)
    candidate = Candidate()
    first = runner(seeded, run_id, candidate, len(selection.chosen))
    await first.feed()
    assert await first.drain(timeout_s=30)
    assert first.tally.stored == WITH_PROMPTS and first.tally.failed == 0
    assert {r.body["model"] for r in candidate.requests} == {CANDIDATE_MODEL}
    assert all(r.headers == {} for r in candidate.requests)  # no client header goes out

    run = await get_run(seeded, run_id)
    assert run is not None and run.done == WITH_PROMPTS and run.errors == 0
    pairs = await replay_pairs(seeded, run_id, after=None, limit=100)
    assert len(pairs) == WITH_PROMPTS
    for pair in pairs:
        question = pair.original.request["messages"][0]["content"]
        assert pair.replayed.text == f"Echo {question} Mail [redacted:email]"
        assert pair.replayed.usage.completion_tokens == 5
        assert pair.replayed.ttft_ms is not None
    assert EMAIL not in await dump_all_text(seeded)

    # Nothing is pending any more: a second pass sends nothing and stores nothing twice.
    again = runner(seeded, run_id, candidate, len(selection.chosen))
    await again.feed()
    assert again.tally.stored == 0 and len(candidate.requests) == WITH_PROMPTS
    assert await pending_exchanges(seeded, run_id, after=None, limit=10) == []
    assert not await record_result(seeded, run_id, pairs[0].original, pairs[0].replayed)


async def test_calls_cut_off_are_not_recorded_and_stay_pending(seeded: Database) -> None:
    selection = await select_exchanges(seeded, ExchangeWindow(), limit=8)
    run_id = await new_run(seeded, selection)
    candidate = Candidate()
    release = asyncio.Event()
    answer = candidate.answer

    calls: list[UpstreamRequest] = []

    async def first_two_then_hang(request: UpstreamRequest) -> UpstreamResponse:
        calls.append(request)
        if len(calls) > 2:
            await release.wait()  # never set: these calls hang until cancelled
        return await answer(request)

    candidate.upstream = FunctionUpstream(candidate.upstream.config, first_two_then_hang)
    replay = runner(seeded, run_id, candidate, 8)
    feeder = asyncio.create_task(replay.feed())
    while replay.tally.stored < 2 or replay.in_flight < 3:
        await asyncio.sleep(0.01)
    feeder.cancel()  # what Ctrl-C does: the feeder, waiting for a free slot, starts no call
    with pytest.raises(asyncio.CancelledError):
        await feeder
    assert not await replay.drain(timeout_s=0.05)
    assert await replay.cancel_in_flight() == 3
    assert replay.tally.stored == 2
    assert len(calls) == 5 and len(candidate.requests) == 2
    pending = await pending_exchanges(seeded, run_id, after=None, limit=10)
    assert len(pending) == 6
    run = await get_run(seeded, run_id)
    assert run is not None and run.done == 2


async def test_purging_an_exchange_deletes_its_replays(seeded: Database, spill_dir: Path) -> None:
    selection = await select_exchanges(seeded, ExchangeWindow(), limit=3)
    run_id = await new_run(seeded, selection)
    doomed = selection.chosen[0][1]
    await purge_exchange(seeded, spill_dir, doomed)
    assert await count_rows(seeded, "replay_results") == 2
    pending = await pending_exchanges(seeded, run_id, after=None, limit=10)
    assert doomed not in {x.id for x in pending} and len(pending) == 2


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    return tmp_path / "spill"


async def test_pacer_spaces_call_starts() -> None:
    pacer = Pacer(50.0)
    started = time.monotonic()
    for _ in range(11):
        await pacer.wait()
    elapsed = time.monotonic() - started
    assert elapsed >= 10 / 50 * 0.95  # 10 gaps of 20 ms; a loaded machine only adds time
    unpaced = Pacer(None)
    started = time.monotonic()
    for _ in range(11):
        await pacer_wait(unpaced)
    assert time.monotonic() - started < elapsed


async def pacer_wait(pacer: Pacer) -> None:
    await asyncio.wait_for(pacer.wait(), timeout=1)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal_and_writes_lines_elsewhere() -> None:
    now = [0.0]
    terminal = FakeTerminal()
    bar = Progress("run 4", 10, 2, terminal, clock=lambda: now[0])
    for _ in range(4):
        now[0] += 1.0
        bar.advance()
    bar.close()
    drawn = terminal.getvalue()
    assert drawn.count("\n") == 1 and drawn.endswith("\n")
    assert drawn.split("\r")[-1] == "run 4: 6 of 10 (60 %), 1.0/s, ETA 4s\x1b[K\n"

    now[0] = 0.0
    plain = io.StringIO()
    log = Progress("run 4", 100, 0, plain, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 0.5
        log.advance()
    log.close()
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue()
    # The first at 0.5 s, then one every 5 s up to 45.5 s, and the last figures at the end.
    assert len(lines) == 11
    assert lines[-2] == "run 4: 91 of 100 (91 %), 2.0/s, ETA 4s"
    assert lines[-1] == "run 4: 100 of 100 (100 %), 2.0/s, ETA 0s"
