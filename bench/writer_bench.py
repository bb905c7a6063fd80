"""Sustained insert rate of the exchange writer on SQLite and PostgreSQL.

    python bench/writer_bench.py [--exchanges 20000] [--batch-size 256] [--backend sqlite]

Each run makes a fresh database (PostgreSQL: a throwaway cluster from
tests/pg.py, with fsync on), puts every exchange with no pause, and times
until the last one is committed. Each exchange has two arms with ~1 KB of text
each, like a shadowed chat completion.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source tree

from prometheus_client import CollectorRegistry

import migrations
from core import (
    Exchange,
    Observation,
    Role,
    RolloutMode,
    Route,
    RoutingDecision,
    Usage,
)
from storage.database import Database
from storage.privacy import PrivacyPolicy
from storage.writer import ExchangeWriter
from tests.pg import PostgresServer

TEXT = ("The write-ahead log lets readers keep going while the writer commits. " * 15)[:1000]


def exchange(i: int) -> Exchange:
    decision = RoutingDecision(
        served="openai",
        served_is_candidate=False,
        shadow="vllm",
        noise=False,
        mode=RolloutMode.SHADOW,
        percent=0.0,
        flag_version=1,
        bucket=i % 10_000,
    )
    arms = tuple(
        Observation(
            upstream=name,
            role=role,
            model="gpt-4o-mini",
            status=200,
            latency_ms=800.0 + i % 100,
            ttft_ms=120.0,
            usage=Usage(40, 200, 0),
            text=TEXT,
            finish_reason="stop",
        )
        for name, role in (("openai", Role.SERVED), ("vllm", Role.SHADOW))
    )
    return Exchange(
        id=uuid.uuid4(),
        created_at=datetime.now(UTC),
        route=Route.CHAT,
        requested_model="gpt-4o-mini",
        subject_hash=f"user-{i % 500}",
        stream=True,
        decision=decision,
        served_by="openai",
        fallback=False,
        request={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Question {i}: how does WAL work?"}],
            "temperature": 0.2,
        },
        observations=arms,
    )


async def run(url: str, count: int, batch_size: int, spill_dir: Path) -> float:
    await migrations.upgrade(url)
    exchanges = [exchange(i) for i in range(count)]
    async with Database(url) as db:
        writer = ExchangeWriter(
            db,
            spill_dir=spill_dir,
            privacy=PrivacyPolicy(redact=("email", "card")),
            queue_size=count,
            batch_size=batch_size,
            registry=CollectorRegistry(),
        )
        await writer.start()
        await writer.wait_idle()  # nothing to replay; the engine is warm
        started = time.perf_counter()
        for e in exchanges:
            writer.put(e)
        await writer.wait_idle(timeout_s=600)
        elapsed = time.perf_counter() - started
        await writer.stop()
        written = writer.metrics.registry.get_sample_value("understudy_storage_written_total")
        if written != count:
            raise RuntimeError(f"wrote {written} of {count}")
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="understudy-bench-") as tmp:
        base = Path(tmp)
        if args.backend in ("sqlite", "both"):
            url = f"sqlite+aiosqlite:///{base / 'bench.db'}"
            rate = asyncio.run(run(url, args.exchanges, args.batch_size, base / "spill-sqlite"))
            print(
                f"sqlite      {args.exchanges} exchanges, batch {args.batch_size}: "
                f"{rate:,.0f} exchanges/s"
            )
        if args.backend in ("postgresql", "both"):
            with PostgresServer(durable=True) as pg:
                rate = asyncio.run(run(pg.url, args.exchanges, args.batch_size, base / "spill-pg"))
            print(
                f"postgresql  {args.exchanges} exchanges, batch {args.batch_size}: "
                f"{rate:,.0f} exchanges/s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
