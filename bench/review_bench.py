"""Time the review pages' queries on a SQLite database of 1,000,000 shadow exchanges.

Filled as the report bench fills it (``bench.report_db_bench.fill``: every exchange a
chat pair, 5,000 judged). Times, as medians of ``--repeat`` runs: choosing and showing
the next pair to a reviewer (the review page), a decision, and the admins' reviewers
page with its agreement figures after ``--reviews`` reviews. The budget is 300 ms a page.

Run from the repository root: ``python -m bench.review_bench [--rows N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.report_db_bench import CANDIDATE, fill
from core.outcome import ReviewOutcome
from dashboards.accounts import new_token, token_hash
from dashboards.agreement import agreement_figures
from dashboards.pages.review import WAITING_CAP
from dashboards.queue import REVIEWED_ROUTES, next_item
from storage.database import Database
from storage.reviewers import accept_invite, add_reviewer, list_reviewers
from storage.reviews import count_waiting, decide, decided_count
from storage.window import ExchangeWindow

BUDGET_MS = 300.0
PER_PAIR = 3


async def _reviewer(db: Database, name: str) -> int:
    token = new_token()
    now = datetime.now(UTC)
    await add_reviewer(db, name, token_hash(token), now, now + timedelta(days=1))
    found = await accept_invite(db, token_hash(token), "not-a-real-hash", now)
    assert found is not None
    return found


async def _median_ms(work: Callable[[], Awaitable[Any]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await work()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


async def run(path: Path, reviews: int, repeat: int) -> dict[str, float]:
    rng = random.Random(0)
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        people = [await _reviewer(db, f"reviewer{k}") for k in range(5)]
        # Reviews spread over the people, as a team would leave them.
        for k in range(reviews):
            who = people[k % len(people)]
            item = await next_item(db, who, [CANDIDATE], PER_PAIR, rng)
            assert item is not None
            outcome = rng.choice([ReviewOutcome.CANDIDATE, ReviewOutcome.PRIMARY])
            await decide(db, who, item.token, outcome, None, datetime.now(UTC))
        fresh = await _reviewer(db, "newcomer")

        async def review_page() -> None:
            item = await next_item(db, fresh, [CANDIDATE], PER_PAIR, rng)
            assert item is not None
            await decided_count(db, fresh)
            await count_waiting(
                db, fresh, CANDIDATE, REVIEWED_ROUTES, per_pair=PER_PAIR, cap=WAITING_CAP
            )
            await decide(db, fresh, item.token, ReviewOutcome.TIE, None, datetime.now(UTC))

        async def reviewers_page() -> None:
            await list_reviewers(db)
            await agreement_figures(db, ExchangeWindow(CANDIDATE))

        return {
            "review page (next pair, counters, decision)": await _median_ms(review_page, repeat),
            "reviewers page (list, agreement)": await _median_ms(reviewers_page, repeat),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reviews", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "review-bench.db"
        started = time.perf_counter()
        fill(path, args.rows)
        print(f"filled {args.rows:,} exchanges in {time.perf_counter() - started:.0f} s")
        timings = asyncio.run(run(path, args.reviews, args.repeat))
    worst = 0.0
    for page, ms in timings.items():
        worst = max(worst, ms)
        print(f"{page}: {ms:.1f} ms (budget {BUDGET_MS:.0f} ms)")
    print("within budget" if worst <= BUDGET_MS else "OVER BUDGET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
