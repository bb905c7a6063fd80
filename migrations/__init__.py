"""Alembic owns the schema: upgrade, downgrade and check a database from code.

No ``alembic.ini``: the configuration is built here, pointing at this
package's folder, so it works from an installed package and from any cwd.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL
from sqlalchemy.engine import Connection

from storage.database import Database
from storage.errors import SchemaOutOfDate

SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config for this package; ``url`` goes in attributes (no %-escaping)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:
        config.attributes["url"] = (
            str(url) if isinstance(url, str) else url.render_as_string(hide_password=False)
        )
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migration revisions found in " + str(SCRIPT_LOCATION))
    return head


def known_revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


async def _with_connection(url: str | URL, work: Callable[[Connection], None]) -> None:
    async with Database(url) as db, db.engine.begin() as conn:
        await conn.run_sync(work)


def _command(url: str | URL, run: Callable[[Config], None]) -> Callable[[Connection], None]:
    def work(connection: Connection) -> None:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        run(config)

    return work


async def upgrade(url: str | URL, rev: str = "head") -> None:
    """Migrate the database up to ``rev`` (default: the newest revision)."""
    await _with_connection(url, _command(url, lambda c: command.upgrade(c, rev)))


async def downgrade(url: str | URL, rev: str) -> None:
    """Migrate the database down to ``rev`` (``base`` empties it)."""
    await _with_connection(url, _command(url, lambda c: command.downgrade(c, rev)))


async def current(url: str | URL) -> str | None:
    """The database's revision, or None when it was never migrated."""
    found: list[str | None] = []

    def read(connection: Connection) -> None:
        found.append(MigrationContext.configure(connection).get_current_revision())

    await _with_connection(url, read)
    return found[0]


async def is_up_to_date(url: str | URL) -> bool:
    return await current(url) == head_revision()


async def ensure_schema(url: str | URL, *, auto_upgrade: bool) -> None:
    """Make sure the schema is the one this code needs, before serving.

    Raises ``SchemaOutOfDate`` when the database is behind and ``auto_upgrade``
    is False, or when it is at a revision this code does not know (never
    downgraded automatically).
    """
    head = head_revision()
    revision = await current(url)
    if revision == head:
        return
    if revision is not None and revision not in known_revisions():
        raise SchemaOutOfDate(revision, head, known=False)
    if not auto_upgrade:
        raise SchemaOutOfDate(revision, head)
    await upgrade(url)


__all__ = [
    "SCRIPT_LOCATION",
    "alembic_config",
    "current",
    "downgrade",
    "ensure_schema",
    "head_revision",
    "is_up_to_date",
    "upgrade",
]
