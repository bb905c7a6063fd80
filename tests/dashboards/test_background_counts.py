"""Counts that outlast their page: shared, kept until taken, cancelled on close."""

from __future__ import annotations

import asyncio

import pytest

from dashboards.pages.background_counts import BackgroundCounts


async def test_counts_are_shared_kept_until_taken_and_cancelled_on_close() -> None:
    counts = BackgroundCounts(wait_s=0.05)
    started: list[int] = []
    release = asyncio.Event()

    async def slow() -> int:
        started.append(1)
        await release.wait()
        return len(started)

    assert await counts.within("24h", slow) is None  # still counting
    assert await counts.within("24h", slow) is None  # shared, not started again
    assert started == [1] and counts.running == 1
    release.set()
    await asyncio.sleep(0)
    assert await counts.within("24h", slow) == 2  # the finished one taken, a fresh one made
    assert counts.running == 0

    async def failing() -> int:
        await asyncio.sleep(0.1)
        raise OSError("the database went away")

    assert await counts.within("1h", failing) is None
    await asyncio.sleep(0.2)
    with pytest.raises(OSError, match="went away"):
        await counts.within("1h", failing)  # the next page sees the failure

    never = asyncio.Event()

    async def hung() -> int:
        await never.wait()
        return 0

    assert await counts.within("7d", hung) is None
    await counts.close()
    assert counts.running == 0
