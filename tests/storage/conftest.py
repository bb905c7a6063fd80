"""Storage tests run against SQLite and a real PostgreSQL started for the session.

PostgreSQL is required: without its server binaries the PostgreSQL tests fail
with the apt line that installs them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import migrations
from storage.database import Database
from tests.pg import PostgresServer, PostgresUnavailable

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database; the server is running again afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    yield url
    if not pg_server.is_running():  # a test that stopped it failed half-way
        pg_server.start()
    pg_server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """A migrated database of each kind."""
    await migrations.upgrade(db_url)
    db = Database(db_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def pg_database(pg_url: str) -> AsyncIterator[Database]:
    """A migrated PostgreSQL database, for tests that stop the server."""
    await migrations.upgrade(pg_url)
    db = Database(pg_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    return tmp_path / "spill"
