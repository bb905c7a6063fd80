"""Committing one batch of exchanges: brief retries, and a record the database refuses set aside.

An unreachable database is told apart from a bad record (storage/failures.py):
the first ends the attempt so the caller can spill the batch; the second is
isolated by committing the batch one exchange at a time, and the refused one is
kept in a ``rejected-*.jsonl`` file for a person to look at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from core import Exchange
from storage import codec
from storage.backoff import Backoff
from storage.database import Database
from storage.failures import is_transient
from storage.inserts import insert_exchanges
from storage.metrics import WriterMetrics
from storage.spill import REJECTED_PREFIX, SpillDir

log = structlog.get_logger(__name__)

WRITE_ATTEMPTS = 3  # quick retries before a batch is spilled
RETRY = Backoff(base_s=0.05, cap_s=1.0)


async def commit_batch(
    db: Database, spill: SpillDir, metrics: WriterMetrics, batch: list[Exchange], *, replay: bool
) -> BaseException | None:
    """Commit ``batch`` (already prepared); the outage that stopped it, or None when done.

    Done means every exchange is in the database or in a rejected file (or counted
    as dropped when even that file could not be written).
    """
    counter = metrics.replayed if replay else metrics.written
    for attempt in range(WRITE_ATTEMPTS):
        try:
            async with db.engine.begin() as conn:
                await insert_exchanges(conn, batch)
        except Exception as exc:
            if not is_transient(exc):
                return await _one_by_one(db, spill, metrics, batch, replay=replay)
            if attempt + 1 == WRITE_ATTEMPTS:
                return exc
            await asyncio.sleep(RETRY.delay(attempt))
        else:
            counter.inc(len(batch))
            return None
    raise AssertionError("unreachable")


async def _one_by_one(
    db: Database, spill: SpillDir, metrics: WriterMetrics, batch: list[Exchange], *, replay: bool
) -> BaseException | None:
    counter = metrics.replayed if replay else metrics.written
    for exchange in batch:
        try:
            async with db.engine.begin() as conn:
                await insert_exchanges(conn, [exchange])
        except Exception as exc:
            if is_transient(exc):
                # Those stored already are skipped by the id when the batch comes back.
                return exc
            await asyncio.to_thread(_reject, spill, metrics, exchange, exc)
        else:
            counter.inc()
    return None


def _reject(spill: SpillDir, metrics: WriterMetrics, exchange: Exchange, exc: Exception) -> None:
    # Logged by id and error class only: the message could quote the record.
    log.error(
        "database refused an exchange; kept in a rejected file",
        exchange_id=str(exchange.id),
        error=type(exc).__name__,
    )
    try:
        spill.append([codec.dumps(exchange)], prefix=REJECTED_PREFIX)
    except OSError as disk:
        count_dropped(metrics, [exchange], disk)
    else:
        metrics.rejected.inc()


def count_dropped(metrics: WriterMetrics, batch: Sequence[Exchange], exc: Exception) -> None:
    """Exchanges that could be neither stored nor spilled: counted, and logged by id."""
    metrics.dropped.inc(len(batch))
    for exchange in batch:
        log.error(
            "exchange dropped: it could be neither stored nor spilled",
            exchange_id=str(exchange.id),
            error=type(exc).__name__,
            errno=getattr(exc, "errno", None),
        )
