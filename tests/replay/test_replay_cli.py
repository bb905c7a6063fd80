"""``understudy replay`` end to end: real fake servers, a real SQLite file, the CLI as a process.

The primary's fake is configured and running in every test, and must receive nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core import Route
from evaluation.metrics.registry import build_metric
from storage.database import Database
from tests.evaluation.judge_server import JudgeBehaviour
from tests.evaluation.judge_server import build_app as build_judge_app
from tests.fakes import FakeOpenAI, ThreadedServer
from tests.replay.stored import (
    CANDIDATE,
    CANDIDATE_KEY,
    CANDIDATE_MODEL,
    PRIMARY_KEY,
    WITH_PROMPTS,
    WITHOUT_PROMPTS,
    primary_text,
    seed,
    start,
    traffic,
    understudy,
    write_config,
)
from tests.storage.helpers import count_rows
from understudy.cli import main


class Servers:
    def __init__(self, tmp_path: Path, candidate: FakeOpenAI) -> None:
        self.primary = FakeOpenAI("primary", expected_api_key=PRIMARY_KEY)
        self.candidate = candidate
        self.url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
        self.tmp_path = tmp_path
        self.config = ""
        self.candidate_url = ""

    def replay(self, *args: str, **env: str) -> Any:
        return understudy(self.url, "replay", "--config", self.config, *args, **env)


@pytest.fixture
def servers(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Servers]:
    delay = getattr(request, "param", 0.0)
    candidate = FakeOpenAI("candidate", expected_api_key=CANDIDATE_KEY, first_byte_delay_s=delay)
    s = Servers(tmp_path, candidate)
    seed(s.url, traffic())
    with ThreadedServer(s.primary.app) as p, ThreadedServer(candidate.app) as c:
        s.config = str(write_config(tmp_path / "understudy.toml", p.url, c.url))
        s.candidate_url = c.url
        yield s
    assert s.primary.requests == [], "the primary was sent a replay"


def results(url: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        async with Database(url) as db, db.engine.connect() as conn:
            from sqlalchemy import text

            rows = await conn.execute(text("SELECT * FROM replay_results"))
            return [dict(r._mapping) for r in rows]

    return asyncio.run(read())


def everything_stored(url: str) -> str:
    async def read() -> str:
        from sqlalchemy import text

        async with Database(url) as db, db.engine.connect() as conn:
            runs = (await conn.execute(text("SELECT * FROM replay_runs"))).all()
            rows = (await conn.execute(text("SELECT * FROM replay_results"))).all()
        return repr(runs) + repr(rows)

    return asyncio.run(read())


def test_replays_20_stored_requests_to_the_candidate_only(servers: Servers) -> None:
    done = servers.replay("--candidate", CANDIDATE)
    assert done.returncode == 0, done.stderr
    assert f"20 requests to replay to {CANDIDATE}" in done.stderr
    assert f"{WITHOUT_PROMPTS} skipped, stored without prompts" in done.stderr
    assert "run 1: 20 replayed now (0 failed), 20 of 20 done in all" in done.stdout

    sent = servers.candidate.requests
    assert len(sent) == WITH_PROMPTS
    assert {r.body["model"] for r in sent} == {CANDIDATE_MODEL}
    assert all(r.headers["authorization"] == f"Bearer {CANDIDATE_KEY}" for r in sent)
    streamed = [r for r in sent if r.body.get("stream")]
    assert len(streamed) == WITH_PROMPTS // 2
    assert all(r.body["stream_options"] == {"include_usage": True} for r in streamed)

    rows = results(servers.url)
    assert len(rows) == WITH_PROMPTS and len({r["exchange_id"] for r in rows}) == WITH_PROMPTS
    assert all(r["status"] == 200 and r["error_kind"] is None for r in rows)
    expected = {servers.candidate.reply_text(CANDIDATE_MODEL, r.body["messages"]) for r in sent}
    assert {r["text"] for r in rows} == expected
    assert all(r["ttft_ms"] is not None and r["completion_tokens"] for r in rows)
    stored = everything_stored(servers.url)
    assert CANDIDATE_KEY not in stored and PRIMARY_KEY not in stored
    assert CANDIDATE_KEY not in done.stdout + done.stderr

    again = servers.replay("--candidate", CANDIDATE)
    assert again.returncode == 0
    assert "run 1 already finished: 20 of 20 replayed" in again.stdout
    assert len(servers.candidate.requests) == WITH_PROMPTS


def test_report_compares_with_the_recorded_primary_and_keeps_latency_apart(
    servers: Servers,
) -> None:
    assert servers.replay("--candidate", CANDIDATE).returncode == 0
    shown = understudy(servers.url, "report", "--replay", "1", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["replay"] == {
        "run": 1,
        "candidate": CANDIDATE,
        "target": report["replay"]["target"],
        "status": "finished",
        "selected": WITH_PROMPTS,
        "done": WITH_PROMPTS,
        "skipped_no_prompt": WITHOUT_PROMPTS,
    }
    assert report["replay"]["target"].startswith("openai http://127.0.0.1:")

    rows = results(servers.url)
    latencies = np.array([r["latency_ms"] for r in rows])
    ttfts = np.array([r["ttft_ms"] for r in rows])
    latency = report["latency"]
    assert latency["calls"] == WITH_PROMPTS and latency["failed"] == 0
    assert latency["latency_ms"]["p50"] == pytest.approx(float(np.percentile(latencies, 50)))
    assert latency["latency_ms"]["p95"] == pytest.approx(float(np.percentile(latencies, 95)))
    assert latency["ttft_ms"]["p95"] == pytest.approx(float(np.percentile(ttfts, 95)))

    # The candidate's answer to each request against the primary's recorded answer to it.
    by_question = {
        int(r.body["messages"][0]["content"].split()[1].rstrip(":")): servers.candidate.reply_text(
            CANDIDATE_MODEL, r.body["messages"]
        )
        for r in servers.candidate.requests
    }
    token_f1 = build_metric("token_f1")
    chrf = build_metric("chrf")
    quality = {m["name"]: m for m in report["quality"]["metrics"]}
    assert report["quality"]["pairs"] == WITH_PROMPTS
    for metric in (token_f1, chrf):
        wanted = np.mean([metric.score(c, primary_text(i)) for i, c in by_question.items()])
        assert quality[metric.name]["mean"] == pytest.approx(float(wanted))
        assert quality[metric.name]["n"] == WITH_PROMPTS
    # A noise arm was recorded on every fourth exchange: the primary against itself.
    assert quality["token_f1"]["primary_noise_mean"] == pytest.approx(1.0)

    text = understudy(servers.url, "report", "--replay", "1")
    assert "not comparable with live traffic" in text.stdout
    assert "Quality against the recorded primary answers (20 pairs)" in text.stdout
    # The live report sees no replay: it has no candidate answer to compare.
    live = understudy(servers.url, "report", "--candidate", CANDIDATE, "--format", "json")
    assert live.returncode == 1 and "no shadow pairs or split-mode exchanges" in live.stderr

    missing = understudy(servers.url, "report", "--replay", "7")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "understudy: no replay run 7: `understudy replay list` shows the runs"
    )


@pytest.mark.slow
@pytest.mark.parametrize("servers", [0.4], indirect=True)
def test_ctrl_c_stops_and_the_same_command_resumes_without_doubles(servers: Servers) -> None:
    args = ("--candidate", CANDIDATE, "--concurrency", "2")
    proc = start(servers.url, "replay", "--config", servers.config, *args)
    deadline = time.monotonic() + 60
    while len(results_done(servers.url)) < 4:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "replayed now" in out
    assert proc.returncode == 130, err
    assert "run the same command again to resume it" in err
    stopped = len(results_done(servers.url))
    assert 4 <= stopped < WITH_PROMPTS

    listed = understudy(servers.url, "replay", "list", "--format", "json")
    (run,) = json.loads(listed.stdout)
    assert run["status"] == "stopped" and run["done"] == stopped

    resumed = servers.replay(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run 1: {stopped} of {WITH_PROMPTS} done" in resumed.stderr
    rows = results(servers.url)
    assert len(rows) == WITH_PROMPTS
    assert all(r["replayed_at"] is not None for r in rows)
    # Calls cut off by Ctrl-C were sent but not recorded; at most the two in flight.
    assert WITH_PROMPTS <= len(servers.candidate.requests) <= WITH_PROMPTS + 2


def results_done(url: str) -> list[dict[str, Any]]:
    try:
        return [r for r in results(url) if r["replayed_at"] is not None]
    except Exception:  # the run's tables are being created by the process under test
        return []


@pytest.mark.slow
def test_sample_is_chosen_by_a_seeded_hash_of_the_exchange_id(servers: Servers) -> None:
    first = servers.replay("--candidate", CANDIDATE, "--sample", "5")
    assert first.returncode == 0, first.stderr
    again = servers.replay("--candidate", CANDIDATE, "--sample", "5", "--new")
    other = servers.replay("--candidate", CANDIDATE, "--sample", "5", "--seed", "9")
    assert again.returncode == other.returncode == 0
    rows = results(servers.url)
    stored = {
        run: {str(uuid.UUID(str(r["exchange_id"]))) for r in rows if r["run_id"] == run}
        for run in (1, 2, 3)
    }

    async def replayable() -> list[str]:
        from sqlalchemy import text

        async with Database(servers.url) as db, db.engine.connect() as conn:
            found = await conn.execute(text("SELECT id, request FROM exchanges"))
            return [str(i) for i, req in found if "messages" in json.loads(req)]

    ids = [str(uuid.UUID(i)) for i in asyncio.run(replayable())]

    def expected(seed: int) -> set[str]:
        ranked = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
        return set(ranked[:5])

    assert stored[1] == stored[2] == expected(0)
    assert stored[3] == expected(9) != expected(0)


def test_ad_hoc_target_with_a_model_map_and_a_key_from_the_environment(
    servers: Servers,
) -> None:
    done = servers.replay(
        "--base-url",
        f"{servers.candidate_url}/v1",
        "--model-map",
        '{"gpt-4o-mini": "smollm2-135m"}',
        "--api-key-env",
        "REPLAY_KEY",
        "--route",
        Route.CHAT.value,
        "--limit",
        "3",
        "--rate",
        "20",
        REPLAY_KEY=CANDIDATE_KEY,
    )
    assert done.returncode == 0, done.stderr
    sent = servers.candidate.requests
    assert [r.body["model"] for r in sent] == ["smollm2-135m"] * 3
    # --rate 20: starts 50 ms apart at least (a loaded machine only spaces them more).
    assert sent[-1].received_at - sent[0].received_at >= 2 / 20 * 0.9
    assert CANDIDATE_KEY not in everything_stored(servers.url) + done.stdout + done.stderr
    listed = understudy(servers.url, "replay", "list")
    assert "127.0.0.1" in listed.stdout and "finished  3/3" in listed.stdout


def test_an_unreachable_target_leaves_the_requests_pending(servers: Servers) -> None:
    done = servers.replay("--base-url", "http://127.0.0.1:9/v1", "--limit", "2")
    assert done.returncode == 1
    assert "2 requests did not reach 127.0.0.1 (no connection, or its key refused)" in done.stderr
    assert [r["replayed_at"] for r in results(servers.url)] == [None, None]

    # The candidate refuses a wrong key: a setup problem, so nothing is recorded either.
    configured = servers.replay("--candidate", CANDIDATE, "--limit", "2", "--new")
    assert configured.returncode == 0  # the configured key is right
    wrong = servers.replay(
        "--base-url", f"{servers.candidate_url}/v1", "--limit", "2", "--api-key-env", "K", K="sk-no"
    )
    assert wrong.returncode == 1 and "2 requests did not reach" in wrong.stderr
    assert sum(r["replayed_at"] is None for r in results(servers.url)) == 4


def test_judge_replay_pairs_apart_from_live_judgments(servers: Servers) -> None:
    assert servers.replay("--candidate", CANDIDATE, "--limit", "6").returncode == 0
    behaviour = JudgeBehaviour(preferred_word="fox")  # in every candidate answer, no primary's
    judge_key = "test-key"  # what the judge server accepts
    with ThreadedServer(build_judge_app(behaviour)) as judge:
        args = ("judge", "--replay", "1", "--model", "judge-model-1", "--api-key-env", "JK")
        done = understudy(servers.url, *args, "--base-url", f"{judge.url}/v1", JK=judge_key)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("judged 6 pairs of replay run 1 with judge-model-1")
        assert "6 candidate better, 0 primary better, 0 ties" in done.stdout
        assert len(behaviour.requests) == 12  # both orders
        again = understudy(servers.url, *args, "--base-url", f"{judge.url}/v1", JK=judge_key)
        assert again.stdout.startswith("judged 0 pairs") and len(behaviour.requests) == 12
    assert judge_key not in done.stdout + done.stderr + everything_stored(servers.url)

    shown = understudy(servers.url, "report", "--replay", "1", "--format", "json")
    judged = json.loads(shown.stdout)["quality"]["judge"]
    assert judged == {"judge-model-1": {"candidate": 6, "primary": 0, "tie": 0}}

    async def live_judgments() -> int:
        async with Database(servers.url) as db:
            return await count_rows(db, "judgments")

    assert asyncio.run(live_judgments()) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "choose a configured --candidate NAME, or a target with --base-url"),
        (("--candidate", "nope"), "no candidate named 'nope' (none configured)"),
        (("--base-url", "ftp://x"), "--base-url must start with http:// or https://"),
        (("--base-url", "http://x/v1", "--model-map", "[1]"), "--model-map must map model"),
        (("--model-map", "{}"), "--model-map and --api-key-env describe an ad-hoc"),
        (("--base-url", "http://x/v1", "--api-key-env", "UNSET_KEY_VAR"), "is not set"),
    ],
)
def test_a_bad_target_is_one_line_and_exit_2(
    args: tuple[str, ...],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'u.db'}")
    monkeypatch.delenv("UNSET_KEY_VAR", raising=False)
    assert main(["replay", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("understudy: ") and message in err
