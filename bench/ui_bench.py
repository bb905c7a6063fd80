"""Time every query a web UI page runs, on 1,000,000 exchanges, on SQLite and PostgreSQL.

SQLite is filled the way the report bench fills it (``bench.report_db_bench.fill``:
shadow pairs at 20 requests/s, 10 % with a noise call, 5,000 judged, then the
overview's rollups counted as the migration that adds them counts them); PostgreSQL
gets the same rows (rollups too) copied over with COPY, then VACUUM ANALYZE. Both get a rollout
history of 40 transitions. Each page's queries run ``--repeat`` times and the median
is reported; the budget is 300 ms per page. The overview page is also timed whole, as
its handler builds and renders it, for each time range. ``--index`` also times every page with
the candidate indexes below created (they are not part of the schema).

Run from the repository root: ``python -m bench.ui_bench [--rows N] [--backend B]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import jinja2
from sqlalchemy import Boolean, Uuid, text

import migrations
from bench.report_db_bench import CANDIDATE, fill
from core import Route
from dashboards.app import TEMPLATES_DIR
from dashboards.pages.home import overview_context
from dashboards.pages.overview_range import TimeRange, range_start, time_range
from storage.database import Database
from storage.flags import AuditNote, FlagRecord, append_flag, seed_flags
from storage.models import (
    ActivityRollupRow,
    ExchangeRow,
    JudgmentRow,
    ObservationRow,
    PairRollupRow,
)
from storage.types import UTCDateTime
from storage.ui_browser import BrowserFilter, Cursor, browse, exchange_detail
from storage.ui_memo import JudgeTallyMemo, overview_aggregates
from storage.ui_outcomes import judge_tally, review_tally, rollout_history
from storage.ui_overview import exact_latency_quantiles
from storage.window import ExchangeWindow
from tests.pg import PostgresServer

BUDGET_MS = 300.0
COPY_ROWS = 50_000
# Indexes a page might want; timed with and without, never part of the schema here.
CANDIDATE_INDEXES = (
    "CREATE INDEX ix_bench_exchanges_created_at_id ON exchanges (created_at, id)",
    "CREATE INDEX ix_bench_observations_arm ON observations "
    "(exchange_id, role, upstream, status, error_kind, latency_ms, ttft_ms)",
)
DROP_INDEXES = (
    "DROP INDEX IF EXISTS ix_bench_exchanges_created_at_id",
    "DROP INDEX IF EXISTS ix_bench_observations_arm",
)

Query = Callable[[], Awaitable[Any]]


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ---- PostgreSQL gets the SQLite rows ----------------------------------------------------------


def _converter(column: Any) -> Callable[[Any], Any]:
    if isinstance(column.type, Uuid):
        return lambda v: None if v is None else uuid.UUID(hex=v)
    if isinstance(column.type, UTCDateTime):
        return lambda v: None if v is None else datetime.fromisoformat(v).replace(tzinfo=UTC)
    if isinstance(column.type, Boolean):
        return lambda v: None if v is None else bool(v)
    return lambda v: v


def _sqlite_rows(path: Path, table: Any) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    names = [c.name for c in table.columns]
    convert = [_converter(c) for c in table.columns]
    conn = sqlite3.connect(path)
    try:
        cursor = conn.execute(f"SELECT {', '.join(names)} FROM {table.name}")
        while rows := cursor.fetchmany(COPY_ROWS):
            yield names, [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in rows]
    finally:
        conn.close()


async def copy_to_postgresql(path: Path, url: str) -> None:
    await migrations.upgrade(url)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        for model in (ExchangeRow, ObservationRow, JudgmentRow, ActivityRollupRow, PairRollupRow):
            table: Any = model.__table__
            for names, rows in _sqlite_rows(path, table):
                await conn.copy_records_to_table(table.name, records=rows, columns=names)
            _say(f"  copied {table.name}")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def add_rollout_history(db: Database, transitions: int = 40) -> None:
    start = FlagRecord(None, "shadow", CANDIDATE, 0.0, 1.0, 0.1, stage="shadow")
    await seed_flags(db, start, AuditNote("settings", "seed"))
    for k in range(transitions):
        percent = float((k * 5) % 100)

        def change(rows: Any, percent: float = percent) -> tuple[FlagRecord, FlagRecord]:
            return rows[None], dataclasses.replace(rows[None], percent=percent)

        await append_flag(db, None, change, AuditNote("bench", "set", "a step"))


# ---- the pages --------------------------------------------------------------------------------


async def _median_ms(query: Query, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await query()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


async def _last_created(db: Database) -> datetime:
    async with db.engine.connect() as conn:
        value = (await conn.execute(text("SELECT max(created_at) FROM exchanges"))).scalar_one()
    found = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return found if found.tzinfo else found.replace(tzinfo=UTC)


async def _count(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM exchanges"))).scalar_one())


async def _page_100_cursor(db: Database) -> Cursor | None:
    after = None
    for _ in range(99):
        after = (await browse(db, BrowserFilter(), after=after)).next_cursor
    return after


def _overview(db: Database, window: ExchangeWindow, bucket_s: int) -> dict[str, Query]:
    """The overview page's queries: the rollups for the plots and cost, then the rest."""
    return {
        "counts (activity, cost)": lambda: overview_aggregates(
            db, window, bucket_s=bucket_s, candidate_prompt_needed=True
        ),
        "judge_tally": lambda: judge_tally(db, window),
        "review_tally": lambda: review_tally(db, window),
        "rollout_history": lambda: rollout_history(db, since=window.since),
    }


async def overview_pages(db: Database, repeat: int) -> dict[str, dict[str, float]]:
    """Median milliseconds of each overview query, over everything and the last hour."""
    last = await _last_created(db)
    everything = ExchangeWindow(candidate=CANDIDATE)
    # The last hour as the page counts it: from the start of its quarter hour.
    hour = ExchangeWindow(candidate=CANDIDATE, since=range_start(_range("1h"), last))
    results: dict[str, dict[str, float]] = {}
    rows = f"all {await _count(db):,}"
    for label, window, bucket_s in ((rows, everything, 900), ("last hour", hour, 60)):
        queries = _overview(db, window, bucket_s)
        results[f"overview, {label}"] = {n: await _median_ms(q, repeat) for n, q in queries.items()}
    if db.dialect == "postgresql":
        results[f"exact p50/p95 (percentile_cont), {rows}"] = {
            "exact_latency_quantiles": await _median_ms(
                lambda: exact_latency_quantiles(db, everything, bucket_s=900), 1
            )
        }
    return results


def _range(key: str) -> TimeRange:
    chosen = time_range(key)
    assert chosen is not None
    return chosen


async def browser_pages(db: Database, repeat: int) -> dict[str, dict[str, float]]:
    first = await browse(db, BrowserFilter())
    page_100 = await _page_100_cursor(db)
    browser: dict[str, Query] = {
        "first page": lambda: browse(db, BrowserFilter()),
        "page 100 (keyset)": lambda: browse(db, BrowserFilter(), after=page_100),
        "filtered: status 500": lambda: browse(db, BrowserFilter(status=500)),
        "filtered: route, served_by, model": lambda: browse(
            db, BrowserFilter(route=Route.CHAT, served_by="openai", model="gpt-4o-mini")
        ),
        "filtered: fallback (none match)": lambda: browse(db, BrowserFilter(fallback=True)),
        "filtered: text, common": lambda: browse(db, BrowserFilter(text="congestion window")),
        "filtered: text, none match": lambda: browse(db, BrowserFilter(text="no such words")),
        "detail": lambda: exchange_detail(db, first.rows[0].id),
    }
    return {f"browser: {n}": {n: await _median_ms(q, repeat)} for n, q in browser.items()}


def _overview_template() -> jinja2.Template:
    """``overview.html`` as the UI renders it: autoescaped, undefined names an error."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("overview.html")


async def overview_rendered(db: Database, repeat: int) -> dict[str, dict[str, float]]:
    """The overview page as its handler builds it (``overview_context``: the rollups, the
    tallies, the plots' JSON), then rendered: per range, the first page after start (the
    judge's tally counted) and later pages (the tally kept until judgments change)."""
    template = _overview_template()
    # Live traffic ends now; the page is drawn a second after the last exchange.
    now = await _last_created(db) + timedelta(seconds=1)
    tallies = JudgeTallyMemo()
    page = {"session": None, "csrf_token": "", "csrf_field": lambda: ""}
    results: dict[str, dict[str, float]] = {}
    for key in ("1h", "24h", "7d", "all"):
        chosen = _range(key)

        async def one(chosen: TimeRange = chosen) -> int:
            context = await overview_context(db, tallies, chosen, CANDIDATE, None, now)
            return len(template.render(page | context))

        first, first_cpu = await _wall_and_cpu_ms(one, 1)
        later, later_cpu = await _wall_and_cpu_ms(one, repeat)
        name = f"overview page rendered, range {key}"
        results[f"{name}: first after start"] = {"wall": first}
        results[f"{name}: later"] = {"wall": later}
        if db.dialect == "sqlite":  # the database works in this process: its CPU is counted
            results[f"{name}: first after start, CPU"] = {"cpu": first_cpu}
            results[f"{name}: later, CPU"] = {"cpu": later_cpu}
    return results


async def _wall_and_cpu_ms(query: Query, repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (every thread, so SQLite's
    too): on a machine shared with other work, the CPU time is what the page costs."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        await query()
        walls.append((time.perf_counter() - wall) * 1000.0)
        cpus.append((time.process_time() - cpu) * 1000.0)
    return statistics.median(walls), statistics.median(cpus)


async def pages(db: Database, repeat: int, *, page_only: bool) -> dict[str, dict[str, float]]:
    """Every page's queries, then the overview page whole; ``page_only``: only the latter."""
    if page_only:
        return await overview_rendered(db, repeat)
    found = await browser_pages(db, repeat) | await overview_pages(db, repeat)
    return found | await overview_rendered(db, repeat)


def _report(backend: str, label: str, results: dict[str, dict[str, float]]) -> None:
    _say(f"\n{backend} ({label})")
    for page, queries in results.items():
        total = sum(queries.values())
        verdict = "met" if total <= BUDGET_MS else "NOT MET"
        _say(f"  {page:<42} {total:9.1f} ms  ({verdict}, budget {BUDGET_MS:.0f} ms)")
        if len(queries) > 1:
            for name, ms in queries.items():
                _say(f"      {name:<38} {ms:9.1f} ms")


async def _run_backend(
    backend: str, url: str, repeat: int, with_indexes: bool, page_only: bool
) -> None:
    db = Database(url)
    try:
        await add_rollout_history(db)
        _report(backend, "schema indexes only", await pages(db, repeat, page_only=page_only))
        if with_indexes:
            async with db.engine.begin() as conn:
                for statement in CANDIDATE_INDEXES:
                    await conn.execute(text(statement))
                if backend == "postgresql":
                    await conn.execute(text("ANALYZE"))
            found = await pages(db, repeat, page_only=page_only)
            _report(backend, "with the candidate indexes", found)
            async with db.engine.begin() as conn:
                for statement in DROP_INDEXES:
                    await conn.execute(text(statement))
    finally:
        await db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--index", action="store_true", help="also time with CANDIDATE_INDEXES")
    parser.add_argument(
        "--filled", type=Path, default=None, help="a copy of this filled database, not a new one"
    )
    parser.add_argument(
        "--overview-page-only", action="store_true", help="time only the whole overview page"
    )
    args = parser.parse_args()
    only = args.overview_page_only
    with tempfile.TemporaryDirectory(prefix="understudy-ui-bench-") as folder:
        path = Path(folder) / "understudy.db"
        started = time.perf_counter()
        if args.filled is not None:
            shutil.copy(args.filled, path)
        else:
            _say(f"filling {path} with {args.rows:,} shadow exchanges")
            fill(path, args.rows)
        _say(f"filled in {time.perf_counter() - started:.1f} s")
        if args.backend in ("sqlite", "both"):
            url = f"sqlite+aiosqlite:///{path}"
            asyncio.run(_run_backend("sqlite", url, args.repeat, args.index, only))
        if args.backend in ("postgresql", "both"):
            with PostgresServer() as pg:
                started = time.perf_counter()
                asyncio.run(copy_to_postgresql(path, pg.url))
                _say(f"copied to PostgreSQL in {time.perf_counter() - started:.1f} s")
                asyncio.run(_run_backend("postgresql", pg.url, args.repeat, args.index, only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
