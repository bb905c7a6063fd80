"""Recording wiring: the batched writer in this process, or the link to a recorder process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from core import Exchange
from migrations import ensure_schema
from storage.database import Database, is_sqlite
from storage.recorder_link import RecorderLink
from storage.writer import ExchangeWriter
from understudy.settings import Settings

Lifecycle = Callable[[web.Application], AsyncIterator[None]]


def writer_for(
    settings: Settings,
    database: Database,
    registry: CollectorRegistry,
    on_settled: Callable[[Sequence[Exchange]], None] | None = None,
) -> ExchangeWriter:
    """The ExchangeWriter the storage settings describe, in this process or the recorder's."""
    storage = settings.storage
    return ExchangeWriter(
        database,
        spill_dir=storage.spill_dir,
        privacy=storage.privacy_policy(),
        queue_size=storage.queue_size,
        batch_size=storage.batch_size,
        linger_s=storage.linger_s,
        registry=registry,
        on_settled=on_settled,
    )


def build_writer(
    settings: Settings, registry: CollectorRegistry
) -> tuple[ExchangeWriter, Lifecycle]:
    """The ExchangeWriter for ``settings`` and the aiohttp cleanup context that runs it.

    Start: check the schema (an embedded SQLite database upgrades itself; any other
    refuses to start when behind), then start the writer, which replays old spills.
    Stop: drain the queue to the database, spilling what is left.
    """
    database = Database(settings.database_url)
    writer = writer_for(settings, database, registry)

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


def build_link(
    settings: Settings, registry: CollectorRegistry, socket_path: Path
) -> tuple[RecorderLink, Lifecycle]:
    """A link to the recorder process on ``socket_path``, and the cleanup context running it.

    Start: check the schema (the recorder has brought an embedded database up to
    date already), then connect. Stop: wait for the recorder to settle what it was
    handed, spilling whatever it has not.
    """
    link = RecorderLink(
        socket_path,
        spill_dir=settings.storage.spill_dir,
        privacy=settings.storage.privacy_policy(),
        registry=registry,
    )

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await ensure_schema(settings.database_url, auto_upgrade=False)
        await link.start()
        yield
        await link.stop(settings.shutdown_grace_s)

    return link, lifecycle
