"""Alembic environment: async engines, the storage metadata as the target.

``migrations.upgrade()`` and friends hand in an open connection through
``config.attributes["connection"]``; the ``alembic`` command line (with
``sqlalchemy.url`` set, or ``UNDERSTUDY_DATABASE_URL``) gets its own engine.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from storage.database import create_engine, normalise_url
from storage.models import metadata
from storage.types import UTCDateTime

config = context.config
target_metadata = metadata


def _url() -> str:
    url = (
        config.attributes.get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("UNDERSTUDY_DATABASE_URL")
        or "sqlite+aiosqlite:///understudy.db"
    )
    return normalise_url(str(url)).render_as_string(hide_password=False)


def _render_item(type_: str, obj: object, autogen_context: AutogenContext) -> str | Literal[False]:
    # Revisions must not import our column types: write the portable type they stand for.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER by copying the table
        compare_type=True,
        render_item=_render_item,
        **kwargs,
    )


def run_with_connection(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with_connection)
            await connection.commit()
    finally:
        await engine.dispose()


def run_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif (given := config.attributes.get("connection")) is not None:
    run_with_connection(given)
else:
    asyncio.run(_run_async())
