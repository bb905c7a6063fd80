"""Recording wiring: the database, its schema check and the batched writer as one lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from migrations import ensure_schema
from storage.database import Database, is_sqlite
from storage.writer import ExchangeWriter
from understudy.settings import Settings

Lifecycle = Callable[[web.Application], AsyncIterator[None]]


def build_writer(
    settings: Settings, registry: CollectorRegistry
) -> tuple[ExchangeWriter, Lifecycle]:
    """The ExchangeWriter for ``settings`` and the aiohttp cleanup context that runs it.

    Start: check the schema (an embedded SQLite database upgrades itself; any other
    refuses to start when behind), then start the writer, which replays old spills.
    Stop: drain the queue to the database, spilling what is left.
    """
    database = Database(settings.database_url)
    storage = settings.storage
    writer = ExchangeWriter(
        database,
        spill_dir=storage.spill_dir,
        privacy=storage.privacy_policy(),
        queue_size=storage.queue_size,
        batch_size=storage.batch_size,
        linger_s=storage.linger_s,
        registry=registry,
    )

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        try:
            await ensure_schema(
                settings.database_url, auto_upgrade=is_sqlite(settings.database_url)
            )
            await writer.start()
        except BaseException:
            await database.dispose()
            raise
        yield
        try:
            await writer.stop(settings.shutdown_grace_s)
        finally:
            await database.dispose()

    return writer, lifecycle
