"""Time the exchange browser's pages over HTTP, queries and rendering together, on 1,000,000
exchanges, on SQLite and PostgreSQL.

The database is filled as ``bench.ui_bench`` fills it (short answers), plus two exchanges
whose detail pages cost the most to draw: two different 1,000-word answers, and two
answers at the word diff's limit that repeat two words (the diff's worst case). The web
UI runs as ``understudy serve`` mounts it, on a local port; an admin signs in and each
page is fetched ``--repeat`` times, the median reported against the 300 ms budget, beside
the median of the page's data-layer call alone, taken in turns with the page: what is
left is rendering (the diff and the metrics on detail pages) and HTTP.

Run from the repository root: ``python -m bench.ui_pages_bench [--rows N] [--backend B]``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import numpy as np
from aiohttp import web

from admin.auth import AdminTokens
from bench.report_db_bench import CANDIDATE, SENTENCES, fill
from bench.ui_bench import BUDGET_MS, copy_to_postgresql
from core import Exchange, Observation, Role, RolloutMode, Route, RoutingDecision
from dashboards.app import PREFIX, create_ui_app
from dashboards.config import UiConfig, UiContext
from dashboards.exchange_filters import encode_cursor, parse_query
from dashboards.worddiff import MAX_WORD_PAIRS
from storage.database import Database
from storage.inserts import insert_exchanges
from storage.ui_browser import BrowserFilter, browse, exchange_detail
from tests.pg import PostgresServer
from understudy.server import start_site

TOKEN = "bench-admin-token-00000000000000000"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _answer(rng: np.random.Generator, words: int) -> str:
    picked = rng.choice(" ".join(SENTENCES).split(), size=words)
    return " ".join(str(w) for w in picked)


def _costly_pair(created_at: datetime, primary: str, candidate: str) -> Exchange:
    decision = RoutingDecision("openai", False, CANDIDATE, False, RolloutMode.SHADOW, 0.0, 1, 1)
    return Exchange(
        id=uuid.uuid4(),
        created_at=created_at,
        route=Route.CHAT,
        requested_model="gpt-4o-mini",
        subject_hash="bench",
        stream=False,
        decision=decision,
        served_by="openai",
        fallback=False,
        request={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Explain."}]},
        observations=(
            Observation("openai", Role.SERVED, "gpt-4o-mini", 200, 900.0, 120.0, text=primary),
            Observation(CANDIDATE, Role.SHADOW, "llama", 200, 1400.0, 300.0, text=candidate),
        ),
    )


async def add_costly_pairs(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    """The long pair and the worst-case pair; their ids."""
    rng = np.random.default_rng(7)
    side = int(MAX_WORD_PAIRS**0.5) - 1  # words a side (one more added) at the diff's limit
    at = datetime.now(UTC) - timedelta(days=400)  # far back: the first pages stay as filled
    long = _costly_pair(at, _answer(rng, 1000), _answer(rng, 1000))
    repeated = " ".join(str(w) for w in rng.choice(["yes", "no"], size=side))
    worst = _costly_pair(at, "start " + repeated, repeated + " end")
    async with db.engine.begin() as conn:
        await insert_exchanges(conn, [long, worst])
    return long.id, worst.id


async def _signed_in(session: aiohttp.ClientSession, url: str) -> None:
    async with session.get(f"{url}/ui/signin") as response:
        found = CSRF.search(await response.text())
    assert found is not None
    form = {"csrf": found.group(1), "token": TOKEN}
    headers = {"Origin": url}
    async with session.post(
        f"{url}/ui/signin/admin", data=form, headers=headers, allow_redirects=False
    ) as response:
        assert response.status == 303, response.status


Query = Callable[[], Awaitable[Any]]


async def _timed_ms(call: Query) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000.0


async def _page_and_query_ms(
    session: aiohttp.ClientSession, url: str, query: Query, repeat: int
) -> tuple[float, float]:
    """Median ms of the page over HTTP and of its data-layer call alone, taken in turns so
    that both see the same load on the machine."""

    async def fetch() -> None:
        async with session.get(url, allow_redirects=False) as response:
            await response.read()
            assert response.status == 200, (url, response.status)

    await fetch()  # warm: the database's cache, imports, templates
    pages, queries = [], []
    for _ in range(repeat):
        pages.append(await _timed_ms(fetch))
        queries.append(await _timed_ms(query))
    return statistics.median(pages), statistics.median(queries)


async def _pages(db: Database, costly: tuple[uuid.UUID, uuid.UUID]) -> dict[str, tuple[str, Query]]:
    """Each page's path, and the data-layer call it makes (from the same parameters)."""
    after = None
    for _ in range(99):
        after = (await browse(db, BrowserFilter(), after=after)).next_cursor
    assert after is not None
    newest = (await browse(db, BrowserFilter(), page_size=1, scan_cap=1)).rows[0].id

    def listing(**params: str) -> tuple[str, Query]:
        asked = parse_query(params)
        path = "/ui/exchanges" + (f"?{urlencode(params)}" if params else "")
        return path, lambda: browse(db, asked.filter, after=asked.after)

    def detail(exchange_id: uuid.UUID) -> tuple[str, Query]:
        return f"/ui/exchanges/{exchange_id}", lambda: exchange_detail(db, exchange_id)

    return {
        "first page": listing(),
        "page 100 (keyset)": listing(after=encode_cursor(after)),
        "filtered: status 500": listing(status="500"),
        "filtered: route, served_by, model": listing(
            route="chat.completions", served_by="openai", model="gpt-4o-mini"
        ),
        "filtered: fallback (none match)": listing(fallback="yes"),
        "filtered: text, common": listing(text="congestion window"),
        "filtered: text, none match": listing(text="no such words"),
        "detail: newest": detail(newest),
        "detail: two 1,000-word answers": detail(costly[0]),
        "detail: diff's worst case": detail(costly[1]),
    }


async def time_pages(url: str, repeat: int) -> dict[str, tuple[float, float]]:
    """Per page: median ms over HTTP, and of its query alone."""
    config = UiConfig(
        reviewers_per_pair=3,
        session_lifetime_s=3600.0,
        signin_attempts_per_minute=1000,
        secure_cookies=False,
        origin=None,
        candidate=CANDIDATE,
    )
    db = Database(url)
    costly = await add_costly_pairs(db)
    pages = await _pages(db, costly)
    root = web.Application()
    root.add_subapp(PREFIX, create_ui_app(UiContext(config, db, AdminTokens({"bench": TOKEN}))))
    site = await start_site(root, "127.0.0.1", 0)
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            await _signed_in(session, site.url)
            return {
                name: await _page_and_query_ms(session, site.url + path, query, repeat)
                for name, (path, query) in pages.items()
            }
    finally:
        await site.stop()  # disposes of the database with the UI app


def _report(backend: str, results: dict[str, tuple[float, float]]) -> None:
    _say(f"\n{backend}: exchange browser pages over HTTP, and their queries alone (medians)")
    for name, (page, query) in results.items():
        verdict = "met" if page <= BUDGET_MS else "NOT MET"
        _say(
            f"  {name:<34} page {page:7.1f} ms  query {query:7.1f} ms  "
            f"({verdict}, budget {BUDGET_MS:.0f} ms)"
        )


def main() -> int:
    first_paragraph = " ".join(__doc__.split("\n\n", 1)[0].split())
    parser = argparse.ArgumentParser(description=first_paragraph)
    parser.add_argument("--rows", type=int, default=1_000_000, help="exchanges to fill")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=5, help="timed fetches of each page")
    parser.add_argument(
        "--filled", type=Path, default=None, help="a copy of this filled database, not a new one"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="understudy-ui-pages-bench-") as folder:
        path = Path(folder) / "understudy.db"
        if args.filled is not None:
            shutil.copy(args.filled, path)
        else:
            _say(f"filling {path} with {args.rows:,} shadow exchanges")
            fill(path, args.rows)
        if args.backend in ("sqlite", "both"):
            url = f"sqlite+aiosqlite:///{path}"
            _report("sqlite", asyncio.run(time_pages(url, args.repeat)))
        if args.backend in ("postgresql", "both"):
            with PostgresServer() as pg:
                asyncio.run(copy_to_postgresql(path, pg.url))
                _report("postgresql", asyncio.run(time_pages(pg.url, args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
