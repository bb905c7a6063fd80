"""Time ``understudy report`` on a SQLite database holding 1,000,000 shadow exchanges.

The database is filled with bulk ``executemany`` inserts on the raw tables
(a few minutes at most), then the report runs through the CLI's own entry
point with its output captured. Everything lives in a temporary folder that
is deleted at the end.

Run from the repository root: ``python -m bench.report_db_bench [--rows N] [--keep]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

import migrations
from storage.database import Database
from storage.rollups import rebuild_rollups
from understudy.cli import main as cli_main

CANDIDATE = "local-llama"
PRIMARY = "openai"
CHUNK = 50_000
JUDGED = 5_000
SLOWDOWN = 1.25  # the candidate's seeded typical latency ratio

SENTENCES = [
    "A hash map resolves collisions by chaining entries or probing for a free slot.",
    "TCP slow start doubles the congestion window every round trip until loss appears.",
    "A process owns its memory; threads share the memory of the process they belong to.",
    "Write-ahead logging records changes before applying them, so a crash can be replayed.",
    "HTTPS encrypts the password in transit with keys agreed during the TLS handshake.",
    "A load balancer spreads requests across servers and stops sending to unhealthy ones.",
    "Collisions are handled with buckets; each bucket keeps a short list of entries.",
    "Threads are cheaper to start than processes but a crash in one can take all down.",
]

EXCHANGE_SQL = (
    "INSERT INTO exchanges (id, created_at, route, requested_model, subject_hash, stream, mode, "
    "percent, flag_version, bucket, decision_served, served_is_candidate, decision_shadow, noise, "
    "served_by, fallback, candidate, request) "
    "VALUES (?, ?, 'chat.completions', 'gpt-4o-mini', ?, 0, 'shadow', 0.0, 1, ?, ?, 0, ?, ?, ?, "
    "0, ?, ?)"
)
OBSERVATION_SQL = (
    "INSERT INTO observations (exchange_id, position, upstream, role, model, status, error_kind, "
    "latency_ms, ttft_ms, prompt_tokens, completion_tokens, cached_tokens, finish_reason, text, "
    "tool_calls, truncated, embedding_dims) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'stop', ?, NULL, 0, NULL)"
)
JUDGMENT_SQL = (
    "INSERT INTO judgments (id, exchange_id, candidate, judge_model, prompt_version, outcome, "
    "created_at, detail) VALUES (?, ?, ?, 'judge-1', 'pairwise-v1', ?, ?, NULL)"
)


def _sqlite_time(t: datetime) -> str:
    # The text SQLAlchemy stores for a UTC DateTime on SQLite.
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


def _chunk_rows(
    rng: np.random.Generator, start: int, n: int, t0: datetime, ids: list[str]
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    shared = 0.5 * rng.standard_normal(n)
    primary_ms = 800.0 * np.exp(shared + 0.1 * rng.standard_normal(n))
    candidate_ms = SLOWDOWN * 800.0 * np.exp(shared + 0.1 * rng.standard_normal(n))
    prompt = rng.integers(20, 400, n)
    completion = rng.integers(20, 300, n)
    noise = rng.random(n) < 0.1
    primary_bad = rng.random(n) < 0.005
    candidate_bad = rng.random(n) < 0.01
    texts = rng.integers(0, len(SENTENCES), (n, 3))
    users = rng.integers(0, 5_000, n)
    offsets = (start + np.arange(n)) * 50_000  # 20 requests/s, in microseconds
    exchanges: list[tuple[object, ...]] = []
    observations: list[tuple[object, ...]] = []
    for i in range(n):
        eid = ids[start + i]
        created = _sqlite_time(t0 + timedelta(microseconds=int(offsets[i])))
        question = SENTENCES[int(texts[i, 0])][:40]
        request = json.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}
        )
        is_noise = bool(noise[i])
        exchanges.append(
            (
                eid,
                created,
                f"{int(users[i]):06x}",
                int(users[i]) % 10_000,
                PRIMARY,
                CANDIDATE,
                int(is_noise),
                PRIMARY,
                CANDIDATE,
                request,
            )
        )
        p_ms, c_ms = float(primary_ms[i]), float(candidate_ms[i])
        p_tok, c_tok = int(prompt[i]), int(completion[i])
        if primary_bad[i]:
            observations.append(
                (
                    eid,
                    0,
                    PRIMARY,
                    "served",
                    "gpt-4o-mini-2024-07-18",
                    500,
                    "http_status",
                    p_ms / 4,
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            )
        else:
            observations.append(
                (
                    eid,
                    0,
                    PRIMARY,
                    "served",
                    "gpt-4o-mini-2024-07-18",
                    200,
                    None,
                    p_ms,
                    p_ms * 0.3,
                    p_tok,
                    c_tok,
                    0,
                    SENTENCES[int(texts[i, 1])],
                )
            )
        if candidate_bad[i]:
            observations.append(
                (
                    eid,
                    1,
                    CANDIDATE,
                    "shadow",
                    "llama-3.1-8b-instruct",
                    None,
                    "timeout",
                    30_000.0,
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            )
        else:
            observations.append(
                (
                    eid,
                    1,
                    CANDIDATE,
                    "shadow",
                    "llama-3.1-8b-instruct",
                    200,
                    None,
                    c_ms,
                    c_ms * 0.3,
                    p_tok,
                    c_tok + 5,
                    None,
                    SENTENCES[int(texts[i, 2])],
                )
            )
        if is_noise:
            observations.append(
                (
                    eid,
                    2,
                    PRIMARY,
                    "noise",
                    "gpt-4o-mini-2024-07-18",
                    200,
                    None,
                    p_ms * 1.02,
                    p_ms * 0.3,
                    p_tok,
                    c_tok,
                    0,
                    SENTENCES[int(texts[i, 1])],
                )
            )
    return exchanges, observations


def fill(path: Path, rows: int, seed: int = 0) -> None:
    """Create the schema with the migrations, then bulk-insert ``rows`` shadow exchanges."""
    asyncio.run(migrations.upgrade(f"sqlite+aiosqlite:///{path}"))
    rng = np.random.default_rng(seed)
    ids = [f"{int(a):016x}{int(b):016x}" for a, b in rng.integers(0, 2**63, (rows, 2))]
    t0 = datetime.now(UTC) - timedelta(seconds=rows / 20 + 60)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    started = time.perf_counter()
    try:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            exchanges, observations = _chunk_rows(rng, start, n, t0, ids)
            with conn:  # one transaction per chunk
                conn.executemany(EXCHANGE_SQL, exchanges)
                conn.executemany(OBSERVATION_SQL, observations)
            done = start + n
            rate = done / (time.perf_counter() - started)
            print(f"  inserted {done:,} of {rows:,} exchanges ({rate:,.0f}/s)", flush=True)
        judged = rng.choice(rows, size=min(JUDGED, rows), replace=False)
        outcomes = rng.choice(["candidate", "primary", "tie"], size=judged.size, p=[0.3, 0.4, 0.3])
        now = _sqlite_time(datetime.now(UTC))
        with conn:
            conn.executemany(
                JUDGMENT_SQL,
                [
                    (f"{k:032x}", ids[int(r)], CANDIDATE, str(o), now)
                    for k, (r, o) in enumerate(zip(judged, outcomes, strict=True))
                ],
            )
    finally:
        conn.close()
    started = time.perf_counter()
    asyncio.run(_count_rollups(f"sqlite+aiosqlite:///{path}"))
    print(f"  rollups counted in {time.perf_counter() - started:.1f} s (a migration's backfill)")


async def _count_rollups(url: str) -> None:
    """The rows went in behind the writer's back: count the rollups as a migration would."""
    async with Database(url) as db, db.engine.begin() as conn:
        await conn.run_sync(rebuild_rollups)


def time_report(url: str, *extra: str) -> tuple[float, int, str]:
    """Run ``understudy report`` in-process; (seconds, exit code, output)."""
    previous = os.environ.get("UNDERSTUDY_DATABASE_URL")
    os.environ["UNDERSTUDY_DATABASE_URL"] = url
    out = io.StringIO()
    try:
        started = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = cli_main(["report", *extra])
        elapsed = time.perf_counter() - started
    finally:
        if previous is None:
            os.environ.pop("UNDERSTUDY_DATABASE_URL", None)
        else:
            os.environ["UNDERSTUDY_DATABASE_URL"] = previous
    return elapsed, code, out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="copy the database here too")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="understudy-report-bench-"))
    try:
        path = folder / "understudy.db"
        print(f"filling {path} with {args.rows:,} shadow exchanges")
        started = time.perf_counter()
        fill(path, args.rows)
        print(
            f"filled in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 1e6:,.0f} MB)"
        )
        if args.keep is not None:
            shutil.copy(path, args.keep)
        elapsed, code, output = time_report(f"sqlite+aiosqlite:///{path}")
        print(output)
        print(f"understudy report over {args.rows:,} exchanges: {elapsed:.1f} s (exit {code})")
        return code
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
